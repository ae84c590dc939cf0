"""scd -- the sparse circuit store.

Three stages, three folders: ``scd`` discovers circuits, ``scd.ingest`` writes them into a graph store,
``scd.queries`` reads them back as pandas DataFrames.
"""

from __future__ import annotations

__version__ = "0.1.0"


def discover(prompt, config=None, **kwargs):
    """Discover one prompt's circuit; see scd.discovery.discover.discover.

    ``config``: a scd.discovery.config.DiscoveryConfig, and/or its fields as keywords (top_k=10, method="ig",
    ...), beside model=, saes=, target=, contrast=, device=.
    """
    from scd.discovery.discover import discover as _discover

    return _discover(prompt, config, **kwargs)


def query(name, store=None, **params):
    """Run a named query from the library and return a pandas DataFrame.

    ``store``: an open Store, a StoreConfig, a Neo4j URI ("bolt://...", "neo4j://..."), an embedded store
    folder, or None for the configured default (SCD_NEO4J_URI, else ./scd-store). See scd.queries.runner.query.

        >>> scd.query("feeders", store="demo-store", token=")")  # doctest: +SKIP
    """
    import os

    from scd.core.config import StoreConfig
    from scd.queries.runner import query as _query

    if isinstance(store, str | os.PathLike):
        uri = str(store)
        is_uri = uri.split("://", 1)[0] in ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
        store = StoreConfig.resolve(neo4j=uri) if is_uri else StoreConfig.resolve(store=uri)
    return _query(name, store=store, **params)


__all__ = ["__version__", "discover", "query"]
