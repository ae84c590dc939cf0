"""Batched discovery (``prompt_batch``) gives the circuits of one-by-one discovery, to float rounding.

Prompts of different lengths share a right-padded forward and backward; the model is causal, so each row computes
what its prompt alone computes, and only the rounding of the batched matmuls differs. Checked here field by field:
on the demo model (float32) through `discover_batch`, on a tiny random GPT-2 (float64) through `attribute_batch`,
and through `scd ingest` (resume and a prompt failing inside a batch). The attribution exactness tests
(tests/test_attribution.py: autograd, finite differences, interventions) also run on the batched path.

Tolerances: float64 -- 1e-10 relative to the largest |value| of the graph; float32 (demo) -- 1e-4 relative to the
circuit's largest |attribution| or |weight| (measured differences are ~2e-6). Node sets, edge sets and their
order must be equal exactly.
"""

from __future__ import annotations

import json

import pytest
import torch

from scd.core.config import StoreConfig
from scd.core.errors import InputError, ModelError
from scd.discovery.attribution import attribute, attribute_batch
from scd.discovery.discover import discover, discover_batch
from scd.discovery.metrics import log_prob, logit, logit_diff
from scd.ingest.pipeline import ingest
from scd.ingest.prompts import PromptSpec
from scd.store import open_store
from tests.tiny_models import hooks_for, random_saes, tiny_model

# demo prompts of 3 to 37 characters, one with an explicit target and one with a contrast
DEMO = [
    ("Copyright (C) 2019 Acme (see page 12", None, None),
    ("f(x", None, None),
    ("the list (of items [in the table {page 2", None, None),
    ("g(x, y", ")", None),
    ("f(a [b (c", ")", "]"),
    ("print(len(x", None, None),
    ("ab (cd [e {fg", None, None),
]


@pytest.fixture(scope="module")
def demo():
    from scd.models.bundle import load_bundle

    try:
        return load_bundle("demo")
    except ModelError as e:
        pytest.skip(f"demo model not available: {e}")


def _close(a: float, b: float, scale: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * scale


def assert_same_circuit(one, batched, rtol: float = 1e-4) -> None:
    """Every field of two Circuits equal: structure exactly, numbers to `rtol` of the circuit's largest value."""
    assert batched.id == one.id
    assert batched.params == one.params and batched.model == one.model and batched.saes == one.saes
    p, q = one.prompt, batched.prompt
    assert (q.text, q.tokens, q.token_ids, q.target, q.target_id, q.target_source, q.contrast) == (
        p.text,
        p.tokens,
        p.token_ids,
        p.target,
        p.target_id,
        p.target_source,
        p.contrast,
    )
    assert [t for t, _ in q.top_completions] == [t for t, _ in p.top_completions]
    assert q.target_prob == pytest.approx(p.target_prob, rel=rtol)
    assert q.loss == pytest.approx(p.loss, rel=rtol, abs=rtol)
    assert batched.metric_value == pytest.approx(one.metric_value, rel=rtol, abs=rtol)
    # nodes (features, error nodes, tokens, the logit): the same ids in the same order, same values
    assert [n.id for n in batched.nodes] == [n.id for n in one.nodes]
    assert sum(n.kind == "error" for n in one.nodes) > 0  # error nodes are part of what is compared
    attr_scale = max(abs(n.attribution) for n in one.nodes)
    for a, b in zip(one.nodes, batched.nodes, strict=True):
        assert (b.kind, b.layer, b.hook, b.index, b.pos, b.token, b.feature_id) == (
            a.kind,
            a.layer,
            a.hook,
            a.index,
            a.pos,
            a.token,
            a.feature_id,
        )
        assert _close(a.attribution, b.attribution, attr_scale, rtol), (a.id, a.attribution, b.attribution)
        assert b.activation == pytest.approx(a.activation, rel=rtol, abs=rtol), a.id
    # edges: the same pairs in the same order, same weights
    assert [(e.source, e.target) for e in batched.edges] == [(e.source, e.target) for e in one.edges]
    w_scale = max(abs(e.weight) for e in one.edges)
    for a, b in zip(one.edges, batched.edges, strict=True):
        assert _close(a.weight, b.weight, w_scale, rtol), (a.source, a.target, a.weight, b.weight)
    assert batched.features == one.features
    assert batched.scores.keys() == one.scores.keys()
    for k, v in one.scores.items():
        if isinstance(v, float):
            assert batched.scores[k] == pytest.approx(v, rel=rtol, abs=rtol), k
        else:
            assert batched.scores[k] == v, k


def test_demo_batched_equals_one_by_one(demo):
    texts, targets, contrasts = (list(x) for x in zip(*DEMO, strict=True))
    assert len({len(demo.tokenizer.encode(t)) for t in texts}) == len(texts)  # all lengths differ
    one = [
        discover(t, model=demo, target=tg, contrast=c, scores=True)
        for t, tg, c in zip(texts, targets, contrasts, strict=True)
    ]
    # 3 per batch: batches of different shapes, and a last batch of one
    batched = discover_batch(
        texts, model=demo, targets=targets, contrasts=contrasts, prompt_batch=3, scores=True
    )
    assert len(batched) == len(one)
    for a, b in zip(one, batched, strict=True):
        assert_same_circuit(a, b)


def test_demo_batch_keeps_going_past_a_bad_prompt(demo):
    """A prompt that fails inside a batch is that prompt's InputError; the others get their circuits."""
    bad_contrast = discover("f(x", model=demo, top_k=3).prompt.target  # the contrast would be the target
    results = discover_batch(
        ["f(x", "f(x", "", "print(len(x"],
        model=demo,
        targets=[None, None, None, None],
        contrasts=[None, bad_contrast, None, None],
        prompt_batch=4,
        top_k=3,
    )
    assert isinstance(results[1], InputError) and "the target itself" in results[1].problem
    assert isinstance(results[2], InputError) and "empty" in results[2].problem
    assert_same_circuit(discover("f(x", model=demo, top_k=3), results[0])
    assert_same_circuit(discover("print(len(x", model=demo, top_k=3), results[3])


# -- tiny random GPT-2 (float64) -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    model = tiny_model()
    return model, random_saes(model, hooks_for(2), ["standard", "topk", "jumprelu", "standard", "topk"] * 2)


SEQUENCES = [[0, 5, 3, 7, 2, 9, 4, 11], [1, 2], [4, 4, 6, 1, 2, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 19], [7]]
METRICS = [log_prob(3), logit_diff(2, 5), logit(7), log_prob(0)]


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 10},
        {"all_nodes": True},
        {"top_k": 5, "batch_size": 7, "edge_threshold": 1e-3},
        {"top_k": None, "node_threshold": 0.01},
        {"method": "ig", "ig_steps": 3, "top_k": 6},
    ],
    ids=["top-k", "all-nodes", "small-batches+edge-threshold", "node-threshold", "ig"],
)
def test_tiny_gpt2_batched_equals_one_by_one(tiny, options):
    model, saes = tiny
    tokens = [torch.tensor([s]) for s in SEQUENCES]
    one = [attribute(model, saes, t, m, **options) for t, m in zip(tokens, METRICS, strict=True)]
    batched = attribute_batch(model, saes, tokens, METRICS, **options)
    for a, b in zip(one, batched, strict=True):
        assert b.nodes == a.nodes
        assert torch.equal(b.edges, a.edges) and len(a.edges) > 0
        for field in ("activations", "attributions", "weights", "logits"):
            x, y = getattr(a, field), getattr(b, field)
            scale = float(x.abs().max())
            torch.testing.assert_close(y, x, rtol=0, atol=1e-10 * scale, msg=field)
        assert b.metric_value == pytest.approx(a.metric_value, rel=1e-12, abs=1e-12)


def test_attribute_batch_refuses_mismatched_inputs(tiny):
    model, saes = tiny
    with pytest.raises(ValueError, match="one metric per prompt"):
        attribute_batch(model, saes, [torch.tensor([[1, 2]])], [log_prob(1), log_prob(2)])


def test_left_padding_tokenizers_fall_back_to_one_by_one(tiny, monkeypatch):
    """TransformerLens masks pad tokens and shifts positions when its tokenizer pads left: no batch then."""
    from types import SimpleNamespace

    import scd.discovery.attribution as attribution
    from scd.discovery.splice import batchable

    model, saes = tiny
    assert batchable(model)  # no tokenizer: right padding
    assert not batchable(SimpleNamespace(tokenizer=SimpleNamespace(padding_side="left")))
    calls = []
    real = attribution._Attribution.run

    def spy(self, *args, **kwargs):
        calls.append(len(self.tokens))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(attribution._Attribution, "run", spy)
    monkeypatch.setattr(attribution, "batchable", lambda model: False)
    tokens = [torch.tensor([s]) for s in SEQUENCES[:2]]
    graphs = attribute_batch(model, saes, tokens, METRICS[:2], top_k=4)
    assert calls == [1, 1] and len(graphs) == 2


# -- ingest --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ingest_in_batches_equals_one_by_one_and_resumes(demo, tmp_path):
    texts = [t for t, _, _ in DEMO] + ["x = [1, 2, [3, 4", "if (x > 3"]
    specs = [PromptSpec(t, line=i + 1) for i, t in enumerate(texts)]
    bad = PromptSpec("f(x", contrast=discover("f(x", model=demo, top_k=3).prompt.target, line=99)

    def run(path, prompts, prompt_batch):
        config = StoreConfig.resolve(store=str(tmp_path / path))
        with open_store(config) as store:
            return ingest(
                prompts,
                store,
                model=demo,
                top_k=3,
                prompt_batch=prompt_batch,
                progress=False,
                json_out=tmp_path / f"{path}-json",
            )

    one = run("one", specs, 1)
    assert (one.written, one.failed) == (len(specs), [])
    # a first batched run stops after 4 prompts; the rerun (3 per batch, with a failing prompt) finishes
    first = run("batched", specs[:4], 3)
    assert first.written == 4
    rerun = run("batched", specs[:2] + [bad] + specs[2:], 3)
    assert (rerun.written, rerun.skipped) == (len(specs) - 4, 4)
    assert [f.line for f in rerun.failed] == [99] and "the target itself" in rerun.failed[0].reason

    def circuits(path):
        out = {}
        for f in (tmp_path / f"{path}-json").glob("*.json"):
            c = json.loads(f.read_text(encoding="utf-8"))
            out[c["id"]] = c
        return out

    a, b = circuits("one"), circuits("batched")
    assert a.keys() == b.keys() and len(a) == len(specs)
    for cid, c in a.items():
        assert [n["id"] for n in b[cid]["nodes"]] == [n["id"] for n in c["nodes"]]
        assert [(e["source"], e["target"]) for e in b[cid]["edges"]] == [
            (e["source"], e["target"]) for e in c["edges"]
        ]
    with open_store(StoreConfig.resolve(store=str(tmp_path / "one")), read_only=True) as s1:
        with open_store(StoreConfig.resolve(store=str(tmp_path / "batched")), read_only=True) as s2:
            assert s1.stats() == s2.stats()
