"""The GPT-2 user's path end to end, offline, at GPT-2-small's real size.

A random model of GPT-2-small's shape with GPT-2's real tokenizer, and random SAEs of the ``gpt2-small-res-jb``
release's architecture, hooks and width (tests/gpt2_standin.py), laid out as the Hugging Face cache that
``scd fetch gpt2-small --saes res-jb`` fills. Then the commands a GPT-2 user types, as subprocesses with
``HF_HUB_OFFLINE=1`` (TransformerLens' and sae_lens' own ``from_pretrained`` read the cache): ``scd doctor``,
``scd ingest`` (2 seed prompts, with ``--json-out``), ``scd query top-proximal-causes``, ``scd compare``,
``scd draw``. Checked against independent computations: tokens against tiktoken, the target against a plain
transformers forward pass, Neuronpedia URLs against Neuronpedia's naming (``gpt2-small/{L}-res-jb``, resid_post of
block 11 = ``12-res-jb``), the query rows against the circuits' own edges read from the exported JSON; and the
local-folder route (``--model PATH --saes DIR``) must give the same circuit as the preset route.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from .gpt2_standin import have_gpt2_bpe_files, hub_cache, standin_model, standin_saes
from .test_gpt2_tokenizer import tiktoken_gpt2  # noqa: F401 -- a fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_gpt2_bpe_files(), reason="GPT-2's BPE files come with the dev extras"),
]

ROOT = Path(__file__).resolve().parents[1]
TOP_K = 20
N_PROMPTS = 2
RES_JB_HOOKS = [f"blocks.{layer}.hook_resid_pre" for layer in range(12)] + ["blocks.11.hook_resid_post"]
FEATURE_ID = re.compile(r"^gpt2-small/res-jb/(blocks\.(\d+)\.hook_resid_(pre|post))/(\d+)$")


def scd(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed `scd` command as a user would (a fresh process, so HF_HOME / HF_HUB_OFFLINE apply)."""
    exe = Path(sys.executable).with_name("scd")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from scd.cli import main; main()"]
    out = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=1800)
    if check and out.returncode != 0:
        raise AssertionError(f"scd {' '.join(args)} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One ingest of 2 seed prompts through the preset route; yields (env, store, json dir, prompts)."""
    tmp = tmp_path_factory.mktemp("gpt2-standin")
    hf_home = hub_cache(tmp / "hf", ("res-jb",))
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("SCD_NEO4J_URI", None)
    seed = [line for line in (ROOT / "examples" / "seed-prompts.txt").read_text().splitlines()]
    prompts = [line for line in seed if line and not line.startswith("#")][:N_PROMPTS]
    (tmp / "prompts.txt").write_text("\n".join(prompts) + "\n")
    store, jdir = tmp / "store", tmp / "json"
    out = scd(
        "ingest", str(tmp / "prompts.txt"), "--model", "gpt2-small", "--saes", "res-jb",
        "--store", str(store), "--json-out", str(jdir), "--top-k", str(TOP_K), "--no-progress", env=env,
    )  # fmt: skip
    assert f"{N_PROMPTS} circuits written" in out.stdout + out.stderr
    circuits = {}
    for path in jdir.glob("*.json"):
        c = json.loads(path.read_text())
        circuits[c["prompt"]["text"]] = (c, path)
    assert sorted(circuits) == sorted(prompts)
    return env, store, circuits


def test_doctor_sees_the_cached_preset(run):
    env, store, _ = run
    out = scd("doctor", "--store", str(store), env=env).stdout
    assert re.search(r"gpt2-small model\s+cached", out)
    assert re.search(r"SAEs res-jb\s+cached \(13 SAEs\)", out)
    assert re.search(r"SAEs oai-v5-32k\s+not cached \(0/36 SAEs\)", out)


def test_prompts_are_gpt2_tokens_and_the_target_is_gpt2s_prediction(run, tiktoken_gpt2):  # noqa: F811
    """Token ids from tiktoken's independent BPE; target and its probability from a plain transformers forward."""
    import torch
    from transformers import GPT2LMHeadModel

    enc, _ = tiktoken_gpt2
    _, _, circuits = run
    hf = GPT2LMHeadModel.from_pretrained(standin_model(), local_files_only=True).eval()
    for text, (c, _) in circuits.items():
        p = c["prompt"]
        assert p["token_ids"] == [50256, *enc.encode(text)]
        with torch.no_grad():
            probs = hf(torch.tensor([p["token_ids"]])).logits[0, -1].softmax(-1)
        assert p["target_id"] == int(probs.argmax()) and p["target_source"] == "predicted"
        assert p["target_prob"] == pytest.approx(float(probs.max()), rel=1e-3)
        assert p["target"] == enc.decode([p["target_id"]])


def test_nodes_per_sublayer_feature_ids_and_neuronpedia_urls(run):
    _, _, circuits = run
    for c, _ in circuits.values():
        n_pos = len(c["prompt"]["token_ids"])
        per_hook = Counter((n["hook"], n["kind"]) for n in c["nodes"])
        for hook in RES_JB_HOOKS:
            assert per_hook[(hook, "resid")] == TOP_K, hook  # ~40 latents fire per position: top-k is full
            assert per_hook[(hook, "error")] <= n_pos
        assert per_hook[("hook_embed", "token")] == n_pos
        assert sum(1 for n in c["nodes"] if n["kind"] == "logit") == 1
        assert len(c["nodes"]) == sum(per_hook.values()) == (13 * TOP_K + n_pos + 1 + sum(
            v for (h, k), v in per_hook.items() if k == "error"))  # fmt: skip
        latents = [f for f in c["features"] if f["kind"] == "resid"]
        assert {n["feature_id"] for n in c["nodes"] if n["kind"] == "resid"} == {f["id"] for f in latents}
        for f in latents:
            m = FEATURE_ID.match(f["id"])
            assert m, f["id"]
            hook, layer, where, idx = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
            assert hook == f["hook"] and idx == f["index"] < 24576
            page = layer if where == "pre" else layer + 1  # Neuronpedia: resid_post of block 11 is 12-res-jb
            assert f["neuronpedia_url"] == f"https://www.neuronpedia.org/gpt2-small/{page}-res-jb/{idx}"
            assert len(f["top_promoted"]) == 10


def expected_proximal(c: dict) -> list[tuple]:
    """The top proximal cause from the circuit's own edges: the latent node with the largest edge into the logit."""
    nodes = {n["id"]: n for n in c["nodes"]}
    feats = {f["id"]: f for f in c["features"]}
    logit = next(n["id"] for n in c["nodes"] if n["kind"] == "logit")
    into = [(e["weight"], nodes[e["source"]]) for e in c["edges"] if e["target"] == logit]
    into = [(w, n) for w, n in into if n["kind"] not in ("token", "error", "logit")]
    best = max(w for w, _ in into)
    return sorted(
        (c["prompt"]["text"], n["feature_id"], n["pos"], w, feats[n["feature_id"]]["neuronpedia_url"])
        for w, n in into
        if w == best
    )


def test_top_proximal_causes_query(run):
    env, store, circuits = run
    out = scd("query", "top-proximal-causes", "--store", str(store), "--format", "json", env=env).stdout
    rows = json.loads(out)
    got = [(r["prompt"], r["feature"], r["pos"], r["weight"], r["neuronpedia_url"]) for r in rows]
    expected = sorted(row for c, _ in circuits.values() for row in expected_proximal(c))
    assert [g[:3] + g[4:] for g in got] == [e[:3] + e[4:] for e in expected]
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], rel=1e-6)
    assert all(r["promotes"] and r["target"] for r in rows)


def test_compare_draw_and_the_table_output(run, tmp_path):
    env, store, circuits = run
    (a, (ca, path_a)), (b, _) = sorted(circuits.items())
    out = scd("compare", a, b, "--store", str(store), env=env).stdout
    assert "Jaccard" in out or "jaccard" in out
    png = tmp_path / "c.png"
    scd("draw", str(path_a), "-o", str(png), env=env)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = scd("query", "top-proximal-causes", "-p", f"prompt={a}", "--store", str(store), env=env).stdout
    assert "neuronpedia.org/gpt2-small/" in table and a in table


def test_the_local_folder_route_gives_the_same_circuit(run, tmp_path):
    """--model PATH --saes DIR (TransformerLens' weight conversion on a hand-built config) vs the preset route
    (TransformerLens' and sae_lens' from_pretrained): same tokens, target, nodes and attributions."""
    env, _, circuits = run
    text, (c, _) = sorted(circuits.items())[0]
    saes = standin_saes("res-jb")
    out = tmp_path / "folder.json"
    scd("discover", text, "--model", str(standin_model()), "--saes", str(saes), "--top-k", str(TOP_K),
        "--json", str(out), env=env)  # fmt: skip
    d = json.loads(out.read_text())
    assert d["model"] == "gpt2-small" and d["sae_set"] == "res-jb"
    assert (
        d["prompt"]["token_ids"] == c["prompt"]["token_ids"]
        and d["prompt"]["target"] == c["prompt"]["target"]
    )
    ours = {n["id"]: n["attribution"] for n in d["nodes"]}
    theirs = {n["id"]: n["attribution"] for n in c["nodes"]}
    assert set(ours) == set(theirs)
    assert [ours[k] for k in sorted(ours)] == pytest.approx(
        [theirs[k] for k in sorted(ours)], rel=1e-3, abs=1e-6
    )
    assert {n["feature_id"] for n in d["nodes"]} == {n["feature_id"] for n in c["nodes"]}
    assert all(f["neuronpedia_url"] is None for f in d["features"])  # folders carry no Neuronpedia ids
