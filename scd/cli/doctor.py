"""`scd doctor`: what is installed, what is reachable, where things live."""

from __future__ import annotations

import sys

import click

from scd.cli.options import store_options


@click.command()
@store_options
def doctor(store_config):
    """Report versions, the demo model, Neo4j reachability and the embedded store's location.

    \b
    Example:
      scd doctor --neo4j bolt://localhost:7687
    """
    from scd.doctor import diagnose  # importlib.metadata and the checks: only for this command

    checks = diagnose(store_config)
    width = max(len(c.name) for c in checks)
    for c in checks:
        click.echo(f"{'ok ' if c.ok else 'BAD'}  {c.name:<{width}}  {c.detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        click.echo(f"Error: {len(failed)} check(s) failed: {', '.join(c.name for c in failed)}", err=True)
        sys.exit(1)


COMMANDS = [doctor]
