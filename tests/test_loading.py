"""load_bundle: the demo bundle, local Hugging Face GPT-2 folders, local sae_lens SAE folders, presets, and the
errors a user meets (misfit SAEs, missing tokenizer, no hub)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from scd.core.errors import InputError, ModelError
from scd.core.hooks import hook_sort_key
from scd.models.bundle import load_bundle
from scd.models.model import load_hf_gpt2_folder
from scd.models.presets import PRESETS, resolve_preset

from .tiny_hf import D_MODEL, save_sae, save_tiny_gpt2

HOOKS = [
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_attn_out",
    "blocks.1.hook_mlp_out",
    "blocks.1.hook_resid_post",
]


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    hf_model = save_tiny_gpt2(folder)
    return folder, hf_model


@pytest.fixture(scope="module")
def sae_parent(tmp_path_factory):
    parent = tmp_path_factory.mktemp("saes") / "tiny-saes"
    for i, hook in enumerate(HOOKS):
        save_sae(parent / hook, hook, seed=i)
    return parent


# -- demo -----------------------------------------------------------------------------------------------------------


def test_demo_bundle():
    bundle = load_bundle("demo")
    assert bundle.name == "demo" and bundle.sae_set == "demo"
    assert bundle.saes, "the demo bundle has SAEs"
    hooks = list(bundle.saes)
    assert hooks == sorted(hooks, key=hook_sort_key), "SAEs are kept in forward order"
    for hook, sae in bundle.saes.items():
        assert hook in bundle.model.hook_dict and sae.cfg.d_in == bundle.model.cfg.d_model
    ids = bundle.tokenizer.encode("f(a [b")
    assert ids[0] == bundle.tokenizer.bos_id and len(ids) == 7
    assert bundle.tokenizer.token_str(bundle.tokenizer.single_token_id(")")) == ")"
    assert bundle.neuronpedia(hooks[0], 3) is None


# -- local Hugging Face GPT-2 folder --------------------------------------------------------------------------------


def test_hf_folder_matches_hf_model(gpt2_folder, sae_parent):
    folder, hf_model = gpt2_folder
    bundle = load_bundle(str(folder), saes=str(sae_parent))
    assert bundle.name == "tiny-gpt2" and bundle.sae_set == "tiny-saes"
    assert list(bundle.saes) == HOOKS
    assert bundle.sae_ids["blocks.0.hook_attn_out"] == "blocks.0.hook_attn_out"
    tok = bundle.tokenizer
    assert tok.vocab_size == 261 and tok.bos_id == 260
    ids = tok.encode(" the cat")
    assert [tok.token_str(i) for i in ids] == ["<|endoftext|>", " the", " c", "a", "t"]
    x = torch.tensor([ids])
    with torch.no_grad():
        ours = bundle.model(x).log_softmax(-1)
        theirs = hf_model(x).logits.log_softmax(-1)
    # LayerNorm folding and centring change the logits by a constant per position, never the log-probs
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_hf_tokenizer_single_token_hint(gpt2_folder):
    _, tok = load_hf_gpt2_folder(gpt2_folder[0])
    assert tok.token_str(tok.single_token_id(" the")) == " the"
    with pytest.raises(InputError, match=r"'the' is 3 tokens.*' the' with a leading space is one token"):
        tok.single_token_id("the")


def test_hf_folder_without_tokenizer(tmp_path):
    folder = tmp_path / "no-tok"
    save_tiny_gpt2(folder, tokenizer=False)
    with pytest.raises(ModelError, match="has no tokenizer files"):
        load_hf_gpt2_folder(folder)
    # transformers 5 builds a tokenizer holding only <|endoftext|> from such a folder: the adapter refuses it
    # (transformers 4.57, which circuit-tracer pins, refuses the folder by itself with a TypeError)
    from transformers import AutoTokenizer

    from scd.models.hf_tokenizer import HFTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (TypeError, OSError, ValueError):
        return
    with pytest.raises(ModelError, match="empty vocabulary"):
        HFTokenizer(hf)


def test_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="--model demo"):
        load_bundle(str(tmp_path / "missing"))
    with pytest.raises(ModelError, match="no config.json"):
        load_bundle(str(tmp_path))


# -- local SAE folders ----------------------------------------------------------------------------------------------


def test_sae_comma_list(gpt2_folder, sae_parent):
    folders = [sae_parent / HOOKS[3], sae_parent / HOOKS[0]]
    bundle = load_bundle(str(gpt2_folder[0]), saes=",".join(map(str, folders)))
    assert list(bundle.saes) == [HOOKS[0], HOOKS[3]], "forward order, whatever order they were given in"
    assert bundle.sae_set == "tiny-saes"  # their common parent


def test_misfit_saes_are_named(gpt2_folder, sae_parent, tmp_path):
    wide = save_sae(tmp_path / "too-wide", "blocks.1.hook_resid_pre", d_in=2 * D_MODEL)
    deep = save_sae(tmp_path / "too-deep", "blocks.7.hook_resid_pre")
    good = sae_parent / HOOKS[0]
    with pytest.raises(ModelError) as err:
        load_bundle(str(gpt2_folder[0]), saes=[str(good), str(wide), str(deep)])
    line = err.value.line()
    assert "2 SAEs do not fit" in line
    assert "too-wide (d_in 64, but blocks.1.hook_resid_pre has width 32)" in line
    assert "too-deep (hook blocks.7.hook_resid_pre is not in the model)" in line
    assert HOOKS[0] not in line


def test_two_saes_on_one_hook(gpt2_folder, sae_parent, tmp_path):
    twin = save_sae(tmp_path / "twin", HOOKS[0], seed=9)
    with pytest.raises(ModelError, match="two SAEs read hook blocks.0.hook_resid_pre"):
        load_bundle(str(gpt2_folder[0]), saes=[str(sae_parent / HOOKS[0]), str(twin)])


def test_unknown_sae_set(gpt2_folder, tmp_path):
    with pytest.raises(ModelError, match="neither an SAE preset"):
        load_bundle(str(gpt2_folder[0]), saes=str(tmp_path / "nothing"))
    with pytest.raises(ModelError, match="no SAE set given"):
        load_bundle(str(gpt2_folder[0]))


# -- presets --------------------------------------------------------------------------------------------------------


def test_presets_resolve_against_shipped_yaml():
    res = resolve_preset("res-jb")
    assert [s.hook for s in res] == [f"blocks.{i}.hook_resid_pre" for i in range(12)] + [
        "blocks.11.hook_resid_post"
    ]
    assert {s.release for s in res} == {"gpt2-small-res-jb"}
    assert res[3].neuronpedia_url(42) == "https://www.neuronpedia.org/gpt2-small/3-res-jb/42"
    assert res[-1].neuronpedia_url(7) == "https://www.neuronpedia.org/gpt2-small/12-res-jb/7"
    for name in ("oai-v5-32k", "oai-v5-128k"):
        specs = resolve_preset(name)
        assert len(specs) == 36
        hooks = [s.hook for s in specs]
        assert hooks[:3] == ["blocks.0.hook_attn_out", "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post"]
        assert hooks == sorted(hooks, key=hook_sort_key)
        size = name.rsplit("-", 1)[1]
        assert all(size in s.release for s in specs)
    assert set(PRESETS) == {"res-jb", "oai-v5-32k", "oai-v5-128k"}
    with pytest.raises(ModelError, match="unknown SAE preset 'res-xx'"):
        resolve_preset("res-xx")


# -- no hub ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_offline_hub_errors_are_one_clear_line(gpt2_folder):
    script = textwrap.dedent(
        f"""
        from scd.core.errors import ModelError
        from scd.models.bundle import load_bundle
        for model, saes in (("gpt2-small", None), ({str(gpt2_folder[0])!r}, "res-jb")):
            try:
                load_bundle(model, saes=saes)
            except ModelError as e:
                print("ERR", e.line())
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("ERR ")]
    assert len(lines) == 2, out.stdout + out.stderr
    assert "cannot download gpt2-small" in lines[0]
    assert "cannot download SAE gpt2-small-res-jb/blocks.0.hook_resid_pre" in lines[1]
    for line in lines:
        assert "--model demo" in line and "--model PATH" in line and "\n" not in line
