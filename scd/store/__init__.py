"""Graph stores: Neo4j (server) and LadybugDB (embedded), behind one interface."""

from __future__ import annotations

from scd.core.config import StoreConfig
from scd.store.base import Store


def open_store(config: StoreConfig, *, read_only: bool = False) -> Store:
    """Open the store the configuration names; raises StoreError with a fix when it can't.

    ``read_only=True`` (queries, stats) neither creates nor changes anything: a missing embedded store is a
    StoreError, and the schema is left as it is. Otherwise the store is created if needed and its schema ensured.
    """
    if config.kind == "neo4j":
        from scd.store.neo4j import Neo4jStore

        return Neo4jStore.open(config, read_only=read_only)
    from scd.store.embedded import EmbeddedStore

    return EmbeddedStore.open(config, read_only=read_only)


__all__ = ["Store", "open_store"]
