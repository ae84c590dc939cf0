"""Secrets never printed, parameter ranges checked before a driver: exit code and message, through CliRunner."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.core.config import StoreConfig
from scd.core.errors import QueryError, StoreError
from scd.core.secrets import scrub, split_credentials

from .test_queries import corpus, load

PASSWORD = "pw-7f3a9c-secret"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when we return: nothing listens there


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("params") / "store"
    load(StoreConfig(path=path), corpus()[:4])
    return path


def _invoke(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


# -- credentials ---------------------------------------------------------------------------------------------


def test_a_login_in_the_uri_moves_out_of_it():
    assert split_credentials("bolt://alice:p%40ss@db:7687/x") == ("bolt://db:7687/x", "alice", "p@ss")
    assert split_credentials("neo4j://db:7687") == ("neo4j://db:7687", None, None)
    config = StoreConfig.resolve(f"bolt://alice:{PASSWORD}@db:7687")
    assert (config.neo4j_uri, config.neo4j_user, config.neo4j_password) == (
        "bolt://db:7687",
        "alice",
        PASSWORD,
    )
    for text in (config.describe(), repr(config), str(config)):
        assert PASSWORD not in text and "alice:" not in text


def test_errors_scrub_remembered_passwords_and_userinfo():
    StoreConfig(neo4j_uri="bolt://db:1", neo4j_password=PASSWORD)  # remembered as a secret
    line = StoreError(f"driver said: auth {PASSWORD} refused at bolt://bob:other@db:1").line()
    assert PASSWORD not in line and "other" not in line and "bolt://***@db:1" in line
    assert scrub("no secrets here") == "no secrets here"


@pytest.mark.parametrize(
    "command", [["query", "top-features"], ["cypher", "RETURN 1 AS x"], ["store", "stats"]]
)
def test_unreachable_neo4j_with_a_login_in_the_uri_never_prints_it(command):
    uri = f"bolt://evezq9:{PASSWORD}@127.0.0.1:{_closed_port()}"
    r = _invoke(*command, "--neo4j", uri)
    assert r.exit_code == 1, r.output
    assert r.stdout == "" and r.stderr.startswith("Error: cannot reach Neo4j at bolt://127.0.0.1:")
    assert PASSWORD not in r.output and "evezq9" not in r.output


def test_doctor_never_prints_a_password(tmp_path):
    uri = f"bolt://evezq9:{PASSWORD}@127.0.0.1:{_closed_port()}"
    r = _invoke("doctor", "--neo4j", uri, "--store", str(tmp_path / "s"))
    assert r.exit_code == 1
    assert "bolt://127.0.0.1:" in r.output and PASSWORD not in r.output and "evezq9" not in r.output
    r = _invoke(
        "doctor", "--neo4j", f"bolt://127.0.0.1:{_closed_port()}", env={"SCD_NEO4J_PASSWORD": PASSWORD}
    )
    assert r.exit_code == 1 and PASSWORD not in r.output


@pytest.mark.neo4j
def test_a_login_in_the_uri_is_used_and_not_printed(neo4j_config):
    """The fixture's server has auth off, so any login works: the query runs, and its output has no password."""
    from scd.store import open_store

    with open_store(neo4j_config) as store:
        for c in corpus()[:3]:
            store.write_circuit(c)
    host = neo4j_config.neo4j_uri.split("://", 1)[1]
    r = _invoke("query", "top-features", "--neo4j", f"bolt://evezq9:{PASSWORD}@{host}", "--format", "json")
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output
    r = _invoke("store", "stats", "--neo4j", f"bolt://evezq9:{PASSWORD}@{host}")
    assert r.exit_code == 0 and PASSWORD not in r.output and f"bolt://{host}" in r.output


# -- parameter ranges ------------------------------------------------------------------------------------------

TOO_BIG = str(2**63)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["query", "top-features", "-p", f"limit={TOO_BIG}"],
            f"Error: parameter limit of query top-features must be an int from -{2**63} to {2**63 - 1} "
            f"(got {TOO_BIG})",
        ),
        (
            ["query", "top-features", "--limit", TOO_BIG],
            "Error: parameter limit of query top-features must be an int from",
        ),
        (
            ["query", "top-features", "-p", f"layer=-{2**63 + 1}"],
            "Error: parameter layer of query top-features must be an int from",
        ),
        (
            ["cypher", "RETURN $x AS x", "-p", f"x={TOO_BIG}"],
            f"Error: parameter x = {TOO_BIG} is outside the 64-bit integer range the stores hold",
        ),
        (
            ["cypher", "RETURN $x AS x", "-p", f"x=[1, {TOO_BIG}]"],
            f"Error: parameter x = {TOO_BIG} is outside the 64-bit integer range",
        ),
        (
            ["cypher", "RETURN $x AS x", "-p", f'x={{"a": {{"b": {TOO_BIG}}}}}'],
            f"Error: parameter x = {TOO_BIG} is outside the 64-bit integer range",
        ),
    ],
)
def test_out_of_range_parameters_are_one_line_exit_2_on_embedded(store_path, args, message):
    r = _invoke(*args, "--store", str(store_path))
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.output


def test_the_int64_bounds_themselves_pass(store_path):
    for v in (2**63 - 1, -(2**63)):
        r = _invoke("cypher", "RETURN $x AS x", "-p", f"x={v}", "--format", "csv", "--store", str(store_path))
        assert r.exit_code == 0 and r.output.split() == ["x", str(v)], r.output


@pytest.mark.neo4j
@pytest.mark.parametrize(
    "args",
    [
        ["query", "top-features", "-p", f"limit={TOO_BIG}"],
        ["cypher", "RETURN $x AS x", "-p", f"x={TOO_BIG}"],
        ["cypher", "RETURN $x AS x", "-p", f"x=[{TOO_BIG}]"],
    ],
)
def test_out_of_range_parameters_are_one_line_exit_2_on_neo4j(neo4j_config, args):
    r = _invoke(*args, "--neo4j", neo4j_config.neo4j_uri)
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and r.stderr.startswith("Error: parameter ") and r.stderr.count("\n") == 1, r.stderr


def test_library_refuses_parameters_with_no_cypher_type(store_path):
    from scd.queries.runner import run_cypher
    from scd.store import open_store

    with open_store(StoreConfig(path=store_path), read_only=True) as store:
        with pytest.raises(QueryError, match="parameter x is a set"):
            run_cypher(store, "RETURN $x AS x", {"x": {1, 2}})
        with pytest.raises(QueryError, match="outside the 64-bit integer range"):
            run_cypher(store, "RETURN $x AS x", {"x": -(2**63) - 1})
