"""Typed errors for expected problems.

Library code raises these; the CLI turns each into one clean line (no traceback) and a non-zero exit.
Every error names the problem *and* the fix, because the person reading it is usually mid-task.
"""

from __future__ import annotations

from scd.core.secrets import scrub


class ScdError(Exception):
    """An expected problem with a one-line explanation and a suggested fix."""

    exit_code = 1
    # what a long run had finished before the problem stopped it (an ingest's report), for the CLI to print
    # beside the error; None for errors that stop nothing under way
    done: object = None

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = scrub(problem)  # a driver's message may quote a URI or a login
        self.fix = scrub(fix) if fix else fix
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.problem} -- {self.fix}" if self.fix else self.problem


class InputError(ScdError):
    """Bad user input: prompts file, prompt text, target, parameters."""

    exit_code = 2


class OptionError(InputError, ValueError):
    """A discovery option out of range (scd.discovery.config.DiscoveryConfig). Also a ValueError, as Python
    code that passes a bad argument value expects."""


class ModelError(ScdError):
    """A model or SAE set that cannot be loaded or does not fit together."""


class StoreError(ScdError):
    """A graph store that cannot be reached, opened or written."""


class QueryError(ScdError):
    """An unknown query, a bad parameter, or a query refused as not read-only."""

    exit_code = 2
