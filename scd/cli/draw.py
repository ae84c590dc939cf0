"""`scd draw`: a picture of one circuit, from its JSON file or from a store."""

from __future__ import annotations

from pathlib import Path

import click

from scd.cli.exchange import load_circuit
from scd.cli.options import store_options


@click.command()
@click.argument("circuit")
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file; .png, .svg or .pdf (default: the JSON file's name, or the circuit id, with .png).",
)
@click.option("--max-edges", default=80, show_default=True, help="Draw only the strongest edges.")
@store_options
def draw(circuit, out, max_edges, store_config):
    """Draw a circuit -- a circuit JSON file or the id of a stored circuit: positions left to right, sublayers
    bottom to top, strongest edges.

    \b
    Example:
      scd discover "Copyright (C" --json c.json && scd draw c.json -o c.png
      scd draw c-0123456789abcdef --store scd-store -o c.png   # an id from `scd query circuits`
    """
    from scd.report.draw import draw_circuit  # matplotlib: only for the command that draws

    c = load_circuit(circuit, store_config)
    default = Path(circuit).with_suffix(".png") if Path(circuit).is_file() else Path(f"{c.id}.png")
    path = draw_circuit(c, out or default, max_edges=max_edges)
    click.echo(f"wrote {path}")


COMMANDS = [draw]
