"""Folding circuits into the pre-aggregated layer (FEEDS_FEATURE / FEEDS_TOKEN / TOKEN_FEEDS, see scd.store.schema).

Why a separate step: the aggregate layer makes ``feeders`` / ``consumers`` fast on a store of many circuits, but
keeping it up to date costs about one relationship MERGE per FEEDS edge. Done inside each circuit's write
transaction, that made ingest ~8x slower. So a circuit is written with ``aggregated = false`` (the write stays one
transaction, nothing else), and a *fold* adds the FEEDS edges of every pending circuit to the aggregates at once:
pairs shared between circuits are MERGEd once per fold instead of once per circuit. ``scd ingest`` folds every
``FOLD_EVERY_EDGES`` written edges and at the end of each run (also the circuits an interrupted run left pending);
``scd store fold`` does it by hand. While any circuit is pending, the query runner answers from the FEEDS edges
instead (scd.queries.runner), so no answer ever misses a stored circuit.

One fold transaction (both stores run this same code through their own ``run`` callback; the statements are
scd/store/cypher/fold-*.cypher, per dialect where the databases differ):

1. claim pending circuits in id order, up to ``max_edges`` FEEDS edges (at least one circuit);
2. read their edges back as (upstream feature id, downstream feature id, weight) -- except those of circuits
   this process has just written, whose rows the store kept (``WrittenEdges``) -- and the STORED top_token of
   every feature involved (the first writer's metadata, which the aggregates must agree with) -- on Neo4j with
   each Feature's and Token's element id, by which steps 4-5 find the ends of a pair (a record read, where an
   index seek on the string id cost two seeks per aggregate row and statement);
3. group them per circuit, summing each group's weights in a canonical order (so the order edges come back in
   does not matter), rounded to multiples of 2**-36 (``quantize``: sums of those are exact in any order, so the
   store does not depend on the order circuits were ingested or folded in), then add the groups up over the
   claimed circuits -- once per fold transaction, in the client;
4. per batch of groups, read which pairs already have an aggregate relationship and its values (a read: no locks),
   one row per start node with its end nodes as a list, so each start node's relationships are read once;
5. CREATE the missing relationships (and Token nodes) outright and SET the existing ones to their new totals,
   added up in the client (LadybugDB: DELETE the existing ones and CREATE them again with the new ones, all from
   one Arrow table, ``LOAD FROM``, which runs ~9x faster than the same rows bound as an ``UNWIND`` list parameter;
   a SET in place had to find each pair's values in a list per start node, ~3x slower);
6. set ``aggregated = true`` on the claimed circuits.

Step 5 also adds the fold's part to each touched Feature's and Token's totals (``in_abs_*`` / ``out_abs_*``,
scd.store.schema; ``node_totals``), and step 6 marks the circuits ``in_totals``: the summary line under
``feeders`` / ``consumers`` then reads one node instead of every relationship into it (which cost the server ~70%
of the rows' own work). Where a circuit of the layer lacks the mark -- folded by an older scd, which left the totals
behind -- the totals are computed again from the relationships first, in a transaction of their own (step 0).

Why this shape (measured with bench/ingest.py, see the README): the first design MERGEd every group into its
relationship, with the server adding up (ON MATCH SET x.n = x.n + r.n), in transactions of up to 100k edges.
MERGE on a relationship between two Features -- dense nodes, each with an OF relationship from every Node of
it -- takes both nodes' locks and searches their relationships, and one 100k-edge transaction (~190k
relationships created) spent as long in its commit as in its statements. Reading first (no locks), creating the
new pairs with CREATE and setting the others by element id, in smaller transactions, does the same work without
the search under lock.

Each relationship also keeps its ``EXAMPLES`` strongest circuits (largest per-circuit sum of |weight| over the
group, ties by circuit id) as scalar properties ``example_circuit_1`` .. ``_3`` / ``example_weight_1`` .. ``_3``;
the queries read those circuits' prompt texts for the rows they return. Step 4 reads the examples a relationship
already has with its totals, and they are merged with the fold's own in Python (``merge_examples``), so, like the
sums, they do not depend on ingest or fold order. Not lists (as they were, with the prompt texts): one list column
on a LadybugDB 0.22 relationship table made the commit after bulk-adding 40k rows ~20x slower.

Atomic like a circuit write: a fold killed halfway leaves every claimed circuit pending and the aggregates as they
were. Two folds never count a circuit twice: on Neo4j each fold transaction first takes the write lock of one
``(:ScdMeta {id: "store"})`` node, so folds run one at a time and each sees what the previous one committed (which
is also what makes steps 4-5 safe: nothing else creates or changes an aggregate relationship meanwhile);
LadybugDB has one writer process at a time anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from scd.core.errors import StoreError
from scd.store.rows import batches
from scd.store.schema import AGGREGATE_ENDS, AGGREGATES, NODE_TOTALS
from scd.store.statements import aggregate_cypher, cypher, node_cypher, shared, shared_statements

#: fold this many pending edges at a time during ``scd ingest`` (and per fold transaction)
FOLD_EVERY_EDGES = 500_000
#: edges per fold transaction on Neo4j (LadybugDB folds FOLD_EVERY_EDGES at once): bounds the transaction state a
#: server must hold (a 1 GiB test server ran out of
#: transaction memory on 100k edges of the worst-case bench shape, and on 100k demo-shaped edges folded into a
#: layer that had most of their pairs; the fold then retries in halved transactions, after a wasted attempt);
#: a circuit is never split, so a bigger circuit makes a bigger one
FOLD_TX_EDGES = 50_000
SUM_QUANTUM = 2.0**-36
#: example prompts kept per aggregate relationship (the strongest circuits first)
EXAMPLES = 3

PENDING = shared("fold-pending")
COUNT_PENDING = shared("fold-count-pending")
READ_EDGES = shared("fold-read-edges")
MARK_FOLDED = shared("fold-mark-folded")
#: --rebuild: drop the layer and mark every circuit pending
DROP_LAYER = shared_statements("fold-drop-layer")
#: phase 0: a layer folded before nodes kept their totals, and the statements that compute them once
LEGACY_TOTALS = shared("fold-legacy-totals")
MIGRATE_TOTALS = shared_statements("fold-migrate-totals")

Run = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]
#: the properties that hold a relationship's strongest circuits, strongest first: circuit id and its weight
EXAMPLE_KEYS = tuple(
    k for i in range(1, EXAMPLES + 1) for k in (f"example_circuit_{i}", f"example_weight_{i}")
)
#: one aggregate row: its ends, then its properties (``example`` is stored as ``example_circuit``) in the order
#: fold-read-pairs returns them
ROW_KEYS = (
    "a", "b", "circuits", "n_edges", "weight_sum", "abs_weight_sum", "effect_sum", "effect_circuits", "example",
    *EXAMPLE_KEYS,
)  # fmt: skip


@dataclass
class FoldReport:
    circuits: int = 0  # circuits folded
    edges: int = 0  # their FEEDS edges
    groups: int = 0  # aggregate relationships created or added to (summed over fold transactions)
    created: int = 0  # of those, created
    migrated: bool = False  # the layer's node totals were computed from its relationships first (phase 0)
    seconds: float = 0.0
    reused: int = 0  # circuits whose edges came from this process's own writes (WrittenEdges), not read back
    #: seconds per phase (claim, read, group, tokens, read-pairs, write, mark, commit), summed over transactions
    phases: dict[str, float] = field(default_factory=dict)

    def add(self, other: FoldReport) -> None:
        self.circuits += other.circuits
        self.edges += other.edges
        self.groups += other.groups
        self.created += other.created
        self.reused += other.reused
        self.migrated |= other.migrated
        for k, v in other.phases.items():
            self.phases[k] = self.phases.get(k, 0.0) + v

    def timed(self, name: str, since: float) -> float:
        """Adds the time since ``since`` to phase ``name``; returns now."""
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - since
        return now

    def line(self) -> str:
        return (
            f"folded {self.circuits} circuit{'s' if self.circuits != 1 else ''} ({self.edges} edges) into "
            f"{self.groups} aggregate relationships in {self.seconds:.1f} s"
            + (
                "; computed the nodes' totals again (an older scd had folded into the layer)"
                if self.migrated
                else ""
            )
        )


def quantize(x: Any) -> Any:
    """Floats (a number or a pandas/numpy array) as multiples of 2**-36, rounding half to even: sums of such numbers
    below 2**17 are exact in any order (error <= 1.5e-11 each)."""
    import numpy as np

    return np.round(x / SUM_QUANTUM) * SUM_QUANTUM


def examples_of(row: dict[str, Any]) -> list[tuple[str, float]]:
    """A row's examples as (circuit id, weight) pairs, strongest first (unset ones left out)."""
    return [
        (c, float(row[f"example_weight_{i}"]))
        for i in range(1, EXAMPLES + 1)
        if (c := row.get(f"example_circuit_{i}")) is not None
    ]


def example_columns(pairs: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """Up to ``EXAMPLES`` (circuit id, weight) pairs, strongest first, as the row's example properties (None: unset)."""
    out: dict[str, Any] = {}
    for i in range(1, EXAMPLES + 1):
        c, w = pairs[i - 1] if i <= len(pairs) else (None, None)
        out[f"example_circuit_{i}"], out[f"example_weight_{i}"] = c, w
    return out


def merge_examples(*pairs: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """(circuit id, weight) pairs merged: the ``EXAMPLES`` largest weights, ties by circuit id."""
    seen = {c: float(w) for ps in pairs for c, w in ps}
    return sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[:EXAMPLES]


#: a circuit's FEEDS edges as the fold reads them: (circuit id, upstream feature ids, downstream feature ids,
#: weights, the upstream nodes' measured effects (None where unmeasured))
CircuitEdges = tuple[str, Sequence[str], Sequence[str], Sequence[float], Sequence[float | None]]


#: what identifies one write of a circuit beyond its id: the Circuit's (created_at, n_edges)
Stamp = tuple[Any, Any]


class WrittenEdges:
    """The fold input (``CircuitEdges``) of circuits this process wrote and has not folded yet, so that the fold
    ``scd ingest`` runs after its writes skips reading back what it just wrote (phase 2: ~10% of a fold). Each is
    kept with its ``Stamp`` and used only while the stored Circuit still has it: a circuit id hashes the inputs,
    not the results, so after a ``scd store clear`` another process may have stored the same id with other
    weights. Circuits without edges are not kept (the fold has nothing to read for them). Up to ``limit`` edges;
    past that (e.g. ``--no-fold`` on a large set) a circuit is read back like any other. Writer threads add, the
    fold takes: thread-safe."""

    def __init__(self, limit: int = FOLD_EVERY_EDGES):
        self.limit, self.edges = limit, 0
        self._by: dict[str, tuple[CircuitEdges, Stamp]] = {}
        self._lock = threading.Lock()

    def add(
        self, circuit: dict[str, Any], nodes: Sequence[Sequence[Any]], edges: Sequence[Sequence[Any]]
    ) -> None:
        """A circuit just written, from the rows its write sent -- the very values the store holds: ``circuit``
        its Circuit row, ``nodes`` (feature id, effect) per node, ``edges`` (upstream node's position in
        ``nodes``, downstream node's position, weight)."""
        n, cid = len(edges), circuit["id"]
        kept: CircuitEdges = (
            cid,
            [nodes[i][0] for i, _, _ in edges],
            [nodes[j][0] for _, j, _ in edges],
            [w for _, _, w in edges],
            [nodes[i][1] for i, _, _ in edges],
        )
        with self._lock:
            if n and cid not in self._by and self.edges + n <= self.limit:
                self._by[cid] = (kept, (circuit["created_at"], circuit["n_edges"]))
                self.edges += n

    def get(self, circuit_id: str, stamp: Stamp) -> CircuitEdges | None:
        """The circuit's edges if this process wrote it and the store's Circuit has the same ``stamp``."""
        with self._lock:
            hit = self._by.get(circuit_id)
        return hit[0] if hit is not None and hit[1] == stamp else None

    def forget(self) -> None:
        """All of them: at the end of a fold (circuits another process folded meanwhile would otherwise stay; any
        still pending are read back by the next fold) and when the store is cleared."""
        with self._lock:
            self._by.clear()
            self.edges = 0


class Groups(Sequence[dict[str, Any]]):
    """One aggregate relationship type's rows of a fold, sorted by (a, b): ``columns`` (``ROW_KEYS``, and any added
    later, each a Python list with one value per row); read one by one, each row is a dict of them. The fold's bulk
    steps (node totals, LadybugDB's Arrow table, Neo4j's create rows) read the columns: 10^5 dicts took longer to
    build and take apart than the grouping itself."""

    def __init__(self, columns: dict[str, list[Any]]):
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns["a"])

    def __getitem__(self, i: Any) -> Any:
        """Row ``i`` as a new dict; a slice as Groups (so ``batches`` keeps the columns)."""
        if isinstance(i, slice):
            return Groups({k: v[i] for k, v in self.columns.items()})
        return self.row(i)

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a new dict (changing it changes nothing here)."""
        return {k: v[i] for k, v in self.columns.items()}

    def take(self, index: Sequence[int]) -> Groups:
        """The rows at ``index``, in that order."""
        return Groups({k: [v[i] for i in index] for k, v in self.columns.items()})

    def dicts(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The rows as dicts of ``keys`` only."""
        return [dict(zip(keys, r, strict=True)) for r in zip(*(self.columns[k] for k in keys), strict=True)]


def columns_of(rows: Groups | Sequence[dict[str, Any]], *keys: str) -> list[list[Any]]:
    """``keys`` of some rows as columns: a ``Groups``' own lists, or taken from row dicts."""
    if isinstance(rows, Groups):
        return [rows.columns[k] for k in keys]
    return [[r[k] for r in rows] for k in keys]


def group_edges(
    circuits: Sequence[CircuitEdges],
    top_token: dict[str, str | None],
) -> tuple[Groups, Groups, Groups]:
    """FEEDS edges of some circuits (``CircuitEdges``), grouped
    for FEEDS_FEATURE (feature, feature), FEEDS_TOKEN (feature, top_token of the downstream feature) and
    TOKEN_FEEDS (top_token of the upstream feature, feature). Each row: ``ROW_KEYS`` (effect_sum: over the circuits
    with a measurement, the upstream side's measured effect there -- the upstream feature's, one value per circuit;
    for TOKEN_FEEDS the largest of its token's features' -- and effect_circuits how many circuits had one; example =
    the smallest circuit id; example_circuit_i / example_weight_i: the ``EXAMPLES`` circuits with the largest
    per-circuit sum of |weight| and those sums, strongest first, unset past the group's circuits), sorted by (a, b)
    so writers lock in one order.

    Vectorised (a fold groups ~10^5 edges per transaction): ids become integer codes once (pandas.factorize), and
    every sort and grouping runs on those; only the totals go back to strings.
    """
    import numpy as np
    import pandas as pd

    def empty() -> Groups:
        return Groups({k: [] for k in ROW_KEYS})

    counts = [len(w) for _, _, _, w, _ in circuits]
    if not sum(counts):  # no circuits, or only circuits without edges
        return empty(), empty(), empty()
    # circuit codes in id order, so the smallest code of a group is its smallest circuit id
    cids, cuniq = pd.factorize(np.array([c for c, *_ in circuits], dtype=object), sort=True)
    c = np.repeat(cids, counts)
    n = int(c.size)
    ends = np.array(
        list(
            chain(
                chain.from_iterable(u for _, u, _, _, _ in circuits),
                chain.from_iterable(d for _, _, d, _, _ in circuits),
            )
        ),
        dtype=object,
    )
    fcodes, features = pd.factorize(ends)
    u, d = fcodes[:n], fcodes[n:]
    tcodes, tokens = pd.factorize(pd.Series([top_token.get(f) for f in features], dtype=object))  # None -> -1
    tu, td = tcodes[u], tcodes[d]
    w = np.array(list(chain.from_iterable(w for _, _, _, w, _ in circuits)), dtype="float64")
    eff = np.array(list(chain.from_iterable(e for *_, e in circuits)), dtype="float64")  # None -> NaN

    def rank(names: Any) -> Any:  # each name's position in sorted order
        r = np.empty(len(names), dtype="int64")
        r[np.argsort(np.asarray(names, dtype=object), kind="stable")] = np.arange(len(names))
        return r

    out = []
    for a, b, anames, bnames in (
        (u, d, features, features),
        (u, td, features, tokens),
        (tu, d, tokens, features),
    ):
        keep = (a >= 0) & (b >= 0)
        if not keep.any():  # e.g. no feature of the fold has a top_token: no token groups
            out.append(empty())
            continue
        ck, ak, bk, wk, ek = c[keep], a[keep], b[keep], w[keep], eff[keep]
        # per circuit first: weights in a canonical order (by value within each group), so the (float) sums do not
        # depend on the order the database returned the edges in; then rounded, so adding them up over circuits is
        # exact in any order
        order = np.lexsort((wk, bk, ak, ck))
        edges = pd.DataFrame({"c": ck[order], "a": ak[order], "b": bk[order], "w": wk[order], "e": ek[order]})
        edges["aw"] = edges["w"].abs()
        per = edges.groupby(["c", "a", "b"], sort=False).agg(
            n=("w", "size"),
            s=("w", "sum"),
            sa=("aw", "sum"),
            e=("e", "max"),  # max skips NaN: unmeasured
        )
        per["s"] = quantize(per["s"])
        per["sa"] = quantize(per["sa"])
        per["e"] = quantize(per["e"])
        total = (
            per.reset_index()
            .groupby(["a", "b"], sort=False)
            .agg(
                circuits=("c", "size"),
                n_edges=("n", "sum"),
                weight_sum=("s", "sum"),
                abs_weight_sum=("sa", "sum"),
                effect_sum=("e", "sum"),  # NaN (unmeasured) adds nothing
                effect_circuits=("e", "count"),
                example=("c", "min"),
            )
            .reset_index()
        )
        # the EXAMPLES strongest circuits of each group (largest per-circuit |weight| sum; ties: the smaller circuit
        # code, which is the smaller circuit id), in the order of `total`'s rows
        best = per.reset_index().sort_values(
            ["a", "b", "sa", "c"], ascending=[True, True, False, True], kind="stable"
        )
        best = best.groupby(["a", "b"], sort=False).head(EXAMPLES)
        rank_in_group = best.groupby(["a", "b"], sort=False).cumcount().to_numpy()
        # example k of each group as columns aligned with `total`'s rows (unset past the group's circuits), found by
        # each group's integer key: no Python loop per group
        ak, bk = total["a"].to_numpy().astype("int64"), total["b"].to_numpy().astype("int64")
        ba, bb = best["a"].to_numpy().astype("int64"), best["b"].to_numpy().astype("int64")
        width = int(max(bb.max(), bk.max())) + 1
        tkey, bkey = ak * width + bk, ba * width + bb
        tsorted = np.argsort(tkey)
        row_of = tsorted[np.searchsorted(tkey[tsorted], bkey)]  # best's row -> its group's row in `total`
        best_c, best_w = best["c"].to_numpy(), best["sa"].to_numpy()
        order = np.lexsort((rank(bnames)[bk], rank(anames)[ak]))  # by (a, b) as strings
        cnames = np.asarray(cuniq, dtype=object)
        examples = []
        for k in range(EXAMPLES):
            sel = rank_in_group == k
            ids = np.full(len(total), None, dtype=object)
            ids[row_of[sel]] = cnames[best_c[sel]]
            weights = np.full(len(total), None, dtype=object)
            weights[row_of[sel]] = best_w[sel].tolist()
            examples += [ids[order].tolist(), weights[order].tolist()]
        a_ids, b_ids = np.asarray(anames, dtype=object)[ak], np.asarray(bnames, dtype=object)[bk]
        columns = [
            a_ids[order].tolist(),
            b_ids[order].tolist(),
            *(
                total[k].to_numpy()[order].tolist()
                for k in (
                    "circuits",
                    "n_edges",
                    "weight_sum",
                    "abs_weight_sum",
                    "effect_sum",
                    "effect_circuits",
                )
            ),
            cnames[total["example"].to_numpy()[order]].tolist(),
            *examples,
        ]
        # Python ints, floats and strings, not numpy scalars (tolist; DataFrame.to_dict took 3/4 of the time)
        out.append(Groups(dict(zip(ROW_KEYS, columns, strict=True))))
    return tuple(out)  # type: ignore[return-value]


def combine(groups: Groups, stored: Sequence[Sequence[Any]]) -> tuple[Groups, list[dict[str, Any]]]:
    """A fold's groups and what fold-read-pairs found stored for them -> (the rows to CREATE, the rows to SET
    with the new totals and the stored relationship's ``handle``). Sums of multiples of 2**-36: exact."""
    if not stored:
        return groups, []
    found = {(a, b): (handle, rest) for a, b, handle, *rest in stored}
    hits = [found.get(ab) for ab in zip(groups.columns["a"], groups.columns["b"], strict=True)]
    new = groups.take([i for i, hit in enumerate(hits) if hit is None])
    changed: list[dict[str, Any]] = []
    for i, hit in enumerate(hits):
        if hit is None:
            continue
        r, (handle, values) = groups.row(i), hit
        old = dict(zip(ROW_KEYS[2:], values, strict=True))
        changed.append(
            {
                "a": r["a"],
                "b": r["b"],
                "handle": handle,
                "circuits": old["circuits"] + r["circuits"],
                "n_edges": old["n_edges"] + r["n_edges"],
                "weight_sum": old["weight_sum"] + r["weight_sum"],
                "abs_weight_sum": old["abs_weight_sum"] + r["abs_weight_sum"],
                # unset on relationships folded before scd measured effects: those circuits have none
                "effect_sum": (old["effect_sum"] or 0.0) + r["effect_sum"],
                "effect_circuits": (old["effect_circuits"] or 0) + r["effect_circuits"],
                "example": min(old["example"], r["example"]),
                **example_columns(merge_examples(examples_of(old), examples_of(r))),
            }
        )
        # what SET need not write again (Neo4j: each property written costs the transaction's memory and time)
        changed[-1]["unchanged"] = frozenset(
            k for k in ROW_KEYS[2:] if changed[-1][k] == old[k] and changed[-1][k] is not None
        )
    return new, changed


#: per aggregate relationship, whose totals a row adds to: (the start node's ``out_*`` or None, the end node's
#: ``in_*`` or None) -- a Feature's totals are over FEEDS_FEATURE, a Token's over FEEDS_TOKEN (in) / TOKEN_FEEDS (out)
TOTALS_OF = {"FEEDS_FEATURE": (True, True), "FEEDS_TOKEN": (False, True), "TOKEN_FEEDS": (True, False)}
_IN, _OUT = NODE_TOTALS.index("in_abs_weight"), NODE_TOTALS.index("out_abs_weight")
#: the other end's kinds that a total singles out, by direction: where the |weight| into a target comes from
#: (SAE error terms, input tokens), and where the |weight| out of a source goes (error terms, logits)
_PARTS = {
    _IN: {"error": NODE_TOTALS.index("in_abs_error"), "token": NODE_TOTALS.index("in_abs_token")},
    _OUT: {"error": NODE_TOTALS.index("out_abs_error"), "logit": NODE_TOTALS.index("out_abs_logit")},
}


def node_totals(
    groups: Sequence[Sequence[dict[str, Any]]], kind: dict[str, str | None]
) -> dict[str, dict[str, list[float]]]:
    """What some groups (``group_edges``' three ``Groups``, or a whole layer's rows as dicts) add to their nodes'
    totals (scd.store.schema ``NODE_TOTALS``, in that order): ``{label: {node id: [6 sums]}}``, every touched node
    with all six (0.0 where nothing adds). ``kind``: each Feature id's kind. The sums are of multiples of 2**-36:
    exact in any order (below 2**17), so pandas may add them up in its own."""
    import numpy as np
    import pandas as pd

    parts: list[pd.DataFrame] = []
    for rel, rows in zip(AGGREGATES, groups, strict=True):
        a, b, aw = columns_of(rows, "a", "b", "abs_weight_sum")
        (start, end), (outgoing, incoming) = AGGREGATE_ENDS[rel], TOTALS_OF[rel]
        for nodes, label, other, total, on in ((a, start, b, _OUT, outgoing), (b, end, a, _IN, incoming)):
            if not on or not nodes:
                continue
            part = pd.Series(other, dtype=object).map(kind).map(_PARTS[total]).to_numpy()  # its slot, or NaN
            frame = pd.DataFrame(
                {"label": label, "node": np.asarray(nodes, dtype=object), "slot": total, "w": aw}
            )
            singled = ~pd.isna(part)
            parts += [frame, frame[singled].assign(slot=part[singled].astype("int64"))]
    out: dict[str, dict[str, list[float]]] = {"Feature": {}, "Token": {}}
    if not parts:
        return out
    sums = pd.concat(parts).groupby(["label", "node", "slot"], sort=False)["w"].sum().unstack("slot")
    sums = sums.reindex(columns=range(len(NODE_TOTALS))).fillna(0.0)
    for (label, node), values in zip(sums.index, np.asarray(sums, dtype="float64").tolist(), strict=True):
        out[label][node] = values
    return out


def stored_name(key: str) -> str:
    """The relationship property a fold row's key is stored as (``example`` as ``example_circuit``)."""
    return "example_circuit" if key == "example" else key


def properties(row: dict[str, Any]) -> dict[str, Any]:
    """A fold row as its relationship's properties."""
    return {stored_name(k): row[k] for k in ROW_KEYS[2:]}


def neo4j_rows(rows: Sequence[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """Rows for fold-update-pairs on Neo4j: the ``keys`` that find the relationship, and ``p``, its properties --
    unset ones left out, and those whose value it has already (``combine``'s ``unchanged``; a stored example is
    never unset again, so SET x += r.p is exact)."""
    out = []
    for r in rows:
        same = {stored_name(k) for k in r.get("unchanged", ())}
        props = {k: v for k, v in properties(r).items() if v is not None and k not in same}
        out.append({**{k: r[k] for k in keys}, "p": props})
    return out


def arrow_rows(rel: str, new: Groups, changed: Sequence[dict[str, Any]] = ()) -> Any:
    """Rows to create (``new``'s, then ``changed``) as one Arrow table for LadybugDB's fold-create-pairs (LOAD
    FROM): ``src``, ``dst``, then the other ``ROW_KEYS`` typed as the relationship table declares them
    (scd.store.schema), so a column that is null in every row still has its type."""
    import pyarrow as pa

    from scd.store.schema import tables

    types = {"STRING": pa.string(), "INT64": pa.int64(), "DOUBLE": pa.float64()}
    kind = dict(tables()[rel][1])
    spec = [("src", "a", pa.string()), ("dst", "b", pa.string())]
    spec += [(key, key, types[kind[stored_name(key)]]) for key in ROW_KEYS[2:]]
    return pa.table(
        {name: pa.array(new.columns[key] + [r[key] for r in changed], t) for name, key, t in spec}
    )


def pair_rows(rows: Groups | Sequence[dict[str, Any]], dialect: str) -> list[dict[str, Any]]:
    """The pairs of some groups in the shape fold-read-pairs takes, one row per start node: on Neo4j ``{a, ah, o}``
    (its id, its element id and its end nodes' element ids), on LadybugDB ``{k, o}`` (its id and its end nodes'
    ids); see the .cypher files."""
    a, *ends = columns_of(rows, *(("a", "ah", "bh") if dialect == "neo4j" else ("a", "b")))
    by: dict[str, dict[str, Any]] = {}
    if dialect == "neo4j":  # by element id
        for x, ah, bh in zip(a, *ends, strict=True):
            by.setdefault(x, {"a": x, "ah": ah, "o": []})["o"].append(bh)
        return list(by.values())
    for x, b in zip(a, *ends, strict=True):
        by.setdefault(x, {"k": x, "o": []})["o"].append(b)
    return list(by.values())


def fold_once(
    run: Run,
    dialect: str,
    *,
    max_edges: int = FOLD_TX_EDGES,
    batch: int = 10_000,
    report: FoldReport | None = None,
    written: WrittenEdges | None = None,
) -> FoldReport:
    """Steps 1-6 of one fold transaction, through ``run(cypher, params) -> rows`` inside an open write transaction
    (the caller begins and commits it, and on Neo4j has taken the fold lock first). ``report``: filled in as the
    fold goes (``circuits`` and ``edges`` as soon as they are claimed), so a caller whose transaction then fails
    knows its size. ``written``: the edges of circuits this process wrote, not read
    again."""
    report = report if report is not None else FoldReport()
    t = time.perf_counter()
    # 0. nodes' totals that miss some circuit of the layer (an older scd folded it) are computed again, in a
    # transaction of their own (it claims nothing: the caller's next round does)
    if run(LEGACY_TOTALS, {}):
        for statement in MIGRATE_TOTALS:
            run(statement, {})
        report.migrated = True
        report.timed("totals-migration", t)
        return report
    # 1. claim
    ids: list[str] = []
    stamps: dict[str, Stamp] = {}
    n = 0
    for cid, n_edges, created_at in run(PENDING, {"limit": 100_000}):
        if ids and n + (n_edges or 0) > max_edges:
            break
        ids.append(cid)
        stamps[cid] = (created_at, n_edges)
        n += n_edges or 0
    if not ids:
        return report
    report.circuits, report.edges = len(ids), n
    t = report.timed("claim", t)
    # 2. read (what this process did not write itself)
    known = {} if written is None else {c: e for c in ids if (e := written.get(c, stamps[c])) is not None}
    edges: list[CircuitEdges] = list(known.values())
    report.reused = len(known)
    for chunk in batches([cid for cid in ids if cid not in known], 64):
        edges += [(c, a, b, w, [x[0] for x in e]) for c, a, b, w, e in run(READ_EDGES, {"ids": list(chunk)})]
    features = sorted({f for _, a, b, _, _ in edges for f in (*a, *b)})
    # Neo4j: each node's element id too (``handle``), so phases 4-5 find it without an index seek
    top: dict[str, str | None] = {}
    kind: dict[str, str | None] = {}
    handles: dict[str, dict[str, Any]] = {"Feature": {}, "Token": {}}
    for chunk in batches(features, batch):
        for i, token, k, h in run(cypher("fold-top-tokens", dialect), {"ids": list(chunk)}):
            top[i], kind[i], handles["Feature"][i] = token, k, h
    t = report.timed("read", t)
    # 3. group
    groups = group_edges(edges, top)
    t = report.timed("group", t)
    # 4.-5. Tokens, then each aggregate relationship: read what is stored, create or set
    tokens = sorted({*groups[1].columns["b"], *groups[2].columns["a"]})
    for chunk in batches(tokens, batch):
        have: dict[str, Any] = {
            i: h for i, h in run(cypher("fold-existing-tokens", dialect), {"texts": list(chunk)})
        }
        if new_tokens := [t for t in chunk if t not in have]:
            have.update((i, h) for i, h in run(cypher("fold-create-tokens", dialect), {"texts": new_tokens}))
        handles["Token"].update(have)
    if dialect == "neo4j":  # the ends' element ids, for fold-read-pairs and fold-create-pairs
        for rel, rows in zip(AGGREGATES, groups, strict=True):
            start, end = (handles[label] for label in AGGREGATE_ENDS[rel])
            rows.columns["ah"] = [start[x] for x in rows.columns["a"]]
            rows.columns["bh"] = [end[x] for x in rows.columns["b"]]
    t = report.timed("tokens", t)
    # every read before the first write: a read that has to look through this transaction's own new
    # relationships on a dense Token or Feature is many times slower than one of the committed store
    plans = []
    for rel, rows in zip(AGGREGATES, groups, strict=True):
        stored: list[Sequence[Any]] = []
        if run(aggregate_cypher("fold-count-pairs", dialect, rel), {})[0][0]:  # else nothing to find
            read = aggregate_cypher("fold-read-pairs", dialect, rel)
            for part in batches(rows, batch):
                stored += run(read, {"rows": pair_rows(part, dialect)})
        plans.append((rel, *combine(rows, stored)))
    t = report.timed("read-pairs", t)
    created = 0
    for rel, new, changed in plans:
        created += len(new)
        create = aggregate_cypher("fold-create-pairs", dialect, rel)
        if dialect == "ladybug":
            # DELETE the changed ones, anchored on their start nodes; CREATE them with their new totals and the new
            # ones from one Arrow table
            for part in batches(changed, batch):
                done = run(
                    aggregate_cypher("fold-delete-pairs", dialect, rel), {"rows": pair_rows(part, dialect)}
                )
                _expect(done[0][0], len(part), f"stored {rel} relationships found again")
            every = len(new) + len(changed)
            chunks = [(every, {"rows": arrow_rows(rel, new, changed)})] if every else []
        else:  # Neo4j: SET the changed ones, found by element id; CREATE the new ones by their ends' element ids
            for part in batches(changed, batch):
                run(aggregate_cypher("fold-update-pairs", dialect, rel), {"rows": neo4j_rows(part, "handle")})
            keys = ("ah", "bh", *ROW_KEYS[2:])  # flat: fold-create-pairs names each property (None: unset)
            parts = [new[i : i + batch] for i in range(0, len(new), batch)]  # Groups, by Groups.__getitem__
            chunks = [(len(part), {"rows": part.dicts(keys)}) for part in parts]
        for n, params in chunks:
            # every row must find both its ends (a stored Feature, a Token made above): a miss is a bug
            _expect(run(create, params)[0][0], n, f"{rel} relationships found both their ends")
    # the touched nodes' totals: this fold's part added to what they hold (by element id on Neo4j, by id on
    # LadybugDB)
    for label, sums in node_totals(groups, kind).items():
        adds = [
            {"h": handles[label][i] if dialect == "neo4j" else i, **dict(zip(NODE_TOTALS, s, strict=True))}
            for i, s in sorted(sums.items())
        ]
        for part in batches(adds, batch):
            done = run(node_cypher("fold-add-totals", dialect, label), {"rows": list(part)})
            _expect(done[0][0], len(part), f"{label} nodes found for their totals")
    t = report.timed("write", t)
    # 6. mark
    for chunk in batches(ids, batch):
        run(MARK_FOLDED, {"ids": list(chunk)})
    report.timed("mark", t)
    report.circuits, report.edges = len(ids), sum(len(w) for _, _, _, w, _ in edges)
    report.groups, report.created = sum(len(g) for g in groups), created
    return report


def _expect(done: int, want: int, what: str) -> None:
    """A fold statement's row count, which must be every row it was given: a miss is a bug (the statement's
    transaction is then rolled back)."""
    if done != want:
        raise StoreError(
            f"fold: {done} of {want} {what}", "nothing of this fold was kept; please report this bug"
        )
