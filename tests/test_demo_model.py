"""The shipped demo model and its SAEs meet issue 3's bounds on held-out generated text (no retraining here)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import scd.demo as demo
from scd.cli import main
from scd.core.errors import InputError, ModelError
from scd.demo import corpus
from scd.demo.evaluate import N_TEXTS, TEXT_LEN, closer_scores, next_logits, sae_scores, splice_hooks
from scd.demo.tokenizer import CharTokenizer
from scd.demo.train import hook_names

pytestmark = pytest.mark.skipif(not demo.is_present(), reason="the demo weights are not built")


@pytest.fixture(scope="module")
def model():
    return demo.load_model()


@pytest.fixture(scope="module")
def tok():
    return demo.load_tokenizer()


@pytest.fixture(scope="module")
def saes():
    return demo.load_saes()


@pytest.fixture(scope="module")
def cases(model):
    return corpus.eval_cases(n_per_depth=250, max_len=min(63, model.cfg.n_ctx - 1), seed=0)


@pytest.fixture(scope="module")
def sae_metrics(model, tok, saes):
    return sae_scores(model, tok, saes, corpus.texts(N_TEXTS, TEXT_LEN, seed=0, held_out=True))


# -- the package data ----------------------------------------------------------------------------------------------


def test_weights_layout_and_size():
    cfg = demo.load_config()
    assert 2 <= cfg["n_layers"] <= 4 and 64 <= cfg["d_model"] <= 128 and cfg["n_ctx"] >= 64
    assert cfg["normalization_type"] == "LN" and cfg["act_fn"] == "gelu" and cfg["d_mlp"] > 0
    assert list(demo.sae_folders()) == hook_names(cfg["n_layers"])
    size = sum(p.stat().st_size for p in demo.WEIGHTS.rglob("*") if p.is_file())
    assert size <= 10 * 2**20, f"shipped weights are {size / 2**20:.1f} MB"


def test_sae_folders_are_plain_sae_lens_folders(saes, model):
    for hook, folder in demo.sae_folders().items():
        cfg = json.loads((folder / "cfg.json").read_text())
        assert cfg["d_in"] == model.cfg.d_model and 256 <= cfg["d_sae"] <= 512
        assert cfg["normalize_activations"] == "none"
        assert cfg["metadata"]["hook_name"] == hook
        assert not saes[hook].training


def test_missing_weights_is_a_model_error(tmp_path, monkeypatch):
    assert not demo.is_present(tmp_path)
    monkeypatch.setattr(demo, "WEIGHTS", tmp_path)  # the defaults follow WEIGHTS at call time
    assert not demo.is_present() and demo.sae_folders() == {}
    with pytest.raises(ModelError, match="no demo model"):
        demo.load_model(tmp_path)


# -- the model ------------------------------------------------------------------------------------------------------


def test_closer_accuracy(model, tok, cases):
    scores = closer_scores(model, tok, cases)
    assert set(scores["by_depth"]) == {1, 2, 3, 4}
    assert scores["acc"] >= 0.97, scores


def test_copyright_closes(model, tok):
    logits = next_logits(model, tok, ["Copyright (C"])[0]
    assert tok.token_str(int(logits.argmax())) == ")"


# -- the SAEs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hook", hook_names(demo.load_config()["n_layers"]) if demo.is_present() else [])
def test_sae_quality(sae_metrics, hook):
    m = sae_metrics[hook]
    assert m.fvu <= 0.1, m
    assert 1 <= m.l0 <= 32, m
    assert m.dead <= 0.25, m


def test_spliced_without_error_terms_keeps_closer_accuracy(model, tok, saes, cases):
    assert closer_scores(model, tok, cases, splice_hooks(saes))["acc"] >= 0.95


def test_spliced_with_error_terms_matches_clean_logits(model, tok, saes, cases):
    prompts = [c.prompt for c in cases[::10]]
    clean = next_logits(model, tok, prompts)
    spliced = next_logits(model, tok, prompts, splice_hooks(saes, keep_error=True))
    torch.testing.assert_close(spliced, clean, atol=1e-4, rtol=1e-4)
    # and the splice really ran through the SAEs: without the error terms the logits move
    assert not torch.allclose(next_logits(model, tok, prompts, splice_hooks(saes)), clean, atol=1e-3)


# -- the tokenizer --------------------------------------------------------------------------------------------------


def test_tokenizer_round_trip(tok):
    text = 'Copyright (C) 2024 f(x) = {a + [b * (c - 1)]}; "quoted" 50% a_b @x #1 $2 a&b <>?!'
    ids = tok.encode(text)
    assert ids[0] == tok.bos_id == 0 and len(ids) == len(text) + 1
    assert "".join(tok.token_str(i) for i in ids[1:]) == text
    assert tok.single_token_id(")") == ids[text.index(")") + 1]
    assert tok.vocab_size == len(CharTokenizer().tokens)


def test_tokenizer_names_unknown_characters(tok):
    with pytest.raises(InputError) as e:
        tok.encode("café ~ (x)")
    msg = e.value.line()
    assert "'é'" in msg and "'~'" in msg and "letters, digits, space" in msg
    with pytest.raises(InputError, match="single token"):
        tok.single_token_id("ab")


# -- the corpus -----------------------------------------------------------------------------------------------------


def test_closers_due_and_expected_closer():
    due = corpus.closers_due("f(a [b (c)] d) {x}")
    assert [(d.pos, d.char, d.depth) for d in due] == [(9, ")", 3), (10, "]", 2), (13, ")", 1), (17, "}", 1)]
    assert corpus.expected_closer("Copyright (C") == ")"
    assert corpus.expected_closer("f(a [b (c") == ")"
    assert corpus.expected_closer("f(a [b (c)") == "]"
    assert corpus.expected_closer("no brackets") is None


def test_corpus_is_seeded_and_held_out_differs():
    assert corpus.texts(3, 80, seed=5) == corpus.texts(3, 80, seed=5)
    assert corpus.texts(3, 80, seed=5) != corpus.texts(3, 80, seed=5, held_out=True)
    cases = corpus.eval_cases(n_per_depth=20, seed=1)
    assert {c.depth for c in cases} == {1, 2, 3, 4} and len(cases) == 80
    assert all(corpus.expected_closer(c.prompt) == c.closer for c in cases)
    tok = CharTokenizer()
    for t in corpus.texts(200, 127, seed=3):
        tok.encode(t)  # the corpus only uses the vocabulary


# -- the CLI --------------------------------------------------------------------------------------------------------


def test_cli_eval_prints_metrics():
    result = CliRunner().invoke(main, ["demo-model", "eval", "--no-saes"])
    assert result.exit_code == 0, result.output
    assert "closer accuracy" in result.output and "Copyright (C" in result.output


def test_cli_eval_missing_weights(tmp_path):
    result = CliRunner().invoke(main, ["demo-model", "eval", "--weights", str(tmp_path)])
    assert result.exit_code == 1
    assert "no demo model" in result.output and "scd demo-model train" in result.output


def test_cli_help():
    for args in (
        ["demo-model", "--help"],
        ["demo-model", "train", "--help"],
        ["demo-model", "eval", "--help"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "Example" in result.output


@pytest.mark.slow
def test_cli_train_writes_a_loadable_folder(tmp_path):
    """A 2-step smoke run of the training command (the shipped weights are never retrained here)."""
    out = tmp_path / "weights"
    result = CliRunner().invoke(
        main,
        [
            "demo-model",
            "train",
            "--out",
            str(out),
            "--steps",
            "2",
            "--sae-steps",
            "2",
            "--transcoder-steps",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert demo.is_present(out) and list(demo.load_saes(out)) == hook_names(demo.load_config(out)["n_layers"])
    assert demo.load_model(out).cfg.n_ctx == demo.load_config()["n_ctx"]
    assert json.loads((out / "training.json").read_text())["train"]["steps"] == 2
    assert json.loads((out / "transcoders" / "training.json").read_text())["spec"]["steps"] == 2
