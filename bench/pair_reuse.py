"""Measure how much the aggregate layer compresses FEEDS edges: aggregate rows per raw edge, and how circuits share
feature pairs -- on real circuits (``scd ingest --json-out DIR`` output, e.g. the demo model on
examples/prompts.txt) and on the synthetic generators the benchmarks use. This is what says whether a fold benchmark's
circuits are realistic: the fold's cost is per aggregate row, so a generator that shares few pairs between circuits
makes a worst case.

Printed per source and for growing prefixes of its circuits (the layer compresses more as circuits accumulate):
circuits, edges, mean nodes / edges / distinct features per circuit, edges per distinct (feature, feature) pair
within a circuit, and FEEDS_FEATURE, FEEDS_TOKEN, TOKEN_FEEDS rows per edge (the rows group_edges makes, the fold's
own grouping).

    python bench/pair_reuse.py --json /tmp/demo-json              # real circuits
    python bench/pair_reuse.py --synthetic 20 --edges-per-circuit 10000   # bench/ingest.py's default circuits
    python bench/pair_reuse.py --synthetic 200 --edges-per-circuit 500 --nodes 160 --layers 12 --d-sae 24576
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scd.core.circuit import Circuit  # noqa: E402
from scd.store.aggregates import group_edges  # noqa: E402


def reuse(circuits: list[Circuit]) -> dict:
    """Per-circuit shape and aggregate rows per edge for these circuits (first-seen feature metadata)."""
    top: dict[str, str | None] = {}
    for c in circuits:
        for f in c.features:
            top.setdefault(f.id, str(f.top_promoted[0]) if len(f.top_promoted) else None)
    rows = []
    per_pairs, per_feats = [], []
    for c in circuits:
        fid = {n.id: n.feature_id for n in c.nodes}
        u = [fid[e.source] for e in c.edges]
        d = [fid[e.target] for e in c.edges]
        rows.append((c.id, u, d, [e.weight for e in c.edges], [None] * len(c.edges)))
        per_pairs.append(len(set(zip(u, d, strict=True))))
        per_feats.append(len({n.feature_id for n in c.nodes}))
    ff, ft, tf = group_edges(rows, top)
    edges = sum(len(c.edges) for c in circuits)
    return {
        "circuits": len(circuits),
        "edges": edges,
        "nodes_per_circuit": statistics.mean(len(c.nodes) for c in circuits),
        "edges_per_circuit": statistics.mean(len(c.edges) for c in circuits),
        "features_per_circuit": statistics.mean(per_feats),
        "edges_per_pair_in_circuit": edges / sum(per_pairs),
        "FEEDS_FEATURE": len(ff) / edges,
        "FEEDS_TOKEN": len(ft) / edges,
        "TOKEN_FEEDS": len(tf) / edges,
        "rows_per_edge": (len(ff) + len(ft) + len(tf)) / edges,
    }


def report(name: str, circuits: list[Circuit]) -> list[dict]:
    print(f"\n{name}")
    print(
        f"{'circuits':>8} {'edges':>9} {'nodes/c':>8} {'edges/c':>8} {'feats/c':>8} {'edges/pair':>10} "
        f"{'FF/edge':>8} {'FT/edge':>8} {'TF/edge':>8} {'rows/edge':>9}"
    )
    out = []
    n = len(circuits)
    for k in sorted({max(1, n // 8), max(1, n // 4), max(1, n // 2), n}):
        r = reuse(circuits[:k])
        out.append(r)
        print(
            f"{r['circuits']:>8} {r['edges']:>9,} {r['nodes_per_circuit']:>8.0f} {r['edges_per_circuit']:>8.0f} "
            f"{r['features_per_circuit']:>8.0f} {r['edges_per_pair_in_circuit']:>10.2f} {r['FEEDS_FEATURE']:>8.3f} "
            f"{r['FEEDS_TOKEN']:>8.3f} {r['TOKEN_FEEDS']:>8.3f} {r['rows_per_edge']:>9.3f}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, action="append", default=[], help="a folder of circuit JSON files")
    ap.add_argument("--synthetic", type=int, default=0, help="this many tests/synthetic.py circuits")
    ap.add_argument("--edges-per-circuit", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=None, help="nodes per synthetic circuit (default edges / 7)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-sae", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for folder in a.json:
        circuits = [Circuit.from_json(p) for p in sorted(folder.glob("*.json"))]
        report(f"{folder}: {len(circuits)} circuits", circuits)
    if a.synthetic:
        from tests.synthetic import synthetic_circuit

        nodes = a.nodes or max(200, a.edges_per_circuit // 7)
        circuits = [
            synthetic_circuit(
                a.seed + i, n_nodes=nodes, n_edges=a.edges_per_circuit, n_layers=a.layers, d_sae=a.d_sae
            )
            for i in range(a.synthetic)
        ]
        report(
            f"synthetic: {a.synthetic} circuits, {nodes} nodes, {a.edges_per_circuit} edges, {a.layers} layers, "
            f"d_sae {a.d_sae}",
            circuits,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
