"""Embedded store: LadybugDB (the maintained fork of Kuzu) in a local folder, no server.

Layout: the store is a folder (default ``./scd-store``) holding the database file ``graph.lbdb`` (and LadybugDB's
``graph.lbdb.wal`` while it is open).

Concurrency: LadybugDB lets one process at a time open a database read-write (a file lock); read-only opens are
always allowed and see only committed data. A write opens the database read-write, retrying with backoff while
another process holds the lock (``SCD_STORE_LOCK_TIMEOUT`` seconds, default 600), and gives the handle back after
``HOLD_S`` idle seconds (closing checkpoints the file, ~0.2 s, so writes that follow each other closely share one
open). Two ``scd ingest`` runs on one store therefore take turns between circuits instead of failing. ``read``
opens the database read-only for each call, so the engine itself refuses any write.

Atomicity: ``write_circuit`` runs inside ``BEGIN TRANSACTION`` ... ``COMMIT`` (``ROLLBACK`` on error). A process
killed mid-transaction leaves nothing visible: uncommitted work never reaches the file, and the WAL replay on the
next open drops it -- also when the kill tore the WAL's last record (replay stops there instead of refusing to
open the store).

Recovery: a checkpoint that stopped half way (process killed, disk full) leaves LadybugDB's shadow file behind,
and a read-only open then refuses the store. scd completes the recovery itself: a reader that meets it opens the
store read-write once (waiting while another process holds the write lock: that process is writing or
checkpointing), which replays the checkpoint and keeps every committed transaction, then reads. No message ever
suggests deleting a store; one that cannot be read is copied first. Writes use ``UNWIND $rows`` batches: new Features (looked up first, then CREATEd), MERGE the
Prompt, CREATE the rest; never ``COPY``, which crashes the process on a duplicate primary key in LadybugDB 0.22.
``fold`` adds pending circuits to the pre-aggregated layer later, in transactions of its own
(scd.store.aggregates); holding the only write handle, it needs no lock of its own.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ladybug

from scd.core.circuit import Circuit
from scd.core.config import StoreConfig
from scd.core.errors import QueryError, StoreError
from scd.store import gate
from scd.store.aggregates import (
    COUNT_PENDING,
    DROP_LAYER,
    FOLD_EVERY_EDGES,
    FoldReport,
    WrittenEdges,
    fold_once,
)
from scd.store.base import OutdatedStore, Store, engine_message
from scd.store.rows import CircuitRows, batches, card_batches, check_references, circuit_rows
from scd.store.schema import (
    LABELS,
    LADYBUG_SCHEMA,
    RELATIONSHIPS,
    SET_FEATURE_CARDS,
    SET_FEATURE_CARDS_BARE,
    tables,
)
from scd.store.statements import cypher

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: `scd store stats` never pays for pandas

DB_FILE = "graph.lbdb"
BATCH = 20_000
LOCK_TIMEOUT_S = 600.0
READ_TIMEOUT_S = 120.0
SCHEMA_GRACE_S = 5.0  # how long a reader waits for a new store's first writer to create its tables
HOLD_S = 0.5  # keep the write handle this long after a write (see EmbeddedStore._writer)

# Features: look up which exist, CREATE the rest. This process holds the database's only write lock, so nothing
# can create them in between; MERGE would do the same work several times slower in LadybugDB 0.22.
EXISTING_FEATURES = cypher("write-existing-features", "ladybug")
CREATE_FEATURES = cypher("write-create-features", "ladybug")
MERGE_PROMPT = cypher("write-merge-prompt", "ladybug")
CREATE_CIRCUIT = cypher("write-create-circuit", "ladybug")
CREATE_NODES = cypher("write-create-nodes", "ladybug")
CREATE_FEEDS = cypher("write-create-feeds", "ladybug")

_LOCKED = re.compile(r"Could not set lock on file", re.I)
# A read-write open that meets another process's checkpoint half way (its shadow/WAL checkpoint files appear and
# vanish under the open): transient -- wait for that process and open again
_CHECKPOINT_RACE = re.compile(
    r"interrupted checkpoint during recovery|\.wal\.checkpoint|Reading past the end of the file", re.I
)
# A read-only open that meets an unfinished checkpoint (LadybugDB 0.22's wording, and newer releases'), or a
# WAL/header another process is rewriting at that moment (a checkpoint truncating the WAL under the open, a
# record half appended: its checksum fails). Recovery under the write lock waits for that writer, then replays
# the WAL up to its last whole record.
_RECOVERY_PENDING = re.compile(
    r"checkpoint recovery is pending|checkpoint is in progress|replay shadow pages under read-only"
    r"|Reading past the end of the file .*\.wal\b|may be checkpointing|Checksum verification failed, the WAL",
    re.I,
)


def _rows(conn: ladybug.Connection, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
    """The rows of one statement (``execute`` returns a list of results only for several statements)."""
    result = conn.execute(query, params or {})
    assert not isinstance(result, list), "one statement at a time"
    return [list(row) for row in result.get_all()]


def to_python(value: Any) -> Any:
    """LadybugDB values -> the same plain shapes the Neo4j store returns (see scd.store.neo4j.to_python)."""
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
        self.hold_s = HOLD_S
        self._lock = threading.RLock()
        self._rw: tuple[ladybug.Database, ladybug.Connection] | None = None
        self._timer: threading.Timer | None = None
        self._schema_ready = False  # tables created or checked by this object's first write handle
        self._schema_seen = False  # a read found every table (they are never dropped)
        self._writable = False  # opened for writing (open(read_only=False))
        self.written = WrittenEdges()  # what this process wrote and has not folded (scd.store.aggregates)

    # -- opening --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: StoreConfig, *, read_only: bool = False) -> EmbeddedStore:
        store = cls(config)
        if read_only:
            store._require_existing()
        else:
            store._writable = True
            store._check_writable()  # the folder itself appears with the first write (see _writer)
        return store

    def _require_existing(self) -> None:
        if not self.db_path.is_file() and self._writable:
            self.ensure_schema()  # opened for writing: a read makes the (empty) store, as a write would
        if not self.db_path.is_file():
            raise StoreError(
                f"no embedded store at {self.folder.resolve()}",
                "ingest into it first (`scd ingest PROMPTS --store PATH`) or point --store / SCD_STORE at an existing one",
            )

    def _check_writable(self) -> None:
        """Fail early, before any discovery, when the store could not be written; create nothing."""
        fix = "choose a writable folder with --store PATH (or SCD_STORE), or fix its permissions"
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"store path {folder.resolve()} is a file, not a folder", fix)
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise StoreError(f"store path {folder.resolve()} is not writable ({existing} is a file)", fix)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise StoreError(f"store path {folder.resolve()} is not writable (Permission denied)", fix)
        if self.db_path.exists() and not os.access(self.db_path, os.W_OK):
            raise StoreError(f"store file {self.db_path.resolve()} is not writable", fix)

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

    def _open(self, *, read_only: bool) -> ladybug.Database:
        """Open the database file, waiting (with backoff, up to ``lock_timeout``) while another process holds the
        write lock, and completing any recovery the store needs first.

        1. Open. A process killed while appending to the WAL leaves a torn last record, and LadybugDB 0.22 then
           refuses to open the store at all; replaying up to the torn record keeps every committed transaction
           and drops only the one that never committed -- what kill -9 should mean.
        2. A read-only open that finds a checkpoint unfinished (a shadow file or a frozen WAL: another process is
           checkpointing right now, or one died or failed half way) is refused by LadybugDB, and one that races
           a checkpoint truncating the WAL reads past its end. Then take the write
           lock and open read-write once, which completes the recovery, and open read-only again
           (``_recover``). While another process holds the write lock it is writing or checkpointing: wait.
        3. Anything else is a store scd cannot read: say so, and how to keep the data, never to delete it.
        """
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                return ladybug.Database(
                    str(self.db_path), read_only=read_only, throw_on_wal_replay_failure=False
                )
            except RuntimeError as e:
                if read_only and _RECOVERY_PENDING.search(str(e)):
                    if self._recover():
                        continue  # recovered: open read-only again at once
                elif not read_only and _CHECKPOINT_RACE.search(str(e)):
                    pass  # another process is checkpointing the file right now: wait, then open again
                elif not _LOCKED.search(str(e)):
                    raise self._unreadable(e) from e
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"the embedded store at {self.folder.resolve()} stayed locked by another process for "
                        f"{self.lock_timeout:g} s ({_first_line(e)})",
                        "wait for the other `scd ingest` to finish (or raise SCD_STORE_LOCK_TIMEOUT); for many "
                        "concurrent writers use a Neo4j server (--neo4j)",
                    ) from e
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    def _recover(self) -> bool:
        """Complete an unfinished checkpoint under the store's write lock: one read-write open replays (or drops)
        the shadow pages and the WAL, keeping every committed transaction, and closing checkpoints the file.
        False while another process holds the write lock (it is writing or checkpointing; the caller waits)."""
        with self._lock:
            if (
                self._rw is not None
            ):  # this process is the writer; its handle already holds the recovered state
                return False
            try:
                db = ladybug.Database(str(self.db_path), read_only=False, throw_on_wal_replay_failure=False)
            except RuntimeError as e:
                if _LOCKED.search(str(e)) or _CHECKPOINT_RACE.search(str(e)):
                    return False  # another process holds the lock or is checkpointing: the caller waits
                raise StoreError(
                    f"the embedded store at {self.folder.resolve()} needs recovery (a process stopped in the "
                    f"middle of a checkpoint) and it could not be completed here: {_first_line(e)}",
                    "the data is intact: first keep a copy of the whole folder (cp -a), then run any scd command "
                    "on it as a user who can write the folder (e.g. `scd store stats --store PATH`), which "
                    "completes the recovery",
                ) from e
            db.close()
            return True

    def _unreadable(self, e: BaseException) -> StoreError:
        """A store LadybugDB cannot open: keep the data first, then look for the cause."""
        folder = self.folder.resolve()
        return StoreError(
            f"cannot open the embedded store at {folder}: {_first_line(e)}",
            f"keep the data before anything else: copy the whole folder (cp -a {folder} {folder}.copy); then "
            "check the path and that this scd's LadybugDB version (`scd doctor`) is the one that wrote it",
        )

    @contextmanager
    def _reader(self) -> Iterator[ladybug.Connection]:
        """A read-only connection for this call only (the engine refuses writes on it). A store whose first
        writer (another process) has created the file but not yet its tables is read once that writer is done:
        reads never see a half-made store."""
        db = self._open(read_only=True)
        conn = ladybug.Connection(db)
        if not self._schema_seen and not self._has_schema(conn):
            conn.close()
            db.close()
            db, conn = self._wait_for_tables()
        self._schema_seen = True
        try:
            yield conn
        finally:
            conn.close()
            db.close()

    def _wait_for_tables(self) -> tuple[ladybug.Database, ladybug.Connection]:
        """The first writer creates the tables right after the file; read-only opens poll for them (never the
        write lock: that writer may hold it for a whole ingest). Still none after SCHEMA_GRACE_S: the writer died
        before creating them, so create them (``_complete_schema``)."""
        deadline = time.monotonic() + SCHEMA_GRACE_S
        delay = 0.02
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
            db = self._open(read_only=True)
            conn = ladybug.Connection(db)
            if self._has_schema(conn):
                return db, conn
            conn.close()
            db.close()
        self._complete_schema()
        db = self._open(read_only=True)
        return db, ladybug.Connection(db)

    @staticmethod
    def _has_schema(conn: ladybug.Connection) -> bool:
        # every node AND relationship table: the first writer creates them one statement at a time
        return {*LABELS, *RELATIONSHIPS} <= {r[0] for r in _rows(conn, "CALL show_tables() RETURN name")}

    def _complete_schema(self) -> None:
        """Wait for the store's write lock (its first writer holds it while creating the tables), then make sure
        the tables exist -- idempotent, and what any first write does; a writer that died before creating them
        left a store with none."""
        db = self._open(read_only=False)  # the same wait and recovery as any write
        conn = ladybug.Connection(db)
        try:
            self._create_schema(conn)
        finally:
            conn.close()
            db.close()

    @contextmanager
    def _writer(self) -> Iterator[ladybug.Connection]:
        """The read-write connection. Closing a LadybugDB database checkpoints it (~0.2 s), so the handle (and
        with it the file lock) is kept across writes that follow each other closely and given back after
        ``hold_s`` idle seconds by a timer, or by close(); another process waiting for the lock then gets it."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._rw is None:
                if not self._schema_ready:  # the first write: only now does the store folder appear
                    self._prepare_folder()
                db = self._open(read_only=False)
                self._rw = (db, ladybug.Connection(db))
                if not self._schema_ready:
                    self._create_schema(self._rw[1])
                    self._schema_ready = True
            try:
                yield self._rw[1]
            except BaseException as e:
                if _write_failed(e):
                    self._abandon()
                    raise self._disk_error(e) from e
                raise
            finally:
                if self._rw is None:  # abandoned after a failed write
                    pass
                elif self.hold_s > 0:
                    self._timer = threading.Timer(self.hold_s, self._release)
                    self._timer.daemon = True
                    self._timer.start()
                else:
                    self._release()

    def _release(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._rw is not None:
                db, conn = self._rw
                self._rw = None
                conn.close()
                db.close()

    def _abandon(self) -> None:
        """Give up the write handle after a write to disk failed, without closing it.

        LadybugDB 0.22 cannot close a database whose WAL write failed (a full disk): the close retries the write,
        the destructor rethrows, and std::terminate aborts the process with no message (exit 134). So the handle
        is parked, never closed, and the process ends without running destructors (``_exit_without_closing``),
        as kill -9 would. The store recovers from that on its next open: every committed transaction is in the
        WAL, the failed one is dropped."""
        if self._rw is None:
            return
        _ABANDONED.append(self._rw)
        self._rw = None
        if len(_ABANDONED) == 1:
            atexit.register(_exit_without_closing)

    def _disk_error(self, e: BaseException) -> StoreError:
        cause = _write_failed(e) or "a write failed"
        return StoreError(
            f"the disk under the embedded store at {self.folder.resolve()} is full ({cause}): the write in "
            "progress was not kept; everything committed before it is safe",
            "free space on that disk (or copy the store folder to a bigger one with cp -a and point --store at "
            "it), then run the same command again: it resumes",
        )

    @contextmanager
    def _any(self) -> Iterator[ladybug.Connection]:
        """The held writer if this process has one open (no second open), else a fresh reader."""
        with self._lock:
            if self._rw is not None:
                yield self._rw[1]
                return
        with self._reader() as conn:
            yield conn

    def ensure_schema(self) -> None:
        """Create the store (folder, file, tables) now rather than with the first write."""
        with self._writer():
            pass

    @staticmethod
    def _create_schema(conn: ladybug.Connection) -> None:
        """Create the tables, and add any column the schema has gained since the store was created. Runs under
        the store's write lock, so processes starting at once on a fresh store take turns."""
        for stmt in LADYBUG_SCHEMA:
            conn.execute(stmt)
        for table, (_, columns) in tables().items():
            have = {r[0] for r in _rows(conn, f"CALL table_info('{table}') RETURN name")}
            for name, type_ in columns:
                if name not in have:
                    conn.execute(f"ALTER TABLE {table} ADD {name} {type_}")

    # -- writes ---------------------------------------------------------------------------------------------
    def has_circuit(self, circuit_id: str) -> bool:
        if not self.db_path.is_file():
            return False
        with self._any() as conn:
            return _count(conn, "MATCH (c:Circuit {id: $id}) RETURN count(c)", {"id": circuit_id}) > 0

    def has_request(self, request: str) -> bool:
        if not self.db_path.is_file():
            return False
        with self._any() as conn:
            return _count(conn, "MATCH (c:Circuit) WHERE c.request = $r RETURN count(c)", {"r": request}) > 0

    def prepare(self, circuit: Circuit, *, request: str | None = None) -> CircuitRows:
        rows = circuit_rows(circuit, request)
        check_references(rows)
        return rows

    def write_prepared(self, rows: CircuitRows) -> bool:
        done = self._transaction(
            lambda conn: self._write_rows(conn, rows), f"writing circuit {rows.circuit['id']}"
        )
        if done:
            position = {n["id"]: i for i, n in enumerate(rows.nodes)}
            ends = [(n["feature_id"], n["effect"]) for n in rows.nodes]
            edges = [(position[e["src"]], position[e["dst"]], e["weight"]) for e in rows.edges]
            self.written.add(rows.circuit, ends, edges)
        return done

    @staticmethod
    def _write_rows(conn: ladybug.Connection, rows: CircuitRows) -> bool:
        cid = rows.circuit["id"]
        if _count(conn, "MATCH (c:Circuit {id: $id}) RETURN count(c)", {"id": cid}):
            return False
        existing: set[str] = set()
        for batch in batches([f["id"] for f in rows.features], BATCH):
            existing.update(r[0] for r in _rows(conn, EXISTING_FEATURES, {"ids": batch}))
        for batch in batches([f for f in rows.features if f["id"] not in existing], BATCH):
            conn.execute(CREATE_FEATURES, {"rows": batch})
        conn.execute(MERGE_PROMPT, rows.prompt)
        conn.execute(CREATE_CIRCUIT, rows.circuit)
        for batch in batches(rows.nodes, BATCH):
            conn.execute(CREATE_NODES, {"circuit_id": cid, "rows": batch})
        for batch in batches(rows.edges, BATCH):
            conn.execute(CREATE_FEEDS, {"rows": batch})
        return True

    def set_feature_cards(
        self, rows: list[dict[str, Any]], features: list[dict[str, Any]] | None = None
    ) -> int:
        if not rows:
            return 0

        def work(conn: ladybug.Connection) -> int:
            if features:
                existing: set[str] = set()
                for batch in batches([f["id"] for f in features], BATCH):
                    existing.update(r[0] for r in _rows(conn, EXISTING_FEATURES, {"ids": batch}))
                for batch in batches([f for f in features if f["id"] not in existing], BATCH):
                    conn.execute(CREATE_FEATURES, {"rows": batch})
            return sum(
                int(_rows(conn, SET_FEATURE_CARDS if has else SET_FEATURE_CARDS_BARE, {"rows": batch})[0][0])
                for has, batch in card_batches(rows, BATCH)
            )

        return self._transaction(work, "writing feature cards")

    def pending(self) -> int:
        if not self.db_path.is_file():
            return 0
        with self._any() as conn:
            return _count(conn, COUNT_PENDING)

    def fold(self, *, max_edges: int = FOLD_EVERY_EDGES, rebuild: bool = False) -> FoldReport:
        # one transaction per `scd ingest` fold, not Neo4j's FOLD_TX_EDGES: LadybugDB has no transaction memory
        # limit below its buffer pool, and a pair shared by two transactions is written twice
        t0 = time.perf_counter()
        report = FoldReport()
        if rebuild:
            self._transaction(
                lambda conn: [conn.execute(s) for s in DROP_LAYER], "dropping the aggregate layer"
            )

        def run(conn: ladybug.Connection) -> FoldReport:
            return fold_once(
                lambda q, p: _rows(conn, q, p),
                "ladybug",
                max_edges=max_edges,
                batch=BATCH,
                written=self.written,
            )

        while True:  # this process holds the only write handle
            t = time.perf_counter()
            done = self._transaction(run, "folding into the aggregate layer")
            report.migrated |= done.migrated
            if done.migrated:  # a round of its own, which claims nothing
                continue
            if not done.circuits:
                break
            done.phases["commit"] = time.perf_counter() - t - sum(done.phases.values())
            report.add(done)
        self.written.forget()
        report.seconds = time.perf_counter() - t0
        return report

    def _transaction(self, work: Any, what: str) -> Any:
        """``work(conn)`` inside BEGIN ... COMMIT on the write handle; rolled back (StoreError) if it fails."""
        with self._writer() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                result = work(conn)
            except BaseException as e:
                _rollback(conn)
                if isinstance(e, RuntimeError):
                    raise StoreError(
                        f"{what} in {self.folder.resolve()} failed: {e}",
                        "nothing of it was kept; rerun to resume",
                    ) from e
                raise
            conn.execute("COMMIT")
        return result

    # -- reads ----------------------------------------------------------------------------------------------
    def read(
        self, cypher: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> pd.DataFrame:
        # the allow-list first: a read-only handle still runs COPY TO, LOAD FROM …
        gate.check(cypher, "ladybug")
        params = dict(params or {})
        gate.check_params(params)
        gate.check_supplied(cypher, params)
        self._require_existing()
        timeout = self.read_timeout if timeout is None else timeout
        with self._reader() as conn:
            conn.set_query_timeout(int(timeout * 1000))
            try:
                result = conn.execute(cypher, params)
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
                if (missing := _MISSING_PROPERTY.search(msg)) and _lacks(conn, missing.group(1)):
                    # a column this scd's schema has and the store's tables do not: written by an older scd,
                    # and reads never alter tables
                    raise OutdatedStore(
                        f"this store was written by an older scd: its tables lack the column {missing.group(1)}",
                        f"upgrade it once with `scd store fold --store {self.folder}` (adds the new columns and "
                        "fills them; changes nothing else)",
                    ) from e
                raise QueryError(
                    f"LadybugDB rejected the query: {engine_message(msg)}", "fix the Cypher (see the message)"
                ) from e
            if isinstance(result, list):  # several statements
                raise QueryError("one query at a time, please", "run the statements separately")
            keys = result.get_column_names()
            data = [[to_python(v) for v in row] for row in result.get_all()]
        import pandas as pd

        return pd.DataFrame(data, columns=keys)

    def read_folded(self, cypher: str, fallback: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return super().read_folded(cypher, fallback, params)
        except OutdatedStore:  # the layer's newer columns are missing: the FEEDS edges give the same rows
            df = self.read(fallback, params)
            df.attrs["folded"] = False
            return df

    def stats(self) -> dict[str, int]:
        self._require_existing()
        with self._any() as conn:
            counts = {label: _count(conn, f"MATCH (n:{label}) RETURN count(n)") for label in LABELS}
            counts |= {rel: _count(conn, f"MATCH ()-[r:{rel}]->() RETURN count(r)") for rel in RELATIONSHIPS}
        return counts

    def clear(self) -> None:
        self.written.forget()
        if not self.db_path.is_file():
            return
        statements = [f"MATCH ()-[r:{rel}]->() DELETE r" for rel in RELATIONSHIPS]
        statements += [f"MATCH (n:{label}) DELETE n" for label in LABELS]
        self._transaction(lambda conn: [conn.execute(s) for s in statements], "clearing the store")

    def describe(self) -> str:
        return self.config.describe()

    def close(self) -> None:
        self._release()


_MISSING_PROPERTY = re.compile(r"Cannot find property (\w+) for \w+")


def _lacks(conn: ladybug.Connection, column: str) -> bool:
    """Whether some table of this scd's schema has ``column`` and the store's own table does not (a store an
    older scd wrote); False for a name no table of ours has, or one the tables that have it already hold."""
    for table, (_, columns) in tables().items():
        if any(name == column for name, _ in columns):
            have = {r[0] for r in _rows(conn, f"CALL table_info('{table}') RETURN name")}
            if column not in have:
                return True
    return False


# A write the file system refused: full disk, quota, file size limit (LadybugDB raises these as IO exceptions)
_WRITE_FAILED = re.compile(
    r"Cannot write to file.*?Error: ([^\n.]+)|(No space left on device|Disk quota exceeded|File too large)",
    re.S,
)
_ABANDONED: list[tuple[ladybug.Database, ladybug.Connection]] = []  # handles that must never be closed


def _write_failed(e: BaseException | None) -> str | None:
    """The reason when ``e`` (or an exception it was raised from) is a write the file system refused."""
    seen = 0
    while e is not None and seen < 10:
        m = _WRITE_FAILED.search(str(e))
        if m:
            return (m.group(1) or m.group(2)).strip()
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _exit_without_closing() -> None:
    """At exit, after a write failed: end the process without closing the parked handles (see _abandon)."""
    if _ABANDONED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(1)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _count(conn: ladybug.Connection, query: str, params: dict[str, Any] | None = None) -> int:
    return int(_rows(conn, query, params)[0][0])


def _rollback(conn: ladybug.Connection) -> None:
    """Roll back the open transaction; LadybugDB has already rolled it back when a statement failed."""
    try:
        conn.execute("ROLLBACK")
    except RuntimeError as e:
        if "no active transaction" not in str(e).lower():
            raise
