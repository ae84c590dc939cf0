"""`scd ingest`: discover every prompt of a file and write the circuits into a graph store."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scd.cli.options import FORMAT, discovery_options, model_options, store_options
from scd.core.errors import ScdError

if TYPE_CHECKING:
    from scd.store import Store

EXIT_FAILED_PROMPTS = 3  # some prompts failed (bad input is 2, a store or model error 1, Ctrl-C 130)


@click.command()
@click.argument("prompts", metavar="PROMPTS")
@model_options
@store_options
@discovery_options
@click.option("--dry-run", is_flag=True, help="Discover every circuit but write nothing.")
@click.option(
    "--json-out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Also write each discovered circuit's JSON to DIR/<circuit id>.json.",
)
@click.option(
    "--fail-fast", is_flag=True, help="Stop at the first bad prompt instead of reporting and skipping it."
)
@click.option(
    "--writers",
    type=click.IntRange(1, 32),
    default=None,
    metavar="N",
    help="Circuits written at once, each in its own transaction [default: 2 for Neo4j, 1 for the embedded "
    "store, which takes one writer at a time]. More pays only on a server with more cores.",
)
@click.option(
    "--no-fold",
    is_flag=True,
    help="Leave the written circuits out of the pre-aggregated layer for now (queries stay exact, reading the "
    "raw edges): for bulk loads by several processes, which then run `scd store fold` once.",
)
@click.option(
    "--allow-failures",
    is_flag=True,
    help=f"Exit 0 even when some prompts failed (they are reported on stderr). Without it such a run exits "
    f"{EXIT_FAILED_PROMPTS}, distinct from bad usage (2) and store or model errors (1).",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Ingest only shard I of N (0 <= I < N): a fixed 1/N of the prompts, chosen by a hash of each prompt, "
    "so N workers (a Slurm array, a Kubernetes indexed Job) together fill one store exactly as one process "
    "would. Use with --neo4j; see README 'Many machines'.",
)
@click.option(
    "--csv-out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Write no database: put the circuits, aggregate layer included, into DIR as neo4j-admin import CSVs "
    "(a new or empty folder; load them with DIR/import.sh). See README 'Bulk import'.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --csv-out: write into a non-empty DIR, replacing only the export's files.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar (it is drawn on stderr).")
@FORMAT
def ingest(
    prompts,
    model,
    saes,
    device,
    store_config,
    discovery,
    dry_run,
    json_out,
    fail_fast,
    writers,
    no_fold,
    allow_failures,
    shard,
    csv_out,
    force,
    no_progress,
    fmt,
):
    """Discover the circuit of every prompt in PROMPTS and write them into the graph store.

    PROMPTS is a UTF-8 file with one prompt per line: blank lines and lines starting with # are skipped, and an
    explicit target follows a TAB ("prompt<TAB>target"); or a .jsonl file of {"prompt": ..., "target": ...};
    or - for standard input. Each circuit is written in one transaction, whole or not at all, so rerunning the
    same command after an interruption skips the finished prompts and completes the rest.

    With transcoders (--saes demo-plt, demo-clt or a circuit-tracer folder) circuit-tracer builds each graph, as
    in `scd discover`: --node-threshold / --edge-threshold are its pruning fractions (default 0.8 / 0.98), and
    the graphs are stored under their own SAE set beside the SAE circuits of the same prompts.

    Exit status: 0 when every prompt was ingested (or skipped as already stored); 3 when some prompts failed
    (listed on stderr; --allow-failures makes that 0); 2 for bad usage or a bad prompts file; 1 when the store
    or the model fails; 130 on Ctrl-C, after a summary of what was written. No store folder is created until a
    circuit is written.

    \b
    Example:
      scd ingest examples/prompts.txt --model demo
      scd ingest prompts.txt --neo4j bolt://localhost:7687 --top-k 10
      scd ingest prompts.txt --saes demo-clt    # cross-layer-transcoder graphs (circuit-tracer), beside SAE ones
      scd ingest prompts.txt --neo4j neo4j://db:7687 --shard 2/8 --no-fold   # worker 2 of 8
    """
    from scd.ingest.pipeline import IngestInterrupted, IngestReport
    from scd.ingest.pipeline import ingest as run_ingest
    from scd.ingest.prompts import parse_shard, read_prompts, select_shard
    from scd.store import open_store

    where = parse_shard(shard) if shard is not None else None  # a bad --shard fails before any work
    if csv_out is not None:
        _check_csv_out(shard, dry_run)
    try:
        specs = read_prompts(prompts)  # the whole file is checked before the store is touched
    except KeyboardInterrupt:
        click.echo("Interrupted while reading the prompts file: nothing was written.", err=True)
        _exit_now(130)
    if where is not None:
        specs = select_shard(specs, *where)
    store: Store | None
    if csv_out is not None:
        from scd.store.bulk import CsvStore

        store = CsvStore(csv_out, force=force)  # no database: the files, moved into DIR when all is written
    else:
        store = None if dry_run else open_store(store_config)  # creates nothing until the first write
    try:
        # libraries print while loading models ("Moving model to device"): keep stdout for the summary alone
        with contextlib.redirect_stdout(sys.stderr):
            report = run_ingest(
                specs,
                store,
                model=model,
                saes=saes,
                device=device,
                dry_run=dry_run,
                json_out=json_out,
                fail_fast=fail_fast,
                writers=writers,
                fold=not no_fold,
                progress=not no_progress,
                config=discovery,
            )
    except ScdError as e:
        if csv_out is not None:
            _abandon(store)  # an export is whole or not there
        elif isinstance(e.done, IngestReport):  # circuits were written before the error: say which
            _summary(e.done, fmt)
        raise
    except KeyboardInterrupt as e:
        if store is not None:
            _abandon(store)
        if isinstance(e, IngestInterrupted):
            _summary(e.report, fmt)
        if csv_out is not None:
            click.echo(
                f"Interrupted: nothing was written into {csv_out}; rerun the command to start over.", err=True
            )
        else:
            click.echo(
                "Interrupted: rerun the same command to finish (finished circuits are skipped).", err=True
            )
        _exit_now(130)
    except BaseException:
        if store is not None:
            _abandon(store)
        raise
    finally:
        if store is not None:
            store.close()
    _summary(report, fmt)
    if report.failed and not allow_failures:
        sys.exit(EXIT_FAILED_PROMPTS)


def _check_csv_out(shard, dry_run) -> None:
    """--csv-out writes one self-contained export: no database options, no shards (each shard's aggregate layer
    would lack the others' circuits)."""
    from scd.core.errors import InputError

    ctx = click.get_current_context()
    given = [
        f"--{name.split('_')[0]}"
        for name in ("neo4j_uri", "store_path")
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    given += ["--shard"] * (shard is not None) + ["--dry-run"] * dry_run
    if given:
        raise InputError(
            f"--csv-out writes no database and takes no {', '.join(given)}",
            "drop " + " and ".join(given) + " (or --csv-out, to write into a store)",
        )


def _abandon(store: Store | None) -> None:
    """A CSV export that did not finish leaves nothing in its DIR (a database keeps its finished circuits)."""
    abandon = getattr(store, "abandon", None)
    if abandon is not None:
        abandon()


def _exit_now(code: int) -> None:
    """Exit at once after Ctrl-C: the store is closed and the summary printed, and tearing down the interpreter
    (a heap of millions of prompts, torch) would take seconds more (measured 8.9 s for 1.5M prompts). Only as a
    program of its own: called in-process (click's CliRunner, pytest), where the streams are replaced, it raises
    SystemExit as usual."""
    if sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)


def _summary(report, fmt: str) -> None:
    """The summary on stdout; the prompts that failed (errors) on stderr."""
    for line in report.failure_lines():
        click.echo(line.strip(), err=True)
    if fmt == "table":  # a summary reads better as sentences than as a one-row table
        for line in report.summary_lines():
            click.echo(line)
    else:
        from scd.queries.render import render_sections

        click.echo(render_sections(report.sections(), fmt, summary=report.summary()))


COMMANDS = [ingest]
