"""`scd export-csv`: a store's whole graph as neo4j-admin import CSVs (the bulk path, scd.store.bulk)."""

from __future__ import annotations

from pathlib import Path

import click

from scd.cli.options import store_options


@click.command("export-csv")
@click.argument("out", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@store_options
@click.option(
    "--force", is_flag=True, help="Write into a non-empty DIR, replacing only the export's own files."
)
def export_csv(out, store_config, force):
    """Write the store's whole graph, aggregate layer included, as neo4j-admin import CSVs into DIR.

    DIR gets nodes/<Label>.csv, relationships/<TYPE>.csv (typed headers) and import.sh, which runs
    `neo4j-admin database import full` on them. `scd ingest --csv-out DIR` writes the same files straight from
    discovery, with no database. See README 'Bulk import'.

    \b
    Example:
      scd export-csv ./export --neo4j bolt://localhost:7687
      ./export/import.sh neo4j        # into a new database, server stopped
    """
    from scd.store import open_store
    from scd.store.bulk import check_target, export_store

    check_target(out, force)  # before opening the store
    with open_store(store_config, read_only=True) as s:
        counts = export_store(s, out, force=force)
        pending = s.pending()
    nodes = sum(counts[k] for k in ("Feature", "Prompt", "Circuit", "Node", "Token"))
    click.echo(
        f"Exported {nodes:,} nodes and {sum(counts.values()) - nodes:,} relationships of {s.describe()} "
        f"into {out} (load them with {out / 'import.sh'})."
    )
    if pending:
        click.echo(
            f"{pending:,} circuits were not yet in the aggregate layer; after the import, `scd store fold` adds them.",
            err=True,
        )


COMMANDS = [export_csv]
