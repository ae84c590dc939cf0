"""The seed's question on the demo model: SAE circuit vs per-layer transcoder (PLT) graph vs cross-layer
transcoder (CLT) graph, for the same prompts, measured the same way.

    python bench/dictionaries.py [--prompts N] [--store DIR]

Per prompt and dictionary:

1. **graph** -- SAE: ``scd.discover(metric="logit", top_k=30)`` (scd's engine); PLT / CLT:
   ``scd.discovery.tracer.trace`` (circuit-tracer, default pruning 0.8 / 0.98). Seconds per graph are the cost.
   The default-size circuits (SAE top_k 20) go into an embedded store, so ``scd query dictionaries`` shows them.
2. **faithfulness / completeness at matched sizes** -- the N features with the largest |attribution| (every node's
   attribution is its total effect on the target's demeaned logit, in both engines), for N in SIZES; zero
   ablation of every other feature at every non-BOS position, error terms kept at their clean values (Marks'
   ``handle_errors='keep'``: the score is what the *features* carry). F(C) = (m(C) - m(0)) / (m(M) - m(0)),
   completeness = 1 - F(M minus C), m = the target's demeaned logit. SAEs: scd's own Ablator; transcoders:
   scd.discovery.tracer_scores (every MLP output = transcoder reconstruction of its own run's input + clean error).
3. **error share** -- circuit-tracer's formula for 1 - its replacement score, applied by scd to the stored
   (pruned) graph with the target logit weighted 1: of the influence that reaches the logit from the graph's input
   nodes (tokens, error nodes), the share on error nodes (scd.core.neuronpedia.error_share). circuit-tracer's own
   compute_graph_scores uses the unpruned graph and weights every logit by its probability, so its number differs
   (e.g. 0.193 against 0.217 on "Copyright (C"); the formula is the same (tests/test_tracer.py).
4. **top node before the logit** -- the node with the strongest link into the logit: its kind and what it
   promotes (its label where one exists; the demo's features have none).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (10, 30)


def demo_prompts(n: int) -> list[str]:
    lines = (ROOT / "examples" / "prompts.txt").read_text().splitlines()
    return [ln.split("\t")[0] for ln in lines if ln.strip() and not ln.startswith("#")][:n]


def error_share(circuit) -> float:
    """scd's error share of a stored graph (scd.core.neuronpedia.error_share, the target logit weighted 1)."""
    from scd.core.neuronpedia import error_share as share

    logit = next(n.id for n in circuit.nodes if n.kind == "logit")
    links = [(e.source, e.target, e.weight) for e in circuit.edges]
    return share([n.id for n in circuit.nodes], links, {logit: 1.0}, {n.id: n.kind for n in circuit.nodes})


def top_node(circuit) -> tuple[str, bool, bool]:
    """(description, is an error node, is a feature whose top promoted token is the target)."""
    logit = next(n.id for n in circuit.nodes if n.kind == "logit")
    into = [e for e in circuit.edges if e.target == logit]
    if not into:
        return "-", False, False
    best = max(into, key=lambda e: abs(e.weight))
    node = circuit.node(best.source)
    feat = next(f for f in circuit.features if f.id == node.feature_id)
    what = feat.label if feat.label and node.kind not in ("transcoder", "resid", "attn", "mlp") else None
    what = what or (
        "promotes " + " ".join(repr(t) for t in feat.top_promoted[:3]) if feat.top_promoted else "-"
    )
    readable = node.kind not in ("error", "token") and feat.top_promoted[:1] == [circuit.prompt.target]
    return f"{node.kind} L{node.layer} ({what})", node.kind == "error", readable


# -- matched-size ablation -------------------------------------------------------------------------------------


def sae_scores(bundle, circuit, n: int) -> tuple[float, float]:
    from scd.discovery.evaluate import Ablator, circuit_metric

    ab = Ablator(bundle, circuit.prompt.token_ids, circuit_metric(bundle, circuit), errors="keep")
    feats = sorted(
        (x for x in circuit.nodes if x.kind in ("resid", "attn", "mlp")), key=lambda x: -abs(x.attribution)
    )
    keys = [(x.hook, x.index, x.pos) for x in feats[:n]]
    m_model, m_empty = circuit.metric_value, ab.metric_with(ab.masks([]))
    m_c, m_comp = ab.metric_with(ab.masks(keys)), ab.metric_with(ab.masks(keys, complement=True))
    d = m_model - m_empty
    return (m_c - m_empty) / d, 1 - (m_comp - m_empty) / d


def transcoder_scores(loaded, circuit, graph, n: int) -> tuple[float, float]:
    """Matched-size scores in the replacement model (see module docstring, phase 2; scd.discovery.tracer_scores)."""
    from scd.discovery.tracer import total_effects
    from scd.discovery.tracer_scores import evaluate, graph_features

    feats = graph_features(graph)
    n_pos, n_layers = len(circuit.prompt.token_ids), graph.cfg.n_layers
    effects = total_effects(graph.adjacency_matrix, len(feats) + (n_layers + 1) * n_pos)[: len(feats)]
    top = [feats[k] for k in torch.argsort(effects.abs(), descending=True).tolist()[:n]]
    s = evaluate(loaded, circuit.prompt.token_ids, circuit.prompt.target_id, feats, top)
    return s.faithfulness, s.completeness


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--store", type=Path, default=None, help="embedded store to write the circuits into")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import scd
    from scd.discovery import tracer
    from scd.models.bundle import load_bundle

    bundle = load_bundle("demo", "demo")
    loaded = {k: tracer.load("demo", k) for k in ("demo-plt", "demo-clt")}
    rows: dict[str, list[dict]] = {"SAE (demo)": [], "PLT (demo-plt)": [], "CLT (demo-clt)": []}
    stored = []
    for prompt in demo_prompts(args.prompts):
        t0 = time.time()
        big = scd.discover(prompt, model=bundle, metric="logit", top_k=30)
        cost = time.time() - t0
        small = scd.discover(prompt, model=bundle, metric="logit", top_k=20)
        stored.append(small)
        r = {
            "cost": cost,
            "nodes": len(small.nodes),
            "error_share": error_share(small),
            "top": top_node(small),
        }
        r["top_error"], r["top_readable"] = float(r["top"][1]), float(r["top"][2])
        for n in SIZES:
            r[f"F{n}"], r[f"C{n}"] = sae_scores(bundle, big, n)
        rows["SAE (demo)"].append(r)
        for name, key in (("PLT (demo-plt)", "demo-plt"), ("CLT (demo-clt)", "demo-clt")):
            t0 = time.time()
            c = tracer.trace(prompt, model=loaded[key], keep_graph=True)
            cost = time.time() - t0
            stored.append(c)
            r = {"cost": cost, "nodes": len(c.nodes), "error_share": error_share(c), "top": top_node(c)}
            r["top_error"], r["top_readable"] = float(r["top"][1]), float(r["top"][2])
            for n in SIZES:
                r[f"F{n}"], r[f"C{n}"] = transcoder_scores(loaded[key], c, c.tracer_graph, n)
            rows[name].append(r)
        print(f"{prompt!r}: " + "; ".join(f"{k}: {v[-1]['top'][0]}" for k, v in rows.items()), flush=True)
    head = (
        "| dictionary | "
        + " | ".join(f"F@{n} | C@{n}" for n in SIZES)
        + (
            " | error share | top node before logit: error / a feature promoting the target | nodes | s/graph |"
        )
    )
    print("\n" + head + "\n|" + "---|" * (5 + 2 * len(SIZES)))
    for name, rs in rows.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "top"}
        share = {k: statistics.mean(r[k] for r in rs) for k in ("top_error", "top_readable")}
        cells = " | ".join(f"{med[f'F{n}']:.2f} | {med[f'C{n}']:.2f}" for n in SIZES)
        print(
            f"| {name} | {cells} | {med['error_share']:.2f} | {share['top_error']:.0%} / "
            f"{share['top_readable']:.0%} | {med['nodes']:.0f} | {med['cost']:.1f} |"
        )
    print("\n(medians over", len(rows["SAE (demo)"]), "prompts; top-node columns: share of prompts)")
    if args.store:
        from scd.core.config import StoreConfig
        from scd.store import open_store

        with open_store(StoreConfig.resolve(None, args.store)) as s:
            for c in stored:
                s.write_circuit(c)
        print(
            f"wrote {len(stored)} circuits to {args.store}; try: scd query dictionaries -p prompt=... --store "
            f"{args.store}"
        )


if __name__ == "__main__":
    main()
