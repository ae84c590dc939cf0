"""Measured latent effects (scd.discovery.effects) against interventions written another way.

Each is checked against the same intervention done another way: through sae_lens' own SAE forward pass with a hook
on its activations (``hook_sae_acts_post``), one latent and one model run at a time -- no batching, no indexing of
the encoder output. Zero and mean ablation, on the demo model and a tiny random model.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from scd.discovery import metrics
from scd.discovery.effects import latent_effects, measure
from scd.discovery.evaluate import SPLICED_KINDS, reference_means


def _spliced(bundle, ids, metric, hook: str, index: int, value: float | None = None) -> float:
    """m(clean) - m(latent `index` at `hook` set to `value` (None: 0) where it is active, BOS kept), done through
    sae_lens' own forward pass and hook point on the SAE's activations, one latent at a time."""
    sae = bundle.saes[hook]
    bos = bundle.tokenizer.bos_id
    first = 1 if bos is not None and ids[0] == bos else 0

    def edit(acts, hook):
        acts = acts.clone()
        col = acts[:, first:, index]
        acts[:, first:, index] = torch.where(col != 0, torch.full_like(col, value or 0.0), col)
        return acts

    def splice(x, hook):
        clean = sae(x)
        with sae.hooks(fwd_hooks=[("hook_sae_acts_post", edit)]):
            ablated = sae(x)
        return x + (ablated - clean).to(x.dtype)

    tokens = torch.tensor([list(ids)])
    with torch.no_grad():
        clean = float(metric(bundle.model(tokens)))
        ablated = float(metric(bundle.model.run_with_hooks(tokens, fwd_hooks=[(hook, splice)])))
    return clean - ablated


@pytest.fixture(scope="module")
def demo():
    from scd.models.bundle import load_bundle

    return load_bundle("demo")


@pytest.fixture(scope="module")
def scored(demo):
    from scd.discovery.discover import discover

    return discover("print(len(x", model=demo, metric="logit", scores=True)


def test_scored_circuits_carry_each_latents_measured_effect(demo, scored):
    """Every SAE latent node of a scored circuit carries its latent's effect (the same on all its nodes), equal
    to the intervention done through sae_lens; other nodes carry none, and so does every node of an unscored circuit."""
    from scd.discovery.discover import discover

    metric = metrics.build("logit", scored.prompt.target_id)
    by_latent: dict[tuple[str, int], float] = {}
    for n in scored.nodes:
        if n.kind not in SPLICED_KINDS:
            assert n.effect is None, n.id
            continue
        assert by_latent.setdefault((n.hook, n.index), n.effect) == n.effect
    assert len(by_latent) > 20
    big = sorted(by_latent, key=lambda k: -abs(by_latent[k]))[:12]
    for hook, index in big:
        want = _spliced(demo, scored.prompt.token_ids, metric, hook, index)
        assert by_latent[(hook, index)] == pytest.approx(want, abs=2e-4), (hook, index)
    assert max(abs(by_latent[k]) for k in big) > 0.5  # a check that could fail: some latent matters
    plain = discover("print(len(x", model=demo, metric="logit")
    assert all(n.effect is None for n in plain.nodes)
    unmeasured = discover("print(len(x", model=demo, metric="logit", scores=True, effects=False)
    assert unmeasured.scores["faithfulness"] == scored.scores["faithfulness"]
    assert all(n.effect is None for n in unmeasured.nodes) and unmeasured.id == scored.id


def test_mean_ablation_effects_use_the_reference_means(demo, scored):
    from scd.discovery.evaluate import demo_reference_means

    means = demo_reference_means(demo, n=8)
    got = latent_effects(scored, demo, ablation="mean", means=means)
    metric = metrics.build("logit", scored.prompt.target_id)
    for hook, index in sorted(got, key=lambda k: -abs(got[k]))[:6]:
        value = float(means[hook][0][index])
        want = _spliced(demo, scored.prompt.token_ids, metric, hook, index, value)
        assert got[(hook, index)] == pytest.approx(want, abs=2e-4)


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_effects_on_a_tiny_random_model(ablation):
    """Latents at every SAE of a 2-layer random model, measured in one batch, equal the one-at-a-time
    interventions (no BOS here: every position is ablated)."""
    from .tiny_models import hooks_for, random_saes, tiny_model

    model = tiny_model(n_layers=2)
    saes = random_saes(model, hooks_for(2, ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")))
    tok = SimpleNamespace(bos_id=None, encode=lambda text: [int(c) for c in text.split()])
    bundle = SimpleNamespace(model=model, saes=saes, tokenizer=tok, device=torch.device("cpu"))
    ids = [3, 1, 4, 1, 5, 9, 2]
    metric = metrics.build("logit", 6)
    means = reference_means(bundle, ["1 2 3 4 5 6", "7 8 9 10 11"]) if ablation == "mean" else None
    tokens = torch.tensor([ids])
    latents = []
    with torch.no_grad():
        for hook in saes:
            _, cache = model.run_with_cache(tokens, names_filter=hook)
            active = (saes[hook].encode(cache[hook])[0] != 0).any(0).nonzero().flatten().tolist()
            latents += [(hook, i) for i in active[:4]]
    assert len({h for h, _ in latents}) == len(saes)
    got = measure(bundle, ids, metric, latents, ablation=ablation, means=means, batch=5)
    for hook, index in latents:
        if ablation == "zero":
            want = _spliced(bundle, ids, metric, hook, index)
        else:
            want = _spliced(bundle, ids, metric, hook, index, float(means[hook][0][index]))
        assert got[(hook, index)] == pytest.approx(want, abs=1e-5), (hook, index)
    assert any(abs(v) > 1e-3 for v in got.values())


def test_unknown_ablation_is_refused(demo, scored):
    from scd.core.errors import InputError

    with pytest.raises(InputError, match="unknown ablation"):
        latent_effects(scored, demo, ablation="resample")
