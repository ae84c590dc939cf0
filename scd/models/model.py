"""Language models for the engine: the bundled demo model, GPT-2-small from the hub, local Hugging Face GPT-2
folders -- each as a TransformerLens HookedTransformer and its scd tokenizer (`load_model`).

Local folders are loaded offline through TransformerLens' own GPT-2 weight conversion, processed exactly as
``from_pretrained`` processes GPT-2 (see `load_hf_gpt2_folder`). A hub download that fails becomes one ModelError
line that points to ``--model demo`` and ``--model PATH``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
from transformer_lens import HookedTransformer

from scd.core.errors import ModelError
from scd.models.hub import OFFLINE_FIX, hub_errors, short
from scd.models.tokens import Tokenizer

#: model names load_model knows besides local folders
MODEL_NAMES = ("demo", "gpt2-small")


def load_model(model: str, device: str = "cpu") -> tuple[str, HookedTransformer, Tokenizer, str]:
    """(name, HookedTransformer, tokenizer, source) for a model name or a local folder. The name goes into
    Feature ids ("demo", "gpt2-small", or the folder's name); source says where the weights came from."""
    # TransformerLens prints "Moving model to device" on stdout while it builds a model: keep stdout for results
    with contextlib.redirect_stdout(io.StringIO()):
        return _load_model(model, device)


def _load_model(model: str, device: str):
    if model == "demo":
        return ("demo", *_load_demo_model(device))
    if model == "gpt2-small":
        return ("gpt2-small", *_load_gpt2_from_hub(device))
    path = Path(model).expanduser()
    if path.is_dir():
        hooked, tokenizer = load_hf_gpt2_folder(path, device)
        return (path.resolve().name, hooked, tokenizer, str(path.resolve()))
    raise ModelError(
        f"unknown model {model!r}: not {' or '.join(MODEL_NAMES)} and not a folder",
        "use --model demo, --model gpt2-small, or --model PATH to a local Hugging Face GPT-2 folder",
    )


def _load_demo_model(device: str):
    from scd import demo

    if not demo.is_present(demo.WEIGHTS):
        raise ModelError(
            f"the demo model's weights are missing from {demo.WEIGHTS}",
            "reinstall scd, or retrain them with `scd demo-model train`",
        )
    hooked = demo.load_model(demo.WEIGHTS).to(device)
    return hooked, demo.load_tokenizer(demo.WEIGHTS), str(demo.WEIGHTS)


def _load_gpt2_from_hub(device: str):
    from scd.models.hf_tokenizer import HFTokenizer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            hooked = HookedTransformer.from_pretrained("gpt2", device=device)
    except hub_errors() as e:
        raise ModelError(
            f"cannot download gpt2-small from the Hugging Face hub ({short(e)})", OFFLINE_FIX
        ) from e
    if hooked.tokenizer is None:
        raise ModelError("gpt2-small came without a tokenizer", OFFLINE_FIX)
    return hooked, HFTokenizer(hooked.tokenizer, d_vocab=hooked.cfg.d_vocab), "hf-hub:gpt2"


def load_hf_gpt2_folder(path: str | Path, device: str = "cpu") -> tuple[HookedTransformer, Tokenizer]:
    """A HookedTransformer and tokenizer from a local Hugging Face GPT-2 folder, without touching the hub.

    Route (works with no hub; `from_pretrained(local_dir)` is refused by name): the HF model is read from the folder, TransformerLens' ``convert_gpt2_weights``
    maps its weights, a ``HookedTransformerConfig`` is built from the HF config the way TransformerLens builds
    GPT-2's, and ``load_and_process_state_dict`` applies ``from_pretrained``'s default processing (fold LayerNorm,
    centre writing weights and unembedding) -- the processing GPT-2-small's published SAEs were trained under.
    """
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import AutoConfig, AutoTokenizer, GPT2LMHeadModel

    from scd.models.hf_tokenizer import HFTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{path} is not a Hugging Face model folder (no config.json)",
            "point --model at a folder written by save_pretrained (config.json, weights, tokenizer files)",
        )
    try:
        hf_config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {path / 'config.json'}: {short(e)}") from e
    if getattr(hf_config, "model_type", None) != "gpt2":
        raise ModelError(
            f"{path} holds a {getattr(hf_config, 'model_type', '?')!r} model; scd loads local GPT-2 folders only",
            "use a GPT-2 folder, or --model demo",
        )
    try:
        hf_model = GPT2LMHeadModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise ModelError(
            f"cannot read the GPT-2 weights in {path}: {short(e)}",
            "save the model with save_pretrained into that folder",
        ) from e
    if not ((path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()):
        raise ModelError(
            f"{path} has no tokenizer files (tokenizer.json, or vocab.json + merges.txt)",
            "save the model's tokenizer into the folder too (tokenizer.save_pretrained(PATH))",
        )
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ModelError(
            f"cannot read a tokenizer from {path}: {short(e)}",
            "add vocab.json + merges.txt (or tokenizer.json) of the model's tokenizer to the folder",
        ) from e
    tokenizer = HFTokenizer(hf_tokenizer, d_vocab=hf_config.vocab_size)

    n_embd = hf_config.n_embd
    cfg = HookedTransformerConfig(
        d_model=n_embd,
        d_head=n_embd // hf_config.n_head,
        n_heads=hf_config.n_head,
        d_mlp=hf_config.n_inner or 4 * n_embd,
        n_layers=hf_config.n_layer,
        n_ctx=hf_config.n_positions,
        eps=hf_config.layer_norm_epsilon,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.activation_function,
        use_attn_scale=getattr(hf_config, "scale_attn_weights", True),
        scale_attn_by_inverse_layer_idx=getattr(hf_config, "scale_attn_by_inverse_layer_idx", False),
        normalization_type="LN",
        positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel",
        default_prepend_bos=True,
        tokenizer_prepends_bos=False,
        device=device,
        model_name=path.resolve().name,
    )
    state_dict = convert_gpt2_weights(hf_model, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hooked = HookedTransformer(cfg, move_to_device=False)
    hooked.load_and_process_state_dict(
        state_dict, fold_ln=True, center_writing_weights=True, center_unembed=True
    )
    hooked.to(device)
    hooked.eval()
    return hooked, tokenizer
