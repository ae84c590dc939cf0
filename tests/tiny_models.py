"""Tiny random HookedTransformers and random sae_lens SAEs with realistic sparsity, for tests and benchmarks.

SAEs are built through sae_lens' own config classes (``StandardSAE``, ``TopKSAE``, ``JumpReLUSAE``), so the
code under test only ever calls the library's ``encode``/``decode``. Random SAEs are calibrated on the model's
activations at their hook so that about ``n_active`` latents fire per position (a random SAE with default
biases fires half its latents, which makes every edge test trivial).
"""

from __future__ import annotations

import warnings

import torch
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata
from transformer_lens import HookedTransformer, HookedTransformerConfig

ALL_SUBLAYERS = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")


def tiny_model(
    *,
    n_layers: int = 2,
    d_model: int = 24,
    n_heads: int = 2,
    d_mlp: int = 48,
    d_vocab: int = 20,
    n_ctx: int = 16,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    act_fn: str = "gelu",
) -> HookedTransformer:
    """A random GPT-2-style model (LayerNorm, learned positional embeddings) with random biases too."""
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        d_mlp=d_mlp,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        act_fn=act_fn,
        normalization_type="LN",
        dtype=dtype,
        seed=seed,
        device="cpu",
    )
    model = HookedTransformer(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf.startswith("b"):  # biases: TransformerLens initialises them to zero
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            elif leaf == "w":  # LayerNorm gains
                p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    model.eval()
    return model


def random_sae(
    kind: str, d_in: int, d_sae: int, *, hook: str, dtype: str = "float64", seed: int = 0, k: int = 8
):
    """An uncalibrated random SAE of architecture `kind` ("standard" | "topk" | "jumprelu")."""
    torch.manual_seed(seed)
    common = dict(d_in=d_in, d_sae=d_sae, dtype=dtype, device="cpu", metadata=SAEMetadata(hook_name=hook))
    if kind == "standard":
        sae = StandardSAE(StandardSAEConfig(**common))
    elif kind == "topk":
        sae = TopKSAE(TopKSAEConfig(k=k, **common))
    elif kind == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(**common))
    else:
        raise ValueError(kind)
    with torch.no_grad():
        sae.b_dec.normal_(0.0, 0.05)
    return sae.eval()


@torch.no_grad()
def calibrate(sae, acts: torch.Tensor, n_active: int) -> None:
    """Set biases/thresholds so that about `n_active` latents fire per row of `acts` [n, d_in].

    Standard: b_enc = -t; JumpReLU: threshold = t (b_enc 0); TopK: nothing to do (k is the sparsity).
    t is the (1 - n_active/d_sae) quantile of the pre-activations over `acts`.
    """
    if isinstance(sae, TopKSAE):
        return
    pre = sae.process_sae_in(acts.to(sae.dtype)) @ sae.W_enc
    q = 1.0 - n_active / sae.cfg.d_sae
    flat = pre.flatten()
    if flat.numel() > 1_000_000:  # torch.quantile refuses very large inputs
        flat = flat[torch.randperm(flat.numel())[:1_000_000]]
    t = torch.quantile(flat.float(), q).to(sae.dtype)
    if isinstance(sae, JumpReLUSAE):
        sae.b_enc.zero_()
        sae.threshold.fill_(t)
    else:
        sae.b_enc.fill_(-t)


def calibration_tokens(model: HookedTransformer, n_seq: int = 4, seq_len: int = 12, seed: int = 123):
    gen = torch.Generator().manual_seed(seed)
    seq_len = min(seq_len, model.cfg.n_ctx)
    return torch.randint(0, model.cfg.d_vocab, (n_seq, seq_len), generator=gen)


def random_saes(
    model: HookedTransformer,
    hooks: list[str],
    kinds: str | list[str] = "standard",
    *,
    d_sae: int = 64,
    n_active: int = 8,
    dtype: str | None = None,
    seed: int = 0,
) -> dict:
    """Random SAEs at `hooks`, calibrated on random token sequences to ~`n_active` active latents per position."""
    if isinstance(kinds, str):
        kinds = [kinds] * len(hooks)
    dtype = dtype or str(model.cfg.dtype).removeprefix("torch.")
    _, cache = model.run_with_cache(calibration_tokens(model), names_filter=lambda n: n in hooks)
    saes = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (hook, kind) in enumerate(zip(hooks, kinds, strict=True)):
            sae = random_sae(
                kind, model.cfg.d_model, d_sae, hook=hook, dtype=dtype, seed=seed + i, k=n_active
            )
            calibrate(sae, cache[hook].reshape(-1, model.cfg.d_model), n_active)
            saes[hook] = sae
    return saes


def hooks_for(n_layers: int, sublayers=ALL_SUBLAYERS) -> list[str]:
    return [f"blocks.{layer}.{s}" for layer in range(n_layers) for s in sublayers]
