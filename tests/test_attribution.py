"""The discovery engine's mathematics against exact computations on tiny random models (float64).

Every test here can fail: each compares `attribute()` with an independent computation (plain autograd on the
clean model, finite differences, interventions on a model with frozen nonlinearities) or with itself under an
identity that a wrong edge breaks.

Every test runs twice (the ``engine`` fixture): on the prompt alone, and on the prompt batched with a longer and a
shorter one (`attribute_batch`, right padding), so the batched path meets the same exact computations.
"""

from __future__ import annotations

import pytest
import torch

import scd.discovery.attribution
from scd.discovery.attribution import attribute_batch
from scd.discovery.metrics import log_prob, logit_diff
from scd.discovery.splice import EMBED_HOOK, ordered_hooks, run_spliced
from tests.tiny_models import hooks_for, random_saes, tiny_model

TOKENS = torch.tensor([[0, 5, 3, 7, 2, 9, 4, 11]])
MIXED = ["standard", "topk", "jumprelu", "standard", "topk"]


def _batched(model, saes, tokens, metric, config=None, **options):
    """`attribute` of `tokens`, computed in a batch between a longer and a shorter prompt of other tokens."""
    if tokens.ndim != 2 or any(h.fwd_hooks for h in model.hook_dict.values()):
        # bad input goes to the plain engine's checks; a model with permanent hooks (the frozen copy of test 5)
        # pins activations to one prompt's shapes and cannot take a batch
        return scd.discovery.attribution.attribute(model, saes, tokens, metric, config, **options)
    gen = torch.Generator().manual_seed(tokens.shape[1])
    n_ctx, d_vocab = model.cfg.n_ctx, model.cfg.d_vocab
    longer = torch.randint(0, d_vocab, (1, min(n_ctx, tokens.shape[1] + 5)), generator=gen)
    shorter = torch.randint(0, d_vocab, (1, max(2, tokens.shape[1] // 2)), generator=gen)
    graphs = attribute_batch(
        model, saes, [longer, tokens, shorter], [log_prob(1), metric, log_prob(2)], config, **options
    )
    return graphs[1]


ENGINES = {"one": scd.discovery.attribution.attribute, "batched": _batched}


@pytest.fixture(scope="module", params=list(ENGINES), autouse=True)
def engine(request):
    """Which engine this module's `attribute` calls: the prompt alone, or batched with two others."""
    global attribute
    attribute = ENGINES[request.param]
    yield request.param
    attribute = ENGINES["one"]


attribute = ENGINES["one"]


@pytest.fixture(scope="module")
def model(engine):
    return tiny_model()


@pytest.fixture(scope="module")
def saes(model):
    """SAEs at every supported sublayer of both blocks, mixing standard, TopK and JumpReLU."""
    return random_saes(model, hooks_for(2), MIXED * 2)


@pytest.fixture(scope="module")
def full_graph(model, saes):
    return attribute(model, saes, TOKENS, log_prob(3), all_nodes=True)


def _index(graph):
    return {(k.kind, k.hook, k.index, k.pos): i for i, k in enumerate(graph.nodes)}


def _outflow(graph):
    n = len(graph.nodes)
    return torch.zeros(n, dtype=graph.weights.dtype).index_add_(0, graph.edges[:, 0], graph.weights)


# -- 1. splice identity -----------------------------------------------------------------------------------------
def test_splice_leaves_logits_bit_identical(model, saes):
    clean = model(TOKENS)
    spliced, leaves = run_spliced(model, saes, TOKENS)
    assert torch.equal(spliced, clean)
    assert set(leaves) == set(saes)
    # and the splice is not trivially the identity: the SAEs really reconstruct part of the activation
    assert all((lv.f != 0).any() and lv.eps.abs().max() > 0 for lv in leaves.values())


def test_splice_backward_is_the_clean_gradient(model, saes):
    """∂m/∂(embedding) through the spliced model equals the clean model's (use_error_term=True breaks this)."""

    def grad_at_embedding(hooks):
        store = {}

        def leaf(x, hook):
            store["e"] = x.detach().requires_grad_(True)
            return store["e"]

        m = log_prob(3)(model.run_with_hooks(TOKENS, fwd_hooks=[(EMBED_HOOK, leaf)] + hooks))
        return torch.autograd.grad(m, store["e"])[0]

    from scd.discovery.splice import splice_hook

    store = {}
    spliced = grad_at_embedding([(h, splice_hook(saes[h], store)) for h in ordered_hooks(saes)])
    torch.testing.assert_close(spliced, grad_at_embedding([]), rtol=1e-10, atol=1e-12)


def test_graph_reports_clean_logits_and_metric(model, saes, full_graph, engine):
    clean = model(TOKENS)[0, -1]
    if engine == "one":
        assert torch.equal(full_graph.logits, clean.detach())
    else:  # a batch's matmuls have other shapes: equal to rounding (float64)
        torch.testing.assert_close(full_graph.logits, clean.detach(), rtol=1e-13, atol=1e-13)
    assert full_graph.metric_value == pytest.approx(
        float(torch.log_softmax(clean.detach(), -1)[3]), abs=1e-12
    )


# -- 2. node attributions against independent autograd ----------------------------------------------------------
def _leaf_gradients(model, sae, name, metric):
    """Replace the activation at `name` by dec(f) + ε with f, ε fresh leaves (the rest of the model clean) and
    return f, ε, ∂m/∂f, ∂m/∂ε -- plain autograd, independent of scd."""
    store = {}

    def replace(x, hook):
        f = sae.encode(x[0]).detach().requires_grad_(True)
        x_hat = sae.decode(f)
        eps = (x[0] - x_hat).detach().requires_grad_(True)
        store.update(f=f, eps=eps)
        return (x_hat + eps)[None]

    m = metric(model.run_with_hooks(TOKENS, fwd_hooks=[(name, replace)]))
    g_f, g_e = torch.autograd.grad(m, [store["f"], store["eps"]])
    return store["f"].detach(), store["eps"].detach(), g_f, g_e


@pytest.mark.parametrize("metric", [log_prob(3), logit_diff(3, 8)], ids=["log_prob", "logit_diff"])
def test_node_attributions_match_autograd(model, saes, metric):
    graph = attribute(model, saes, TOKENS, metric, all_nodes=True)
    idx = _index(graph)
    checked = 0
    for hook, sae in saes.items():
        f, eps, g_f, g_e = _leaf_gradients(model, sae, hook, metric)
        feat, err = f * g_f, (eps * g_e).sum(-1)
        kind = graph.nodes[next(i for (k, h, _, _), i in idx.items() if h == hook and k != "error")].kind
        for p, i in (f != 0).nonzero().tolist():
            got = graph.attributions[idx[(kind, hook, i, p)]]
            torch.testing.assert_close(got, feat[p, i], rtol=1e-9, atol=1e-12)
            checked += 1
        for p in range(TOKENS.shape[1]):
            torch.testing.assert_close(
                graph.attributions[idx[("error", hook, -1, p)]], err[p], rtol=1e-9, atol=1e-12
            )
    assert checked > 100


def test_token_node_attributions_match_autograd(model, saes, full_graph):
    store = {}

    def leaf(x, hook):
        store["e"] = x.detach().requires_grad_(True)
        return store["e"]

    m = log_prob(3)(model.run_with_hooks(TOKENS, fwd_hooks=[(EMBED_HOOK, leaf)]))
    expected = (store["e"] * torch.autograd.grad(m, store["e"])[0])[0].sum(-1)
    tokens = [i for i, k in enumerate(full_graph.nodes) if k.kind == "token"]
    assert [full_graph.nodes[i].index for i in tokens] == TOKENS[0].tolist()
    torch.testing.assert_close(full_graph.attributions[tokens], expected, rtol=1e-9, atol=1e-12)


def test_ig_with_one_step_is_atp(model, saes, full_graph):
    ig = attribute(model, saes, TOKENS, log_prob(3), method="ig", ig_steps=1, all_nodes=True)
    torch.testing.assert_close(ig.attributions, full_graph.attributions, rtol=1e-9, atol=1e-12)


def test_ig_is_complete_per_sublayer(model, saes):
    """Σ over one sublayer's IG attributions (features + errors) -> m(clean) - m(sublayer at its baseline dec(0))."""
    name = "blocks.0.hook_mlp_out"
    steps = 400
    ig = attribute(
        model, saes, TOKENS, log_prob(3), method="ig", ig_steps=steps, all_nodes=True, batch_size=100
    )
    total = sum(float(a) for k, a in zip(ig.nodes, ig.attributions, strict=True) if k.hook == name)
    sae = saes[name]

    def baseline(x, hook):
        return sae.decode(torch.zeros_like(sae.encode(x)))

    m_base = float(log_prob(3)(model.run_with_hooks(TOKENS, fwd_hooks=[(name, baseline)])))
    expected = ig.metric_value - m_base
    assert abs(expected) > 1e-2
    assert total == pytest.approx(expected, rel=2e-2)


# -- an independent stop-gradient forward, for the edge tests ---------------------------------------------------
CONFIGS = {
    "all-sublayers-mixed": (hooks_for(2), MIXED * 2),
    "resid-only": (
        hooks_for(2, ["hook_resid_pre"]) + ["blocks.1.hook_resid_post"],
        ["standard", "jumprelu", "topk"],
    ),
    "oai-v5-like": (hooks_for(2, ["hook_attn_out", "hook_mlp_out", "hook_resid_post"]), "topk"),
    "attn-mlp": (hooks_for(2, ["hook_attn_out", "hook_mlp_out"]), ["standard", "topk"] * 2),
}


def _sae_set(model, config):
    hooks, kinds = CONFIGS[config]
    return random_saes(model, hooks, kinds, seed=7)


def _clean_activations(model, saes):
    names = set(saes) | {EMBED_HOOK}
    _, cache = model.run_with_cache(TOKENS, names_filter=lambda n: n in names)
    return {h: cache[h].detach() for h in names}


def _stopgrad_inputs(model, saes, clean, source=None, scale=None):
    """Inputs x_D [pos, d] of every SAE sublayer when every SAE sublayer's output (and the embedding) is held at
    its clean value -- except `source`, whose contribution is multiplied by `scale` (a scalar tensor).

    source: ("token", p) | ("error", hook, p) | ("feature", hook, p, i).
    """
    inputs = {}

    def contribution(hook, x):
        kind = source[0]
        out = torch.zeros_like(x[0])
        if kind == "token":
            out[source[1]] = x[0, source[1]]
        elif kind == "error":
            sae, p = saes[hook], source[2]
            out[p] = (x[0] - sae.decode(sae.encode(x[0])))[p]
        else:
            sae, p, i = saes[hook], source[2], source[3]
            f = sae.encode(x[0])
            one = torch.zeros_like(f)
            one[p, i] = f[p, i]
            out = sae.decode(one) - sae.decode(torch.zeros_like(f))  # f_i * decoder row, any SAE class
        return out

    def fixed(name, is_embed=False):
        def hook_fn(x, hook):
            value = clean[name]
            if source and (source[0] == "token") == is_embed and (is_embed or source[1] == name):
                value = value + (scale - 1) * contribution(name, clean[name])[None]
            return value

        return hook_fn

    def record(x, hook):
        inputs[hook.name] = x[0]
        return x

    hooks = [(EMBED_HOOK, fixed(EMBED_HOOK, is_embed=True))]
    for h in ordered_hooks(saes):
        hooks += [(h, record), (h, fixed(h))]
    model.run_with_hooks(TOKENS, fwd_hooks=hooks)
    return inputs


def _gradients_at(model, saes, metric):
    """hook -> (∂m/∂ε_D, ∂m/∂f_D) for every SAE sublayer, on the clean model (∂m/∂ε_D = ∂m/∂x_D)."""
    out = {}
    for hook, sae in saes.items():
        _, _, g_f, g_e = _leaf_gradients(model, sae, hook, metric)
        out[hook] = (g_e, g_f)
    return out


def _source_of(key):
    if key.kind == "token":
        return ("token", key.pos)
    if key.kind == "error":
        return ("error", key.hook, key.pos)
    return ("feature", key.hook, key.pos, key.index)


def _downstream(saes, up: str, down: str) -> bool:
    """Whether sublayer `down` comes after sublayer `up` ("hook_embed" for tokens) in forward order."""
    order = ordered_hooks(saes)
    return order.index(down) > (order.index(up) if up in saes else -1)


def _edge_table(graph):
    return {(int(u), int(d)): float(w) for (u, d), w in zip(graph.edges, graph.weights, strict=True)}


# -- 3. conservation ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", list(CONFIGS))
def test_conservation_every_node(model, config):
    """With every child kept, a node's outgoing edges (including to the logit node) sum to its attribution."""
    saes = _sae_set(model, config)
    graph = attribute(model, saes, TOKENS, log_prob(3), all_nodes=True)
    out = _outflow(graph)
    attr = graph.attributions
    torch.testing.assert_close(out[:-1], attr[:-1], rtol=1e-9, atol=1e-11)
    assert attr[:-1].abs().max() > 1e-2  # not all zero
    # edge types present, including cross-position edges
    kinds = {(graph.nodes[u].kind, graph.nodes[d].kind) for u, d in graph.edges.tolist()}
    hooks = {
        (graph.nodes[u].hook.split(".")[-1], graph.nodes[d].hook.split(".")[-1])
        for u, d in graph.edges.tolist()
    }
    assert ("token", "error") in kinds and any(d == "logit" for _, d in kinds)
    assert any(graph.nodes[u].pos < graph.nodes[d].pos for u, d in graph.edges.tolist())
    expected = {
        "all-sublayers-mixed": {
            ("hook_resid_pre", "hook_attn_out"),
            ("hook_resid_pre", "hook_resid_mid"),
            ("hook_attn_out", "hook_resid_mid"),
            ("hook_resid_mid", "hook_mlp_out"),
            ("hook_mlp_out", "hook_resid_post"),
            ("hook_resid_post", "hook_resid_pre"),
        },
        "resid-only": {("hook_resid_pre", "hook_resid_pre"), ("hook_resid_pre", "hook_resid_post")},
        "oai-v5-like": {
            ("hook_resid_post", "hook_attn_out"),
            ("hook_resid_post", "hook_mlp_out"),
            ("hook_resid_post", "hook_resid_post"),
            ("hook_attn_out", "hook_mlp_out"),
            ("hook_attn_out", "hook_resid_post"),
            ("hook_mlp_out", "hook_resid_post"),
        },
        "attn-mlp": {
            ("hook_attn_out", "hook_mlp_out"),
            ("hook_mlp_out", "hook_attn_out"),
            ("hook_embed", "hook_attn_out"),
        },
    }[config]
    assert expected <= hooks


@pytest.mark.parametrize("config", ["all-sublayers-mixed", "oai-v5-like"])
def test_flow_per_child_position_matches_autograd(model, config):
    """Conservation split by (child sublayer D, child position q): Σ_{d at D,q} w(u->d) = u·∂(g_D[q]·x_D[q])/∂u in
    an independent stop-gradient forward. Separates same-position from cross-position (attention) flow."""
    saes = _sae_set(model, config)
    graph = attribute(model, saes, TOKENS, log_prob(3), all_nodes=True)
    grads = _gradients_at(model, saes, log_prob(3))
    clean = _clean_activations(model, saes)
    flow = {}
    for (u, d), w in _edge_table(graph).items():
        key = graph.nodes[d]
        if key.kind != "logit":
            flow[(u, key.hook, key.pos)] = flow.get((u, key.hook, key.pos), 0.0) + w
    gen = torch.Generator().manual_seed(0)
    sources = [i for i, k in enumerate(graph.nodes) if k.kind != "logit"]
    sample = [sources[i] for i in torch.randperm(len(sources), generator=gen)[:80].tolist()]
    cross = 0
    for u in sample:
        key = graph.nodes[u]
        c = torch.ones((), dtype=torch.float64, requires_grad=True)
        inputs = _stopgrad_inputs(model, saes, clean, _source_of(key), c)
        for hook, x in inputs.items():
            if not _downstream(saes, key.hook, hook):
                continue
            g_s = grads[hook][0]
            for q in range(TOKENS.shape[1]):
                target = (g_s[q] * x[q]).sum()
                expected = 0.0
                if target.requires_grad:
                    (dc,) = torch.autograd.grad(target, c, retain_graph=True, allow_unused=True)
                    expected = 0.0 if dc is None else float(dc)
                got = flow.get((u, hook, q), 0.0)
                assert got == pytest.approx(expected, rel=1e-8, abs=1e-11), (key, hook, q)
                cross += q != key.pos and expected != 0.0
    assert cross > 10


# -- 4. finite differences, edge by edge --------------------------------------------------------------------------
def test_edges_match_finite_differences(model):
    saes = _sae_set(model, "all-sublayers-mixed")
    graph = attribute(model, saes, TOKENS, log_prob(3), all_nodes=True)
    edges = _edge_table(graph)
    grads = _gradients_at(model, saes, log_prob(3))
    clean = _clean_activations(model, saes)
    delta = 1e-5
    gen = torch.Generator().manual_seed(1)
    checked = cross = 0
    sources = [i for i, k in enumerate(graph.nodes) if k.kind != "logit"]
    for u in [sources[i] for i in torch.randperm(len(sources), generator=gen)[:20].tolist()]:
        key = graph.nodes[u]
        plus = _stopgrad_inputs(
            model, saes, clean, _source_of(key), torch.tensor(1 + delta, dtype=torch.float64)
        )
        minus = _stopgrad_inputs(
            model, saes, clean, _source_of(key), torch.tensor(1 - delta, dtype=torch.float64)
        )
        for d, dkey in enumerate(graph.nodes):
            if dkey.kind in ("token", "logit") or not _downstream(saes, key.hook, dkey.hook):
                continue
            sae = saes[dkey.hook]
            g_e, g_f = grads[dkey.hook]

            def value(x, dkey=dkey, sae=sae, g_e=g_e, g_f=g_f):
                f = sae.encode(x)
                if dkey.kind == "error":
                    return float((g_e[dkey.pos] * (x - sae.decode(f))[dkey.pos]).sum())
                return float(g_f[dkey.pos, dkey.index] * f[dkey.pos, dkey.index])

            fd = (value(plus[dkey.hook]) - value(minus[dkey.hook])) / (2 * delta)
            got = edges.get((u, d), 0.0)
            assert got == pytest.approx(fd, rel=1e-5, abs=1e-8), (key, dkey)
            checked += got != 0.0
            cross += got != 0.0 and key.pos != dkey.pos
    assert checked > 200 and cross > 50


# -- 5. frozen nonlinearities: edges are interventions ------------------------------------------------------------
def _freeze(model, tokens):
    """A copy of `model` whose attention patterns and LayerNorm scales are fixed to their values on `tokens`
    and whose MLP activation function is the identity: every map between SAE sublayers becomes affine."""
    import copy

    frozen = copy.deepcopy(model)
    names = [n for n in frozen.hook_dict if n.endswith("hook_pattern") or n.endswith("hook_scale")]
    _, cache = frozen.run_with_cache(tokens, names_filter=lambda n: n in names)
    for name in names:
        value = cache[name].detach()
        frozen.add_hook(name, lambda x, hook, value=value: value, is_permanent=True)
    for block in range(frozen.cfg.n_layers):
        pre = {}
        frozen.add_hook(
            f"blocks.{block}.mlp.hook_pre", lambda x, hook, pre=pre: pre.update(x=x), is_permanent=True
        )
        frozen.add_hook(f"blocks.{block}.mlp.hook_post", lambda x, hook, pre=pre: pre["x"], is_permanent=True)
    return frozen


@pytest.mark.parametrize(("scale", "min_checked"), [(0.0, 25), (0.9, 150)])
def test_edges_equal_interventions_with_frozen_nonlinearities(model, scale, min_checked):
    frozen = _freeze(model, TOKENS)
    saes = _sae_set(model, "all-sublayers-mixed")
    graph = attribute(frozen, saes, TOKENS, log_prob(3), all_nodes=True)
    edges = _edge_table(graph)
    grads = _gradients_at(frozen, saes, log_prob(3))
    clean = _clean_activations(frozen, saes)
    base = _stopgrad_inputs(frozen, saes, clean)
    base_f = {h: saes[h].encode(x) for h, x in base.items()}
    gen = torch.Generator().manual_seed(2)
    sources = [i for i, k in enumerate(graph.nodes) if k.kind != "logit"]
    checked = skipped = 0
    for u in [sources[i] for i in torch.randperm(len(sources), generator=gen)[:30].tolist()]:
        key = graph.nodes[u]
        after = _stopgrad_inputs(
            frozen, saes, clean, _source_of(key), torch.tensor(scale, dtype=torch.float64)
        )
        for d, dkey in enumerate(graph.nodes):
            if dkey.kind in ("token", "logit"):
                continue
            sae, x0, x1 = saes[dkey.hook], base[dkey.hook], after[dkey.hook]
            f0, f1 = base_f[dkey.hook], sae.encode(x1)
            if not torch.equal(f0[dkey.pos] != 0, f1[dkey.pos] != 0):
                skipped += 1  # the SAE's own nonlinearity switched: the effect is not linear
                continue
            g_e, g_f = grads[dkey.hook]
            if dkey.kind == "error":
                e0, e1 = x0 - sae.decode(f0), x1 - sae.decode(f1)
                effect = float((g_e[dkey.pos] * (e0 - e1)[dkey.pos]).sum())
            else:
                effect = float(g_f[dkey.pos, dkey.index] * (f0 - f1)[dkey.pos, dkey.index])
            expected = (1 - scale) * edges.get((u, d), 0.0)
            assert effect == pytest.approx(expected, rel=1e-8, abs=1e-11), (key, dkey)
            checked += effect != 0.0
    # removing a feature often switches another SAE latent on or off; enough pairs stay linear to test
    assert checked >= min_checked


# -- 6. batched and one-by-one edges agree ----------------------------------------------------------------------------
def test_batched_edges_equal_one_backward_per_target(model, saes):
    graphs = [attribute(model, saes, TOKENS, log_prob(3), top_k=10, batch_size=b) for b in (1, 7, 64)]
    tables = [_edge_table(g) for g in graphs]
    assert len(tables[0]) > 100
    for g, t in zip(graphs[1:], tables[1:], strict=True):
        assert g.nodes == graphs[0].nodes
        assert torch.equal(g.edges, graphs[0].edges)  # same edges in the same (canonical) order
        assert t.keys() == tables[0].keys()
        for k, w in t.items():
            assert w == pytest.approx(tables[0][k], rel=1e-10, abs=1e-13)


# -- the small SAE copies used for decoder rows and encoder Jacobians ------------------------------------------------
def test_sae_view_copies_agree_with_whole_saes(model, monkeypatch):
    """Wide SAEs (few latents active) go through small copies; the graph equals the one from the whole SAEs."""
    import scd.discovery.edges

    saes = random_saes(
        model, hooks_for(2, ["hook_resid_pre", "hook_attn_out", "hook_mlp_out"]), MIXED[:3] * 2, d_sae=512
    )
    views = []
    original = scd.discovery.edges.SAEView.__init__

    def spy(self, *args):
        original(self, *args)
        views.append(self)

    monkeypatch.setattr(scd.discovery.edges.SAEView, "__init__", spy)
    fast = attribute(model, saes, TOKENS, log_prob(3), top_k=15)
    assert views and all(v.is_copy and len(v.latents) < 512 for v in views)
    monkeypatch.setattr(scd.discovery.edges, "sub_sae", lambda *a: None)
    slow = attribute(model, saes, TOKENS, log_prob(3), top_k=15)
    assert fast.nodes == slow.nodes
    assert torch.equal(fast.edges, slow.edges)
    torch.testing.assert_close(fast.weights, slow.weights, rtol=1e-9, atol=1e-12)


# -- selection ------------------------------------------------------------------------------------------------------
def test_selection_top_k_threshold_and_error_rule(model, saes, full_graph):
    graph = attribute(model, saes, TOKENS, log_prob(3), top_k=5)
    full = dict(zip(_index(full_graph), full_graph.attributions.tolist(), strict=True))
    for hook in saes:
        feats = [i for i, k in enumerate(graph.nodes) if k.hook == hook and k.kind != "error"]
        errs = [i for i, k in enumerate(graph.nodes) if k.hook == hook and k.kind == "error"]
        assert len(feats) == 5
        cut = graph.attributions[feats].abs().min()
        # the kept features are the 5 largest |attribution| of the sublayer, over all positions
        all_feats = sorted(
            (abs(a) for (kind, h, _, _), a in full.items() if h == hook and kind != "error"), reverse=True
        )
        assert float(cut) == pytest.approx(all_feats[4], abs=1e-12)
        # error nodes: kept exactly when |attribution| >= the smallest kept feature's
        all_errs = {p: abs(a) for (kind, h, _, p), a in full.items() if h == hook and kind == "error"}
        assert {graph.nodes[i].pos for i in errs} == {p for p, a in all_errs.items() if a >= float(cut)}
    assert [k.kind for k in graph.nodes].count("token") == TOKENS.shape[1]
    assert graph.nodes[-1].kind == "logit" and graph.nodes[-1].pos == TOKENS.shape[1] - 1
    assert graph.nodes[-1].layer == model.cfg.n_layers
    # every edge joins kept nodes, upstream to downstream, and none is zero
    assert (graph.edges[:, 0] < graph.edges[:, 1]).all() and (graph.weights != 0).all()

    thr = attribute(model, saes, TOKENS, log_prob(3), top_k=None, node_threshold=0.05, edge_threshold=1e-3)
    feats = [i for i, k in enumerate(thr.nodes) if k.kind not in ("token", "error", "logit")]
    assert feats and (thr.attributions[feats].abs() >= 0.05).all()
    n_big = sum(
        1 for (kind, *_), a in full.items() if kind not in ("token", "error", "logit") and abs(a) >= 0.05
    )
    assert len(feats) == n_big
    assert (thr.weights.abs() > 1e-3).all()


def test_node_keys_kinds_and_layers(full_graph):
    by_hook = {
        k.hook: (k.kind, k.layer) for k in full_graph.nodes if k.kind not in ("error", "token", "logit")
    }
    assert by_hook["blocks.0.hook_resid_pre"] == ("resid", 0)
    assert by_hook["blocks.0.hook_attn_out"] == ("attn", 0)
    assert by_hook["blocks.0.hook_resid_mid"] == ("resid", 0)
    assert by_hook["blocks.0.hook_mlp_out"] == ("mlp", 0)
    assert by_hook["blocks.0.hook_resid_post"] == ("resid", 1)
    tok = next(k for k in full_graph.nodes if k.kind == "token")
    assert (tok.hook, tok.layer) == ("hook_embed", -1)
    err = next(k for k in full_graph.nodes if k.kind == "error")
    assert err.index == -1


def test_float32_model_conserves_to_float_tolerance():
    model = tiny_model(dtype=torch.float32)
    saes = random_saes(model, hooks_for(2, ["hook_resid_pre", "hook_attn_out", "hook_mlp_out"]), "jumprelu")
    graph = attribute(model, saes, TOKENS, log_prob(3), all_nodes=True)
    assert graph.weights.dtype == torch.float32
    torch.testing.assert_close(_outflow(graph)[:-1], graph.attributions[:-1], rtol=1e-4, atol=1e-5)


def test_bad_inputs_are_refused(model, saes):
    with pytest.raises(ValueError, match="method"):
        attribute(model, saes, TOKENS, log_prob(3), method="magic")
    with pytest.raises(ValueError, match="unsupported SAE hook"):
        attribute(model, {"blocks.0.attn.hook_z": saes["blocks.0.hook_attn_out"]}, TOKENS, log_prob(3))
    with pytest.raises(ValueError, match="shape"):
        attribute(model, saes, TOKENS[0], log_prob(3))


@pytest.mark.parametrize("norm", ["layer_norm", "constant_norm_rescale"])
def test_saes_with_stateful_input_normalisation(model, norm):
    """SAEs that normalise their input and undo it in decode (state kept between encode and decode): the splice
    is still exact, node attributions match autograd and edges conserve (the error node absorbs the path through
    the normalisation statistics)."""
    saes = random_saes(
        model, hooks_for(2, ["hook_resid_pre", "hook_attn_out", "hook_mlp_out"]), MIXED[:3] * 2
    )
    for sae in saes.values():
        sae.cfg.normalize_activations = norm
        sae._setup_activation_normalization()
    assert torch.equal(run_spliced(model, saes, TOKENS)[0], model(TOKENS))
    graph = attribute(model, saes, TOKENS, log_prob(3), all_nodes=True)
    torch.testing.assert_close(_outflow(graph)[:-1], graph.attributions[:-1], rtol=1e-9, atol=1e-11)
    idx = _index(graph)
    hook = "blocks.1.hook_attn_out"
    f, eps, g_f, g_e = _leaf_gradients(model, saes[hook], hook, log_prob(3))
    for p, i in (f != 0).nonzero().tolist():
        torch.testing.assert_close(
            graph.attributions[idx[("attn", hook, i, p)]], (f * g_f)[p, i], rtol=1e-9, atol=1e-12
        )
    ig = attribute(model, saes, TOKENS, log_prob(3), method="ig", ig_steps=1, all_nodes=True)
    torch.testing.assert_close(ig.attributions, graph.attributions, rtol=1e-9, atol=1e-12)


def test_attribute_under_no_grad(model, saes, full_graph):
    with torch.no_grad():
        graph = attribute(model, saes, TOKENS, log_prob(3), all_nodes=True)
    assert torch.equal(graph.edges, full_graph.edges)
    torch.testing.assert_close(graph.weights, full_graph.weights, rtol=0, atol=0)
