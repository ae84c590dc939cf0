"""`scd store stats|fold|clear`: look at the graph store, bring its aggregate layer up to date, empty it."""

from __future__ import annotations

import csv
import io
import json

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
    from scd.store import open_store
    from scd.store.schema import LABELS

    with open_store(store_config, read_only=True) as s:
        counts = s.stats()
        pending = s.pending()
        where = s.describe()
    rows = [("label" if name in LABELS else "relationship", name, n) for name, n in counts.items()]
    if fmt == "json":
        click.echo(json.dumps({"store": where, "counts": counts, "pending_fold": pending}, indent=1))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["kind", "name", "count"])
        w.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        click.echo(where)
        width = max(len(name) for _, name, _ in rows)
        for kind, name, n in rows:
            click.echo(f"  {name:<{width}}  {n:>10,}  ({kind})")
        if pending:
            click.echo(
                f"{pending:,} circuit{'s' if pending != 1 else ''} not yet in the aggregate layer "
                "(`scd store fold` adds them; queries read the FEEDS edges meanwhile)"
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
