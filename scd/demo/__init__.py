"""The bundled offline demo model: a small character-level transformer and a TopK SAE at every sublayer.

Users reach it as ``--model demo``. The weights ship as package data in ``scd/demo/weights/``::

    model/config.json          the HookedTransformerConfig, as a dict
    model/model.safetensors    its state dict
    vocab.json                 the character vocabulary (BOS first)
    saes/<hook name>/          one sae_lens folder per hooked sublayer (cfg.json + sae_weights.safetensors),
                               loadable with SAE.load_from_disk -- the same code path as any local sae_lens SAE

``scd demo-model train --out DIR`` rebuilds the whole folder from the seeded corpus (see MODEL_CARD.md);
``scd demo-model eval`` prints its metrics. Every loader takes `path` (default None: the shipped WEIGHTS).
"""

from __future__ import annotations

import json
from pathlib import Path

from scd.core.errors import ModelError
from scd.core.hooks import is_splice_hook, ordered_hooks
from scd.demo.tokenizer import CharTokenizer

WEIGHTS: Path = Path(__file__).parent / "weights"
MODEL_CARD: Path = Path(__file__).parent / "MODEL_CARD.md"

_FIX = "reinstall scd, or rebuild the weights with `scd demo-model train --out DIR` and pass DIR"


def _resolve(path: str | Path | None) -> Path:
    """`path`, or the shipped weights (looked up at call time, so tests can point WEIGHTS elsewhere)."""
    return WEIGHTS if path is None else Path(path)


def is_present(path: str | Path | None = None) -> bool:
    """True if `path` holds a complete demo model: model, vocabulary and at least one SAE."""
    path = _resolve(path)
    return (
        (path / "model" / "config.json").is_file()
        and (path / "model" / "model.safetensors").is_file()
        and (path / "vocab.json").is_file()
        and bool(sae_folders(path))
    )


def _require(path: Path) -> None:
    if not is_present(path):
        raise ModelError(f"no demo model at {path}", _FIX)


def load_config(path: str | Path | None = None) -> dict:
    """The model's HookedTransformerConfig as the dict saved in ``model/config.json``."""
    path = _resolve(path)
    _require(path)
    return json.loads((path / "model" / "config.json").read_text())


def load_model(path: str | Path | None = None, device: str = "cpu"):
    """The demo HookedTransformer, in eval mode, with its parameters frozen (requires_grad=False)."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    path = _resolve(path)
    cfg = HookedTransformerConfig(**{**load_config(path), "device": device})
    model = HookedTransformer(cfg)
    state = load_file(str(path / "model" / "model.safetensors"), device=device)
    # attention masks and IGNORE are buffers TransformerLens rebuilds from the config; their saved shapes differ
    # between TransformerLens versions (3.9 saves an empty mask, 3.2 expects n_ctx x n_ctx), so never load them
    state = {k: v for k, v in state.items() if not k.endswith((".mask", ".IGNORE"))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # TransformerLens adds buffers (attention masks, IGNORE) that are rebuilt from the config
    missing = [k for k in missing if not k.endswith((".mask", ".IGNORE"))]
    if missing or unexpected:
        raise ModelError(
            f"demo weights at {path} do not fit the config (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]})",
            _FIX,
        )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_tokenizer(path: str | Path | None = None) -> CharTokenizer:
    """The demo model's character tokenizer (implements scd.models.tokens.Tokenizer)."""
    path = _resolve(path)
    _require(path)
    return CharTokenizer.load(path / "vocab.json")


def sae_folders(path: str | Path | None = None) -> dict[str, Path]:
    """Hook name -> SAE folder, in forward order (blocks.0.hook_resid_pre, blocks.0.hook_attn_out, ...)."""
    saes = _resolve(path) / "saes"
    if not saes.is_dir():
        return {}
    found = {
        folder.name: folder
        for folder in saes.iterdir()
        if is_splice_hook(folder.name)
        and (folder / "cfg.json").is_file()
        and (folder / "sae_weights.safetensors").is_file()
    }
    return {hook: found[hook] for hook in ordered_hooks(found)}


def load_saes(path: str | Path | None = None, device: str = "cpu") -> dict:
    """Hook name -> sae_lens SAE (via SAE.load_from_disk), in forward order, in eval mode."""
    from sae_lens import SAE

    path = _resolve(path)
    _require(path)
    saes = {}
    for hook, folder in sae_folders(path).items():
        sae = SAE.load_from_disk(folder, device=device)
        sae.eval()
        for p in sae.parameters():
            p.requires_grad_(False)
        saes[hook] = sae
    return saes


__all__ = [
    "WEIGHTS",
    "MODEL_CARD",
    "CharTokenizer",
    "is_present",
    "load_config",
    "load_model",
    "load_tokenizer",
    "sae_folders",
    "load_saes",
]
