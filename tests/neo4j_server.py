"""Finding a real Neo4j for the test suite.

Order: ``SCD_TEST_NEO4J_URI`` if set; else testcontainers when a Docker engine answers; else Neo4j's own test
harness from Maven jars (scripts/neo4j/neo4j-local). A mock driver is not a test of Neo4j, so there is no
fallback to one: when nothing can start, Neo4j tests are skipped loudly -- or fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCAL_SCRIPT = REPO / "scripts" / "neo4j" / "neo4j-local"


class Unavailable(Exception):
    pass


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@contextmanager
def _testcontainers():
    from testcontainers.neo4j import Neo4jContainer

    with Neo4jContainer("neo4j:5.26-community") as container:
        os.environ.setdefault("SCD_NEO4J_USER", container.username)
        os.environ.setdefault("SCD_NEO4J_PASSWORD", container.password)
        yield container.get_connection_url()


def harness_lib() -> Path:
    """The folder of the harness's jars (fetched once by neo4j-local), or Unavailable."""
    if not LOCAL_SCRIPT.exists():
        raise Unavailable(f"{LOCAL_SCRIPT} is missing")
    fetch = subprocess.run([str(LOCAL_SCRIPT), "fetch"], capture_output=True, text=True)
    if fetch.returncode != 0:
        raise Unavailable(f"could not fetch the Neo4j harness: {fetch.stderr.strip()[-500:]}")
    return Path(fetch.stdout.strip().splitlines()[-1])


@contextmanager
def _local_harness(db: Path | None = None):
    """A harness server on a fresh database, or on ``db`` as it is (its databases in ``db/data``)."""
    harness_lib()
    data = tempfile.mkdtemp(prefix="scd-neo4j-")
    log = open(Path(data) / "launcher.log", "w")  # noqa: SIM115 - closed below
    # --stdin: the server stops when this pipe closes, so a crashed pytest never leaves it running.
    proc = subprocess.Popen(
        [str(LOCAL_SCRIPT), "run", str(db or Path(data) / "db"), "--stdin", *(() if db else ("--fresh",))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    uri = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("NEO4J_URI="):
            uri = line.split("=", 1)[1].strip()
            break
    if uri is None:
        proc.kill()
        log.close()
        raise Unavailable(f"the Neo4j harness did not start; see {log.name}")
    try:
        yield uri
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        # the server's fresh database and logs (~0.5 GB each): a test session starts several servers
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def neo4j_server():
    """Yields a Bolt URI of a real Neo4j 5.x, or raises Unavailable with the reason."""
    uri = os.environ.get("SCD_TEST_NEO4J_URI")
    if uri:
        yield uri
        return
    if _docker_answers():
        with _testcontainers() as uri:
            yield uri
        return
    with _local_harness() as uri:
        yield uri


def local_server(db: Path):
    """The harness server on the databases already in ``db/data`` (e.g. made by neo4j-admin import)."""
    return _local_harness(db)


def unavailable(reason: str) -> NoReturn:
    """A server a test needs cannot start: skip loudly on a developer's machine, fail under CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
