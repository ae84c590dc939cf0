"""Pruning by cumulative influence: influence recomputed by walking every path, and the documented share kept."""

from __future__ import annotations

from functools import cache

import pytest

from scd.core.errors import InputError
from scd.discovery.selection import ALWAYS_KEPT, node_influence, prune_by_influence

from .synthetic import synthetic_circuit


def path_influence(circuit) -> dict[str, float]:
    """Sum over every path to a logit node of the product of normalised |weights|, by recursion over children."""
    into: dict[str, float] = {}
    for e in circuit.edges:
        into[e.target] = into.get(e.target, 0.0) + abs(e.weight)
    children: dict[str, list] = {}
    for e in circuit.edges:
        children.setdefault(e.source, []).append(e)
    kind = {n.id: n.kind for n in circuit.nodes}

    @cache
    def walk(nid: str) -> float:  # paths from nid to any logit
        return sum(
            abs(e.weight) / into[e.target] * ((1.0 if kind[e.target] == "logit" else 0.0) + walk(e.target))
            for e in children.get(nid, [])
        )

    return {n.id: walk(n.id) for n in circuit.nodes}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_influence_is_the_sum_over_paths(seed):
    c = synthetic_circuit(seed, n_nodes=50, n_edges=180)
    got, want = node_influence(c), path_influence(c)
    assert any(v > 0 for v in want.values())
    for nid in want:
        assert got[nid] == pytest.approx(want[nid], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("share", [0.5, 0.8, 0.95])
def test_pruning_keeps_the_documented_share_with_the_fewest_nodes(share):
    """Every node but the logits is ranked (input tokens too, as circuit-tracer ranks them); the strongest that
    reach the share are kept, and tokens and logits whatever their rank."""
    c = synthetic_circuit(7, n_nodes=60, n_edges=220)
    infl = path_influence(c)
    pruned = prune_by_influence(c, share)
    kept = {n.id for n in pruned.nodes}
    ranked = sorted((n for n in c.nodes if n.kind != "logit"), key=lambda n: -infl[n.id])
    total = sum(infl[n.id] for n in ranked)
    mine, carried = [], 0.0
    for n in ranked:  # the shortest prefix of the ranking that carries the share
        if carried >= share * total:
            break
        mine.append(n)
        carried += infl[n.id]
    assert carried - infl[mine[-1].id] < share * total <= carried
    assert kept == {n.id for n in mine} | {n.id for n in c.nodes if n.kind in ALWAYS_KEPT}
    assert all(e.source in kept and e.target in kept for e in pruned.edges)
    assert len(pruned.nodes) < len(c.nodes) and pruned.id != c.id
    assert pruned.params["selection"] == f"influence:{share:g}"


def test_pruning_share_must_be_a_fraction():
    with pytest.raises(InputError, match="share must be in"):
        prune_by_influence(synthetic_circuit(0), 1.5)
    with pytest.raises(InputError, match="edge_share must be in"):
        prune_by_influence(synthetic_circuit(0), 0.8, 0.0)


# -- greedy selection checked by ablation ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random GPT-2 with random SAEs at three sublayers, and its circuit for one prompt."""
    from scd.discovery.discover import discover
    from scd.models.bundle import load_bundle

    from .tiny_hf import save_sae, save_tiny_gpt2

    root = tmp_path_factory.mktemp("greedy")
    save_tiny_gpt2(root / "gpt2")
    for i, hook in enumerate(["blocks.0.hook_resid_pre", "blocks.0.hook_mlp_out", "blocks.1.hook_attn_out"]):
        save_sae(root / "saes" / hook, hook, seed=i)
    bundle = load_bundle(str(root / "gpt2"), saes=str(root / "saes"))
    return bundle, discover(" the cat", model=bundle, top_k=6, metric="logit")


def brute_force_faithfulness(bundle, circuit, chosen) -> float:
    """F of a node set under zero ablation with error nodes as circuit members, written out independently of
    the Ablator: each SAE output becomes dec(f * keep) + err * keep_err, BOS (position 0) untouched."""
    import torch

    from scd.discovery.evaluate import circuit_metric

    metric = circuit_metric(bundle, circuit)
    tokens = torch.tensor([circuit.prompt.token_ids])

    def run(nodes) -> float:
        def hook_fn(x, hook):
            sae = bundle.saes[hook.name]
            f = sae.encode(x)
            err = x - sae.decode(f)
            keep = torch.zeros_like(f)
            keep_err = torch.zeros(x.shape[:2] + (1,))
            keep[:, 0], keep_err[:, 0] = 1, 1
            for n in nodes:
                if n.hook != hook.name:
                    continue
                if n.kind == "error":
                    keep_err[0, n.pos] = 1
                else:
                    keep[0, n.pos, n.index] = 1
            return sae.decode(f * keep) + err * keep_err

        with torch.no_grad():
            logits = bundle.model.run_with_hooks(tokens, fwd_hooks=[(h, hook_fn) for h in bundle.saes])
        return float(metric(logits))

    m_empty = run([])
    return (run(chosen) - m_empty) / (circuit.metric_value - m_empty)


def test_greedy_first_pick_is_the_best_single_node_and_its_curve_is_measured(tiny):
    from scd.discovery.selection import greedy, greedy_path

    bundle, circuit = tiny
    candidates = [n for n in circuit.nodes if n.kind in ("resid", "attn", "mlp", "error")]
    single = {n.id: brute_force_faithfulness(bundle, circuit, [n]) for n in candidates}
    path = greedy_path(circuit, bundle, 4)
    assert len(path) >= 2, "the tiny circuit must give greedy at least two useful steps to test"
    best = min(abs(1 - f) for f in single.values())
    assert abs(1 - single[path[0].node]) == pytest.approx(best, abs=1e-5), (
        "greedy's first pick is the node whose F alone is closest to 1"
    )
    assert len({round(v, 4) for v in single.values()}) > 3, "the single-node F values must differ to test"
    by_id = {n.id: n for n in circuit.nodes}
    for k, step in enumerate(path, 1):  # each step's F is the F of the nodes chosen so far, measured
        chosen = [by_id[s.node] for s in path[:k]]
        assert step.faithfulness == pytest.approx(brute_force_faithfulness(bundle, circuit, chosen), abs=1e-5)
        assert step.n_features + step.n_errors == k
    # the second pick is the best addition to the first
    first = by_id[path[0].node]
    pairs = {
        n.id: brute_force_faithfulness(bundle, circuit, [first, n]) for n in candidates if n is not first
    }
    assert abs(1 - pairs[path[1].node]) == pytest.approx(min(abs(1 - f) for f in pairs.values()), abs=1e-5)
    cut = greedy(circuit, bundle, 4)
    assert cut.params["selection"] == "greedy:4"
    # the circuit is the prefix whose measured F is closest to 1
    gaps = [abs(1 - s.faithfulness) for s in path]
    k = gaps.index(min(gaps))
    assert {n.id for n in cut.nodes if n.kind not in ALWAYS_KEPT} == {s.node for s in path[: k + 1]}
    assert {n.id for n in cut.nodes if n.kind in ALWAYS_KEPT} == {
        n.id for n in circuit.nodes if n.kind in ALWAYS_KEPT
    }


def test_greedy_size_and_pool_are_checked(tiny):
    from scd.discovery.selection import greedy_path

    bundle, circuit = tiny
    with pytest.raises(InputError, match="size must be"):
        greedy_path(circuit, bundle, 0)
    with pytest.raises(InputError, match="pool must be"):
        greedy_path(circuit, bundle, 3, pool=0)
    top2 = sorted(
        (n for n in circuit.nodes if n.kind != "token" and n.kind != "logit"),
        key=lambda n: -abs(n.attribution),
    )
    path = greedy_path(circuit, bundle, 5, pool=2)
    assert len(path) == 2 and {s.node for s in path} == {n.id for n in top2[:2]}


# -- selection and sublayers through discover() --------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    from scd.models.bundle import load_bundle

    return load_bundle("demo")


def test_discover_applies_the_selection_and_records_it(demo):
    from scd.discovery.discover import discover
    from scd.discovery.evaluate import evaluate

    prompt = "f(a [b (c"
    top = discover(prompt, model=demo, top_k=5, metric="logit")
    cut = discover(prompt, model=demo, top_k=5, metric="logit", selection="greedy:4", scores=True)
    inner = [n for n in cut.nodes if n.kind not in ALWAYS_KEPT]
    assert 1 <= len(inner) <= 4 and {n.id for n in inner} <= {n.id for n in top.nodes}
    assert cut.params["selection"] == "greedy:4" and cut.params["ablation"] == "zero"
    assert cut.id != top.id
    assert cut.scores["faithfulness"] == pytest.approx(evaluate(cut, demo).faithfulness)
    pruned = discover(prompt, model=demo, top_k=5, metric="logit", selection="influence:0.5")
    assert pruned.params["selection"] == "influence:0.5"
    assert len(pruned.nodes) < len(top.nodes)


def test_circuits_over_some_sublayers_keep_the_rest_exact(demo):
    """--sublayers attn,mlp: only attention and MLP SAEs are spliced, so F(every active node) = 1 and F(empty)
    = 0 still hold exactly, and the residual stream is untouched: the empty circuit is the model with every
    attention and MLP output (after BOS) replaced by its SAE's decoder bias, computed here by hand."""
    import torch

    from scd.discovery.discover import discover
    from scd.discovery.evaluate import ablator_for, circuit_metric

    prompt = "f(a [b (c"
    c = discover(prompt, model=demo, top_k=5, metric="logit", sublayers="attn,mlp", scores=True)
    assert {n.kind for n in c.nodes} <= {"attn", "mlp", "error", "token", "logit"}
    assert c.params["sublayers"] == ["attn", "mlp"] and set(c.saes) == {
        h for h in demo.saes if "attn_out" in h or "mlp_out" in h
    }
    ab = ablator_for(c, demo)
    assert set(ab.hooks) == set(c.saes)
    every_error = [(h, p) for h in ab.hooks for p in range(ab.n_pos)]
    full = ab.scores(ab.all_active(), every_error)
    assert full.faithfulness == 1.0 and full.m_circuit == full.m_model
    empty = ab.scores([], [])
    assert empty.faithfulness == 0.0
    assert c.prompt.token_ids[0] == demo.tokenizer.bos_id

    def to_bias(x, hook):
        x[:, 1:] = demo.saes[hook.name].b_dec.to(x.dtype)
        return x

    with torch.no_grad():
        logits = demo.model.run_with_hooks(
            torch.tensor([c.prompt.token_ids]), fwd_hooks=[(h, to_bias) for h in c.saes]
        )
    assert empty.m_empty == pytest.approx(float(circuit_metric(demo, c)(logits)), abs=1e-4)
