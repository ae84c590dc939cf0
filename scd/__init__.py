"""scd -- the sparse circuit store.

Three stages, three folders: ``scd`` discovers circuits, ``scd.ingest`` writes them into a graph store,
``scd.queries`` reads them back as pandas DataFrames.
"""

from __future__ import annotations

__version__ = "0.1.0"


def discover(prompt, **kwargs):
    """Discover one prompt's circuit; see scd.discovery.discover."""
    from scd.discovery import discover as _discover

    return _discover(prompt, **kwargs)


def query(name, store=None, **params):
    """Run a named query from the library; see scd.queries.runner.query."""
    from scd.queries.runner import query as _query

    return _query(name, store=store, **params)


__all__ = ["__version__", "discover", "query"]
