"""Shared fixtures: a real Neo4j for the session, clean store configurations per test."""

from __future__ import annotations

import os

import pytest
import torch

from scd.core.config import StoreConfig

from .neo4j_server import Unavailable, neo4j_server

# Two cores are shared with a Neo4j server during the suite; one torch thread each keeps both responsive.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def neo4j_uri():
    """Bolt URI of a real Neo4j 5.26 (env SCD_TEST_NEO4J_URI, testcontainers, or the Maven harness)."""
    try:
        with neo4j_server() as uri:
            yield uri
    except Unavailable as e:
        reason = f"NO NEO4J: {e} -- Neo4j tests cannot run"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _clear_neo4j(config: StoreConfig) -> None:
    from neo4j import GraphDatabase

    auth = (config.neo4j_user, config.neo4j_password) if config.neo4j_password else None
    with GraphDatabase.driver(config.neo4j_uri, auth=auth) as driver:
        with driver.session(database=config.neo4j_database) as session:
            session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


@pytest.fixture
def neo4j_config(neo4j_uri, monkeypatch) -> StoreConfig:
    """A StoreConfig for the session's Neo4j, emptied before the test (schema kept)."""
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
