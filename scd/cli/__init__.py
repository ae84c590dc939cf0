"""The `scd` command line: thin commands over the library, one module per stage.

Each command parses its options, calls one library function, and renders the result. Expected problems
(ScdError) become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import click

from scd import __version__
from scd.core.errors import ScdError


class ScdGroup(click.Group):
    def invoke(self, ctx):
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
    from scd.cli import browser, demo, discover, doctor, draw, exchange, features, fetch, ingest, query, store

    for module in (doctor, fetch, discover, draw, ingest, store, query, features, exchange, browser, demo):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
