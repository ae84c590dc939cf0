"""The `scd` command line: thin commands over the library, one module per stage.

Each command parses its options, calls one library function, and renders the result. Expected problems
(ScdError) become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from scd import __version__
from scd.core.config import NEO4J_RETRY_S
from scd.core.errors import ScdError


class _DriverRetries(logging.Handler):
    """The neo4j driver logs every failed attempt and every retry (with connection ids and backoff times) when a
    server goes away; a user needs one line saying that it is retrying, and then scd's own error if it gives up.
    Installed on the driver's logger, this also keeps Python's last-resort handler from printing the rest."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.said and "will be retried" in record.getMessage():
            self.said = True
            click.echo(
                f"Neo4j is unreachable or busy: retrying for up to {NEO4J_RETRY_S:g} s (Ctrl-C stops; "
                "circuits already written are kept)",
                err=True,
            )


def quiet_driver_retries() -> None:
    """One line instead of the neo4j driver's retry log (idempotent)."""
    driver_log = logging.getLogger("neo4j")
    if not any(isinstance(h, _DriverRetries) for h in driver_log.handlers):
        driver_log.addHandler(_DriverRetries())


class ScdGroup(click.Group):
    def invoke(self, ctx):
        quiet_driver_retries()
        try:
            return super().invoke(ctx)
        except ScdError as e:
            click.echo(f"Error: {e.line()}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=ScdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="scd")
def main():
    """scd -- the sparse circuit store.

    Discover SAE feature circuits (discover), write many of them into a graph store (ingest), and ask
    questions across prompts (query).

    \b
    Example:
      scd ingest examples/prompts.txt --model demo
      scd query feeders -p token=")"
    """


def _register() -> None:
    from scd.cli import (
        browser,
        demo,
        discover,
        doctor,
        draw,
        exchange,
        export,
        features,
        fetch,
        ingest,
        query,
        store,
    )

    for module in (
        doctor,
        fetch,
        discover,
        draw,
        ingest,
        store,
        export,
        query,
        features,
        exchange,
        browser,
        demo,
    ):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
