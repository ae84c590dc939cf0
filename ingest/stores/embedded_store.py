"""Embedded store: LadybugDB (the maintained fork of Kuzu) in a local folder, no server.

Layout: the store is a folder (default ``./scd-store``) holding the database file ``graph.lbdb`` (and LadybugDB's
``graph.lbdb.wal`` while it is open).

Concurrency: LadybugDB lets one process at a time open a database read-write (a file lock); read-only opens are
always allowed and see only committed data. So this store holds no handle between calls: every write opens the
database read-write, does its work, and closes it again, retrying with backoff while another process holds the
lock (``SCD_STORE_LOCK_TIMEOUT`` seconds, default 600). Two ``scd ingest`` runs on one store therefore take turns
circuit by circuit instead of failing; ``read`` opens the database read-only, so the engine itself refuses any
write.

Atomicity: ``write_circuit`` runs inside ``BEGIN TRANSACTION`` ... ``COMMIT`` (``ROLLBACK`` on error). A process
killed mid-transaction leaves nothing visible: uncommitted work never reaches the file, and the WAL replay on the
next open drops it. Writes use ``UNWIND $rows`` with MERGE (Features, Prompt) and CREATE (the rest); never
``COPY``, which crashes the process on a duplicate primary key in LadybugDB 0.22.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ladybug
import pandas as pd

from scd.circuit import Circuit
from scd.config import StoreConfig
from scd.errors import QueryError, StoreError

from ..rows import CircuitRows, check_references, circuit_rows
from ..schema import LABELS, LADYBUG_SCHEMA, RELATIONSHIPS
from .base import Store

DB_FILE = "graph.lbdb"
BATCH = 20_000
LOCK_TIMEOUT_S = 600.0
READ_TIMEOUT_S = 120.0

MERGE_FEATURES = """
UNWIND $rows AS r
MERGE (f:Feature {id: r.id})
ON CREATE SET f.model = r.model, f.sae = r.sae, f.hook = r.hook, f.layer = r.layer, f.kind = r.kind, f.idx = r.idx,
  f.top_promoted = r.top_promoted, f.top_promoted_logits = r.top_promoted_logits,
  f.top_suppressed = r.top_suppressed, f.top_suppressed_logits = r.top_suppressed_logits,
  f.neuronpedia_url = r.neuronpedia_url, f.label = r.label
"""
MERGE_PROMPT = """
MERGE (p:Prompt {id: $id})
ON CREATE SET p.text = $text, p.model = $model, p.tokens = $tokens, p.target = $target, p.target_prob = $target_prob,
  p.loss = $loss, p.top_completions = $top_completions, p.top_completion_probs = $top_completion_probs
"""
CREATE_CIRCUIT = """
MATCH (p:Prompt {id: $prompt_id})
CREATE (c:Circuit {id: $id, prompt_id: $prompt_id, model: $model, sae_set: $sae_set, method: $method,
  metric: $metric, top_k: $top_k, edge_threshold: $edge_threshold, params: $params, metric_value: $metric_value,
  faithfulness: $faithfulness, completeness: $completeness, n_nodes: $n_nodes, n_edges: $n_edges,
  created_at: $created_at})-[:EXPLAINS]->(p)
"""
CREATE_NODES = """
UNWIND $rows AS r
CREATE (n:Node {id: r.id, circuit_id: r.circuit_id, kind: r.kind, layer: r.layer, hook: r.hook, idx: r.idx,
  pos: r.pos, token: r.token, activation: r.activation, attribution: r.attribution})
"""
CREATE_HAS = """
MATCH (c:Circuit {id: $circuit_id})
UNWIND $rows AS r
MATCH (n:Node {id: r.id})
CREATE (c)-[:HAS]->(n)
"""
CREATE_OF = """
UNWIND $rows AS r
MATCH (n:Node {id: r.id})
MATCH (f:Feature {id: r.feature_id})
CREATE (n)-[:OF]->(f)
"""
CREATE_FEEDS = """
UNWIND $rows AS r
MATCH (a:Node {id: r.src})
MATCH (b:Node {id: r.dst})
CREATE (a)-[:FEEDS {weight: r.weight}]->(b)
"""

_LOCKED = re.compile(r"Could not set lock on file", re.I)


def _batches(rows: list[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def to_python(value: Any) -> Any:
    """LadybugDB values -> the same plain shapes the Neo4j store returns (see neo4j_store.to_python)."""
    if isinstance(value, dict):
        if "_NODES" in value and "_RELS" in value:  # a path (recursive relationship)
            return {
                "nodes": [to_python(n) for n in value["_NODES"]],
                "relationships": [to_python(r) for r in value["_RELS"]],
            }
        if (
            "_LABEL" in value and "_ID" in value
        ):  # a node or a relationship; drop internal ids and unset properties
            d = {k: to_python(v) for k, v in value.items() if not k.startswith("_") and v is not None}
            d["_label"] = value["_LABEL"]
            return d
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(v) for v in value]
    return value


class EmbeddedStore(Store):
    kind = "embedded"

    def __init__(self, config: StoreConfig):
        self.config = config
        self.folder = Path(config.path)
        self.db_path = self.folder / DB_FILE
        self.lock_timeout = float(os.environ.get("SCD_STORE_LOCK_TIMEOUT", LOCK_TIMEOUT_S))
        self.read_timeout = READ_TIMEOUT_S

    # -- opening --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: StoreConfig, *, read_only: bool = False) -> EmbeddedStore:
        store = cls(config)
        if read_only:
            store._require_existing()
        else:
            store._prepare_folder()
            store.ensure_schema()
        return store

    def _require_existing(self) -> None:
        if not self.db_path.is_file():
            raise StoreError(
                f"no embedded store at {self.folder.resolve()}",
                "ingest into it first (`scd ingest PROMPTS --store PATH`) or point --store / SCD_STORE at an existing one",
            )

    def _prepare_folder(self) -> None:
        folder = self.folder
        fix = "choose a writable folder with --store PATH (or SCD_STORE), or fix its permissions"
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"store path {folder.resolve()} is a file, not a folder", fix)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise StoreError(f"store path {folder.resolve()} is not writable ({e.strerror or e})", fix) from e
        if self.db_path.exists() and not os.access(self.db_path, os.W_OK):
            raise StoreError(f"store file {self.db_path.resolve()} is not writable", fix)

    @contextmanager
    def _connect(self, *, read_only: bool = False) -> Iterator[ladybug.Connection]:
        """A connection to the database, opened for this call only; waits while another process writes."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                db = ladybug.Database(str(self.db_path), read_only=read_only)
                break
            except RuntimeError as e:
                if not _LOCKED.search(str(e)):
                    raise StoreError(
                        f"cannot open the embedded store at {self.folder.resolve()}: {str(e).splitlines()[0]}",
                        "check the path; if the file is damaged, move it away and ingest again",
                    ) from e
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"the embedded store at {self.folder.resolve()} stayed locked by another process for "
                        f"{self.lock_timeout:g} s ({str(e).splitlines()[0]})",
                        "wait for the other `scd ingest` to finish (or raise SCD_STORE_LOCK_TIMEOUT); for many "
                        "concurrent writers use a Neo4j server (--neo4j)",
                    ) from e
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        conn = ladybug.Connection(db)
        try:
            yield conn
        finally:
            conn.close()
            db.close()

    def ensure_schema(self) -> None:
        with self._connect() as conn:
            for stmt in LADYBUG_SCHEMA:
                conn.execute(stmt)

    # -- writes ---------------------------------------------------------------------------------------------
    def has_circuit(self, circuit_id: str) -> bool:
        if not self.db_path.is_file():
            return False
        with self._connect(read_only=True) as conn:
            return _count(conn, "MATCH (c:Circuit {id: $id}) RETURN count(c)", {"id": circuit_id}) > 0

    def write_circuit(self, circuit: Circuit) -> bool:
        rows = circuit_rows(circuit)
        check_references(rows)
        with self._connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                written = self._write_rows(conn, rows)
            except BaseException as e:
                conn.execute("ROLLBACK")
                if isinstance(e, RuntimeError):
                    raise StoreError(
                        f"writing circuit {rows.circuit['id']} to {self.folder.resolve()} failed: {e}",
                        "nothing of it was kept; rerun to resume",
                    ) from e
                raise
            conn.execute("COMMIT")
        return written

    @staticmethod
    def _write_rows(conn: ladybug.Connection, rows: CircuitRows) -> bool:
        cid = rows.circuit["id"]
        if _count(conn, "MATCH (c:Circuit {id: $id}) RETURN count(c)", {"id": cid}):
            return False
        for batch in _batches(rows.features):
            conn.execute(MERGE_FEATURES, {"rows": batch})
        conn.execute(MERGE_PROMPT, rows.prompt)
        conn.execute(CREATE_CIRCUIT, rows.circuit)
        for batch in _batches(rows.nodes):
            conn.execute(CREATE_NODES, {"rows": batch})
            conn.execute(CREATE_HAS, {"circuit_id": cid, "rows": batch})
            conn.execute(CREATE_OF, {"rows": batch})
        for batch in _batches(rows.edges):
            conn.execute(CREATE_FEEDS, {"rows": batch})
        return True

    # -- reads ----------------------------------------------------------------------------------------------
    def read(
        self, cypher: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> pd.DataFrame:
        self._require_existing()
        timeout = self.read_timeout if timeout is None else timeout
        with self._connect(read_only=True) as conn:
            conn.set_query_timeout(int(timeout * 1000))
            try:
                result = conn.execute(cypher, dict(params or {}))
            except RuntimeError as e:
                msg = str(e).strip()
                if "read-only" in msg.lower():
                    raise QueryError(
                        f"refused: LadybugDB reports the query writes ({msg.splitlines()[0]})",
                        "queries run read-only; write with `scd ingest` or `scd store clear`",
                    ) from e
                if "interrupted" in msg.lower() or "timeout" in msg.lower():
                    raise QueryError(
                        f"query ran past its {timeout:g} s timeout", "narrow the query or raise the timeout"
                    ) from e
                raise QueryError(
                    f"LadybugDB rejected the query: {msg}", "fix the Cypher (see the message)"
                ) from e
            if isinstance(result, list):  # several statements
                raise QueryError("one query at a time, please", "run the statements separately")
            keys = result.get_column_names()
            data = [[to_python(v) for v in row] for row in result.get_all()]
        return pd.DataFrame(data, columns=keys)

    def stats(self) -> dict[str, int]:
        self._require_existing()
        with self._connect(read_only=True) as conn:
            counts = {label: _count(conn, f"MATCH (n:{label}) RETURN count(n)") for label in LABELS}
            counts |= {rel: _count(conn, f"MATCH ()-[r:{rel}]->() RETURN count(r)") for rel in RELATIONSHIPS}
        return counts

    def clear(self) -> None:
        if not self.db_path.is_file():
            return
        with self._connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                for rel in RELATIONSHIPS:
                    conn.execute(f"MATCH ()-[r:{rel}]->() DELETE r")
                for label in LABELS:
                    conn.execute(f"MATCH (n:{label}) DELETE n")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def describe(self) -> str:
        return self.config.describe()


def _count(conn: ladybug.Connection, query: str, params: dict[str, Any] | None = None) -> int:
    return int(conn.execute(query, params or {}).get_all()[0][0])
