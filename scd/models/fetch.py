"""Downloading GPT-2-small and its SAE presets once, so later runs work offline; and saying what is cached.

`fetch(preset)` (``scd fetch gpt2-small --saes PRESET``) on a machine with internet:

1. resolves the preset offline against sae_lens' shipped ``pretrained_saes.yaml`` (scd.models.presets), so a typo
   fails before any download;
2. downloads the model with transformers' own ``from_pretrained`` for ``gpt2`` (config, weights, tokenizer: the
   calls TransformerLens' ``from_pretrained("gpt2")`` makes), then every SAE of the preset with sae_lens'
   ``SAE.from_pretrained`` -- the libraries' own download functions, so the files land in the standard Hugging
   Face hub cache (``$HF_HOME/hub``, ``$HF_HUB_CACHE``) exactly where the later loads look, and
   ``HF_HUB_OFFLINE=1`` runs find them;
3. reports each repository's cache folder and its size on disk (``huggingface_hub.scan_cache_dir``).

A failed download (no network, ``HF_HUB_OFFLINE=1`` with something missing) is one ModelError line; with
everything already cached, fetch downloads nothing and needs no network. Files already in
the cache are not downloaded again, so a second fetch only reports.

`cached_presets()` answers "which presets would load offline?" for ``scd doctor`` by looking each needed file up
with ``huggingface_hub.try_to_load_from_cache`` -- no network, no loading.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scd.core.errors import ModelError
from scd.models.hub import short
from scd.models.presets import PRESETS, resolve_preset

#: the hub repository TransformerLens' from_pretrained("gpt2") reads
MODEL_REPO = "gpt2"
#: what a model load needs from it: config, weights (either format), tokenizer (either format)
_MODEL_NEEDS = (
    ("config.json",),
    ("model.safetensors", "pytorch_model.bin"),
    ("tokenizer.json", "vocab.json"),
)
_SAE_FILES = ("cfg.json", "sae_weights.safetensors")
_OFFLINE_FIX = (
    "run `scd fetch` where huggingface.co is reachable and HF_HUB_OFFLINE is unset (then copy that machine's "
    "~/.cache/huggingface here), or use --model PATH and --saes DIR with local folders"
)


@dataclass(frozen=True)
class Stored:
    repo: str
    path: Path
    size_bytes: int

    def line(self) -> str:
        return f"{self.repo}: {self.path} ({human_size(self.size_bytes)})"


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def preset_files(preset: str) -> list[tuple[str, str]]:
    """(hub repository, folder inside it) of every SAE of `preset`, from sae_lens' shipped release list."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    return [
        (directory[s.release].repo_id, directory[s.release].saes_map[s.sae_id])
        for s in resolve_preset(preset)
    ]


def fetch(preset: str = "res-jb", *, progress: Callable[[str], None] | None = None) -> list[Stored]:
    """Download GPT-2-small and SAE preset `preset` into the Hugging Face cache; return what is stored where."""
    say = progress or (lambda _: None)
    specs = resolve_preset(preset)  # phase 1: offline check of the preset
    if model_cached() and _preset_cached(preset):  # nothing to download: works offline too
        say(f"gpt2-small and SAE preset {preset}: already in the Hugging Face cache, nothing to download")
        return stored([MODEL_REPO, *sorted({repo for repo, _ in preset_files(preset)})])
    check_hub_reachable()
    repos = [MODEL_REPO]
    say(f"gpt2-small: {MODEL_REPO} (config, weights, tokenizer)")
    _download_model()
    for i, spec in enumerate(specs, 1):
        say(f"SAE {i}/{len(specs)}: {spec.identity}")
        _download_sae(preset, spec.release, spec.sae_id)
    repos += sorted({repo for repo, _ in preset_files(preset)})
    return stored(repos)


def hub_errors() -> tuple[type[BaseException], ...]:
    """What a failed hub request raises: OSError covers huggingface_hub's and transformers' own errors; the HTTP
    client's are added (huggingface_hub 1.x uses httpx, 2.x its fork httpx2, whose errors are not OSErrors)."""
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx", "httpx2"):
        with contextlib.suppress(ImportError):
            errors.append(__import__(module).HTTPError)
    return tuple(errors)


def check_hub_reachable() -> None:
    """One quick request before any download, so an offline machine gets one line and nothing half-fetched."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise ModelError("HF_HUB_OFFLINE is set, so scd fetch cannot download", _OFFLINE_FIX)
    try:
        HfApi().model_info(MODEL_REPO, timeout=15)
    except hub_errors() as e:
        raise ModelError(
            f"cannot reach the Hugging Face hub at {constants.ENDPOINT} ({short(e)})", _OFFLINE_FIX
        ) from e


def _download_model() -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            AutoConfig.from_pretrained(MODEL_REPO)
            AutoTokenizer.from_pretrained(MODEL_REPO)
            AutoModelForCausalLM.from_pretrained(MODEL_REPO)
    except hub_errors() as e:
        raise ModelError(
            f"cannot download gpt2-small from the Hugging Face hub ({short(e)})", _OFFLINE_FIX
        ) from e


def _download_sae(preset: str, release: str, sae_id: str) -> None:
    from sae_lens import SAE

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sae = SAE.from_pretrained(release, sae_id, device="cpu")
    except hub_errors() as e:
        raise ModelError(
            f"cannot download SAE {release}/{sae_id} (preset {preset}) from the Hugging Face hub ({short(e)})",
            _OFFLINE_FIX,
        ) from e
    del sae  # loaded only to download (a 128k set is ~29 GB: never hold more than one)


def stored(repos: list[str], cache_dir: str | Path | None = None) -> list[Stored]:
    """Cache folder and size on disk of each of `repos` found in the hub cache."""
    from huggingface_hub import constants, scan_cache_dir

    # the cache folder read now: scan_cache_dir's own default is bound when its module is first imported
    info = {
        r.repo_id: r
        for r in scan_cache_dir(cache_dir or constants.HF_HUB_CACHE).repos
        if r.repo_type == "model"
    }
    return [Stored(r, Path(info[r].repo_path), info[r].size_on_disk) for r in repos if r in info]


# -- what is cached (scd doctor) ---------------------------------------------------------------------------------


def _cached(repo: str, filename: str, cache_dir: str | Path | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename, cache_dir=cache_dir), str)


def model_cached(cache_dir: str | Path | None = None) -> bool:
    """Whether config, weights and tokenizer of gpt2-small are in the hub cache."""
    return all(any(_cached(MODEL_REPO, f, cache_dir) for f in choice) for choice in _MODEL_NEEDS)


def cached_presets(cache_dir: str | Path | None = None) -> dict[str, tuple[int, int]]:
    """Per preset: (SAEs whose cfg.json and weights are both cached, SAEs in the preset)."""
    out = {}
    for preset in PRESETS:
        files = preset_files(preset)
        have = sum(
            all(_cached(repo, f"{path}/{name}", cache_dir) for name in _SAE_FILES) for repo, path in files
        )
        out[preset] = (have, len(files))
    return out


def _preset_cached(preset: str, cache_dir: str | Path | None = None) -> bool:
    return all(
        _cached(repo, f"{path}/{name}", cache_dir)
        for repo, path in preset_files(preset)
        for name in _SAE_FILES
    )
