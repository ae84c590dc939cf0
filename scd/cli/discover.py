"""`scd discover`: one prompt's circuit, printed as a readable summary (and saved as JSON with --json)."""

from __future__ import annotations

from pathlib import Path

import click

from scd.cli.options import discovery_options, model_options


@click.command()
@click.argument("prompt")
@model_options
@click.option(
    "--target",
    default=None,
    metavar="TOKEN",
    help="Explain this next token (exactly one token) instead of the model's top prediction.",
)
@click.option(
    "--contrast",
    default=None,
    metavar="TOKEN",
    help="Explain logit(target) - logit(TOKEN) instead of log p(target).",
)
@discovery_options
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Also write the circuit as JSON to FILE.",
)
def discover(prompt, model, saes, device, target, contrast, discovery, json_path):
    """Discover the SAE feature circuit behind a model's next token and print a summary.

    \b
    Example:
      scd discover "Copyright (C" --model demo --json copyright.json
      scd discover "f(a [b (c" --target ")" --contrast "]" --scores
    """
    from scd.discovery.discover import discover as run
    from scd.report.summary import summarize

    circuit = run(prompt, discovery, model=model, saes=saes, device=device, target=target, contrast=contrast)
    click.echo(summarize(circuit))
    if json_path is not None:
        circuit.to_json(json_path)
        click.echo(f"\nwrote {json_path} (circuit {circuit.id})")


COMMANDS = [discover]
