"""Neo4j store: the official driver, batched ``UNWIND`` writes, one managed transaction per circuit.

Writes
------
``write_circuit`` first merges the circuit's Features in a short transaction of their own: look up which exist
and MERGE the others (ON CREATE SET metadata; rows sorted by id so concurrent writers take locks in the same
order; most features of a circuit are already stored, and a lookup is much cheaper than a MERGE). Features are
global metadata shared by every circuit, not part of one; committing them first keeps a transaction that creates
a Feature from holding its lock for a whole circuit, which would make parallel writers queue (measured: two
writers were no faster than one). Then ONE ``session.execute_write`` transaction writes the circuit: check the
Circuit id (present -> write nothing), MERGE the Prompt, CREATE the Circuit (``aggregated = false``) with
EXPLAINS, then one statement that CREATEs the Nodes with HAS and OF and the first 50k FEEDS edges, which name
their end nodes by position in the node list (no index lookups); further edges go in 10k batches by two MATCHes on
constrained Node ids. A circuit is therefore in the store completely or not at all (should a Feature have been
deleted in between, the node counts disagree, the transaction rolls back and the write starts over). Nodes and
edges travel as tuples rather than maps (less to encode), built by ``prepare`` outside the transaction, so the
ingest pipeline does that for the next circuit while this one is written; it runs two writers (``writers``), as
one transaction keeps one server thread busy. The pre-aggregated layer is not touched here: ``fold`` adds pending
circuits to it later, many at once (scd.store.aggregates).

Concurrency: the uniqueness constraints make MERGE take an index-entry lock, so two processes merging the same
Feature serialise instead of duplicating it; lock-order cycles surface as ``DeadlockDetected`` (a transient error
the driver's managed transactions retry with backoff). If two processes write the *same* circuit at once, the
second one's CREATE of the Circuit fails the constraint (``ConstraintError``, not retried by the driver): we
re-run the transaction, which then finds the circuit and writes nothing. The same re-run covers a Feature MERGE
losing a race on the constraint.

Reads
-----
``read`` passes the text through the allow-list of scd.store.gate (no file, network or administration statement),
then asks the server once per text: ``EXPLAIN`` it and refuse unless the plan's query type is read-only (``r``),
and runs it as one auto-commit READ transaction with a timeout -- one round trip once the text is known. Results
come back as a pandas DataFrame; graph values become dicts
(``_label`` names a node's label or a relationship's type; a path is ``{"nodes": [...], "relationships": [...]}``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import neo4j
from neo4j import GraphDatabase
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConfigurationError,
    ConstraintError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from scd.core.circuit import Circuit
from scd.core.config import NEO4J_RETRY_S, StoreConfig
from scd.core.errors import QueryError, StoreError
from scd.store import gate
from scd.store.aggregates import (
    COUNT_PENDING,
    DROP_LAYER,
    FOLD_TX_EDGES,
    FoldReport,
    WrittenEdges,
    fold_once,
)
from scd.store.base import Store, engine_message
from scd.store.bulk import EMPTY_LISTS, empty_list_fixes
from scd.store.rows import (
    NODE_PROPS,
    CircuitRows,
    batches,
    card_batches,
    check_node_features,
    circuit_rows,
    edge_tuples,
    missing_node,
    node_key,
)
from scd.store.schema import (
    AGGREGATES,
    LABELS,
    NEO4J_SCHEMA,
    RELATIONSHIPS,
    SET_FEATURE_CARDS,
    SET_FEATURE_CARDS_BARE,
)
from scd.store.statements import aggregate_cypher, cypher

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: `scd store stats` never pays for pandas

log = logging.getLogger(__name__)
BATCH = 10_000  # rows per UNWIND (except the first EDGE_CHUNK edges, see CREATE_NODES_AND_EDGES)
READ_TIMEOUT_S = 120.0
# read_folded: rows only while no circuit waits for the fold (the same condition as COUNT_PENDING)
PENDING_GUARD = (
    "OPTIONAL MATCH (pending:Circuit) WHERE pending.aggregated = false\n"
    "WITH count(pending) AS scd_pending WHERE scd_pending = 0\n"
)
PLANNED_READS_KEPT = 4096  # texts whose read-only plan is remembered per store
CONSTRAINT_RETRIES = 5
SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")

# one record back, not one per feature: each record is a Bolt message the client decodes on the write path
EXISTING_FEATURES = cypher("write-existing-features", "neo4j")
MERGE_FEATURES = cypher("write-merge-features", "neo4j")
MERGE_PROMPT = cypher("write-merge-prompt", "neo4j")
CREATE_CIRCUIT = cypher("write-create-circuit", "neo4j")
# Nodes with HAS and OF, then the first EDGE_CHUNK edges, in one statement: edges name their end nodes by position
# in the node list, so no index lookups are needed. That relies on collect() keeping the UNWIND order, which the
# statement checks itself (`in_order`); should it ever fail, no edge is created, the counters below disagree and
# the circuit is written again the slow way (every edge end looked up by id).
CREATE_NODES = cypher("write-create-nodes", "neo4j")
CREATE_NODES_AND_EDGES = CREATE_NODES + "\n" + cypher("write-edges-by-position", "neo4j")
CREATE_FEEDS = cypher("write-create-feeds", "neo4j")
EDGE_CHUNK = 50_000
FOLD_LOCK = cypher("fold-lock", "neo4j")  # one fold at a time (see scd.store.aggregates)
# node rows as positional lists (smaller messages than maps); circuit_id goes once, as $circuit_id
NODE_FIELDS = tuple(p for p in NODE_PROPS if p != "circuit_id")
_FEATURE_ID, _EFFECT = NODE_FIELDS.index("feature_id"), NODE_FIELDS.index("effect")


@dataclass
class Prepared:
    """A circuit's rows in the shapes the write statements take, built before (and outside) the transaction.
    ``rows.edges`` stays empty: edges are ``edges`` (positions in ``nodes``), cheaper to build than per-edge dicts."""

    rows: CircuitRows
    nodes: list[tuple[Any, ...]]  # NODE_FIELDS order
    node_ids: list[str]
    edges: list[tuple[int, int, float, float]]  # (src position, dst position, weight, share)

    def edges_by_id(self, start: int = 0) -> list[tuple[str, str, float, float]]:
        ids = self.node_ids
        return [(ids[a], ids[b], w, share) for a, b, w, share in self.edges[start:]]


def prepare(circuit: Circuit, request: str | None = None) -> Prepared:
    cid = circuit.id
    rows = circuit_rows(circuit, request, edges=False)
    check_node_features(rows)
    # tuples, not lists: a tuple of numbers and strings drops out of Python's cyclic GC once it has survived a
    # collection, so 10k-edge circuits don't make every later collection slower (measured: half of prepare)
    nodes = list(map(itemgetter(*NODE_FIELDS), rows.nodes))
    node_ids = [n[0] for n in nodes]
    position = {key[len(cid) + 1 :]: i for i, key in enumerate(node_ids)}  # circuit-local node id -> position
    try:
        edges = [(position[s], position[t], w, share) for s, t, w, share in edge_tuples(circuit)]
    except KeyError:
        bad = next(e for e in circuit.edges if e.source not in position or e.target not in position)
        raise missing_node(cid, node_key(cid, bad.source), node_key(cid, bad.target)) from None
    return Prepared(rows, nodes, node_ids, edges)


class Rows(list):
    """A statement's row parameter, with a short repr. The driver formats every RUN's parameters for a debug log
    line even when debug logging is off (neo4j/_sync/io/_bolt/_bolt5.py, ``run``): for a 10k-edge circuit that is
    ~13 ms of the write path, and a debug log with every row of it in."""

    def __repr__(self) -> str:
        return f"<{len(self)} rows>"


class _OrderLost(Exception):
    """collect() did not keep the node order (never seen; handled by writing the circuit the slow way)."""


class _FeaturesMissing(Exception):
    """A node's Feature, merged in the transaction just before, was gone when the node was to be created (another
    process cleared the store meanwhile): rolled back; the write starts over with the Features."""


def _merge_features(tx: neo4j.ManagedTransaction, features: list[dict[str, Any]]) -> int:
    """MERGE the Features not yet stored (most of a circuit's are; a lookup is much cheaper than a MERGE)."""
    existing: set[str] = set()
    for batch in batches([f["id"] for f in features], BATCH):
        existing.update(tx.run(EXISTING_FEATURES, ids=batch).single(strict=True)["ids"])
    new = sorted((f for f in features if f["id"] not in existing), key=lambda r: r["id"])
    for batch in batches(new, BATCH):
        tx.run(MERGE_FEATURES, rows=batch).consume()  # MERGE: a concurrent writer may create one meanwhile
    return len(new)


def _write_rows(tx: neo4j.ManagedTransaction, prepared: Prepared, fast: bool = True) -> bool:
    rows, nodes = prepared.rows, prepared.nodes
    cid = rows.circuit["id"]
    if tx.run("MATCH (c:Circuit {id: $id}) RETURN count(c) AS n", id=cid).single(strict=True)["n"]:
        return False
    tx.run(MERGE_PROMPT, r=rows.prompt).consume()
    circuit = {k: v for k, v in rows.circuit.items() if v is not None}
    tx.run(CREATE_CIRCUIT, r=circuit).consume()
    if fast:
        first = prepared.edges[:EDGE_CHUNK]
        c = (
            tx.run(
                CREATE_NODES_AND_EDGES,
                circuit_id=cid,
                nodes=Rows(nodes),
                node_ids=Rows(prepared.node_ids),
                edges=Rows(first),
            )
            .consume()
            .counters
        )
        if c.nodes_created != len(nodes):
            raise _FeaturesMissing(cid)
        if c.relationships_created != 2 * len(nodes) + len(first):
            raise _OrderLost(cid)
        rest = prepared.edges_by_id(EDGE_CHUNK)
    else:
        created = 0
        for batch in batches(nodes, BATCH):
            created += (
                tx.run(CREATE_NODES, circuit_id=cid, nodes=Rows(batch)).consume().counters.nodes_created
            )
        if created != len(nodes):
            raise _FeaturesMissing(cid)
        rest = prepared.edges_by_id()
    for batch in batches(rest, BATCH):
        tx.run(CREATE_FEEDS, rows=Rows(batch)).consume()
    return True


def _unreachable(uri: str, e: Exception) -> StoreError:
    return StoreError(
        f"cannot reach Neo4j at {uri} ({str(e).splitlines()[0][:160]})",
        "start the server (e.g. `scripts/neo4j/neo4j-local start`) or fix --neo4j / SCD_NEO4J_URI",
    )


def _auth_failed(uri: str, user: str, e: Exception, password_given: bool = True) -> StoreError:
    message = getattr(e, "message", None) or str(e)
    if not password_given:
        return StoreError(
            f"Neo4j at {uri} requires a login and no password was given ({message.splitlines()[0]})",
            "set SCD_NEO4J_PASSWORD (and SCD_NEO4J_USER if the user is not neo4j)",
        )
    if "must be changed" in message:
        return StoreError(
            f"Neo4j at {uri} accepted user {user!r} but requires a new password before use",
            f"change it once, e.g. cypher-shell -a {uri} -u {user} -d system "
            "\"ALTER CURRENT USER SET PASSWORD FROM 'old' TO 'new'\", then set SCD_NEO4J_PASSWORD",
        )
    return StoreError(
        f"Neo4j at {uri} refused the credentials of user {user!r} ({message.splitlines()[0]})",
        "set SCD_NEO4J_USER and SCD_NEO4J_PASSWORD to a valid login",
    )


SCHEMA_RETRIES = 12  # ~20 s of backoff in all


def _schema_race(e: Neo4jError) -> bool:
    """A schema statement lost a race with another process creating the same schema (worth a retry)."""
    code, message = e.code or "", str(e.message or e)
    return (
        isinstance(e, TransientError)
        or "Transient" in code
        or "EquivalentSchemaRuleAlreadyExists" in code
        or "AlreadyExists" in code
        or "ConstraintCreationFailed" in code
        or "UpdateLock" in message
        or "deadlock" in message.lower()
    )


def to_python(value: Any) -> Any:
    """Driver values -> plain Python: nodes and relationships to dicts, paths to {nodes, relationships}."""
    if isinstance(value, neo4j.graph.Node):
        d = {k: to_python(v) for k, v in value.items()}
        d["_label"] = next(iter(value.labels), None)
        return d
    if isinstance(value, neo4j.graph.Relationship):
        d = {k: to_python(v) for k, v in value.items()}
        d["_label"] = value.type
        return d
    if isinstance(value, neo4j.graph.Path):
        return {
            "nodes": [to_python(n) for n in value.nodes],
            "relationships": [to_python(r) for r in value.relationships],
        }
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    if hasattr(value, "iso_format"):  # neo4j.time types
        return value.iso_format()
    return value


#: times a fold transaction is run again after a transient error (not for lack of transaction memory)
FOLD_RETRIES = 5


class _FoldTooBig(Exception):
    """A fold transaction of ``circuits`` circuits (``edges`` edges) ran out of the server's transaction memory
    (rolled back): fold in smaller ones."""

    def __init__(self, message: str, circuits: int, edges: int):
        super().__init__(message)
        self.circuits, self.edges = circuits, edges


class Neo4jStore(Store):
    kind = "neo4j"
    # two circuits in flight: one transaction runs on one server thread, and a 2-core server doubles its rate
    # (bench/ingest.py); more only pays on a bigger server (scd ingest --writers)
    writers = 2
    # each read opens its own session, which takes its own connection from the driver's pool (thread-safe)
    concurrent_reads = True

    def __init__(self, driver: neo4j.Driver, config: StoreConfig):
        self.driver = driver
        self.config = config
        self.database = config.neo4j_database
        self.read_timeout = READ_TIMEOUT_S
        self._planned_reads: set[str] = set()  # texts Neo4j has planned as read-only (see _explain)
        self.written = WrittenEdges()  # what this process wrote and has not folded (scd.store.aggregates)

    # -- opening --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: StoreConfig, *, read_only: bool = False) -> Neo4jStore:
        uri = config.neo4j_uri or ""
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in SCHEMES:
            raise StoreError(
                f"{uri!r} is not a Neo4j Bolt URI",
                "use bolt://HOST:PORT or neo4j://HOST:PORT (e.g. --neo4j bolt://localhost:7687)",
            )
        auth = (config.neo4j_user, config.neo4j_password) if config.neo4j_password else None
        try:
            driver = GraphDatabase.driver(
                uri, auth=auth, connection_timeout=10.0, max_transaction_retry_time=NEO4J_RETRY_S
            )
        except (ConfigurationError, ValueError) as e:
            raise StoreError(
                f"bad Neo4j URI {uri!r}: {e}", "use bolt://HOST:PORT or neo4j://HOST:PORT"
            ) from e
        store = cls(driver, config)
        try:
            store._check()
            if not read_only:
                store.ensure_schema()
        except BaseException:
            driver.close()
            raise
        return store

    def _check(self) -> None:
        uri, user = self.config.neo4j_uri or "", self.config.neo4j_user
        password_given = bool(self.config.neo4j_password)
        try:
            self.driver.verify_connectivity()
            with self.driver.session(database=self.database) as s:
                s.run("RETURN 1").consume()
        except AuthError as e:
            raise _auth_failed(uri, user, e, password_given) from e
        except (ServiceUnavailable, SessionExpired, OSError) as e:
            raise _unreachable(uri, e) from e
        except ClientError as e:
            if e.code == "Neo.ClientError.Database.DatabaseNotFound":
                raise StoreError(
                    f"Neo4j at {uri} has no database {self.database!r}",
                    "create it (CREATE DATABASE ...) or set SCD_NEO4J_DATABASE to an existing one (default neo4j)",
                ) from e
            if e.code.startswith("Neo.ClientError.Security.") or "must be changed" in (e.message or ""):
                raise _auth_failed(uri, user, e, password_given) from e
            raise StoreError(
                f"Neo4j at {uri} refused the connection: {e.message}", "check the server's log"
            ) from e
        except DriverError as e:
            raise _unreachable(uri, e) from e

    def _session(self, **kw: Any) -> neo4j.Session:
        return self.driver.session(database=self.database, **kw)

    def _guard(self, what: str, e: Exception) -> StoreError:
        if isinstance(e, AuthError):
            return _auth_failed(self.config.neo4j_uri or "", self.config.neo4j_user, e)
        if isinstance(e, ServiceUnavailable | SessionExpired):
            return _unreachable(self.config.neo4j_uri or "", e)
        msg = getattr(e, "message", None) or str(e)
        return StoreError(f"Neo4j {what} failed: {msg}", "check the server's log; rerun to resume")

    def ensure_schema(self) -> None:
        """Create the constraints and indexes (idempotent: IF NOT EXISTS). Several processes starting at once on a
        fresh database race for the schema lock: one can lose with a deadlock ("can't acquire UpdateLock") or
        meet the constraint another just created; the statement is then retried with backoff, and being
        idempotent, the retry is a no-op where the other process won."""
        try:
            with self._session() as s:
                for stmt in NEO4J_SCHEMA:
                    for attempt in range(SCHEMA_RETRIES):
                        try:
                            s.run(stmt).consume()
                            break
                        except Neo4jError as e:
                            if attempt == SCHEMA_RETRIES - 1 or not _schema_race(e):
                                raise
                            log.info("schema setup raced another process (%s); retrying", e.code)
                            time.sleep(min(0.05 * 2**attempt, 2.0))
        except (Neo4jError, DriverError) as e:
            raise self._guard("schema setup", e) from e
        self._finish_import()

    def _finish_import(self) -> None:
        """A database made by neo4j-admin from `scd export-csv` / `scd ingest --csv-out` CSVs: give back the empty
        lists the import could not hold (scd.store.bulk). One count query when there are none."""
        try:
            with self._session(notifications_min_severity="OFF") as s:
                found = s.run(f"MATCH (n:{EMPTY_LISTS}) RETURN count(n) AS n").single(strict=True)["n"]
                if found:
                    for statement in empty_list_fixes():
                        s.run(statement).consume()  # auto-commit: a marked node is fixed once, in any order
        except (Neo4jError, DriverError) as e:
            raise self._guard("finishing a bulk import", e) from e

    # -- writes ---------------------------------------------------------------------------------------------
    def _count(self, query: str, **params: Any) -> int:
        try:  # auto-commit: one round trip (runner.run asks pending() before every aggregated query)
            with self._session(default_access_mode=neo4j.READ_ACCESS) as s:
                return int(s.run(query, params).single(strict=True)["n"])
        except (Neo4jError, DriverError) as e:
            raise self._guard("read", e) from e

    def has_circuit(self, circuit_id: str) -> bool:
        return self._count("MATCH (c:Circuit {id: $id}) RETURN count(c) AS n", id=circuit_id) > 0

    def has_request(self, request: str) -> bool:
        return self._count("MATCH (c:Circuit {request: $r}) RETURN count(c) AS n", r=request) > 0

    def prepare(self, circuit: Circuit, *, request: str | None = None) -> Prepared:
        return prepare(circuit, request)

    def write_prepared(self, prepared: Prepared) -> bool:
        cid = prepared.rows.circuit["id"]

        def write(fast: bool) -> bool:
            # a constraint race: another writer created the same Feature / Prompt / Circuit between our check and
            # our write; the re-run sees it (MERGE matches it; an existing circuit makes the re-run write nothing)
            with self._session() as s:
                for _ in range(CONSTRAINT_RETRIES):
                    # new Features first, committed on their own: a transaction that creates a Feature holds
                    # its index-entry lock until it commits, so writers whose circuits share new Features would
                    # otherwise queue behind each other's whole circuit. Features are global metadata, not part
                    # of a circuit: one without nodes (the circuit's transaction failed after) is harmless.
                    self._with_constraint_retries(
                        lambda: s.execute_write(_merge_features, prepared.rows.features), f"features of {cid}"
                    )
                    try:
                        return self._with_constraint_retries(
                            lambda: s.execute_write(_write_rows, prepared, fast), f"circuit {cid}"
                        )
                    except _FeaturesMissing:
                        log.info("circuit %s: Features deleted during the write; writing them again", cid)
                raise StoreError(
                    f"circuit {cid}: its Features were deleted again and again while it was written",
                    "is another process clearing the store (scd store clear)? rerun when it has finished",
                )

        try:
            try:
                done = write(True)
            except _OrderLost:  # rolled back; write it again with id lookups
                log.warning("circuit %s: node order lost in collect(); writing it with id lookups", cid)
                done = write(False)
        except ConstraintError:
            raise  # lost every retry: not a connection or server problem
        except (Neo4jError, DriverError) as e:
            raise self._guard(f"write of circuit {cid}", e) from e
        if done:
            ends = [(n[_FEATURE_ID], n[_EFFECT]) for n in prepared.nodes]
            self.written.add(prepared.rows.circuit, ends, [(a, b, w) for a, b, w, _ in prepared.edges])
        return done

    def set_feature_cards(
        self, rows: list[dict[str, Any]], features: list[dict[str, Any]] | None = None
    ) -> int:
        def work(tx: neo4j.ManagedTransaction) -> int:
            if features:
                _merge_features(tx, features)
            return sum(
                int(
                    tx.run(SET_FEATURE_CARDS if has else SET_FEATURE_CARDS_BARE, rows=Rows(batch)).single(
                        strict=True
                    )["n"]
                )
                for has, batch in card_batches(rows, BATCH)
            )

        try:
            with self._session() as s:
                return s.execute_write(work) if rows else 0
        except (Neo4jError, DriverError) as e:
            raise self._guard("writing feature cards", e) from e

    def pending(self) -> int:
        return self._count(COUNT_PENDING)

    def fold(self, *, max_edges: int | None = None, rebuild: bool = False) -> FoldReport:
        """See Store.fold; ``max_edges`` by default FOLD_TX_EDGES, twice that into an empty layer, whose first
        transaction only creates: 100k edges of creates fit a 1 GiB server's transaction memory where 100k
        folded into a layer that had most of their pairs did not (bench/ingest.py); a transaction that does not
        fit is folded in halves anyway."""
        t0 = time.perf_counter()
        report = FoldReport()

        def drop(tx: neo4j.ManagedTransaction) -> None:
            tx.run(FOLD_LOCK).consume()
            for statement in DROP_LAYER:
                tx.run(statement).consume()

        def fold_tx(tx: neo4j.Transaction, max_edges: int, report: FoldReport) -> FoldReport:
            # the fold lock: one fold at a time, and this one reads what the previous one committed
            tx.run(FOLD_LOCK).consume()
            return fold_once(
                lambda q, p: [
                    r.values()
                    for r in tx.run(q, {k: Rows(v) if isinstance(v, list) else v for k, v in p.items()})
                ],
                "neo4j",
                max_edges=max_edges,
                batch=BATCH,
                report=report,
                written=self.written,
            )

        def fold_round(s: neo4j.Session, max_edges: int) -> FoldReport:
            """One fold transaction, run again on a transient error (a deadlock with a writer, a lost connection)
            as the driver's managed transactions do -- but not when the server ran out of transaction memory
            (which it reports as transient too, and mostly at COMMIT): the same transaction would fail again, after
            up to 30 s of the driver's back-off (a 100k-edge fold into a layer that had most of its pairs lost
            60 s so, measured); _FoldTooBig makes the caller fold in smaller transactions."""
            for attempt in range(FOLD_RETRIES + 1):
                tried = FoldReport()
                try:
                    with s.begin_transaction() as tx:
                        done = fold_tx(tx, max_edges, tried)
                        tx.commit()
                    return done
                except (Neo4jError, DriverError) as e:
                    # the server-wide pool (transient) or this transaction's own limit (db.memory.transaction.max)
                    if "OutOfMemory" in (getattr(e, "code", None) or ""):
                        raise _FoldTooBig(
                            getattr(e, "message", None) or str(e), tried.circuits, tried.edges
                        ) from e
                    if not e.is_retryable() or attempt == FOLD_RETRIES:
                        raise
                    log.info("fold: %s; running the transaction again", e)
                    time.sleep(0.2 * 2**attempt)
            raise AssertionError("unreachable")

        try:
            # the fold's own statements name aggregate types a fresh store has not created yet: the server's
            # "unknown relationship type" warnings would reach the user's terminal and mean nothing
            with self._session(notifications_min_severity="OFF") as s:
                if rebuild:
                    self._with_constraint_retries(
                        lambda: s.execute_write(drop), "dropping the aggregate layer"
                    )
                # each round folds at least one circuit; the bound stops a fold that races endless new writes
                if max_edges is None:
                    pairs = s.run(aggregate_cypher("fold-count-pairs", "neo4j", AGGREGATES[0])).single()
                    empty = pairs is None or not pairs[0]
                    max_edges = FOLD_TX_EDGES * (2 if empty else 1)
                budget, rounds = max_edges, self.pending() + 1
                while rounds > 0:
                    t = time.perf_counter()
                    try:
                        done = self._with_constraint_retries(lambda b=budget: fold_round(s, b), "fold")
                    except _FoldTooBig as e:
                        # the server's transaction memory cannot hold this many aggregate rows (a 1 GiB heap failed
                        # at 100k worst-case edges, and at 100k demo-shaped ones folded into a layer that had most
                        # of their pairs): rolled back, so fold in smaller transactions -- down to one circuit,
                        # which must fit
                        if e.circuits == 0:  # before any claim: the node totals of an older scd's layer
                            raise StoreError(
                                "computing the node totals of a layer folded by an older scd does not fit the "
                                f"server's transaction memory: {e}",
                                "raise dbms.memory.transaction.total.max (or the heap) in neo4j.conf, or rebuild "
                                "the layer in smaller transactions: scd store fold --rebuild",
                            ) from e
                        if e.circuits == 1:  # a circuit is never split
                            raise StoreError(
                                f"the fold of one circuit does not fit the server's transaction memory: {e}",
                                "raise dbms.memory.transaction.total.max (or the heap) in neo4j.conf",
                            ) from e
                        # half of what that transaction claimed (the budget may be far above it)
                        budget = max(1, min(budget, e.edges or budget) // 2)
                        log.warning(
                            "fold: transaction memory exhausted; folding up to %d edges at a time", budget
                        )
                        continue
                    report.migrated |= done.migrated
                    if done.migrated:  # a round of its own, which claims nothing
                        continue
                    rounds -= 1
                    if not done.circuits:
                        break
                    done.phases["commit"] = time.perf_counter() - t - sum(done.phases.values())
                    report.add(done)
            self.written.forget()
        except (Neo4jError, DriverError) as e:
            raise self._guard("fold of the aggregate layer", e) from e
        report.seconds = time.perf_counter() - t0
        return report

    @staticmethod
    def _with_constraint_retries(fn, what: str):
        """Run ``fn`` again when it loses a uniqueness race (creating the same node as another writer: a Feature,
        Prompt, Circuit, Token or the fold lock); the driver retries transient errors, not these."""
        for attempt in range(CONSTRAINT_RETRIES + 1):
            try:
                return fn()
            except ConstraintError as e:
                log.info("%s: constraint race (%s); running the transaction again", what, e.message)
                if attempt == CONSTRAINT_RETRIES:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- reads ----------------------------------------------------------------------------------------------
    def read(
        self, cypher: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> pd.DataFrame:
        # the allow-list first: no file, network or administration statement gets through
        gate.check(cypher, "neo4j")
        params = dict(params or {})
        gate.check_params(params)
        gate.check_supplied(cypher, params)
        timeout = self.read_timeout if timeout is None else timeout
        try:
            with self._session(default_access_mode=neo4j.READ_ACCESS) as s:
                if cypher not in self._planned_reads:  # the server's verdict, asked once per text
                    self._explain(s, cypher, params)
                # one auto-commit READ transaction: RUN and PULL go out together and the server commits when
                # the last record is sent -- one round trip, where BEGIN ... COMMIT costs two
                result = s.run(neo4j.Query(cypher, timeout=timeout), params)
                keys = list(result.keys())
                data = [[to_python(v) for v in rec.values()] for rec in result]
        except QueryError:
            raise
        except ClientError as e:
            if "Timeout" in (e.code or "") or "timed out" in (e.message or "").lower():
                raise QueryError(
                    f"query ran past its {timeout:g} s timeout", "narrow the query or raise the timeout"
                ) from e
            raise QueryError(
                f"Neo4j rejected the query: {engine_message(e.message or '')}",
                "fix the Cypher (see the message)",
            ) from e
        except (Neo4jError, DriverError) as e:
            raise self._guard("read", e) from e
        import pandas as pd

        return pd.DataFrame(data, columns=keys)

    def read_folded(self, cypher: str, fallback: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        # one round trip in the common case: the pending check rides in the same statement, which then
        # returns no rows while a circuit is pending; only an empty answer costs a second look
        df = self.read(PENDING_GUARD + cypher, params)
        if df.empty and self.pending() > 0:
            df = self.read(fallback, params)
            df.attrs["folded"] = False
            return df
        df.attrs["folded"] = True  # rows came back only if nothing was pending (or there are none at all)
        return df

    def _explain(self, session: neo4j.Session, cypher: str, params: dict[str, Any]) -> None:
        """The second wall: refuse unless Neo4j plans the text as read-only ('r'); remembered per text (a plan's
        query type depends on the text only), so a repeated query costs one transaction, not two."""
        try:
            summary = session.run("EXPLAIN " + cypher, params).consume()
        except ClientError as e:
            raise QueryError(
                f"Neo4j rejected the query: {engine_message(e.message or '', prefix='EXPLAIN ')}",
                "fix the Cypher (see the message)",
            ) from e
        if summary.query_type != "r":
            raise QueryError(
                f"refused: Neo4j plans this query as {summary.query_type!r}, not read-only ('r')",
                "queries run read-only; write with `scd ingest` or `scd store clear`",
            )
        if len(self._planned_reads) >= PLANNED_READS_KEPT:
            self._planned_reads.clear()
        self._planned_reads.add(cypher)

    def stats(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        try:
            # on an empty database the labels and types do not exist yet: no "unknown label" notifications
            with self._session(default_access_mode=neo4j.READ_ACCESS, notifications_min_severity="OFF") as s:
                for label in LABELS:
                    counts[label] = s.run(f"MATCH (n:`{label}`) RETURN count(n) AS n").single(strict=True)[
                        "n"
                    ]
                for rel in RELATIONSHIPS:
                    counts[rel] = s.run(f"MATCH ()-[r:`{rel}`]->() RETURN count(r) AS n").single(strict=True)[
                        "n"
                    ]
        except (Neo4jError, DriverError) as e:
            raise self._guard("stats", e) from e
        return counts

    def is_empty(self) -> bool:
        # one statement, each label's EXISTS stopping at its first node, where stats() sends one count per label
        # and type: an empty answer (a feature nothing feeds) checked the store with 12 round trips
        exists = " OR ".join(f"EXISTS {{ MATCH (:`{label}`) }}" for label in LABELS)
        try:
            with self._session(default_access_mode=neo4j.READ_ACCESS, notifications_min_severity="OFF") as s:
                return not s.run(f"RETURN {exists} AS any").single(strict=True)["any"]
        except (Neo4jError, DriverError) as e:
            raise self._guard("stats", e) from e

    def clear(self) -> None:
        self.written.forget()
        try:
            # scd's relationships and nodes only (and the fold lock): the database may hold other data
            with self._session() as s:
                batched = "CALL ({0}) {{ DELETE {0} }} IN TRANSACTIONS OF 50000 ROWS"
                for rel in RELATIONSHIPS:
                    s.run(f"MATCH ()-[r:`{rel}`]->() " + batched.format("r")).consume()
                for label in (*LABELS, "ScdMeta"):
                    s.run(
                        f"MATCH (n:`{label}`) " + batched.format("n").replace("DELETE", "DETACH DELETE")
                    ).consume()
        except (Neo4jError, DriverError) as e:
            raise self._guard("clear", e) from e

    def describe(self) -> str:
        return self.config.describe()

    def close(self) -> None:
        self.driver.close()
