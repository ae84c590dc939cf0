"""discover(): targets, metrics, the assembled Circuit, its summary and JSON, the CLI, and every user error.

Most tests run the bundled demo model (a character-level bracket model: "Copyright (C" -> ")"); one runs a tiny
random Hugging Face GPT-2 folder to cover the BPE tokenizer path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from scd.cli import main
from scd.core.circuit import Circuit
from scd.core.errors import InputError, ModelError
from scd.demo.corpus import expected_closer
from scd.discovery.discover import discover, prepare
from scd.models.bundle import load_bundle
from scd.report.summary import strongest_paths, summarize

from .tiny_hf import save_sae, save_tiny_gpt2

NESTED = ["f(g(h(x", "g(x) = {a - [b + (c * 2", "x = [0, [1, [2, 3"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    return load_bundle("demo")


@pytest.fixture(scope="module")
def copyright_circuit(demo):
    return discover("Copyright (C", model=demo)


# -- the demo model's circuits --------------------------------------------------------------------------------------


def _check_paths_end_in_logit(circuit: Circuit):
    logit = next(n for n in circuit.nodes if n.kind == "logit")
    # over every maximal path of the graph (any sink), the strongest ones end in the target's logit
    paths = strongest_paths(circuit, 3, end=None)
    assert paths, "the circuit has paths"
    assert all(p.nodes[-1] == logit.id for p in paths), [p.nodes for p in paths]
    assert circuit.node(paths[0].nodes[0]).kind == "token", "the strongest path starts at an input token"
    return logit


def test_copyright_explains_the_predicted_closer(copyright_circuit):
    c = copyright_circuit
    p = c.prompt
    assert (p.text, p.target, p.target_source) == ("Copyright (C", ")", "predicted")
    assert p.tokens[0] == "<bos>" and p.tokens[1:] == list("Copyright (C")
    assert p.top_completions[0][0] == ")" and p.target_prob == pytest.approx(p.top_completions[0][1])
    assert p.target_prob > 0.5 and p.loss == pytest.approx(
        -torch.tensor(p.target_prob).log().item(), rel=1e-4
    )
    assert c.metric_value == pytest.approx(-p.loss, abs=1e-4)
    assert c.params == {
        "method": "atp",
        "ig_steps": None,
        "top_k": 20,
        "node_threshold": None,
        "edge_threshold": 0.0,
        "metric": "log_prob",
        "target_mode": "predicted",
        "contrast": None,
    }
    logit = _check_paths_end_in_logit(c)
    assert logit.id == f"logit/{p.target_id}@{len(p.tokens) - 1}" and logit.index == p.target_id

    text = summarize(c)
    assert "'Copyright (C' -> ')'" in text
    assert "Strongest paths to the logit ')'" in text
    first_path = text.split("Strongest paths to the logit ')'")[1].splitlines()[1]
    assert first_path.strip().startswith("1. [") and first_path.endswith("logit ')'")
    for hook in c.saes:
        assert f"\n  {hook}\n" in text or not any(n.hook == hook for n in c.nodes)


@pytest.mark.parametrize("prompt", NESTED)
def test_nested_brackets_end_in_the_due_closer(demo, prompt):
    c = discover(prompt, model=demo, top_k=10)
    assert c.prompt.target == expected_closer(prompt)
    _check_paths_end_in_logit(c)
    assert f"logit {c.prompt.target!r}" in summarize(c).rsplit("Strongest paths", 1)[1]


def test_circuit_structure(copyright_circuit, demo):
    c = copyright_circuit
    ids = [n.id for n in c.nodes]
    assert len(set(ids)) == len(ids)
    kinds = {n.kind for n in c.nodes}
    assert {"token", "logit"} <= kinds and kinds & {"resid", "attn", "mlp"}
    assert sum(n.kind == "token" for n in c.nodes) == len(c.prompt.tokens)
    per_hook = {}
    for n in c.nodes:
        if n.kind in ("resid", "attn", "mlp"):
            per_hook[n.hook] = per_hook.get(n.hook, 0) + 1
            assert n.id == f"{n.hook}/{n.index}@{n.pos}" and n.activation > 0
            assert n.feature_id == f"demo/demo/{n.hook}/{n.index}"
        elif n.kind == "error":
            assert n.id == f"{n.hook}/error@{n.pos}" and n.feature_id == f"demo/demo/{n.hook}/error"
        assert n.token == c.prompt.tokens[n.pos]
    assert max(per_hook.values()) <= 20
    node_ids = set(ids)
    assert c.edges and all(e.source in node_ids and e.target in node_ids for e in c.edges)
    # features: exactly those the nodes point at, SAE latents with their direct logit effects
    assert {f.id for f in c.features} == {n.feature_id for n in c.nodes}
    for f in c.features:
        if f.kind in ("resid", "attn", "mlp"):
            assert len(f.top_promoted) == 10 and len(f.top_suppressed) == 10
            assert f.top_promoted_logits == sorted(f.top_promoted_logits, reverse=True)
            assert f.sae == c.saes[f.hook] and f.neuronpedia_url is None
        elif f.kind == "error":
            assert "error" in f.label and f.top_promoted == []
        elif f.kind == "logit":
            assert f.label == "logit of ')'"
    assert list(c.saes) == list(demo.saes)


def test_direct_logit_effect_is_the_decoder_row_through_the_unembedding(copyright_circuit, demo):
    from scd.discovery.features import unembed_directions

    f = next(f for f in copyright_circuit.features if f.kind in ("resid", "attn", "mlp"))
    row = demo.saes[f.hook].W_dec[f.index].detach()
    effects = unembed_directions(demo, row[None])[0]
    top = effects.topk(10).indices.tolist()
    assert f.top_promoted == [demo.tokenizer.token_str(i) for i in top]


def test_json_round_trip(copyright_circuit, tmp_path):
    c = copyright_circuit
    path = tmp_path / "c.json"
    c.to_json(path)
    back = Circuit.from_json(path)
    assert back.id == c.id and back.to_json() == c.to_json()
    assert back.nodes_df().shape == (len(c.nodes), 11) and len(back.edges_df()) == len(c.edges)
    data = json.loads(path.read_text())
    assert data["prompt"]["target"] == ")" and data["id"] == c.id


def test_explicit_target_and_contrast(demo):
    c = discover(NESTED[1], model=demo, target="]", contrast=")", top_k=5)
    p = c.prompt
    assert (p.target, p.target_source, p.contrast) == ("]", "explicit", ")")
    assert c.params["metric"] == "logit_diff" and c.params["contrast"] == ")"
    assert c.metric_value < 0, "the model prefers ')' to ']' here, so logit(']') - logit(')') < 0"
    assert c.id != discover(NESTED[1], model=demo, target="]", top_k=5).id


def test_demeaned_logit_metric(demo):
    c = discover("Copyright (C", model=demo, metric="logit", top_k=5)
    assert c.params["metric"] == "logit"
    with torch.no_grad():
        last = demo.model(torch.tensor([c.prompt.token_ids]))[0, -1].double()
    assert c.metric_value == pytest.approx(float(last[c.prompt.target_id] - last.mean()), rel=1e-4)
    assert c.id != discover("Copyright (C", model=demo, top_k=5).id, (
        "the metric is part of the circuit's identity"
    )
    logit_node = next(n for n in c.nodes if n.kind == "logit")
    assert logit_node.attribution == pytest.approx(c.metric_value, rel=1e-5)


def test_last_token_convention(demo):
    c = discover("Copyright (C)", model=demo, target_mode="last-token", top_k=5)
    p = c.prompt
    assert (p.text, p.target, p.target_source) == ("Copyright (C", ")", "last-token")
    assert p.tokens[-1] == "C"
    predicted = discover("Copyright (C", model=demo, top_k=5)
    assert predicted.prompt_id == c.prompt_id, "same text, model and target: the same prompt"
    assert c.metric_value == pytest.approx(predicted.metric_value, abs=1e-5)


def test_integrated_gradients(demo):
    c = discover(NESTED[0], model=demo, method="ig", ig_steps=3, top_k=5)
    assert c.params["method"] == "ig" and c.params["ig_steps"] == 3
    assert c.prompt.target == ")"


# -- errors ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": "   "}, "the prompt is empty"),
        ({"prompt": "caf\u00e9 (au"}, "vocabulary has no '\u00e9'"),
        ({"prompt": "x" * 500}, "longer than the model's context"),
        ({"prompt": "f(a", "target": "ab"}, "not a single token"),
        ({"prompt": "f(a", "target": ")", "contrast": ")"}, "is the target itself"),
        ({"prompt": "f(a", "method": "xyz"}, "unknown method"),
        ({"prompt": "f(a", "target_mode": "last-token", "target": ")"}, "last-token convention"),
        ({"prompt": "f", "target_mode": "last-token"}, "single token"),
        ({"prompt": "f(a", "top_k": 0}, "top_k must be >= 1"),
        ({"prompt": "f(a", "metric": "kl"}, "unknown metric 'kl'"),
        ({"prompt": "f(a", "metric": "logit-diff"}, "needs a contrast token"),
        ({"prompt": "f(a", "metric": "logit", "contrast": "]"}, "needs a contrast token and only it"),
    ],
)
def test_input_errors(demo, kwargs, message):
    prompt = kwargs.pop("prompt")
    with pytest.raises(InputError, match=message) as err:
        discover(prompt, model=demo, **kwargs)
    assert "\n" not in err.value.line()


def test_zero_gradient_is_an_input_error(demo, monkeypatch):
    import scd.discovery.attribution as attribution

    real = attribution.attribute_batch

    def flat(*args, **kwargs):
        graphs = real(*args, **kwargs)
        for graph in graphs:
            graph.attributions = torch.where(
                torch.tensor([n.kind == "logit" for n in graph.nodes]), graph.attributions, 0.0
            )
        return graphs

    monkeypatch.setattr(attribution, "attribute_batch", flat)
    with pytest.raises(InputError, match="gradient is zero"):
        discover("f(a", model=demo, top_k=3)


def test_saes_with_a_bundle_is_refused(demo):
    with pytest.raises(InputError, match="ModelBundle"):
        discover("f(a", model=demo, saes="demo")


# -- a local Hugging Face GPT-2 folder ------------------------------------------------------------------------------


def test_discover_on_local_gpt2_folder(tmp_path):
    save_tiny_gpt2(tmp_path / "gpt2")
    for i, hook in enumerate(["blocks.0.hook_resid_pre", "blocks.0.hook_mlp_out", "blocks.1.hook_resid_pre"]):
        save_sae(tmp_path / "saes" / hook, hook, seed=i)
    bundle = load_bundle(str(tmp_path / "gpt2"), saes=str(tmp_path / "saes"))
    c = discover(" the cat", model=bundle, top_k=4)
    assert c.prompt.tokens == ["<|endoftext|>", " the", " c", "a", "t"]
    assert c.model == "gpt2" and c.sae_set == "saes"
    assert Circuit.from_json(c.to_json()).to_json() == c.to_json()
    c2 = discover(" the cat", model=bundle, top_k=4, target=" the")
    assert c2.prompt.target == " the" and c2.prompt.target_source == "explicit"
    with pytest.raises(InputError, match="leading space is one token"):
        discover(" the cat", model=bundle, target="the")


# -- CLI ------------------------------------------------------------------------------------------------------------


def test_cli_discover_prints_summary_and_writes_json(tmp_path):
    out = tmp_path / "c.json"
    result = CliRunner().invoke(
        main, ["discover", "Copyright (C", "--model", "demo", "--top-k", "5", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("'Copyright (C' -> ')'"), (
        "stdout holds the summary alone (no library chatter)"
    )
    assert "Strongest paths to the logit ')'" in result.stdout
    c = Circuit.from_json(out)
    assert c.prompt.target == ")" and c.params["top_k"] == 5
    assert f"wrote {out} (circuit {c.id})" in result.stdout


def test_cli_options_reach_discover(tmp_path):
    out = tmp_path / "c.json"
    args = [
        "discover",
        "f(a [b (c",
        "--target",
        "]",
        "--contrast",
        ")",
        "--method",
        "ig",
        "--ig-steps",
        "2",
        "--top-k",
        "3",
        "--node-threshold",
        "0.0001",
        "--edge-threshold",
        "0.001",
        "--batch-size",
        "7",
        "--json",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    c = Circuit.from_json(out)
    assert c.params == {
        "method": "ig",
        "ig_steps": 2,
        "top_k": 3,
        "node_threshold": 0.0001,
        "edge_threshold": 0.001,
        "metric": "logit_diff",
        "target_mode": "predicted",
        "contrast": ")",
    }
    assert all(abs(e.weight) >= 0.001 for e in c.edges)
    result = CliRunner().invoke(main, ["discover", "Copyright (C)", "--last-token-target", "--top-k", "3"])
    assert result.exit_code == 0 and "the prompt's last token" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["discover", ""], 2, "Error: the prompt is empty -- "),
        (["discover", "caf\u00e9"], 2, "Error: the demo model's vocabulary has no '\u00e9'"),
        (["discover", "f(a", "--target", "ab"], 2, "not a single token of the demo model"),
        (["discover", "f(a", "--model", "no/such/model"], 1, "Error: unknown model 'no/such/model'"),
        (["discover", "f(a", "--saes", "no-such-set"], 1, "neither an SAE preset"),
        (["discover", "f(a", "--top-k", "0"], 2, "Error: top_k must be >= 1"),
    ],
)
def test_cli_errors_are_one_line(args, code, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    if message.startswith("Error: "):
        assert len(result.stderr.strip().splitlines()) == 1


def test_example_prompts_are_demo_prompts(demo):
    lines = (REPO / "examples" / "prompts.txt").read_text().splitlines()
    prompts = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert len(prompts) >= 24 and len(set(prompts)) == len(prompts)
    wrong = []
    for prompt in prompts:
        setup = prepare(demo, prompt)  # raises on characters the vocabulary lacks
        closer = expected_closer(prompt)
        assert closer is not None, prompt
        if demo.tokenizer.token_str(setup.target_id) != closer:
            wrong.append(prompt)
    assert len(wrong) <= len(prompts) // 10, f"the demo model does not predict the due closer for {wrong}"


def test_missing_demo_weights_error(monkeypatch, tmp_path):
    import scd.demo

    monkeypatch.setattr(scd.demo, "WEIGHTS", tmp_path / "nothing")
    with pytest.raises(ModelError, match="demo model's weights are missing"):
        load_bundle("demo")
