"""The discovery engine's mathematics against exact computations on tiny random models (float64).

Every test here can fail: each compares `attribute()` with an independent computation (plain autograd on the
clean model, finite differences, interventions on a model with frozen nonlinearities) or with itself under an
identity that a wrong edge breaks.
"""

from __future__ import annotations

import pytest
import torch

from scd.attribution import attribute
from scd.metrics import log_prob, logit_diff
from scd.splice import EMBED_HOOK, ordered_hooks, run_spliced
from tests.tiny_models import hooks_for, random_saes, tiny_model

TOKENS = torch.tensor([[0, 5, 3, 7, 2, 9, 4, 11]])
MIXED = ["standard", "topk", "jumprelu", "standard", "topk"]


@pytest.fixture(scope="module")
def model():
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

    from scd.splice import splice_hook

    store = {}
    spliced = grad_at_embedding([(h, splice_hook(saes[h], store)) for h in ordered_hooks(saes)])
    torch.testing.assert_close(spliced, grad_at_embedding([]), rtol=1e-10, atol=1e-12)


def test_graph_reports_clean_logits_and_metric(model, saes, full_graph):
    clean = model(TOKENS)[0, -1]
    assert torch.equal(full_graph.logits, clean.detach())
    assert full_graph.metric_value == pytest.approx(
        float(torch.log_softmax(clean.detach(), -1)[3]), abs=1e-12
    )


# -- 2. node attributions against independent autograd ----------------------------------------------------------
def _independent_node_attributions(model, sae, name, metric):
    """Replace the activation at `hook` by dec(f) + ε with f, ε fresh leaves; the rest of the model is clean."""
    store = {}

    def replace(x, hook):
        f = sae.encode(x[0]).detach().requires_grad_(True)
        x_hat = sae.decode(f)
        eps = (x[0] - x_hat).detach().requires_grad_(True)
        store.update(f=f, eps=eps)
        return (x_hat + eps)[None]

    m = metric(model.run_with_hooks(TOKENS, fwd_hooks=[(name, replace)]))
    g_f, g_e = torch.autograd.grad(m, [store["f"], store["eps"]])
    return store["f"] * g_f, (store["eps"] * g_e).sum(-1), store["f"]


@pytest.mark.parametrize("metric", [log_prob(3), logit_diff(3, 8)], ids=["log_prob", "logit_diff"])
def test_node_attributions_match_autograd(model, saes, metric):
    graph = attribute(model, saes, TOKENS, metric, all_nodes=True)
    idx = _index(graph)
    checked = 0
    for hook, sae in saes.items():
        feat, err, f = _independent_node_attributions(model, sae, hook, metric)
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
