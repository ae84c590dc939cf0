"""Faithfulness and completeness on the demo model: the exact ends (all features = 1, none = 0) and what lies
between (top-k circuits, increasing with k)."""

from __future__ import annotations

import dataclasses

import pytest

from scd.core.errors import InputError, ModelError
from scd.discovery.discover import discover, faithfulness_curve
from scd.discovery.evaluate import (
    ABLATIONS,
    ERROR_MODES,
    Ablator,
    circuit_metric,
    demo_reference_means,
    evaluate,
    reference_means,
)
from scd.models.bundle import load_bundle
from scd.report.summary import summarize

PROMPT = "Copyright (C"


@pytest.fixture(scope="module")
def demo():
    return load_bundle("demo")


@pytest.fixture(scope="module")
def circuit(demo):
    return discover(PROMPT, model=demo, top_k=10)


@pytest.mark.parametrize("errors", ["circuit", "keep"])
def test_full_and_empty_circuits_are_exact(demo, circuit, errors):
    ab = Ablator(demo, circuit.prompt.token_ids, circuit_metric(demo, circuit), errors=errors)
    assert ab.clean_metric() == pytest.approx(circuit.metric_value, abs=1e-6)
    every_error = [(h, p) for h in demo.saes for p in range(ab.n_pos)]
    full = ab.scores(ab.all_active(), every_error)
    assert full.m_circuit == full.m_model, "keeping every active feature is the clean model, bit for bit"
    assert full.faithfulness == 1.0
    empty = ab.scores([], [])
    assert empty.faithfulness == 0.0 and empty.m_circuit == empty.m_empty
    assert empty.m_empty < empty.m_model, "without its features the model is less sure of ')'"


def _ends(ab: Ablator) -> None:
    """F(every active node) = 1 with the clean metric bit for bit, F(empty) = 0, and ablating changes m."""
    every_error = [(h, p) for h in ab.hooks for p in range(ab.n_pos)]
    full = ab.scores(ab.all_active(), every_error)
    assert full.m_circuit == full.m_model, "keeping every active node must be the clean model"
    assert full.faithfulness == 1.0 and full.completeness == pytest.approx(1.0)
    empty = ab.scores([], [])
    assert empty.faithfulness == 0.0 and empty.m_circuit == empty.m_empty
    assert empty.m_empty != empty.m_model


@pytest.mark.parametrize("errors", ERROR_MODES)
@pytest.mark.parametrize("ablation", ABLATIONS)
def test_every_ablation_mode_has_exact_ends_on_the_demo_model(demo, circuit, ablation, errors):
    means = demo_reference_means(demo, n=8) if ablation == "mean" else None
    metric = circuit_metric(demo, circuit)
    ab = Ablator(demo, circuit.prompt.token_ids, metric, ablation=ablation, errors=errors, means=means)
    assert ab.clean_metric() == pytest.approx(circuit.metric_value, abs=1e-6)
    _ends(ab)


@pytest.mark.parametrize("errors", ERROR_MODES)
@pytest.mark.parametrize("ablation", ABLATIONS)
def test_every_ablation_mode_has_exact_ends_on_a_tiny_random_model(ablation, errors):
    from types import SimpleNamespace

    import torch

    from scd.discovery import metrics

    from .tiny_models import hooks_for, random_saes, tiny_model

    model = tiny_model(n_layers=2)
    saes = random_saes(model, hooks_for(2, ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")))
    tok = SimpleNamespace(bos_id=None, encode=lambda text: [int(c) for c in text.split()])
    bundle = SimpleNamespace(model=model, saes=saes, tokenizer=tok, device=torch.device("cpu"))
    means = (
        reference_means(bundle, ["1 2 3 4 5 6", "7 8 9 10 11", "12 13 14 15 16 17 18"])
        if ablation == "mean"
        else None
    )
    ab = Ablator(
        bundle,
        [3, 1, 4, 1, 5, 9, 2],
        metrics.build("logit", 6),
        ablation=ablation,
        errors=errors,
        means=means,
    )
    _ends(ab)


def test_mean_ablation_uses_the_reference_means(demo, circuit):
    """With a reference set, an ablated latent takes the reference mean: ablating a single latent moves m the
    same as splicing that mean in by hand would."""
    means = demo_reference_means(demo, n=8)
    metric = circuit_metric(demo, circuit)
    ab = Ablator(demo, circuit.prompt.token_ids, metric, ablation="mean", means=means)
    for h in ab.hooks:
        assert torch_equal(ab.f_value[h], means[h][0].to(ab.f_value[h].dtype))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_top_k_circuits_lie_between(demo, circuit):
    s = evaluate(circuit, demo)
    assert 0.0 < s.faithfulness < 1.0 and -1.0 < s.completeness < 3.0
    assert s.m_empty < s.m_circuit < s.m_model
    assert evaluate(circuit, demo, ablation="mean").m_empty != s.m_empty
    assert evaluate(circuit, demo, errors="keep").m_empty != s.m_empty


def _spearman(xs, ys):
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0] * len(v)
        for rank, i in enumerate(order):
            r[i] = rank
        return r

    n, rx, ry = len(xs), ranks(xs), ranks(ys)
    return 1 - 6 * sum((a - b) ** 2 for a, b in zip(rx, ry, strict=True)) / (n * (n * n - 1))


def test_faithfulness_grows_with_circuit_size(demo):
    ks = [1, 3, 10, 20, 50, 100]
    curve = faithfulness_curve(PROMPT, ks=ks, model=demo)
    assert [p.k for p in curve] == ks
    sizes = [p.n_features for p in curve]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    faith = [p.faithfulness for p in curve]
    assert faith[0] <= 0.5 and faith[-1] >= 0.8, faith
    assert all(-0.5 <= f <= 1.5 for f in faith), faith
    assert _spearman(ks, faith) >= 0.6, f"not increasing-ish with k: {faith}"


def test_discover_scores_flag(demo):
    c = discover(PROMPT, model=demo, top_k=10, scores=True)
    assert set(c.scores) == {
        "faithfulness",
        "completeness",
        "m_model",
        "m_empty",
        "m_circuit",
        "m_complement",
        "ablation",
    }
    assert c.scores["ablation"] == "zero/circuit"
    assert c.scores["faithfulness"] == pytest.approx(evaluate(c, demo).faithfulness)
    assert "scores: faithfulness" in summarize(c)


def test_evaluate_errors(demo, circuit):
    with pytest.raises(InputError, match="unknown ablation"):
        evaluate(circuit, demo, ablation="resample")
    with pytest.raises(InputError, match="error-term handling"):
        evaluate(circuit, demo, errors="drop")
    other = dataclasses.replace(circuit, model="gpt2-small")
    with pytest.raises(ModelError, match="score it with the bundle it came from"):
        evaluate(other, demo)


def test_mean_ablation_over_a_reference_file(demo, tmp_path):
    """--reference FILE: the means are taken over that text's positions (the scores say which), the same scores
    as evaluating with reference_means computed from its lines, and not those of the default reference."""
    from scd.core.errors import OptionError

    lines = ["f(a [b (c", "x = [1, (2, 3", "print(len(x))"]
    path = tmp_path / "ref.txt"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    c = discover(
        "Copyright (C", model=demo, metric="logit", scores=True, ablation="mean", reference=str(path)
    )
    assert c.scores["reference"] == "ref.txt (3 passages)" and c.scores["ablation"] == "mean/circuit"
    want = evaluate(c, demo, ablation="mean", means=reference_means(demo, lines))
    assert (c.scores["faithfulness"], c.scores["m_empty"]) == pytest.approx((want.faithfulness, want.m_empty))
    default = discover("Copyright (C", model=demo, metric="logit", scores=True, ablation="mean")
    assert default.scores["reference"] == "demo held-out text"
    assert default.scores["m_empty"] != pytest.approx(c.scores["m_empty"])
    with pytest.raises(OptionError, match="only used by mean ablation"):
        discover("Copyright (C", model=demo, reference=str(path))
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(InputError, match="has no passages"):
        discover(
            "Copyright (C", model=demo, scores=True, ablation="mean", reference=str(tmp_path / "empty.txt")
        )
