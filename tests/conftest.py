"""Shared fixtures: a real Neo4j for the session, clean store configurations per test."""

from __future__ import annotations

import pytest
import torch

from scd.core.config import StoreConfig

from .neo4j_server import Unavailable, neo4j_server, unavailable

# Two cores are shared with a Neo4j server during the suite; one torch thread each keeps both responsive.
torch.set_num_threads(1)


NEO4J_FIXTURES = {"neo4j_uri", "neo4j_config", "auth_neo4j_uri"}


def _uses_neo4j(item: pytest.Item) -> bool:
    """Statically (fixture closure) or through the store_config parametrisation."""
    if NEO4J_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("store_config") == "neo4j"


def pytest_collection_modifyitems(config, items):
    """The `neo4j` marker is true by construction: every test that reaches a Neo4j fixture carries it, so
    `pytest -m "not neo4j"` (make test-fast) never starts a server. A test that reaches one dynamically
    (getfixturevalue) without the marker fails in `neo4j_config` instead of silently lying."""
    for item in items:
        if _uses_neo4j(item):
            item.add_marker(pytest.mark.neo4j)


@pytest.fixture(scope="session")
def neo4j_uri():
    """Bolt URI of a real Neo4j 5.26 (env SCD_TEST_NEO4J_URI, testcontainers, or the Maven harness)."""
    try:
        with neo4j_server() as uri:
            yield uri
    except Unavailable as e:
        unavailable(f"NO NEO4J: {e} -- Neo4j tests cannot run")


def _clear_neo4j(config: StoreConfig) -> None:
    from neo4j import GraphDatabase

    auth = (config.neo4j_user, config.neo4j_password) if config.neo4j_password else None
    with GraphDatabase.driver(config.neo4j_uri, auth=auth) as driver:
        with driver.session(database=config.neo4j_database) as session:
            session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


@pytest.fixture
def neo4j_config(neo4j_uri, monkeypatch, request) -> StoreConfig:
    """A StoreConfig for the session's Neo4j, emptied before the test (schema kept)."""
    if request.node.get_closest_marker("neo4j") is None:
        pytest.fail(f"{request.node.nodeid} uses Neo4j but is not marked neo4j", pytrace=False)
    monkeypatch.setenv("SCD_NEO4J_URI", neo4j_uri)
    config = StoreConfig.resolve(neo4j=neo4j_uri)
    _clear_neo4j(config)
    return config


@pytest.fixture
def embedded_config(tmp_path, monkeypatch) -> StoreConfig:
    """A StoreConfig for a fresh embedded store in a temporary folder."""
    monkeypatch.delenv("SCD_NEO4J_URI", raising=False)
    return StoreConfig.resolve(store=tmp_path / "store")


@pytest.fixture(params=["neo4j", "embedded"])
def store_config(request) -> StoreConfig:
    """Each test using this runs once per store: the same suite for Neo4j and the embedded store."""
    return request.getfixturevalue(f"{request.param}_config")
