"""Benchmark: what a full circuit costs compared with one spliced forward+backward.

GPT-2-small shapes with random weights (12 layers, d_model 768, 12 heads, d_mlp 3072, vocabulary 50257) and random
24576-latent JumpReLU SAEs calibrated to ~40 active latents per position, a 12-token prompt, top-20 nodes per
sublayer, one torch thread. Two SAE layouts: 12 (resid_pre of every block) and 36 (resid_pre + attn_out + mlp_out).
Each layout runs in its own subprocess so that peak RSS is per layout.

Printed per layout:
  nodes      one spliced forward+backward with node attributions (scd.discovery.discover.splice.run_spliced + backward)
  circuit    scd.discovery.discover.attribution.attribute(): nodes + error nodes + every edge, batched (batch_size 64)
  ratio      circuit / nodes (target <= 2)
  baseline   the same circuit with one backward per downstream target (batch_size=1)
  peak RSS   of the layout's process (target <= 8 GiB for 36 SAEs)

    python bench/discovery.py                 # both layouts
    python bench/discovery.py --layouts 12 --repeats 1 --no-baseline

``--standin`` measures instead what a GPT-2 user's ingest costs: `scd.discover` end to end (tokenize, splice,
nodes, edges, feature metadata) on the full-size GPT-2-small stand-in (tests/gpt2_standin.py: random weights, real
tokenizer, 50257 vocabulary) loaded through `load_bundle` from folders, for the real SAE layouts -- 12+1 res-jb
(standard, 24576 latents), 36 oai-v5-32k (TopK, 32768) and 36 oai-v5-128k (TopK, 131072; 29 GB of weights) --
over the seed article's five prompts, top-20. Sets whose weights exceed ``SCD_SAE_MEMORY_GB`` (default 4) load
lazily (scd.models.lazy: one SAE at a time, per chunk of prompts, as `scd ingest` announces them). Printed per
layout: eager/lazy, load time, wall time per circuit (a lazy set's first circuit pays the chunk's SAE loads),
circuits/minute, full SAE loads, peak RSS (the layout's own process); then the check that 128k-wide sets
ingest within 8 GiB of RSS.

    python bench/discovery.py --standin res-jb,oai-v5-32k,oai-v5-128k

``--prompts`` measures batched discovery (``prompt_batch``, `scd.discovery.discover.discover_batch`): the demo
model's prompts/s over examples/prompts.txt one by one and N per batch, and GPT-2-shape circuits/s (the random
12-SAE layout above, prompts of 8-16 tokens) one by one and batched, as ratios measured in the same run.
``--device auto|cpu|cuda`` says where (auto: cuda when torch sees one).

    python bench/discovery.py --prompts --prompt-batches 4,8,16
    python bench/discovery.py --prompts --device cuda --gpt2-prompts 16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYOUTS = {
    12: ["hook_resid_pre"],
    36: ["hook_resid_pre", "hook_attn_out", "hook_mlp_out"],
}


def run_layout(n_saes: int, repeats: int, baseline: bool, n_active: int) -> dict:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from scd.discovery.attribution import attribute
    from scd.discovery.metrics import log_prob
    from scd.discovery.splice import run_spliced
    from tests.tiny_models import hooks_for, random_saes

    t0 = time.perf_counter()
    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024,
        act_fn="gelu_new", normalization_type="LN", seed=0, device="cpu",
    )  # fmt: skip
    model = HookedTransformer(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    hooks = hooks_for(12, LAYOUTS[n_saes])
    saes = random_saes(model, hooks, "jumprelu", d_sae=24576, n_active=n_active, dtype="float32")
    for sae in saes.values():
        for p in sae.parameters():
            p.requires_grad_(False)
    tokens = torch.randint(0, cfg.d_vocab, (1, 12), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        target = int(model(tokens)[0, -1].argmax())
    metric = log_prob(target)
    setup_s = time.perf_counter() - t0

    def nodes_pass():
        logits, leaves = run_spliced(model, saes, tokens)
        metric(logits).backward()
        return {h: (lv.f * lv.f.grad, (lv.eps * lv.eps.grad).sum(-1)) for h, lv in leaves.items()}

    def timed(fn, n):
        """Best wall-clock and process-CPU seconds over n runs (CPU time barely moves when other processes
        compete for the cores; wall time does), and the last result."""
        wall, cpu, out = float("inf"), float("inf"), None
        for _ in range(n):
            w, c = time.perf_counter(), time.process_time()
            out = fn()
            wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
        return (wall, cpu), out

    nodes_pass()  # warm-up (allocator, first-call overheads)
    t_nodes, node_attr = timed(nodes_pass, repeats)
    t_circuit, graph = timed(lambda: attribute(model, saes, tokens, metric, top_k=20), repeats)
    active = [int((lv.f != 0).sum()) for lv in run_spliced(model, saes, tokens)[1].values()]
    result = {
        "n_saes": n_saes,
        "setup_s": setup_s,
        "nodes_s": t_nodes[0],
        "nodes_cpu_s": t_nodes[1],
        "circuit_s": t_circuit[0],
        "circuit_cpu_s": t_circuit[1],
        "ratio": t_circuit[0] / t_nodes[0],
        "ratio_cpu": t_circuit[1] / t_nodes[1],
        "n_nodes": len(graph.nodes),
        "n_edges": int(graph.edges.shape[0]),
        "active_per_position": sum(active) / len(active) / tokens.shape[1],
    }
    if baseline:
        t_base, g1 = timed(lambda: attribute(model, saes, tokens, metric, top_k=20, batch_size=1), 1)
        result["baseline_s"], result["baseline_cpu_s"] = t_base
        result["baseline_same_edges"] = bool(torch.equal(g1.edges, graph.edges))
        if result["baseline_same_edges"]:
            result["baseline_max_abs_diff"] = float((g1.weights - graph.weights).abs().max())
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    del node_attr
    return result


def run_standin(layout: str, top_k: int) -> dict:
    """One stand-in layout: load it as `scd ingest --model PATH --saes DIR` does, then discover the seed prompts."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from scd.discovery.discover import discover, prepare
    from scd.discovery.effects import latent_effects
    from scd.discovery.evaluate import evaluate
    from scd.ingest.prompts import read_prompts
    from scd.models.bundle import load_bundle
    from tests.gpt2_standin import standin_model, standin_saes

    model, saes = standin_model(), standin_saes(layout)  # built once into the cache (minutes), then reused
    t0 = time.perf_counter()
    bundle = load_bundle(str(model), saes=str(saes))
    load_s = time.perf_counter() - t0
    prompts = read_prompts(ROOT / "examples" / "seed-prompts.txt")
    if bundle.lazy:  # as scd ingest does: announce the prompts, so one SAE load serves a chunk of them
        bundle.plan([prepare(bundle, spec.text).token_ids for spec in prompts])
    per_circuit, per_score, per_effects = [], [], []
    nodes = edges = 0
    for spec in prompts:
        t = time.perf_counter()
        c = discover(spec.text, model=bundle, top_k=top_k)
        per_circuit.append(time.perf_counter() - t)
        # the scores `scd ingest` stores by default (zero ablation, error nodes as circuit members), timed apart
        t = time.perf_counter()
        evaluate(c, bundle, ablation="zero", errors="circuit")
        per_score.append(time.perf_counter() - t)
        # and each latent's measured effect, which the same scored ingest stores on the nodes
        t = time.perf_counter()
        latent_effects(c, bundle, ablation="zero")
        per_effects.append(time.perf_counter() - t)
        nodes, edges = nodes + len(c.nodes), edges + len(c.edges)
    return {
        "layout": layout,
        "n_saes": len(bundle.saes),
        "lazy": bundle.lazy,
        "sae_loads": bundle.saes.loads if bundle.lazy else len(bundle.saes),
        "load_s": load_s,
        "circuit_s": per_circuit,
        "score_s": per_score,
        "effects_s": per_effects,
        "circuits_per_min": 60 * len(per_circuit) / sum(per_circuit),
        "scored_circuits_per_min": 60
        * len(per_circuit)
        / (sum(per_circuit) + sum(per_score) + sum(per_effects)),
        "nodes": nodes,
        "edges": edges,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def gpt2_shape(n_saes: int, n_active: int, device: str):
    """The random GPT-2-small-shape model and SAE layout of `run_layout`, on `device`."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from tests.tiny_models import hooks_for, random_saes

    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024,
        act_fn="gelu_new", normalization_type="LN", seed=0, device="cpu",
    )  # fmt: skip
    model = HookedTransformer(cfg).eval()
    hooks = hooks_for(12, LAYOUTS[n_saes])
    saes = random_saes(model, hooks, "jumprelu", d_sae=24576, n_active=n_active, dtype="float32")
    model = model.to(device)
    for m in [model, *saes.values()]:
        m.to(device)
        for p in m.parameters():
            p.requires_grad_(False)
    return model, saes


def run_prompts(
    device: str,
    batches: list[int],
    scores: bool,
    gpt2_prompts: int,
    n_active: int,
    rounds: int,
    gpt2_rounds: int,
) -> dict:
    """Demo prompts/s and GPT-2-shape circuits/s, one by one and with each prompt batch in `batches`."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from scd.discovery.attribution import attribute_batch
    from scd.discovery.discover import discover_batch
    from scd.discovery.metrics import log_prob
    from scd.ingest.prompts import read_prompts
    from scd.models.bundle import load_bundle, resolve_device

    device = resolve_device(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    bundle = load_bundle("demo", device=device)
    specs = read_prompts(ROOT / "examples" / "prompts.txt")
    texts = [s.text for s in specs]

    def timed(fn) -> tuple[float, float]:
        sync()
        w, c = time.perf_counter(), time.process_time()
        fn()
        sync()
        return time.perf_counter() - w, time.process_time() - c

    def best_rates(run, sizes: list[int], count: int, rounds: int) -> dict[int, dict[str, float]]:
        """Items/s per batch size from the best wall and the best CPU time over `rounds` interleaved rounds
        (CPU time barely moves when other processes compete for the cores; wall time does)."""
        best = {n: [float("inf"), float("inf")] for n in sizes}
        for _ in range(rounds):
            for n in sizes:
                w, c = timed(lambda n=n: run(n))
                best[n] = [min(best[n][0], w), min(best[n][1], c)]
        return {n: {"wall": count / w, "cpu": count / c} for n, (w, c) in best.items()}

    def demo_run(n: int) -> None:
        discover_batch(texts, model=bundle, prompt_batch=n, scores=scores)

    demo_run(max(batches))  # warm-up
    demo = best_rates(demo_run, [1, *batches], len(texts), rounds)
    model, saes = gpt2_shape(12, n_active, device)
    gen = torch.Generator().manual_seed(7)
    tokens = [torch.randint(0, 50257, (1, 8 + i % 9), generator=gen).to(device) for i in range(gpt2_prompts)]
    with torch.no_grad():
        metrics = [log_prob(int(model(t)[0, -1].argmax())) for t in tokens]

    def gpt2_run(n: int) -> None:
        for i in range(0, len(tokens), n):
            attribute_batch(model, saes, tokens[i : i + n], metrics[i : i + n], top_k=20)

    gpt2_run(1)  # warm-up
    sizes = [1, *[b for b in batches if b <= gpt2_prompts]]
    gpt2 = best_rates(gpt2_run, sizes, len(tokens), gpt2_rounds)
    return {"device": device, "scores": scores, "demo_prompts": len(texts), "demo": demo, "gpt2": gpt2}


def main_prompts(args) -> None:
    batches = [int(x) for x in args.prompt_batches.split(",")]
    print(f"scd batched discovery benchmark -- torch threads 1, host cores {os.cpu_count()}, "
          f"load avg {os.getloadavg()}")  # fmt: skip
    row = run_prompts(
        args.device, batches, args.scores, args.gpt2_prompts, args.n_active, args.rounds, args.gpt2_rounds
    )
    print(f"device {row['device']}, scores {'on' if row['scores'] else 'off'}; per second from the best wall")
    print("and the best CPU time of interleaved rounds, ratio = batched / one by one")
    for name, what in (("demo", "demo model, examples/prompts.txt"), ("gpt2", "GPT-2 shape, 12 SAEs")):
        one = row[name][1]
        unit = "prompts/s" if name == "demo" else "circuits/s"
        print(f"{what}: one by one {one['wall']:.3f} {unit} (cpu {one['cpu']:.3f})")
        for n, rate in row[name].items():
            if n != 1:
                print(
                    f"  prompt batch {n:>3}: {rate['wall']:.3f} {unit} (cpu {rate['cpu']:.3f})"
                    f"  ratio {rate['wall'] / one['wall']:.2f}x (cpu {rate['cpu'] / one['cpu']:.2f}x)"
                )
    print(f"load avg after: {os.getloadavg()}")
    print(json.dumps(row))


def main_standin(layouts: list[str], top_k: int) -> None:
    print(f"scd stand-in discovery benchmark -- torch threads 1, host cores {os.cpu_count()}, "
          f"load avg {os.getloadavg()}")  # fmt: skip
    rows = []
    for layout in layouts:
        cmd = [sys.executable, __file__, "--standin-one", layout, "--top-k", str(top_k)]
        out = subprocess.run(
            cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        times = ", ".join(f"{s:.1f}" for s in row["circuit_s"])
        scores = ", ".join(f"{s:.1f}" for s in row["score_s"])
        effects = ", ".join(f"{s:.2f}" for s in row["effects_s"])
        print(
            f"{layout} ({row['n_saes']} SAEs, {'lazy' if row['lazy'] else 'eager'}): load {row['load_s']:.1f} s"
            f" | per circuit {times} s + default scores {scores} s + measured effects {effects} s"
            f" | {row['sae_loads']} full SAE loads"
            f" | {row['circuits_per_min']:.2f} circuits/min unscored, {row['scored_circuits_per_min']:.2f} scored"
            f" (scd ingest's default) | peak RSS {row['peak_rss_gib']:.2f} GiB"
            f" | {row['nodes']} nodes, {row['edges']} edges over {len(row['circuit_s'])} prompts",
            flush=True,
        )
    for row in rows:
        if row["layout"] == "oai-v5-128k":
            ok = row["peak_rss_gib"] <= 8.0
            print(
                f"128k-wide set within 8 GiB RSS: {'met' if ok else 'NOT met'} ({row['peak_rss_gib']:.2f} GiB)"
            )
    print(f"load avg after: {os.getloadavg()}")
    print(json.dumps(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", default="12,36", help="comma-separated SAE counts: 12, 36")
    ap.add_argument(
        "--repeats", type=int, default=2, help="timed repeats of nodes and circuit (best is kept)"
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the one-backward-per-target baseline")
    ap.add_argument("--n-active", type=int, default=40, help="target active latents per position")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one layout, print JSON
    ap.add_argument(
        "--standin",
        help="stand-in SAE layouts to run instead: res-jb, oai-v5-32k, oai-v5-128k (comma-separated)",
    )
    ap.add_argument("--top-k", type=int, default=20, help="--standin: features kept per sublayer")
    ap.add_argument("--standin-one", help=argparse.SUPPRESS)  # internal
    ap.add_argument("--prompts", action="store_true", help="measure batched discovery (prompt_batch) instead")
    ap.add_argument("--prompt-batches", default="4,8,16", help="--prompts: prompt batches to compare with 1")
    ap.add_argument("--scores", action="store_true", help="--prompts: also score each demo circuit")
    ap.add_argument("--gpt2-prompts", type=int, default=8, help="--prompts: GPT-2-shape prompts discovered")
    ap.add_argument("--rounds", type=int, default=3, help="--prompts: interleaved demo rounds (best kept)")
    ap.add_argument("--gpt2-rounds", type=int, default=1, help="--prompts: interleaved GPT-2-shape rounds")
    ap.add_argument("--device", default="auto", help="--prompts: auto (cuda when torch sees one), cpu, cuda")
    args = ap.parse_args()
    if args.prompts:
        main_prompts(args)
        return
    if args.standin_one:
        print(json.dumps(run_standin(args.standin_one, args.top_k)))
        return
    if args.standin:
        main_standin(args.standin.split(","), args.top_k)
        return
    if args.one:
        print(json.dumps(run_layout(args.one, args.repeats, not args.no_baseline, args.n_active)))
        return

    print(
        f"scd discovery benchmark -- torch threads 1, host cores {os.cpu_count()}, load avg {os.getloadavg()}"
    )
    rows = []
    for n in [int(x) for x in args.layouts.split(",")]:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--repeats",
            str(args.repeats),
            "--n-active",
            str(args.n_active),
        ]
        if args.no_baseline:
            cmd.append("--no-baseline")
        out = subprocess.run(
            cmd, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{n:>2} SAEs: nodes (spliced fwd+bwd) {row['nodes_s']:.2f} s (cpu {row['nodes_cpu_s']:.2f})"
            f" | circuit {row['circuit_s']:.2f} s (cpu {row['circuit_cpu_s']:.2f})"
            f" | ratio {row['ratio']:.2f} (cpu {row['ratio_cpu']:.2f})"
            + (
                f" | one-backward-per-target {row['baseline_s']:.2f} s (cpu {row['baseline_cpu_s']:.2f})"
                if "baseline_s" in row
                else ""
            )
            + f" | peak RSS {row['peak_rss_gib']:.2f} GiB"
            f" | {row['n_nodes']} nodes, {row['n_edges']} edges, {row['active_per_position']:.0f} active/position",
            flush=True,
        )
    print(f"load avg after: {os.getloadavg()}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
