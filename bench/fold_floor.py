"""Benchmark: what one aggregate relationship costs Neo4j to create, by the properties it carries -- the floor
under any fold that keeps one relationship per aggregate row (scd.store.aggregates).

Creates ``--rels`` relationships (83k: what 100k demo-shaped edges fold into, bench/ingest.py) between random
pairs of ``--features`` nodes made dense like Features (each with 60 incoming OF relationships), in one transaction
of 10k-row ``UNWIND`` statements found by element id (the fold's shape), after three rolled-back warm-up
statements; each variant twice, the second run counted. Variants: no properties; one float; the 6 numbers of
an aggregate row; the fold's 13 properties as it writes them (in the CREATE pattern) and as CREATE then
``SET x = r.p``; the 13 packed into two lists. Printed: seconds (statements, commit) and the ratio to the
no-property variant. bench/ingest.py measures that no-property floor against the write ("floor"), so the two
together say what a layer of relationships can cost at least, in units of the write.

    python bench/fold_floor.py            # starts a throwaway Neo4j (tests/neo4j_server.py)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.neo4j_server import neo4j_server  # noqa: E402

CHUNK = 10_000
MATCH = "UNWIND $rows AS r MATCH (a) WHERE elementId(a) = r.ah MATCH (b) WHERE elementId(b) = r.bh "
KEYS = (
    "circuits", "n_edges", "weight_sum", "abs_weight_sum", "effect_sum", "effect_circuits", "example_circuit",
    "example_circuit_1", "example_weight_1", "example_circuit_2", "example_weight_2", "example_circuit_3",
    "example_weight_3",
)  # fmt: skip


def row(rng: random.Random) -> dict:
    """An aggregate row's 13 properties with values of their types (circuit ids: 16 hex digits, as scd's)."""

    def hexid() -> str:
        return f"{rng.getrandbits(64):016x}"

    return {
        "circuits": rng.randrange(1, 30), "n_edges": rng.randrange(1, 60), "weight_sum": rng.random(),
        "abs_weight_sum": rng.random(), "effect_sum": rng.random(), "effect_circuits": rng.randrange(5),
        "example_circuit": hexid(), "example_circuit_1": hexid(), "example_weight_1": rng.random(),
        "example_circuit_2": hexid(), "example_weight_2": rng.random(), "example_circuit_3": hexid(),
        "example_weight_3": rng.random(),
    }  # fmt: skip


def props(keys) -> str:
    return "{" + ", ".join(f"{k}: r.{k}" for k in keys) + "}"


#: name -> (statement, row maker)
VARIANTS = {
    "no properties": (MATCH + "CREATE (a)-[:T]->(b)", lambda p: {}),
    "1 float": (MATCH + "CREATE (a)-[:T {w: r.w}]->(b)", lambda p: {"w": p["weight_sum"]}),
    "6 numbers": (MATCH + f"CREATE (a)-[:T {props(KEYS[:6])}]->(b)", lambda p: {k: p[k] for k in KEYS[:6]}),
    "13, in CREATE": (MATCH + f"CREATE (a)-[:T {props(KEYS)}]->(b)", lambda p: p),
    "13, SET x = r.p": (MATCH + "CREATE (a)-[x:T]->(b) SET x = r.p", lambda p: {"p": p}),
    "13 as 2 lists": (
        MATCH + "CREATE (a)-[:T {s: r.s, e: r.e}]->(b)",
        lambda p: {
            "s": [float(p[k]) for k in KEYS if not k.startswith("example_circuit")],
            "e": [p[k] for k in KEYS if k.startswith("example_circuit")],
        },
    ),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rels", type=int, default=83_000)
    ap.add_argument("--features", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from neo4j import GraphDatabase

    rng = random.Random(args.seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < args.rels:
        pairs.add((rng.randrange(args.features), rng.randrange(args.features)))
    values = [row(rng) for _ in pairs]
    with neo4j_server() as uri, GraphDatabase.driver(uri, auth=None) as driver:
        with driver.session() as s:
            s.run("UNWIND range(0, $n - 1) AS i CREATE (:F {id: i})", n=args.features).consume()
            s.run("MATCH (f:F) CALL (f) { UNWIND range(1, 60) AS j CREATE (:N)-[:OF]->(f) }").consume()
            handle = dict(s.run("MATCH (f:F) RETURN f.id, elementId(f)").values())
        results = {}
        for _ in range(2):  # the first round warms the server's JIT for every variant
            for name, (statement, make) in VARIANTS.items():
                rows = [
                    {"ah": handle[a], "bh": handle[b], **make(p)}
                    for (a, b), p in zip(sorted(pairs), values, strict=True)
                ]
                with driver.session() as s:
                    for _warm in range(3):
                        with s.begin_transaction() as tx:
                            tx.run(statement, rows=rows[:CHUNK]).consume()
                            tx.rollback()
                    t0 = time.perf_counter()
                    with s.begin_transaction() as tx:
                        for i in range(0, len(rows), CHUNK):
                            tx.run(statement, rows=rows[i : i + CHUNK]).consume()
                        t1 = time.perf_counter()
                        tx.commit()
                    t2 = time.perf_counter()
                    s.run("MATCH ()-[x:T]->() CALL (x) { DELETE x } IN TRANSACTIONS OF 20000 ROWS").consume()
                results[name] = (t1 - t0, t2 - t1)
    floor = sum(results["no properties"])
    print(f"{args.rels:,} relationships between {args.features} dense nodes, one transaction:")
    for name, (run, commit) in results.items():
        total = run + commit
        print(
            f"  {name:17s} {total:6.2f} s  (statements {run:.2f} s, commit {commit:.2f} s)  {total / floor:5.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
