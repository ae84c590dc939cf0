"""`scd store stats|fold|clear`: look at the graph store, bring its aggregate layer up to date, empty it."""

from __future__ import annotations

import click

from scd.cli.options import FORMAT, store_options


@click.group()
def store():
    """Inspect, fold or empty the graph store (Neo4j with --neo4j, else the embedded store).

    \b
    Example:
      scd store stats
      scd store fold
      scd store clear --yes --neo4j bolt://localhost:7687
    """


@store.command()
@store_options
@FORMAT
def stats(store_config, fmt):
    """Count nodes by label and relationships by type, and circuits not yet in the aggregate layer.

    \b
    Example:
      scd store stats --format json
    """
    from scd.queries.render import render_sections
    from scd.queries.stats import stats as store_stats
    from scd.store import open_store

    with open_store(store_config, read_only=True) as s:
        result = store_stats(s)
    click.echo(render_sections(result.sections(), fmt, summary=result.summary()))
    if result.pending_fold and fmt == "table":
        n = result.pending_fold
        click.echo(
            f"\n{n:,} circuit{'s' if n != 1 else ''} not yet in the aggregate layer "
            "(`scd store fold` adds them; queries read the FEEDS edges meanwhile)",
            err=True,
        )


@store.command()
@store_options
@click.option(
    "--rebuild",
    is_flag=True,
    help="Drop the aggregate layer and recompute it from every circuit's FEEDS edges.",
)
def fold(store_config, rebuild):
    """Fold pending circuits into the pre-aggregated layer that makes feeders/consumers fast.

    `scd ingest` does this by itself as it goes and when it ends; run it after an interrupted ingest, or with
    --rebuild on a store written before the layer existed.

    \b
    Example:
      scd store fold
      scd store fold --rebuild --neo4j bolt://localhost:7687
    """
    from scd.store import open_store

    with open_store(store_config) as s:
        report = s.fold(rebuild=rebuild)
        click.echo(f"{report.line()} ({s.describe()}).")


@store.command()
@store_options
@click.option("--yes", is_flag=True, help="Really delete everything (required).")
def clear(store_config, yes):
    """Delete every node and relationship (the schema stays).

    \b
    Example:
      scd store clear --yes --store ./scd-store
    """
    from scd.core.errors import InputError
    from scd.store import open_store

    if not yes:
        raise InputError(
            f"refusing to clear {store_config.describe()} without --yes",
            "add --yes to delete everything in it",
        )
    with open_store(store_config) as s:
        before = sum(s.stats().values())
        s.clear()
        click.echo(f"Cleared {s.describe()} ({before:,} nodes and relationships deleted).")


COMMANDS = [store]
