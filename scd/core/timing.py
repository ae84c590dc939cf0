"""Timed phases: the algorithm's steps are named in docstrings, comments and these log lines alike."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def phase(log: logging.Logger, name: str, level: int = logging.DEBUG) -> Iterator[None]:
    """Log how long the block named `name` took (``name: 0.123 s``) on `log` at `level`."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        log.log(level, "%s: %.3f s", name, time.perf_counter() - t0)
