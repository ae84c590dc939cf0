"""`scd ingest`: discover every prompt of a file and write the circuits into a graph store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scd.config import store_options


@click.command()
@click.argument("prompts", metavar="PROMPTS")
@click.option(
    "--model", default="demo", show_default=True, help="Model: demo, gpt2-small, or a local GPT-2 folder."
)
@click.option(
    "--saes", default=None, help="SAE set: a preset name or local sae_lens folder(s), comma-separated."
)
@store_options
@click.option(
    "--method",
    type=click.Choice(["atp", "ig"]),
    default="atp",
    show_default=True,
    help="Node attribution: attribution patching or integrated gradients.",
)
@click.option(
    "--ig-steps", type=click.IntRange(1), default=10, show_default=True, help="Steps for --method ig."
)
@click.option(
    "--top-k",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Features kept per sublayer and position.",
)
@click.option(
    "--node-threshold", type=float, default=None, help="Keep nodes with |attribution| above this instead."
)
@click.option(
    "--edge-threshold",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Drop edges with |weight| at or below this.",
)
@click.option("--dry-run", is_flag=True, help="Discover without writing to the store.")
@click.option(
    "--json-out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Also write each circuit's JSON into DIR.",
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first bad prompt instead of skipping it.")
@click.option("--no-progress", is_flag=True, help="No progress bar (it goes to stderr).")
@click.option("--summary-json", is_flag=True, help="Print the summary as JSON on stdout.")
def ingest(
    prompts,
    model,
    saes,
    store_config,
    method,
    ig_steps,
    top_k,
    node_threshold,
    edge_threshold,
    dry_run,
    json_out,
    fail_fast,
    no_progress,
    summary_json,
):
    """Discover the circuit of every prompt in PROMPTS and write them into the store.

    PROMPTS is a UTF-8 file with one prompt per line (blank and # lines skipped; an explicit target after a
    TAB: "prompt<TAB>target"), a .jsonl file of {"prompt": ..., "target": ...}, or - for stdin. Rerunning the
    same command resumes: finished circuits are skipped, each circuit is written whole or not at all.

    \b
    Example:
      scd ingest examples/prompts.txt --model demo
      scd ingest prompts.txt --neo4j bolt://localhost:7687 --top-k 10
    """
    from scd.ingest.pipeline import ingest as run_ingest
    from scd.ingest.prompts import read_prompts
    from scd.ingest.stores import open_store

    specs = read_prompts(prompts)  # the whole file is checked before anything is opened or written
    store = None if dry_run else open_store(store_config)
    try:
        report = run_ingest(
            specs,
            store,
            model=model,
            saes=_saes(saes),
            dry_run=dry_run,
            json_out=json_out,
            fail_fast=fail_fast,
            progress=not no_progress,
            method=method,
            ig_steps=ig_steps if method == "ig" else None,
            top_k=top_k,
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
        )
    except KeyboardInterrupt:
        click.echo("Interrupted: rerun the same command to finish (finished circuits are skipped).", err=True)
        sys.exit(130)
    finally:
        if store is not None:
            store.close()
    if summary_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        for line in report.lines():
            click.echo(line)
    if report.failed and not (report.written or report.skipped or report.discovered):
        sys.exit(1)  # nothing could be ingested


def _saes(saes: str | None):
    if saes is None or "," not in saes:
        return saes
    return [s.strip() for s in saes.split(",") if s.strip()]


COMMANDS = [ingest]
