"""The bulk path: the whole graph as ``neo4j-admin database import full`` CSVs, for batches too large to write
through transactions.

Two sources, one writer (``CsvGraph``):

* ``export_store(store, out)`` -- ``scd export-csv DIR``: every node and relationship of an existing store (Neo4j or
  embedded), read in pages by key (``WHERE n.id > $after ORDER BY n.id LIMIT``, an index seek per page), the
  aggregate layer as stored.
* ``CsvStore`` -- ``scd ingest --csv-out DIR``: a write-only ``Store`` the ingest pipeline writes circuits into
  as into a database, with no database: rows go straight to the files; Features and Prompts are kept once (the
  first writer's metadata, like MERGE ... ON CREATE); and its ``fold`` computes the aggregate layer in memory with
  the fold's own code (``aggregates.group_edges`` then ``aggregates.combine`` against the groups folded so far),
  so the layer is exactly the one ``scd store fold`` would make from the same circuits.

The files (phases of ``CsvGraph``): ``nodes/<Label>.csv`` and ``relationships/<TYPE>.csv``, one per label and
type of scd.store.schema, whose headers are derived from ``schema.tables()`` (the typed column list both stores
use): ``id:ID(<Label>)`` (one id space per label, stored as the ``id`` property), ``:START_ID(<Label>)`` /
``:END_ID(<Label>)``, ``<property>:<type>`` and ``:LABEL`` / ``:TYPE`` columns. Types: INT64 -> ``long`` and
DOUBLE -> ``double`` (what the Python driver writes; neo4j-admin's ``float`` would round to 32 bits), arrays
``string[]`` / ``double[]`` / ``long[]``. Values: an unset property is an empty unquoted field; every string is quoted, so an
empty string stays an empty string; arrays are joined by ``ARRAY_DELIMITER`` (U+001F, the ASCII unit separator,
which no token or prompt text contains; a value that does is refused). Floats are written with ``repr``, which
reads back to the same double. ``import.sh`` in the folder runs the import with the right options.

What neo4j-admin cannot express: an empty list (an empty field is unset). A node with an empty list property (e.g.
``top_promoted`` of an SAE error term) gets the extra label ``ScdEmptyLists`` and the names of those properties in
``scd_empty_lists``; the first ``scd`` command that opens the database for writing (``scd store fold``) sets them
to ``[]`` and removes both (``EMPTY_LIST_FIXES``, run by Neo4jStore.ensure_schema), and creates scd's indexes and
constraints, which are not part of the import either. Relationships hold no lists.

Why hand-written CSV and not pandas.to_csv: the typed header, the quoting rule (strings always quoted, unset never)
and the array encoding are neo4j-admin's own, and rows arrive one circuit at a time, so there is no frame to
hand to pandas; and the csv module of Python 3.11 cannot quote strings while leaving unset fields unquoted.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from scd.core.circuit import Circuit
from scd.core.errors import QueryError, StoreError
from scd.store.aggregates import (
    FOLD_TX_EDGES,
    ROW_KEYS,
    CircuitEdges,
    FoldReport,
    combine,
    group_edges,
    node_totals,
    properties,
)
from scd.store.base import Store
from scd.store.rows import CircuitRows, check_references, circuit_rows
from scd.store.schema import AGGREGATES, LABELS, NODE_TOTALS, RELATIONSHIPS, tables

ARRAY_DELIMITER = "\x1f"
ADMIN_TYPES = {
    "STRING": "string",
    "INT64": "long",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "STRING[]": "string[]",
    "DOUBLE[]": "double[]",
    "INT64[]": "long[]",
}
PAGE = 5_000  # keys per read of export_store
#: label and property of imported nodes whose list properties were empty lists (see the module docstring)
EMPTY_LISTS = "ScdEmptyLists"
EMPTY_LISTS_PROP = "scd_empty_lists"
#: files of an export, in the order the import reads them (nodes first)
FILES = tuple(f"nodes/{label}.csv" for label in LABELS) + tuple(
    f"relationships/{rel}.csv" for rel in RELATIONSHIPS
)


def header(name: str) -> list[str]:
    """The neo4j-admin header of a label's or relationship type's file, from the schema's typed columns."""
    ends, columns = tables()[name]
    props = [f"{p}:{ADMIN_TYPES[t]}" for p, t in columns]
    if ends is None:
        assert props[0] == "id:string", f"{name}: the key must be the first column"
        return [f"id:ID({name})", *props[1:], f"{EMPTY_LISTS_PROP}:string[]", ":LABEL"]
    return [f":START_ID({ends[0]})", f":END_ID({ends[1]})", *props, ":TYPE"]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))  # NaN: unset, as read back through pandas


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'  # RFC 4180, as neo4j-admin reads it


def _is_empty_list(value: Any) -> bool:
    return not _missing(value) and len(value) == 0


def empty_list_fixes() -> list[str]:
    """After an import: set the list properties ``scd_empty_lists`` names to ``[]``, then drop the marks.
    Labels and property names from the schema only."""
    out = [
        f"MATCH (n:{EMPTY_LISTS}:{label}) WHERE '{p}' IN n.{EMPTY_LISTS_PROP} SET n.{p} = []"
        for label in LABELS
        for p, t in tables()[label][1]
        if t.endswith("[]")
    ]
    return [*out, f"MATCH (n:{EMPTY_LISTS}) REMOVE n:{EMPTY_LISTS} REMOVE n.{EMPTY_LISTS_PROP}"]


def _field(value: Any, kind: str, where: str) -> str:
    """One CSV field as neo4j-admin parses ``kind``: empty (unquoted) for unset, strings quoted."""
    if _missing(value):
        return ""
    if kind.endswith("[]"):
        items = list(value)
        if not items:
            return ""  # neo4j-admin has no empty array: unset (see the module docstring)
        if kind == "STRING[]":
            texts = [str(v) for v in items]
            if any(ARRAY_DELIMITER in t for t in texts):
                raise StoreError(
                    f"{where} contains the array delimiter U+001F, which the CSV export uses between list items",
                    "remove that control character from the prompt or token text",
                )
            return _quote(ARRAY_DELIMITER.join(texts))
        if kind == "INT64[]":
            return ARRAY_DELIMITER.join(str(int(v)) for v in items)
        return ARRAY_DELIMITER.join(repr(float(v)) for v in items)
    if kind == "STRING":
        return _quote(str(value))
    if kind == "INT64":
        return str(int(value))
    if kind == "DOUBLE":
        return repr(float(value))
    if kind == "BOOLEAN":
        return "true" if value else "false"
    raise AssertionError(f"no CSV encoding for {kind}")


class CsvGraph:
    """The CSV files of one graph, written into a new folder and moved into place on ``commit``.

    1. ``open``: a fresh temporary folder beside ``out`` (so a run that fails or is interrupted leaves ``out`` as
       it was); one file per label and type, header first.
    2. ``node`` / ``relationship``: rows, each a dict of schema properties (missing keys: unset).
    3. ``commit``: close the files, write ``import.sh``, move everything into ``out`` (created if missing; an
       existing non-empty ``out`` only with ``force``, and then only our own file names are replaced).
       ``discard`` instead removes the temporary folder (our own files only).
    """

    def __init__(self, out: Path, *, force: bool = False):
        self.out = Path(out)
        self.force = force
        check_target(self.out, force)
        parent = self.out.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=parent))
        except OSError as e:
            raise StoreError(
                f"cannot create a folder in {parent} ({e.strerror or e})", "pass a writable DIR"
            ) from e
        self.multiline = False  # some string holds a line break: the import needs --multiline-fields
        self.counts = dict.fromkeys((*LABELS, *RELATIONSHIPS), 0)
        self._files: dict[str, IO[str]] = {}
        self._columns: dict[str, tuple[tuple[str, str], ...]] = {}
        try:
            for name, path in zip((*LABELS, *RELATIONSHIPS), FILES, strict=True):
                (self.tmp / path).parent.mkdir(exist_ok=True)
                f = open(self.tmp / path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in commit
                self._files[name] = f
                f.write(",".join(header(name)) + "\n")
                self._columns[name] = tables()[name][1]
        except BaseException:
            self.discard()
            raise

    def node(self, label: str, row: dict[str, Any]) -> None:
        columns = self._columns[label]
        fields = [self._value(label, p, t, row.get(p)) for p, t in columns]
        empty = [p for p, t in columns if t.endswith("[]") and _is_empty_list(row.get(p))]
        labels = ARRAY_DELIMITER.join((label, EMPTY_LISTS)) if empty else label
        marks = _field(empty, "STRING[]", EMPTY_LISTS_PROP)
        self._files[label].write(",".join((*fields, marks, labels)) + "\n")
        self.counts[label] += 1

    def relationship(self, rel: str, start: str, end: str, row: dict[str, Any] | None = None) -> None:
        row = row or {}
        if any(_is_empty_list(row.get(p)) for p, t in self._columns[rel] if t.endswith("[]")):
            raise AssertionError(f"{rel}: an empty list on a relationship has no import encoding")
        fields = [self._value(rel, p, t, row.get(p)) for p, t in self._columns[rel]]
        self._files[rel].write(",".join((_quote(start), _quote(end), *fields, rel)) + "\n")
        self.counts[rel] += 1

    def _value(self, name: str, prop: str, kind: str, value: Any) -> str:
        field = _field(value, kind, f"{name}.{prop}")
        if kind.startswith("STRING") and ("\n" in field or "\r" in field):
            self.multiline = True
        return field

    def commit(self) -> None:
        for f in self._files.values():
            f.close()
        script = self.tmp / "import.sh"
        script.write_text(import_script(self.multiline), encoding="utf-8")
        script.chmod(0o755)
        check_target(self.out, self.force)  # still true? (another process may have filled it meanwhile)
        try:
            if not self.out.exists():
                self.tmp.rename(self.out)
                return
            for path in (*FILES, "import.sh"):
                (self.out / path).parent.mkdir(exist_ok=True)
                (self.tmp / path).replace(self.out / path)
        except OSError as e:
            raise StoreError(
                f"cannot move the CSV files into {self.out} ({e.strerror or e})", "pass a writable DIR"
            ) from e
        self.discard()

    def discard(self) -> None:
        for f in self._files.values():
            f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)  # our own temporary folder, never the user's


def check_target(out: Path, force: bool) -> None:
    """Refuse (StoreError) a DIR that is a file, or a non-empty folder without ``force``."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out} is a file, not a folder", "pass a new folder as DIR")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise StoreError(
            f"{out} is not empty", "pass a new folder as DIR, or --force to replace the export files in it"
        )


def import_script(multiline: bool) -> str:
    """``import.sh``: the exact neo4j-admin command for these files (extra options and the database name go
    after it; ``NEO4J_ADMIN`` names another neo4j-admin)."""
    nodes = " \\\n  ".join(f"--nodes={path}" for path in FILES if path.startswith("nodes/"))
    rels = " \\\n  ".join(f"--relationships={path}" for path in FILES if path.startswith("relationships/"))
    return (
        "#!/bin/sh\n"
        "# Load these CSVs into a new, empty Neo4j database (stop the server first), e.g.\n"
        "#   ./import.sh neo4j            (or: NEO4J_ADMIN=/path/to/neo4j-admin ./import.sh mydb)\n"
        "# then start the server and run `scd store fold --neo4j URI` once: it creates scd's indexes.\n"
        "set -e\n"
        'cd "$(dirname "$0")"\n'
        'exec "${NEO4J_ADMIN:-neo4j-admin}" database import full \\\n'
        f"  {nodes} \\\n  {rels} \\\n"
        "  --array-delimiter=U+001F --id-type=string"
        + (" --multiline-fields=true" if multiline else "")
        + ' \\\n  "$@"\n'
    )


# -- from a store -------------------------------------------------------------------------------------------------
def _pages(store: Store, match: str, returns: str, start: str) -> Iterator[list[tuple]]:
    """Rows of ``MATCH match ... RETURN returns`` in pages of PAGE keys of ``start`` (a node variable of
    ``match``'s first node pattern, its label from our schema), in key order: each page is one index seek."""
    after = ""
    first, _, rest = match.partition(")")
    cypher = (
        f"MATCH {first}) WHERE {start}.id > $after WITH {start} ORDER BY {start}.id LIMIT $page\n"
        + (f"OPTIONAL MATCH ({start}){rest}\n" if rest else "")
        + f"RETURN {start}.id AS scd_key, {returns}"
    )
    while True:
        df = store.read(cypher, {"after": after, "page": PAGE})
        if df.empty:
            return
        rows = list(df.itertuples(index=False, name=None))
        yield rows
        after = max(r[0] for r in rows)
        if len(df[df.columns[0]].unique()) < PAGE:
            return


def export_store(store: Store, out: Path, *, force: bool = False, progress: Any = None) -> dict[str, int]:
    """Write every node and relationship of ``store`` as neo4j-admin CSVs into ``out``; returns the counts.

    Phases: 1. each label's nodes, paged by id; 2. each relationship type, paged by its start node's id
    (OPTIONAL MATCH, so a page of start nodes without such relationships still moves the key on); 3. commit.
    Pending circuits (not yet folded) stay pending, with the aggregate layer as stored.
    """
    graph = CsvGraph(out, force=force)
    # a property no node has yet (e.g. feature cards before `scd features label`) makes Neo4j warn about every
    # page that names it: expected here, and not worth a screenful on the user's terminal
    notices = logging.getLogger("neo4j.notifications")
    level = notices.level
    notices.setLevel(logging.ERROR)
    try:
        for label in LABELS:
            columns = [p for p, _ in tables()[label][1]]
            returns = ", ".join(f"n.{p} AS {p}" for p in columns)
            for rows in _pages(store, f"(n:{label})", returns, "n"):
                for _, *values in rows:
                    graph.node(label, dict(zip(columns, values, strict=True)))
                if progress:
                    progress(label, len(rows))
        for rel in RELATIONSHIPS:
            ends, props = tables()[rel]
            assert ends is not None
            a, b = ends
            columns = [p for p, _ in props]
            returns = ", ".join(["m.id AS scd_end", *(f"r.{p} AS {p}" for p in columns)])
            for rows in _pages(store, f"(n:{a})-[r:{rel}]->(m:{b})", returns, "n"):
                for key, end, *values in rows:
                    if not _missing(end):  # a start node without such relationships (OPTIONAL MATCH)
                        graph.relationship(rel, key, end, dict(zip(columns, values, strict=True)))
                if progress:
                    progress(rel, len(rows))
        graph.commit()
    except BaseException:
        graph.discard()
        raise
    finally:
        notices.setLevel(level)
    return graph.counts


# -- straight from discovery --------------------------------------------------------------------------------------
class CsvStore(Store):
    """A store that is a folder of neo4j-admin CSVs (``scd ingest --csv-out``): writes go to the files, the fold
    to an in-memory aggregate layer; ``close`` writes the Circuits, Tokens and aggregates and moves the folder
    into place. Cannot be read or queried: import it, then query the database."""

    kind = "csv"
    writers = 1

    def __init__(self, out: Path, *, force: bool = False):
        self.graph = CsvGraph(out, force=force)
        self.lock = threading.Lock()
        self.top_token: dict[str, str | None] = {}  # Feature id -> its stored top_token (first writer's)
        #: Feature rows, written at close with their totals over the aggregate layer (scd.store.schema)
        self.features: dict[str, dict[str, Any]] = {}
        self.prompts: set[str] = set()
        self.circuits: dict[str, dict[str, Any]] = {}  # written at close, with their final ``aggregated``
        self.requests: set[str] = set()
        self.unfolded: list[CircuitEdges] = []
        self.layer: dict[str, dict[tuple[str, str], dict[str, Any]]] = {rel: {} for rel in AGGREGATES}
        self.closed = False

    def ensure_schema(self) -> None:
        pass

    def has_circuit(self, circuit_id: str) -> bool:
        return circuit_id in self.circuits

    def has_request(self, request: str) -> bool:
        return request in self.requests

    def prepare(self, circuit: Circuit, *, request: str | None = None) -> CircuitRows:
        rows = circuit_rows(circuit, request)
        check_references(rows)
        return rows

    def write_prepared(self, prepared: CircuitRows) -> bool:
        rows, g = prepared, self.graph
        cid = rows.circuit["id"]
        with self.lock:
            if cid in self.circuits:
                return False
            for f in rows.features:
                if f["id"] not in self.top_token:
                    self.top_token[f["id"]] = f.get("top_token")
                    self.features[f["id"]] = f
            if rows.prompt["id"] not in self.prompts:
                self.prompts.add(rows.prompt["id"])
                g.node("Prompt", rows.prompt)
            self.circuits[cid] = rows.circuit
            if rows.circuit.get("request"):
                self.requests.add(rows.circuit["request"])
            g.relationship("EXPLAINS", cid, rows.prompt["id"])
            feature_of, effect_of = {}, {}
            for n in rows.nodes:
                g.node("Node", n)
                g.relationship("HAS", cid, n["id"])
                g.relationship("OF", n["id"], n["feature_id"])
                feature_of[n["id"]], effect_of[n["id"]] = n["feature_id"], n.get("effect")
            a, b, w, eff = [], [], [], []
            for e in rows.edges:
                g.relationship("FEEDS", e["src"], e["dst"], e)
                a.append(feature_of[e["src"]])
                b.append(feature_of[e["dst"]])
                w.append(e["weight"])
                eff.append(effect_of[e["src"]])
            if w:
                self.unfolded.append((cid, a, b, w, eff))
        return True

    def pending(self) -> int:
        return sum(1 for c in self.circuits.values() if c.get("aggregated") is False)

    def fold(self, *, max_edges: int = FOLD_TX_EDGES, rebuild: bool = False) -> FoldReport:
        """The fold's steps 3-6 (scd.store.aggregates) on the circuits written since the last fold, against the
        layer folded so far (kept in memory, standing in for step 4's read of the stored pairs)."""
        if rebuild:
            raise StoreError("a CSV export cannot rebuild its aggregate layer", "ingest into a new folder")
        with self.lock:
            pending = [cid for cid, c in self.circuits.items() if c.get("aggregated") is False]
            if not pending:
                return FoldReport()
            edges, self.unfolded = self.unfolded, []
            groups = group_edges(edges, self.top_token)
            report = FoldReport(circuits=len(pending), edges=sum(len(w) for *_, w in edges))
            for rel, rows in zip(AGGREGATES, groups, strict=True):
                layer = self.layer[rel]
                stored = [
                    (r["a"], r["b"], None, *(layer[k][key] for key in ROW_KEYS[2:]))
                    for r in rows
                    if (k := (r["a"], r["b"])) in layer
                ]
                new, changed = combine(rows, stored)
                for r in (*new, *changed):
                    layer[(r["a"], r["b"])] = {key: r[key] for key in ROW_KEYS}
                report.groups += len(rows)
                report.created += len(new)
            for cid in pending:
                self.circuits[cid] |= {"aggregated": True, "in_totals": True}
        return report

    def set_feature_cards(
        self, rows: list[dict[str, Any]], features: list[dict[str, Any]] | None = None
    ) -> int:
        raise StoreError(
            "feature cards cannot be added to a CSV export", "label the features after the import"
        )

    def read(self, cypher: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        raise QueryError(
            "a CSV export cannot be queried", "import it with its import.sh, then query the database"
        )

    def stats(self) -> dict[str, int]:
        return dict(self.graph.counts) | {"Circuit": len(self.circuits)}

    def clear(self) -> None:
        raise StoreError("a CSV export cannot be cleared", "write a new export into a new folder")

    def describe(self) -> str:
        return f"neo4j-admin import CSVs at {self.graph.out.resolve()}"

    def close(self) -> None:
        """Write the Circuits (with their final ``aggregated``), the Tokens and the aggregate layer, then move the
        folder into place."""
        if self.closed:
            return
        self.closed = True
        g = self.graph
        try:
            for row in self.circuits.values():
                g.node("Circuit", row)
            totals = node_totals(
                [list(self.layer[rel].values()) for rel in AGGREGATES],
                {i: f.get("kind") for i, f in self.features.items()},
            )
            for i, f in self.features.items():  # unset where no aggregate relationship touches the feature
                sums = totals["Feature"].get(i)
                g.node("Feature", f | (dict(zip(NODE_TOTALS, sums, strict=True)) if sums else {}))
            tokens = {b for _, b in self.layer["FEEDS_TOKEN"]} | {a for a, _ in self.layer["TOKEN_FEEDS"]}
            for t in sorted(tokens):
                g.node("Token", {"id": t} | dict(zip(NODE_TOTALS, totals["Token"][t], strict=True)))
            for rel in AGGREGATES:
                for (a, b), r in sorted(self.layer[rel].items()):
                    g.relationship(rel, a, b, properties(r))
            g.commit()
        except BaseException:
            g.discard()
            raise

    def abandon(self) -> None:
        """Drop everything written (an interrupted or failed ingest): nothing half-written reaches DIR."""
        self.closed = True
        self.graph.discard()
