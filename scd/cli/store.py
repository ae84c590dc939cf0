"""`scd store stats|clear`: look at and empty the graph store."""

from __future__ import annotations

import csv
import io
import json

import click

from scd.config import store_options

from .options import FORMAT


@click.group()
def store():
    """Inspect or empty the graph store (Neo4j with --neo4j, else the embedded store).

    \b
    Example:
      scd store stats
      scd store clear --yes --neo4j bolt://localhost:7687
    """


@store.command()
@store_options
@FORMAT
def stats(store_config, fmt):
    """Count nodes by label and relationships by type.

    \b
    Example:
      scd store stats --format json
    """
    from scd.ingest.schema import LABELS
    from scd.ingest.stores import open_store

    with open_store(store_config, read_only=True) as s:
        counts = s.stats()
        where = s.describe()
    rows = [("label" if name in LABELS else "relationship", name, n) for name, n in counts.items()]
    if fmt == "json":
        click.echo(json.dumps({"store": where, "counts": counts}, indent=1))
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


@store.command()
@store_options
@click.option("--yes", is_flag=True, help="Really delete everything (required).")
def clear(store_config, yes):
    """Delete every node and relationship (the schema stays).

    \b
    Example:
      scd store clear --yes --store ./scd-store
    """
    from scd.errors import InputError
    from scd.ingest.stores import open_store

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
