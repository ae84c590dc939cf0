"""Faithfulness curves over circuit size, per node-selection method and ablation mode, on the demo model.

    python bench/faithfulness.py [--prompts 26] [--sizes 5,10,20,30] [--sublayers all|attn,mlp]
                                 [--methods topk,influence,greedy] [--ablations zero,mean] [--pool 60]
                                 [--json FILE] [--plot docs/faithfulness.png]

1. **prompts** -- held-out nested-bracket prompts (depth >= 2) from the demo generator whose closer is the model's
   top prediction; each gets one circuit (``discover(metric="logit", top_k=20)``; with ``--sublayers attn,mlp``
   only the attention and MLP SAEs are spliced and the residual stream runs exact).
2. **circuits of N feature nodes**, per method:
   * ``topk`` -- the N feature nodes with the largest |attribution|; error nodes by the engine's rule (kept where
     |attribution| reaches the smallest kept feature's);
   * ``influence`` -- nodes in order of cumulative influence on the logit (`scd.discovery.selection`, circuit-
     tracer's rule) until N feature nodes are in; error nodes met on the way are in too;
   * ``greedy`` -- the first N steps of `scd.discovery.selection.greedy_path` (each node added because it raised
     measured F most; error nodes count towards N, so it never has more than N feature nodes).
3. **scores** -- F and completeness by ablation (`scd.discovery.evaluate`, errors as circuit members), zero and
   mean ablation (reference means over held-out generator text). Printed: median [IQR] per method x ablation x
   size, the median number of error nodes, and the seconds per circuit of default scoring and of greedy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scd.demo import corpus  # noqa: E402
from scd.discovery.discover import discover  # noqa: E402
from scd.discovery.evaluate import SPLICED_KINDS, ablator_for, demo_reference_means  # noqa: E402
from scd.discovery.selection import best_prefix, greedy_path, node_influence  # noqa: E402
from scd.models.bundle import load_bundle  # noqa: E402

METHODS = ("topk", "influence", "greedy")


def topk_sets(circuit, sizes):
    feats = sorted((n for n in circuit.nodes if n.kind in SPLICED_KINDS), key=lambda n: -abs(n.attribution))
    out = {}
    for size in sizes:
        top = feats[:size]
        cut = min(abs(n.attribution) for n in top)
        out[size] = top + [n for n in circuit.nodes if n.kind == "error" and abs(n.attribution) >= cut]
    return out


def influence_sets(circuit, sizes):
    infl = node_influence(circuit)
    ranked = sorted(
        (n for n in circuit.nodes if n.kind in SPLICED_KINDS or n.kind == "error"), key=lambda n: -infl[n.id]
    )
    out = {}
    for size in sizes:
        chosen, n_feat = [], 0
        for n in ranked:
            if n_feat >= size:
                break
            chosen.append(n)
            n_feat += n.kind != "error"
        out[size] = chosen
    return out


def greedy_sets(circuit, bundle, sizes, ablation, means, pool):
    path = greedy_path(circuit, bundle, max(sizes), ablation=ablation, means=means, pool=pool)
    by_id = {n.id: n for n in circuit.nodes}
    return {size: [by_id[s.node] for s in best_prefix(path, size)] for size in sizes}


def keys(nodes):
    feats = [(n.hook, n.index, n.pos) for n in nodes if n.kind != "error"]
    errs = [(n.hook, n.pos) for n in nodes if n.kind == "error"]
    return feats, errs


def quart(xs):
    xs = [x for x in xs if x == x]
    if len(xs) < 2:
        return "-"
    q = statistics.quantiles(xs, n=4)
    return f"{statistics.median(xs):6.2f} [{q[0]:5.2f},{q[2]:5.2f}]"


def prompts(bundle, n, options):
    cases = [c for c in corpus.eval_cases(n_per_depth=40) if c.depth >= 2]
    out = []
    for case in cases:
        if len(out) >= n:
            break
        c = discover(case.prompt, model=bundle, metric="logit", top_k=20, **options)
        if c.prompt.target == case.closer:  # the closer must be the model's top prediction
            out.append(c)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=26)
    ap.add_argument("--sizes", default="5,10,20,30")
    ap.add_argument("--sublayers", default="all", help="all, or a comma list of resid,attn,mlp")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--ablations", default="zero,mean")
    ap.add_argument("--pool", type=int, default=60, help="greedy's candidate pool (strongest |attribution|)")
    ap.add_argument("--json", type=Path, help="write every per-prompt number here")
    ap.add_argument("--plot", type=Path, help="save the median curves as a PNG (needs matplotlib)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")
    sublayers = None if args.sublayers == "all" else args.sublayers.split(",")
    bundle = load_bundle("demo")
    options = {} if sublayers is None else {"sublayers": tuple(sublayers)}
    t0 = time.perf_counter()
    circuits = prompts(bundle, args.prompts, options)
    t_discover = (time.perf_counter() - t0) / max(1, len(circuits))
    print(
        f"{len(circuits)} held-out nested prompts (depth >= 2, closer = top prediction); sublayers "
        f"{args.sublayers}; {t_discover:.2f} s discovery per circuit (incl. skipped prompts)",
        flush=True,
    )
    means = demo_reference_means(bundle.with_sublayers(sublayers))
    results: dict = {}
    for ablation in args.ablations.split(","):
        t_score, t_greedy = [], []
        for i, c in enumerate(circuits):
            ab = ablator_for(c, bundle, ablation=ablation, means=means)
            t = time.perf_counter()
            ab.scores(
                *keys([n for n in c.nodes if n.kind in SPLICED_KINDS or n.kind == "error"]),
                m_model=c.metric_value,
            )
            t_score.append(time.perf_counter() - t)
            m_empty = ab.metrics_with([ab.masks([])], [ab.error_masks([])])[0]
            for method in methods:
                t = time.perf_counter()
                if method == "topk":
                    sets = topk_sets(c, sizes)
                elif method == "influence":
                    sets = influence_sets(c, sizes)
                else:
                    sets = greedy_sets(c, bundle, sizes, ablation, means, args.pool)
                    t_greedy.append(time.perf_counter() - t)
                for size, nodes in sets.items():
                    s = ab.scores(*keys(nodes), m_model=c.metric_value, m_empty=m_empty)
                    row = results.setdefault(f"{ablation}/{method}/{size}", {"F": [], "C": [], "errors": []})
                    row["F"].append(s.faithfulness)
                    row["C"].append(s.completeness)
                    row["errors"].append(sum(n.kind == "error" for n in nodes))
            print(f"  {ablation}: {i + 1}/{len(circuits)} prompts", file=sys.stderr, flush=True)
        results[f"{ablation}/seconds"] = {
            "score": statistics.median(t_score),
            "greedy": statistics.median(t_greedy) if t_greedy else None,
        }
    print(
        f"{'ablation':8} {'method':9} {'N':>3}  {'F median [IQR]':22} {'completeness [IQR]':22} errors  F>=0.9"
    )
    for ablation in args.ablations.split(","):
        for method in methods:
            for size in sizes:
                r = results[f"{ablation}/{method}/{size}"]
                hit = sum(f >= 0.9 for f in r["F"])
                print(
                    f"{ablation:8} {method:9} {size:3}  {quart(r['F']):22} {quart(r['C']):22} "
                    f"{statistics.median(r['errors']):6.0f}  {hit}/{len(r['F'])}"
                )
        sec = results[f"{ablation}/seconds"]
        greedy_s = "-" if sec["greedy"] is None else f"{sec['greedy']:.2f}"
        print(
            f"{ablation}: {sec['score']:.3f} s default scoring per circuit, {greedy_s} s greedy per circuit"
        )
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "sublayers": args.sublayers, "results": results}))
    if args.plot:
        plot(results, sizes, methods, args.ablations.split(","), args.sublayers, args.plot)


def plot(results, sizes, methods, ablations, sublayers, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ablations), figsize=(5 * len(ablations), 4), sharey=True, squeeze=False)
    for ax, ablation in zip(axes[0], ablations, strict=True):
        for method in methods:
            rows = [results[f"{ablation}/{method}/{s}"]["F"] for s in sizes]
            med = [statistics.median(r) for r in rows]
            q = [statistics.quantiles(r, n=4) for r in rows]
            ax.plot(sizes, med, marker="o", label=method)
            ax.fill_between(sizes, [x[0] for x in q], [x[2] for x in q], alpha=0.15)
        ax.axhline(0.9, color="grey", ls="--", lw=0.8)
        ax.set_title(f"{ablation} ablation, sublayers {sublayers}")
        ax.set_xlabel("feature nodes in the circuit")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("faithfulness (median, IQR band)")
    axes[0][0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
