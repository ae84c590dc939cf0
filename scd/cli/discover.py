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

    With transcoders (--saes demo-plt, demo-clt or a circuit-tracer transcoder folder) circuit-tracer builds and
    prunes the graph; --node-threshold / --edge-threshold are then its cumulative-influence fractions (default
    0.8 / 0.98) and --top-k, --method, --metric do not apply.

    \b
    Example:
      scd discover "Copyright (C" --model demo --json copyright.json
      scd discover "f(a [b (c" --target ")" --contrast "]" --scores
    """
    from scd.discovery.discover import discover as run
    from scd.discovery.tracer import is_transcoder_set
    from scd.report.summary import summarize

    if is_transcoder_set(
        saes
    ):  # demo-plt, demo-clt, a circuit-tracer transcoder folder: circuit-tracer's graph
        from scd.discovery.tracer import trace_cli

        circuit = trace_cli(
            prompt,
            model=model,
            saes=saes,
            device=device,
            target=target,
            contrast=contrast,
            discovery=discovery,
        )
    else:
        circuit = run(
            prompt, discovery, model=model, saes=saes, device=device, target=target, contrast=contrast
        )
    click.echo(summarize(circuit))
    if json_path is not None:
        circuit.to_json(json_path)
        click.echo(f"\nwrote {json_path} (circuit {circuit.id})")


COMMANDS = [discover]
