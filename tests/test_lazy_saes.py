"""Lazy SAE sets (scd.models.lazy): per-prompt slices of SAEs loaded one at a time give the eager path's circuits.

The eager path holds every SAE and attributes with them whole; the lazy path loads each SAE once per chunk of
prompts, keeps the latents the prompts fire and frees it. Checked on a tiny random GPT-2 with SAEs of the three
sae_lens architectures (standard, TopK, JumpReLU) at every splice sublayer: the circuits (nodes, ids, latent
indices, error nodes, edges, activations, features, ids) are equal, and one chunk loads each SAE once.

Attributions and edge weights agree to float32 rounding, not bit for bit: ∂m/∂f = J_decᵀ ∂m/∂x̂ is a matrix
product over the slice's latents rather than all of them, and BLAS rounds products of different shapes
differently (measured: |Δ| <= 2e-8 on values ~1e-2). Feature activations and error terms are bit for bit the
full SAE's (the slice returns the full SAE's recorded f and x̂).
"""

from __future__ import annotations

import json

import pytest
import torch

from scd.core.circuit import Circuit
from scd.discovery.discover import discover, prepare
from scd.models.bundle import load_bundle
from scd.models.lazy import LazySAESet, SlicedSAE
from scd.models.model import load_hf_gpt2_folder

from .tiny_hf import save_tiny_gpt2
from .tiny_models import random_saes

HOOKS = [
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_attn_out",
    "blocks.0.hook_mlp_out",
    "blocks.1.hook_resid_pre",
    "blocks.1.hook_attn_out",
    "blocks.1.hook_resid_post",
]
KINDS = ["standard", "topk", "jumprelu", "topk", "standard", "jumprelu"]
PROMPTS = [" the cat sat", "the the c", " c at the"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lazy")
    save_tiny_gpt2(tmp / "gpt2")
    model, _ = load_hf_gpt2_folder(tmp / "gpt2", "cpu")
    with torch.no_grad():
        saes = random_saes(model, HOOKS, KINDS, d_sae=256, n_active=8, dtype="float32")
    for hook, sae in saes.items():
        sae.save_model(tmp / "saes" / hook)
    return tmp / "gpt2", tmp / "saes"


def _circuits(bundle, **options):
    return [discover(p, model=bundle, **({"top_k": 6} | options)) for p in PROMPTS]


@pytest.fixture(scope="module")
def eager(folders):
    bundle = load_bundle(str(folders[0]), saes=str(folders[1]), lazy_saes=False)
    assert not bundle.lazy and not isinstance(bundle.saes, LazySAESet)
    return bundle


@pytest.fixture(scope="module")
def lazy(folders):
    return load_bundle(str(folders[0]), saes=str(folders[1]), lazy_saes=True)


OPTIONS = [
    pytest.param({}, id="top-k"),
    # the smallest cut (every feature with a non-zero attribution), integrated gradients
    pytest.param(
        {"node_threshold": 0.0, "top_k": None, "method": "ig", "ig_steps": 2},
        id="ig-all",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.slow  # ~14 s per case on 2 cores
@pytest.mark.parametrize("options", OPTIONS)
def test_lazy_circuits_equal_eager_circuits(eager, lazy, options):
    assert lazy.lazy and list(lazy.saes) == list(eager.saes) and "loaded lazily" in lazy.describe()
    want = _circuits(eager, **options)
    got = _circuits(lazy, **options)
    for w, g in zip(want, got, strict=True):
        assert [n.id for n in g.nodes] == [n.id for n in w.nodes]
        assert {n.index for n in g.nodes if n.kind == "resid"} - set(range(256)) == set()
        assert [n.id for n in g.nodes if n.kind == "error"] == [n.id for n in w.nodes if n.kind == "error"]
        assert [(e.source, e.target) for e in g.edges] == [(e.source, e.target) for e in w.edges]
        # the whole record bit for bit, but for attributions and edge weights (float32 rounding, see above)
        jg, jw = json.loads(g.to_json()), json.loads(w.to_json())
        for j in (jg, jw):
            attr = [n.pop("attribution") for n in j["nodes"]]
            weight = [e.pop("weight") for e in j["edges"]]
            j["values"] = torch.tensor(attr + weight, dtype=torch.float64)
            j.pop("created_at")
        vg, vw = jg.pop("values"), jw.pop("values")
        assert jg == jw
        assert torch.allclose(vg, vw, rtol=1e-5, atol=1e-6 * float(vw.abs().max()))
        assert g.id == w.id
    # features carry the full SAE's decoder rows (direct logit effects) at the SAE's own latent indices
    assert any(f.top_promoted for c in got for f in c.features if f.kind in ("resid", "attn", "mlp"))


def test_lazy_slices_are_small_and_loads_are_shared_by_a_chunk(folders, eager):
    lazy = load_bundle(str(folders[0]), saes=str(folders[1]), lazy_saes=True)
    assert lazy.saes.loads == 0, "configs only at load time"
    token_lists = [prepare(lazy, p).token_ids for p in PROMPTS]
    lazy.plan(token_lists)
    for p in PROMPTS:
        discover(p, model=lazy, top_k=6)
    assert lazy.saes.loads == len(HOOKS), "one chunk: each SAE loaded once for all three prompts"
    tokens = torch.tensor([token_lists[0]])
    sliced = lazy.saes.slice_for(lazy.model, tokens)
    for hook, s in sliced.items():
        assert isinstance(s, SlicedSAE)
        assert 0 < len(s.latents) < 256 and bool((s.latents[1:] > s.latents[:-1]).all())
        # the slice's latents are exactly those the full SAE fires on this prompt
        _, cache = eager.model.run_with_cache(tokens, names_filter=hook)
        f = eager.saes[hook].encode(cache[hook][0])
        assert torch.equal((f != 0).any(0).nonzero().squeeze(1), s.latents)
        assert torch.equal(s.encode(cache[hook][0]), f[:, s.latents])


def test_ingest_announces_its_prompts_so_one_load_serves_them_all(folders, eager, tmp_path):
    from scd.ingest.pipeline import ingest
    from scd.ingest.prompts import PromptSpec

    lazy = load_bundle(str(folders[0]), saes=str(folders[1]), lazy_saes=True)
    specs = [PromptSpec(p) for p in PROMPTS]
    report = ingest(specs, None, model=lazy, dry_run=True, progress=False, json_out=tmp_path, top_k=6)
    assert report.discovered == len(PROMPTS) and not report.failed
    assert lazy.saes.loads == len(HOOKS), "one chunk: each SAE loaded once for the whole ingest"
    stored = sorted(Circuit.from_json(p.read_text()).id for p in tmp_path.glob("*.json"))
    assert stored == sorted(discover(p, model=eager, top_k=6).id for p in PROMPTS)


@pytest.mark.slow
def test_lazy_set_gives_the_full_sae_to_other_readers(eager, lazy):
    hook = HOOKS[1]
    x = torch.randn(3, 32)
    assert torch.equal(lazy.saes[hook].encode(x), eager.saes[hook].encode(x))
    assert torch.equal(lazy.saes[hook].W_dec, eager.saes[hook].W_dec)
    # ablation scores run on the full SAEs, one loaded at a time: the same numbers as the eager bundle
    a = discover(PROMPTS[0], model=eager, top_k=6, scores=True)
    b = discover(PROMPTS[0], model=lazy, top_k=6, scores=True)
    assert a.scores == b.scores and Circuit.from_json(b.to_json()).id == a.id


def test_lazy_is_automatic_above_the_memory_budget(folders, monkeypatch):
    monkeypatch.setenv("SCD_SAE_MEMORY_GB", "0.0001")  # 6 SAEs x 2 x 32 x 256 x 4 bytes = 393 KB > 105 KB
    assert load_bundle(str(folders[0]), saes=str(folders[1])).lazy
    monkeypatch.setenv("SCD_SAE_MEMORY_GB", "1")
    assert not load_bundle(str(folders[0]), saes=str(folders[1])).lazy


# -- at full size: GPT-2-small's shape, 128k-wide TopK SAEs -----------------------------------------------------


@pytest.mark.slow
def test_lazy_equals_eager_at_128k_width(monkeypatch):
    """Two SAEs of the oai-v5-128k stand-in (131072 latents each, 0.8 GB): the set loads lazily by itself above
    the budget and its circuit equals the eager one; latent ids span the SAE's whole width."""
    from .gpt2_standin import have_gpt2_bpe_files, standin_model, standin_saes

    if not have_gpt2_bpe_files():
        pytest.skip("GPT-2's BPE files come with the dev extras")
    model, root = standin_model(), standin_saes("oai-v5-128k")
    saes = f"{root / 'blocks.4.hook_resid_post'},{root / 'blocks.7.hook_mlp_out'}"
    monkeypatch.setenv("SCD_SAE_MEMORY_GB", "1")  # 2 x 0.8 GB > 1 GiB
    lazy = load_bundle(str(model), saes=saes)
    assert lazy.lazy and [s.cfg.d_sae for s in lazy.saes.values()] == [131072, 131072]
    eager = load_bundle(str(model), saes=saes, lazy_saes=False)
    prompt = "The biggest name in basketball is Michael"
    w, g = discover(prompt, model=eager, top_k=10), discover(prompt, model=lazy, top_k=10)
    assert [n.id for n in g.nodes] == [n.id for n in w.nodes]
    assert [(e.source, e.target) for e in g.edges] == [(e.source, e.target) for e in w.edges]
    assert [n.activation for n in g.nodes] == [n.activation for n in w.nodes]
    attr = torch.tensor([[n.attribution for n in c.nodes] for c in (g, w)], dtype=torch.float64)
    assert torch.allclose(attr[0], attr[1], rtol=1e-5, atol=1e-6 * float(attr.abs().max()))
    assert [f.top_promoted for f in g.features] == [f.top_promoted for f in w.features]
    assert max(n.index for n in g.nodes if n.kind in ("resid", "mlp")) >= 32768
    assert lazy.saes.loads == 2
