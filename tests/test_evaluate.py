"""Faithfulness and completeness on the demo model: the exact ends (all features = 1, none = 0) and what lies
between (top-k circuits, increasing with k)."""

from __future__ import annotations

import dataclasses

import pytest

from scd.core.errors import InputError, ModelError
from scd.discovery.discover import discover, faithfulness_curve
from scd.discovery.evaluate import Ablator, circuit_metric, evaluate
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
    }
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
