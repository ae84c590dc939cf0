"""Folding circuits into the pre-aggregated layer (FEEDS_FEATURE / FEEDS_TOKEN / TOKEN_FEEDS, see scd.store.schema).

Why a separate step: the aggregate layer makes ``feeders`` / ``consumers`` fast on a store of many circuits, but
keeping it up to date costs about one relationship MERGE per FEEDS edge. Done inside each circuit's write
transaction, that made ingest ~8x slower. So a circuit is written with ``aggregated = false`` (the write stays one
transaction, nothing else), and a *fold* adds the FEEDS edges of every pending circuit to the aggregates at once:
pairs shared between circuits are MERGEd once per fold instead of once per circuit. ``scd ingest`` folds every
``FOLD_EVERY_EDGES`` written edges and at the end of each run (also the circuits an interrupted run left pending);
``scd store fold`` does it by hand. While any circuit is pending, the query runner answers from the FEEDS edges
instead (scd.queries.runner), so no answer ever misses a stored circuit.

One fold transaction (both stores run this same code through their own ``run`` callback):

1. claim pending circuits in id order, up to ``max_edges`` FEEDS edges (at least one circuit);
2. read their edges back as (upstream feature id, downstream feature id, weight), and the STORED top_token of
   every feature involved (the first writer's metadata, which the aggregates must agree with);
3. group them per circuit, summing each group's weights in a canonical order (so the order edges come back in
   does not matter), rounded to multiples of 2**-36 (``quantize``: sums of those are exact in any order, so the store does not
   depend on the order circuits were ingested or folded in), then add the groups up over the claimed circuits;
4. MERGE the groups into the aggregate relationships (create, or add up), in sorted order;
5. set ``aggregated = true`` on the claimed circuits.

Each relationship also keeps its ``EXAMPLES`` strongest circuits (largest per-circuit sum of |weight| over the
group, ties by circuit id) as three parallel lists: ``examples`` (prompt texts), ``example_circuits`` and
``example_weights``. Step 4 reads the lists a relationship already has and merges them with the fold's own in
Python (``merge_examples``), so, like the sums, they do not depend on ingest or fold order.

Atomic like a circuit write: a fold killed halfway leaves every claimed circuit pending and the aggregates as they
were. Two folds never count a circuit twice: on Neo4j each fold transaction first takes the write lock of one
``(:ScdMeta {id: "store"})`` node, so folds run one at a time and each sees what the previous one committed;
LadybugDB has one writer process at a time anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

#: fold this many pending edges at a time during ``scd ingest`` (and per fold transaction)
FOLD_EVERY_EDGES = 500_000
#: edges per fold transaction: bounds the transaction state a server must hold (a 1 GiB heap manages ~200k)
FOLD_TX_EDGES = 100_000
SUM_QUANTUM = 2.0**-36
#: example prompts kept per aggregate relationship (the strongest circuits first)
EXAMPLES = 3

PENDING = (
    "MATCH (c:Circuit) WHERE c.aggregated = false "
    "RETURN c.id AS id, c.n_edges AS n_edges ORDER BY id LIMIT $limit"
)
COUNT_PENDING = "MATCH (c:Circuit) WHERE c.aggregated = false RETURN count(c) AS n"
# one row per circuit, its edges as three parallel lists (far fewer records to decode than one per edge)
READ_EDGES = """
UNWIND $ids AS cid
MATCH (:Circuit {id: cid})-[:HAS]->(u:Node)-[e:FEEDS]->(d:Node)
RETURN cid, collect(u.feature_id) AS a, collect(d.feature_id) AS b, collect(e.weight) AS w
"""
PROMPT_TEXTS = (
    "UNWIND $ids AS cid MATCH (c:Circuit {id: cid})-[:EXPLAINS]->(p:Prompt) RETURN c.id AS id, p.text AS text"
)
TOP_TOKENS = "UNWIND $ids AS i MATCH (f:Feature {id: i}) RETURN f.id AS id, f.top_token AS top_token"
MERGE_TOKENS = "UNWIND $texts AS t MERGE (:Token {id: t})"
MARK_FOLDED = "UNWIND $ids AS cid MATCH (c:Circuit {id: cid}) SET c.aggregated = true"
# --rebuild: drop the layer and mark every circuit pending (also upgrades stores written before the layer existed)
DROP_LAYER = (
    "MATCH ()-[x:FEEDS_FEATURE]->() DELETE x",
    "MATCH ()-[x:FEEDS_TOKEN]->() DELETE x",
    "MATCH ()-[x:TOKEN_FEEDS]->() DELETE x",
    "MATCH (k:Token) DELETE k",
    "MATCH (c:Circuit) SET c.aggregated = false",
)


def _upsert(rel: str, a: str, b: str) -> str:
    """Add a fold's groups to one aggregate relationship: create it, or add up (folds run one at a time)."""
    return f"""
UNWIND $rows AS r
MATCH (a:{a})
MATCH (b:{b})
MERGE (a)-[x:{rel}]->(b)
ON CREATE SET x.circuits = r.circuits, x.n_edges = r.n_edges, x.weight_sum = r.weight_sum,
  x.abs_weight_sum = r.abs_weight_sum, x.example_circuit = r.example
ON MATCH SET x.circuits = x.circuits + r.circuits, x.n_edges = x.n_edges + r.n_edges,
  x.weight_sum = x.weight_sum + r.weight_sum, x.abs_weight_sum = x.abs_weight_sum + r.abs_weight_sum,
  x.example_circuit = CASE WHEN r.example < x.example_circuit THEN r.example ELSE x.example_circuit END
SET x.examples = r.examples, x.example_circuits = r.example_circuits, x.example_weights = r.example_weights
"""


def _read_examples(rel: str, a: str, b: str) -> str:
    """The example lists a fold's groups already have (merged with the fold's own before the upsert)."""
    return f"""
UNWIND $rows AS r
MATCH (a:{a})-[x:{rel}]->(b:{b})
RETURN a.id AS a, b.id AS b, x.example_circuits AS c, x.example_weights AS w, x.examples AS t
"""


#: one statement per scd.store.schema.AGGREGATES relationship, in that order (group_edges yields groups likewise)
UPSERTS = (
    _upsert("FEEDS_FEATURE", "Feature {id: r.a}", "Feature {id: r.b}"),
    _upsert("FEEDS_TOKEN", "Feature {id: r.a}", "Token {id: r.b}"),
    _upsert("TOKEN_FEEDS", "Token {id: r.a}", "Feature {id: r.b}"),
)

#: the same, reading each relationship's examples (only ``a`` and ``b`` of the rows are used)
READ_EXAMPLES = (
    _read_examples("FEEDS_FEATURE", "Feature {id: r.a}", "Feature {id: r.b}"),
    _read_examples("FEEDS_TOKEN", "Feature {id: r.a}", "Token {id: r.b}"),
    _read_examples("TOKEN_FEEDS", "Token {id: r.a}", "Feature {id: r.b}"),
)

Run = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]


@dataclass
class FoldReport:
    circuits: int = 0  # circuits folded
    edges: int = 0  # their FEEDS edges
    groups: int = 0  # aggregate relationships created or added to (summed over fold transactions)
    seconds: float = 0.0

    def add(self, other: FoldReport) -> None:
        self.circuits += other.circuits
        self.edges += other.edges
        self.groups += other.groups

    def line(self) -> str:
        return (
            f"folded {self.circuits} circuit{'s' if self.circuits != 1 else ''} ({self.edges} edges) into "
            f"{self.groups} aggregate relationships in {self.seconds:.1f} s"
        )


def quantize(x: Any) -> Any:
    """Floats (a number or a pandas/numpy array) as multiples of 2**-36, rounding half to even: sums of such numbers
    below 2**17 are exact in any order (error <= 1.5e-11 each)."""
    import numpy as np

    return np.round(x / SUM_QUANTUM) * SUM_QUANTUM


def merge_examples(
    *lists: tuple[Sequence[str], Sequence[float], Sequence[str]],
) -> tuple[list[str], list[float], list[str]]:
    """(circuit ids, weights, prompt texts) lists merged: the ``EXAMPLES`` largest weights, ties by circuit id."""
    seen: dict[str, tuple[float, str]] = {}
    for cids, weights, texts in lists:
        for c, w, t in zip(cids or (), weights or (), texts or (), strict=True):
            seen[c] = (float(w), t)
    best = sorted(seen.items(), key=lambda kv: (-kv[1][0], kv[0]))[:EXAMPLES]
    return [c for c, _ in best], [w for _, (w, _) in best], [t for _, (_, t) in best]


def group_edges(
    circuits: Sequence[tuple[str, Sequence[str], Sequence[str], Sequence[float]]],
    top_token: dict[str, str | None],
    texts: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """FEEDS edges of some circuits, as (circuit id, upstream feature ids, downstream feature ids, weights), grouped
    for FEEDS_FEATURE (feature, feature), FEEDS_TOKEN (feature, top_token of the downstream feature) and
    TOKEN_FEEDS (top_token of the upstream feature, feature). Each row: ``{a, b, circuits, n_edges, weight_sum,
    abs_weight_sum, example, example_circuits, example_weights, examples}`` (example = the smallest circuit id;
    the lists: the ``EXAMPLES`` circuits with the largest per-circuit sum of |weight|, their sums and prompt texts
    from ``texts``), sorted by (a, b) so writers lock in one order.
    """
    import pandas as pd  # vectorised: a fold groups ~10^5 edges per transaction

    frames = [pd.DataFrame({"c": cid, "u": list(u), "d": list(d), "w": list(w)}) for cid, u, d, w in circuits]
    if not frames:
        return [], [], []
    df = pd.concat(frames, ignore_index=True)
    df["w"] = df["w"].astype("float64")
    df["aw"] = df["w"].abs()
    df["tu"] = df["u"].map(top_token)
    df["td"] = df["d"].map(top_token)
    out = []
    for a, b in (("u", "d"), ("u", "td"), ("tu", "d")):
        edges = df[df[a].notna() & df[b].notna()]
        # per circuit first: weights in a canonical order, so the (float) sums do not depend on the order the
        # database returned the edges in; then rounded, so adding them up over circuits is exact in any order
        edges = edges.sort_values(["c", a, b, "w"], kind="mergesort")
        per = edges.groupby(["c", a, b], sort=False).agg(n=("w", "size"), s=("w", "sum"), sa=("aw", "sum"))
        per["s"] = quantize(per["s"])
        per["sa"] = quantize(per["sa"])
        per = per.reset_index()
        total = (
            per.groupby([a, b], sort=True)
            .agg(
                circuits=("c", "size"),
                n_edges=("n", "sum"),
                weight_sum=("s", "sum"),
                abs_weight_sum=("sa", "sum"),
                example=("c", "min"),
            )
            .reset_index()
            .rename(columns={a: "a", b: "b"})
        )
        best = per.sort_values([a, b, "sa", "c"], ascending=[True, True, False, True], kind="mergesort")
        best = best.groupby([a, b], sort=True).head(EXAMPLES)
        lists = best.groupby([a, b], sort=True).agg(
            example_circuits=("c", list), example_weights=("sa", list)
        )
        total["example_circuits"] = [[str(c) for c in cs] for cs in lists["example_circuits"]]
        total["example_weights"] = [[float(w) for w in ws] for ws in lists["example_weights"]]
        total["examples"] = [[(texts or {}).get(c, "") for c in cs] for cs in total["example_circuits"]]
        out.append(total.to_dict("records"))  # Python ints, floats and strings, not numpy scalars
    return tuple(out)  # type: ignore[return-value]


def _batches(rows: list, size: int) -> Iterator[list]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def fold_once(run: Run, *, max_edges: int = FOLD_TX_EDGES, batch: int = 10_000) -> FoldReport:
    """Steps 1-5 of one fold transaction, through ``run(cypher, params) -> rows`` inside an open write transaction
    (the caller begins and commits it, and on Neo4j has taken the fold lock first)."""
    ids: list[str] = []
    n = 0
    for cid, n_edges in run(PENDING, {"limit": 100_000}):
        if ids and n + (n_edges or 0) > max_edges:
            break
        ids.append(cid)
        n += n_edges or 0
    if not ids:
        return FoldReport()
    edges: list[tuple[str, Sequence[str], Sequence[str], Sequence[float]]] = []
    for chunk in _batches(ids, 64):
        edges += [(c, a, b, w) for c, a, b, w in run(READ_EDGES, {"ids": chunk})]
    features = sorted({f for _, a, b, _ in edges for f in (*a, *b)})
    top: dict[str, str | None] = {}
    for chunk in _batches(features, batch):
        top.update((i, t) for i, t in run(TOP_TOKENS, {"ids": chunk}))
    texts: dict[str, str] = {}
    for chunk in _batches(ids, batch):
        texts.update((i, t) for i, t in run(PROMPT_TEXTS, {"ids": chunk}))
    groups = group_edges(edges, top, texts)
    tokens = sorted({g["b"] for g in groups[1]} | {g["a"] for g in groups[2]})
    for chunk in _batches(tokens, batch):
        run(MERGE_TOKENS, {"texts": chunk})
    for read, statement, rows in zip(READ_EXAMPLES, UPSERTS, groups, strict=True):
        for chunk in _batches(rows, batch):
            keys = [{"a": r["a"], "b": r["b"]} for r in chunk]
            old = {(a, b): (c, w, t) for a, b, c, w, t in run(read, {"rows": keys})}
            for r in chunk:
                if (r["a"], r["b"]) in old:
                    mine = (r["example_circuits"], r["example_weights"], r["examples"])
                    merged = merge_examples(old[(r["a"], r["b"])], mine)
                    r["example_circuits"], r["example_weights"], r["examples"] = merged
            run(statement, {"rows": chunk})
    for chunk in _batches(ids, batch):
        run(MARK_FOLDED, {"ids": chunk})
    return FoldReport(
        circuits=len(ids), edges=sum(len(w) for *_, w in edges), groups=sum(len(g) for g in groups)
    )
