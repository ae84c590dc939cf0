"""`scd draw`: a picture of one circuit from its JSON."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("circuit_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file; .png, .svg or .pdf (default: CIRCUIT_JSON with .png).",
)
@click.option("--max-edges", default=80, show_default=True, help="Draw only the strongest edges.")
def draw(circuit_json, out, max_edges):
    """Draw a circuit: positions left to right, sublayers bottom to top, strongest edges.

    \b
    Example:
      scd discover "Copyright (C" --json c.json && scd draw c.json -o c.png
    """
    from scd.core.circuit import Circuit
    from scd.report.draw import draw_circuit  # matplotlib: only for the command that draws

    circuit = Circuit.from_json(circuit_json)
    path = draw_circuit(circuit, out or circuit_json.with_suffix(".png"), max_edges=max_edges)
    click.echo(f"wrote {path}")


COMMANDS = [draw]
