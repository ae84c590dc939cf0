"""Graph stores: Neo4j (server) and LadybugDB (embedded), behind one interface."""

from __future__ import annotations

from scd.config import StoreConfig

from .base import Store


def open_store(config: StoreConfig) -> Store:
    """Open the store the configuration names; raises StoreError with a fix when it can't."""
    if config.kind == "neo4j":
        from .neo4j_store import Neo4jStore

        return Neo4jStore.open(config)
    from .embedded_store import EmbeddedStore

    return EmbeddedStore.open(config)


__all__ = ["Store", "open_store"]
