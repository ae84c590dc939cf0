"""Faults at the edges of a store's life: several ingests starting at once on a fresh store (schema setup
races), and a Neo4j server restarted in the middle of an ingest (its data kept, the ingest resumed).

Each compares the store with one uninterrupted run (store_snapshot: every node and relationship with its
properties), not with counts the code reported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from scd.core.config import StoreConfig
from scd.store import open_store
from scd.store.schema import NEO4J_SCHEMA

from .synthetic import store_snapshot

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
LOCAL_SCRIPT = REPO / "scripts" / "neo4j" / "neo4j-local"

# A child that loads everything, says "ready", and runs `tests.synthetic` (scd ingest with synthetic discovery)
# when it reads a line: two of them released together start their schema setup at the same moment.
READY_THEN_INGEST = """
import sys
from tests.synthetic import main
print('ready', flush=True)
sys.stdin.readline()
sys.exit(main(sys.argv[1:]))
"""


def _prompts(tmp_path: Path, n: int) -> Path:
    p = tmp_path / "prompts.txt"
    p.write_text("".join(f"prompt {i} (of [many\n" for i in range(n)), encoding="utf-8")
    return p


def _store_args(config: StoreConfig) -> list[str]:
    return ["--neo4j", config.neo4j_uri] if config.neo4j_uri else ["--store", str(config.path)]


def _drop_neo4j_schema(config: StoreConfig) -> None:
    """Back to a fresh database: no data (the fixture cleared it) and none of scd's constraints or indexes.
    The names come from scd's own schema statements."""
    from neo4j import GraphDatabase

    auth = (config.neo4j_user, config.neo4j_password) if config.neo4j_password else None
    with GraphDatabase.driver(config.neo4j_uri, auth=auth) as driver:
        for stmt in NEO4J_SCHEMA:
            kind, name = re.match(r"CREATE (CONSTRAINT|INDEX) (\w+) ", stmt).groups()
            driver.execute_query(f"DROP {kind} {name} IF EXISTS", database_=config.neo4j_database)
        left, _, _ = driver.execute_query(
            "SHOW CONSTRAINTS YIELD name RETURN name", database_=config.neo4j_database
        )
        assert not left


def _one_run_snapshot(config: StoreConfig, prompts: Path, *extra: str) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-m", "tests.synthetic", str(prompts), *_store_args(config), *extra],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    with open_store(config, read_only=True) as store:
        return store_snapshot(store)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [pytest.param("neo4j", marks=pytest.mark.neo4j), "embedded"])
def test_two_ingests_started_together_on_a_fresh_store(kind, request, tmp_path):
    """Two `scd ingest` of the same prompts released at the same moment into a fresh store (Neo4j: no
    constraints yet; embedded: no folder yet): both succeed, and the store equals one run's."""
    if kind == "neo4j":
        config = request.getfixturevalue("neo4j_config")
        _drop_neo4j_schema(config)
    else:
        config = StoreConfig(path=tmp_path / "store")
    prompts = _prompts(tmp_path, 12)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", READY_THEN_INGEST, str(prompts), *_store_args(config)],
            cwd=REPO,
            env=ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for c in children:
            assert c.stdout.readline().strip() == "ready"
        for c in children:  # release both
            c.stdin.write("go\n")
            c.stdin.flush()
        outs = [c.communicate(timeout=600) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
    assert [c.returncode for c in children] == [0, 0], [err[-2000:] for _, err in outs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sum(r["written"] for r in reports) == 12  # each circuit written once, by one of them
    with open_store(config, read_only=True) as store:
        together = store_snapshot(store)
    if kind == "neo4j":
        with open_store(config) as store:
            store.clear()
    else:
        config = StoreConfig(path=tmp_path / "one-run")
    assert together == _one_run_snapshot(config, prompts)


class _Server:
    """A Neo4j of our own (scripts/neo4j/neo4j-local run DIR --stdin), stopped by closing its stdin."""

    def __init__(self, data: Path, *extra: str):
        self.proc = subprocess.Popen(
            [str(LOCAL_SCRIPT), "run", str(data), "--stdin", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.uri = None
        for line in self.proc.stdout:
            if line.startswith("NEO4J_URI="):
                self.uri = line.split("=", 1)[1].strip()
                break
        if self.uri is None:
            self.proc.kill()
            pytest.skip("cannot start a second local Neo4j here")

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


@pytest.mark.slow
@pytest.mark.neo4j
def test_neo4j_local_restart_mid_ingest_keeps_data_and_resumes(neo4j_config, tmp_path):
    """neo4j-local stopped in the middle of an ingest and started again keeps every committed circuit; the
    rerun ingest completes; the store equals an uninterrupted run's (on the session's server)."""
    if subprocess.run([str(LOCAL_SCRIPT), "fetch"], capture_output=True).returncode:
        pytest.skip("no local Neo4j harness")
    prompts = _prompts(tmp_path, 10)
    slow = ("--delay", "0.5")  # a discovery option: the same in every run (it is part of the request key)
    expected = _one_run_snapshot(neo4j_config, prompts, *slow)
    data = Path(tempfile.mkdtemp(prefix="scd-neo4j-restart-"))
    server = _Server(data, "--fresh")
    config = StoreConfig(neo4j_uri=server.uri)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.synthetic", str(prompts), "--neo4j", server.uri, *slow],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while True:  # the first committed circuit is the event to stop the server at
            assert child.poll() is None, "the ingest ended before the server was stopped"
            with open_store(config, read_only=True) as store:
                if store.stats()["Circuit"] >= 1:
                    break
            time.sleep(0.1)
        server.stop()
        out, err = child.communicate(timeout=300)
        assert child.returncode == 1  # the connection went away mid-ingest: scd's error, not a crash
        # what the user reads: one line that the driver retries (not its per-attempt log), the summary of what
        # was written, and the error
        assert err.count("retrying for up to") <= 1 and "will be retried" not in err, err[-2000:]
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("Error: "), err[-2000:]
        stopped = json.loads(out.strip().splitlines()[-1])
        assert stopped["stopped_by"] and stopped["phase"] in ("discover", "write", "fold")
        server = _Server(data)  # same data folder, no --fresh
        config = StoreConfig(neo4j_uri=server.uri)
        with open_store(config, read_only=True) as store:
            kept = store.stats()["Circuit"]
        # the summary counted what the store kept, give or take the writes the stop cut off without an answer
        assert 1 <= kept < 10 and stopped["written"] <= kept <= stopped["written"] + stopped["in_doubt"]
        r = subprocess.run(  # the same command again
            [sys.executable, "-m", "tests.synthetic", str(prompts), "--neo4j", server.uri, *slow],
            cwd=REPO,
            env=ENV,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        report = json.loads(r.stdout.strip().splitlines()[-1])
        assert report["skipped"] == kept and report["written"] == 10 - kept
        with open_store(config, read_only=True) as store:
            assert store_snapshot(store) == expected
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if server.proc.poll() is None:
            server.stop()


@pytest.mark.neo4j
@pytest.mark.slow
def test_neo4j_local_start_keeps_its_data_and_port_across_stop_and_start(tmp_path):
    """`neo4j-local start` / `stop` / `start` (the README's launcher, in a private SCD_CACHE): a circuit written
    before the stop is there after the start, on the same Bolt URI, so a saved SCD_NEO4J_URI keeps working."""
    fetched = subprocess.run([str(LOCAL_SCRIPT), "fetch"], capture_output=True, text=True)
    if fetched.returncode:
        pytest.skip("no local Neo4j harness")
    harness = Path(fetched.stdout.strip()).parent  # …/neo4j-harness-VERSION (its lib/ holds the jars)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / harness.name).symlink_to(harness)  # the fetched jars; the server's state in the private cache
    env = dict(ENV, SCD_CACHE=str(cache))

    def launcher(*args: str) -> str:
        r = subprocess.run([str(LOCAL_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.strip()

    prompts = _prompts(tmp_path, 2)
    try:
        uri = launcher("start")
        r = subprocess.run(
            [sys.executable, "-m", "tests.synthetic", str(prompts), "--neo4j", uri],
            cwd=REPO,
            env=ENV,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        launcher("stop")
        assert launcher("start") == uri
        with open_store(StoreConfig(neo4j_uri=uri), read_only=True) as store:
            assert store.stats()["Circuit"] == 2
    finally:
        launcher("stop")
