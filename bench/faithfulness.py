"""Faithfulness of small demo circuits over held-out nested-bracket prompts whose closer is the top prediction.

Prints, for zero and mean ablation (reference means from held-out generator text) and both error-term modes, the
median and quartiles of faithfulness and completeness of the circuit of the N strongest feature nodes (global
|attribution| ranking; the circuit's error nodes follow the engine's rule), and the seconds one scoring takes.

    python bench/faithfulness.py [--prompts 26] [--nodes 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

from scd.demo import corpus
from scd.discovery.discover import discover
from scd.discovery.evaluate import Ablator, circuit_metric, demo_reference_means
from scd.models.bundle import load_bundle


def quartiles(xs):
    q = statistics.quantiles(xs, n=4)
    return f"median {statistics.median(xs):.3f} (IQR {q[0]:.3f}..{q[2]:.3f}, min {min(xs):.3f}, max {max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=26)
    ap.add_argument("--nodes", type=int, default=30)
    args = ap.parse_args()
    bundle = load_bundle("demo")
    means = demo_reference_means(bundle)
    cases = [c for c in corpus.eval_cases(n_per_depth=40) if c.depth >= 2]
    circuits = []
    for case in cases:
        if len(circuits) >= args.prompts:
            break
        c = discover(case.prompt, model=bundle, top_k=args.nodes, metric="logit")
        if c.prompt.target != case.closer:
            continue  # the closer must be the model's top prediction
        circuits.append(c)
    print(f"{len(circuits)} held-out nested prompts (depth >= 2), top prediction = the closer")
    for ablation in ("zero", "mean"):
        for errors in ("circuit", "keep"):
            faith, comp, secs = [], [], []
            for c in circuits:
                feats = sorted(
                    (n for n in c.nodes if n.kind in ("resid", "attn", "mlp")),
                    key=lambda n: -abs(n.attribution),
                )
                feats = feats[: args.nodes]
                cut = min(abs(n.attribution) for n in feats)
                errs = [(n.hook, n.pos) for n in c.nodes if n.kind == "error" and abs(n.attribution) >= cut]
                t0 = time.perf_counter()
                ab = Ablator(
                    bundle,
                    c.prompt.token_ids,
                    circuit_metric(bundle, c),
                    ablation=ablation,
                    errors=errors,
                    means=means if ablation == "mean" else None,
                )
                s = ab.scores([(n.hook, n.index, n.pos) for n in feats], errs, m_model=c.metric_value)
                secs.append(time.perf_counter() - t0)
                faith.append(s.faithfulness)
                comp.append(s.completeness)
            print(f"{ablation:4} errors={errors:7}  F {quartiles(faith)}")
            print(
                f"{'':4} {'':14}  completeness {quartiles(comp)}; scoring {statistics.median(secs) * 1000:.0f} ms/circuit"
            )


if __name__ == "__main__":
    main()
