"""Benchmark: edges/s written by `scd ingest`'s store writers, against a naive one-write-per-edge baseline.

Synthetic circuits (tests/synthetic.py; ``--edges`` in all, in each ``--shapes``: demo-shaped and the worst case,
see SHAPES) are written through ``scd ingest``'s pipeline (discovery replaced by a lookup of the precomputed circuits) --
one transaction per circuit, batched ``UNWIND``, on the store's writer threads (two for Neo4j), after untimed
warm-up rounds of ten circuits, written and folded, until one writes within 5% of the one before (a JVM server is
several times slower until its JIT has compiled the write path and the fold's statements) -- into
Neo4j and into the embedded LadybugDB store. The baseline writes a ``--naive-edges`` sample of the same edges one
statement (one auto-commit transaction) per edge: MERGE both endpoint nodes, CREATE the relationship, after
warm-up rounds of its own until steady (it doubles its speed over the first ~20k statements). Printed per
store: edges/s (and nodes/s) batched, edges/s naive, and the ratio. Targets: >= 50k edges/s into Neo4j, >= 100x
naive. Then the written circuits are folded into the aggregate layer (FEEDS_FEATURE, FEEDS_TOKEN, TOKEN_FEEDS;
scd.store.aggregates) as `scd ingest` does after writing, and that time is printed too: write-only edges/s,
written+folded edges/s and the fold/write time ratio (targets: fold <= 0.5x write on both stores; written+folded
>= 50k edges/s into Neo4j, >= 25k into the embedded store, on a quiet 2-core machine). That store was empty, so
its fold only creates; a second run of as many edges (other prompts, the same shape) into it then folds into a layer
that has most of its pairs already, as every ingest after the first does ("+ append"). On Neo4j, also the floor
under any layer of one relationship per aggregate row: the layer's relationships created again between the same
nodes with no properties at all, timed against the write. The naive baseline builds no aggregates, so the naive
ratio compares the writes alone.
Also printed: what else was using the CPU during the run (load average and the busiest other processes), because
on a 2-core machine that changes the numbers a lot.

    python bench/ingest.py                                # starts a throwaway Neo4j (tests/neo4j_server.py)
    python bench/ingest.py --neo4j bolt://127.0.0.1:7687 --clear   # an existing server (it is emptied!)
    python bench/ingest.py --stores embedded --edges 50000 --shapes demo

No torch: the discovery engine is not involved; this measures the writers only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scd.core.config import StoreConfig  # noqa: E402
from scd.ingest.pipeline import ingest  # noqa: E402
from scd.ingest.prompts import PromptSpec  # noqa: E402
from scd.store import open_store  # noqa: E402
from tests.synthetic import synthetic_circuit  # noqa: E402

NAIVE_NEO4J = "MERGE (a:Node {id: $src}) MERGE (b:Node {id: $dst}) CREATE (a)-[:FEEDS {weight: $w}]->(b)"
NAIVE_LADYBUG = NAIVE_NEO4J


WARMUP_ROUNDS = (4, 12)  # at least, at most; then until a round runs within 5% of the one before
NAIVE_ROUND = 2_500  # statements per warm-up round of the naive baseline


def steady(rates: list[int]) -> bool:
    """Warmed up: enough rounds, and the last within 5% of the one before."""
    return len(rates) >= WARMUP_ROUNDS[0] and abs(rates[-1] - rates[-2]) <= 0.05 * rates[-2]


#: circuit shapes (tests/synthetic.py arguments). The fold's cost is per aggregate row, so how often circuits share
#: feature pairs decides it; bench/pair_reuse.py measures that.
#: - "demo": the demo model's circuits as `make demo` discovers them (examples/prompts.txt, --metric logit: 36
#:   circuits, mean 157 nodes and 2,633 edges, 132 distinct features each; aggregate rows per edge 0.84 over the 36:
#:   FEEDS_FEATURE 0.44, FEEDS_TOKEN 0.19, TOKEN_FEEDS 0.22). Two layers and a latent pool of 160 per SAE give
#:   the same shape and 0.8 rows per edge at 36 circuits (fewer as more circuits share pairs).
#: - "worst": few shared pairs: 10k-edge circuits of ~1,430 nodes over a pool of 4 layers x 3 SAEs x 512 latents,
#:   ~1.6 aggregate rows per edge at 200k edges (the benchmark's shape before the demo one was measured).
SHAPES = {
    "demo": {"edges": 2_630, "nodes": 160, "n_layers": 2, "d_sae": 160},
    "worst": {"edges": 10_000, "nodes": None, "n_layers": 4, "d_sae": 512},
}


def make_circuits(total_edges: int, shape: str, seed: int):
    s = SHAPES[shape]
    per_circuit = s["edges"]
    n = max(1, -(-total_edges // per_circuit))
    nodes = s["nodes"] or max(200, per_circuit // 7)  # ~7 edges per node
    return [
        synthetic_circuit(
            seed + i, n_nodes=nodes, n_edges=per_circuit, n_layers=s["n_layers"], d_sae=s["d_sae"]
        )
        for i in range(n)
    ]


def batched(config: StoreConfig, circuits, warmup, append) -> dict:
    """The circuits written by ``scd ingest``'s pipeline (scd.ingest.pipeline.ingest, with discovery replaced by a
    lookup of the precomputed circuits): one transaction per circuit on the writer thread while the main thread
    prepares the next, then the fold into the aggregate layer at the end of the run -- into an empty store; then
    a second run of ``append`` (as many edges, other prompts) into that store, whose fold meets the pairs the
    first one made (what every run after the first does; ``append_*``); then, on Neo4j, the floor (``floor_*``,
    see ``floor_neo4j``)."""
    by_text = {c.prompt.text: c for c in circuits + warmup + append}
    assert len(by_text) == len(circuits) + len(warmup) + len(append), (
        "synthetic prompts collided; change --seed"
    )

    def lookup(text: str, **_: object):
        return by_text[text]

    def specs(cs):
        return [PromptSpec(c.prompt.text) for c in cs]

    with open_store(config) as store:
        store.clear()
        # A JVM server runs several times slower until its JIT has compiled the write path and the fold's
        # statements: warm-up rounds (not timed in the result, printed: write-only rates) until steady, as a
        # long-running server is.
        rates: list[int] = []
        for _ in range(WARMUP_ROUNDS[1]):
            r = ingest(specs(warmup), store, discover_fn=lookup, progress=False)
            rates.append(round(r.edges / (r.elapsed - r.fold.seconds)))
            store.clear()
            if steady(rates):
                break
        c0 = time.process_time()
        report = ingest(specs(circuits), store, discover_fn=lookup, progress=False)
        cpu = time.process_time() - c0
        stats = store.stats()
        writers = store.writers
        floor = floor_neo4j(store) if store.kind == "neo4j" else None
        more = ingest(specs(append), store, discover_fn=lookup, progress=False)
    edges, nodes = sum(len(c.edges) for c in circuits), sum(len(c.nodes) for c in circuits)
    assert (report.written, report.edges, report.nodes) == (len(circuits), edges, nodes), report
    assert stats["FEEDS"] == edges and stats["Node"] == nodes, stats
    assert report.fold.circuits == len(circuits) and report.fold.edges == edges, report.fold
    write = report.elapsed - report.fold.seconds
    more_write = more.elapsed - more.fold.seconds
    more_edges = sum(len(c.edges) for c in append)
    assert more.fold.circuits == len(append) and more.fold.edges == more_edges, more.fold
    extra = {
        "append_edges": more_edges,
        "append_seconds": round(more_write, 3),
        "append_fold_seconds": round(more.fold.seconds, 3),
        "append_fold_groups": more.fold.groups,
        "append_fold_created": more.fold.created,
        "append_fold_write_ratio": round(more.fold.seconds / more_write, 3),
        "append_with_fold_edges_per_s": round(more_edges / more.elapsed),
        "append_fold_phases_s": {k: round(v, 3) for k, v in more.fold.phases.items()},
    }
    if floor is not None:
        extra |= {"floor_relationships": floor[0], "floor_seconds": round(floor[1], 3),
                  "floor_write_ratio": round(floor[1] / write, 3)}  # fmt: skip
    return extra | {
        "circuits": len(circuits),
        "edges": edges,
        "nodes": nodes,
        "features": stats["Feature"],
        "seconds": round(write, 3),
        "writers": writers,
        "warmup_edges_per_s": rates,
        "client_cpu_s": round(cpu, 3),
        "edges_per_s": round(edges / write),
        "nodes_per_s": round(nodes / write),
        "fold_seconds": round(report.fold.seconds, 3),
        "fold_groups": report.fold.groups,
        "with_fold_edges_per_s": round(edges / report.elapsed),
        "fold_write_ratio": round(report.fold.seconds / write, 3),
        "fold_phases_s": {k: round(v, 3) for k, v in report.fold.phases.items()},
    }


FLOOR_CREATE = (
    "UNWIND $rows AS r MATCH (a) WHERE elementId(a) = r[0] MATCH (b) WHERE elementId(b) = r[1] "
    "CREATE (a)-[:SCD_BENCH_FLOOR]->(b)"
)


def floor_neo4j(store) -> tuple[int, float]:
    """What any layer of one relationship per aggregate row costs on this server at least: the layer's own
    relationships created again between the same nodes, found by element id, with no properties, in one
    transaction of 10k-row statements (the fold's shape), after a warm-up of the same statement; (how many,
    seconds). Deleted afterwards."""
    from scd.store.rows import batches

    with store.driver.session(database=store.database) as s:
        pairs = s.run(
            "MATCH (a)-[x:FEEDS_FEATURE|FEEDS_TOKEN|TOKEN_FEEDS]->(b) RETURN elementId(a) AS a, elementId(b) AS b"
        ).values()
        for _ in range(3):  # warm-up, rolled back
            with s.begin_transaction() as tx:
                tx.run(FLOOR_CREATE, rows=pairs[:10_000]).consume()
                tx.rollback()
        t0 = time.perf_counter()
        with s.begin_transaction() as tx:
            for chunk in batches(pairs, 10_000):
                tx.run(FLOOR_CREATE, rows=list(chunk)).consume()
            tx.commit()
        seconds = time.perf_counter() - t0
        s.run(
            "MATCH ()-[x:SCD_BENCH_FLOOR]->() CALL (x) { DELETE x } IN TRANSACTIONS OF 20000 ROWS"
        ).consume()
    return len(pairs), seconds


def naive_sample(circuits, n: int, seed: int) -> list[tuple[str, str, float]]:
    rows = [(f"{c.id}/{e.source}", f"{c.id}/{e.target}", e.weight) for c in circuits for e in c.edges]
    return random.Random(seed).sample(rows, min(n, len(rows)))


def naive_neo4j(config: StoreConfig, sample) -> dict:
    with open_store(config) as store:
        store.clear()
        with store.driver.session(database=store.database) as s:
            result = naive(lambda src, dst, w: s.run(NAIVE_NEO4J, src=src, dst=dst, w=w).consume(), sample)
        store.clear()
    return result


def naive_embedded(config: StoreConfig, sample) -> dict:
    with open_store(config) as store:
        store.clear()
        with store._writer() as conn:
            result = naive(
                lambda src, dst, w: conn.execute(NAIVE_LADYBUG, {"src": src, "dst": dst, "w": w}), sample
            )
        store.clear()
    return result


def naive(write_one, sample) -> dict:
    """The baseline, warmed up like the batched path (rounds of NAIVE_ROUND statements on other node ids until
    steady: on a fresh Neo4j the per-statement path doubles its speed over the first ~20k statements), then timed."""
    rates: list[int] = []
    for r in range(WARMUP_ROUNDS[1]):
        t0 = time.perf_counter()
        for src, dst, w in sample[:NAIVE_ROUND]:
            write_one(f"w{r}/{src}", f"w{r}/{dst}", w)
        rates.append(round(min(NAIVE_ROUND, len(sample)) / (time.perf_counter() - t0)))
        if steady(rates):
            break
    t0 = time.perf_counter()
    for src, dst, w in sample:
        write_one(src, dst, w)
    wall = time.perf_counter() - t0
    return {
        "edges": len(sample),
        "seconds": round(wall, 3),
        "edges_per_s": round(len(sample) / wall),
        "warmup_edges_per_s": rates,
    }


def busy_processes(limit: int = 6) -> list[str]:
    """The busiest processes other than this one (CPU % since they started, as ps reports it)."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,rss,args", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True
        ).stdout
    except OSError:
        return []
    rows = []
    for line in out.splitlines():
        pid, pcpu, rss, args = line.split(None, 3)
        if int(pid) == os.getpid() or float(pcpu) < 1.0:
            continue
        rows.append(f"pid {pid} {pcpu}% cpu {int(rss) // 1024} MiB: {args[:110]}")
    return rows[:limit]


def environment() -> dict:
    import ladybug
    import neo4j

    return {
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "neo4j_driver": neo4j.__version__,
        "ladybug": ladybug.__version__,
        "neo4j_rust_ext": _has_rust_ext(),
    }


def _has_rust_ext() -> bool:
    try:
        import neo4j._rust  # noqa: F401  (neo4j-rust-ext: packstream in Rust, ~3x less client CPU)

        return True
    except ImportError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", default="neo4j,embedded", help="comma-separated: neo4j, embedded")
    ap.add_argument(
        "--neo4j", default=None, metavar="URI", help="an existing server (default: start a throwaway one)"
    )
    ap.add_argument("--clear", action="store_true", help="allow emptying a non-empty --neo4j database")
    ap.add_argument("--edges", type=int, default=200_000, help="edges written batched, per store and shape")
    ap.add_argument(
        "--shapes",
        default="demo,worst",
        help=f"comma-separated circuit shapes: {', '.join(SHAPES)} (see SHAPES)",
    )
    ap.add_argument("--naive-edges", type=int, default=5_000)
    ap.add_argument("--no-naive", action="store_true", help="skip the one-write-per-edge baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    a = ap.parse_args(argv)
    stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    shapes = [s.strip() for s in a.shapes.split(",") if s.strip()]
    if bad := [s for s in shapes if s not in SHAPES]:
        ap.error(f"unknown shape(s) {', '.join(bad)}: choose from {', '.join(SHAPES)}")

    t0 = time.perf_counter()
    work = {}
    for shape in shapes:
        circuits = make_circuits(a.edges, shape, a.seed)
        warmup = make_circuits(10 * SHAPES[shape]["edges"], shape, a.seed + 10_000)
        append = make_circuits(a.edges, shape, a.seed + 20_000)
        work[shape] = (circuits, warmup, append)
        print(
            f"{shape}: {len(circuits)} synthetic circuits, {sum(len(c.edges) for c in circuits):,} edges, "
            f"{sum(len(c.nodes) for c in circuits):,} nodes"
        )
    sample = naive_sample(work[shapes[0]][0], a.naive_edges, a.seed)
    print(f"generated in {time.perf_counter() - t0:.1f} s")
    results: dict = {"environment": environment(), "busy_before": busy_processes()}

    with ExitStack() as stack:
        for kind in stores:
            if kind == "neo4j":
                uri = a.neo4j
                if uri is None:
                    from tests.neo4j_server import neo4j_server

                    uri = stack.enter_context(neo4j_server())
                config = StoreConfig.resolve(neo4j=uri)
                with open_store(config) as store:
                    if any(store.stats().values()) and not a.clear:
                        print(f"refusing to empty {store.describe()}: pass --clear", file=sys.stderr)
                        return 2
                    records, _, _ = store.driver.execute_query(
                        "CALL dbms.components() YIELD versions RETURN versions[0] AS v"
                    )
                    version = records[0]["v"]
                results["environment"]["neo4j_server"] = version
                naive_fn = naive_neo4j
            elif kind == "embedded":
                config = StoreConfig(path=Path(stack.enter_context(tempfile.TemporaryDirectory())) / "store")
                naive_fn = naive_embedded
            else:
                ap.error(f"unknown store {kind!r}")
            print(f"\n[{kind}] {config.describe()}")
            results[kind] = {"batched": {}}
            for shape in shapes:
                b = batched(config, *work[shape])
                results[kind]["batched"][shape] = b
                print(f"  {shape} circuits:")
                print(
                    f"    warm-up  {', '.join(f'{r:,}' for r in b['warmup_edges_per_s'])} edges/s "
                    "(rounds, not timed)"
                )
                print(
                    f"    batched  {b['edges']:>8,} edges  {b['seconds']:7.2f} s  {b['edges_per_s']:>8,} edges/s  "
                    f"({b['nodes_per_s']:,} nodes/s; {b['circuits']} transactions, {b['writers']} at a time)"
                )
                print(
                    f"    + fold   {b['fold_groups']:>8,} aggregate rows ({b['fold_groups'] / b['edges']:.2f} per "
                    f"edge) {b['fold_seconds']:7.2f} s  (client CPU of write and fold {b['client_cpu_s']:.1f} s)"
                )
                print("    fold phases " + ", ".join(f"{k} {v:.2f} s" for k, v in b["fold_phases_s"].items()))
                print(
                    f"    write-only {b['edges_per_s']:>8,} edges/s; written+folded "
                    f"{b['with_fold_edges_per_s']:>8,} edges/s; fold/write {b['fold_write_ratio']:.2f}x"
                )
                if "floor_seconds" in b:
                    print(
                        f"    floor    the layer's {b['floor_relationships']:,} relationships created again with no "
                        f"properties (same nodes, one transaction): {b['floor_seconds']:.2f} s = "
                        f"{b['floor_write_ratio']:.2f}x the write"
                    )
                print(
                    f"    + append {b['append_edges']:>8,} more edges into that store (its fold meets stored pairs): "
                    f"write {b['append_seconds']:.2f} s, fold {b['append_fold_seconds']:.2f} s "
                    f"({b['append_fold_groups']:,} rows, {b['append_fold_created']:,} new); fold/write "
                    f"{b['append_fold_write_ratio']:.2f}x; written+folded {b['append_with_fold_edges_per_s']:,} edges/s"
                )
                print(
                    "    append fold phases "
                    + ", ".join(f"{k} {v:.2f} s" for k, v in b["append_fold_phases_s"].items())
                )
            if a.no_naive:
                continue
            n = naive_fn(config, sample)
            print(
                f"  warm-up  {', '.join(f'{r:,}' for r in n['warmup_edges_per_s'])} edges/s (naive rounds, not timed)"
            )
            print(
                f"  naive    {n['edges']:>8,} edges  {n['seconds']:7.2f} s  {n['edges_per_s']:>8,} edges/s  "
                f"(one write per edge; {shapes[0]} circuits' edges)"
            )
            ratio = results[kind]["batched"][shapes[0]]["edges_per_s"] / n["edges_per_s"]
            print(f"  ratio    {ratio:,.0f}x ({shapes[0]} circuits, batched / naive)")
            results[kind] |= {"naive": n, "ratio": round(ratio, 1)}

    results["environment"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["busy_after"] = busy_processes()
    env = results["environment"]
    print(
        f"\nmachine: {env['cpus']} CPUs; load average {env['load_avg']} before, {env['load_avg_after']} after; "
        f"neo4j {env.get('neo4j_server', '-')}, driver {env['neo4j_driver']} "
        f"({'with' if env['neo4j_rust_ext'] else 'without'} neo4j-rust-ext), ladybug {env['ladybug']}"
    )
    print("also running (busiest other processes, CPU % over their lifetime):")
    for line in results["busy_after"] or ["  (nothing notable)"]:
        print(f"  {line}")
    if "ratio" in results.get("neo4j", {}):
        eps = results["neo4j"]["batched"][shapes[0]]["edges_per_s"]
        print(
            f"targets: Neo4j >= 50,000 edges/s: {'met' if eps >= 50_000 else 'NOT met'} ({eps:,}); "
            f">= 100x naive: {'met' if results['neo4j']['ratio'] >= 100 else 'NOT met'} ({results['neo4j']['ratio']:,}x)"
        )
    for kind, floor in (("neo4j", 50_000), ("embedded", 25_000)):
        for shape, b in results.get(kind, {}).get("batched", {}).items():
            print(
                f"targets {kind}, {shape} circuits: fold <= 0.5x write: "
                f"{'met' if b['fold_write_ratio'] <= 0.5 else 'NOT met'} ({b['fold_write_ratio']:.2f}x); "
                f"written+folded >= {floor:,} edges/s: "
                f"{'met' if b['with_fold_edges_per_s'] >= floor else 'NOT met'} ({b['with_fold_edges_per_s']:,})"
            )
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
