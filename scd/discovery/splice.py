"""Splicing sae_lens SAEs into a TransformerLens model without changing what it computes.

At a hooked sublayer with activation x, an SAE gives features f = enc(x), a reconstruction x̂ = dec(f) and an
error ε = x - x̂. The spliced activation is

    x + (dec(f) - dec(f).detach()) + (ε - ε.detach())      with f and ε detached leaves,

whose *value* is x bit for bit (each bracket is exactly zero) and whose *backward* is the identity onto x, while
f and ε still receive ∂m/∂f and ∂m/∂ε. sae_lens' own ``use_error_term=True`` computes ε under ``no_grad``, which
cuts the gradient to upstream layers (attributions then disagree with the true gradient early on); this splice does not.

Only the sublayers in ``scd.core.hooks.SPLICE_SUBLAYERS`` are supported; hooks run in forward order
(``scd.core.hooks.ordered_hooks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from scd.core.hooks import EMBED_HOOK, ordered_hooks
from scd.models.saes import sae_misfits


def check_saes(model: HookedTransformer, saes: dict) -> None:
    """ValueError naming every SAE that does not fit (scd.models.saes.sae_misfits: the loader's own check)."""
    problems = sae_misfits(model, saes)
    if problems:
        raise ValueError("; ".join(problems))


@dataclass
class SpliceLeaves:
    """The leaves of one spliced sublayer: features f [batch, pos, d_sae] and error ε [batch, pos, d_model]."""

    f: Tensor
    eps: Tensor


def splice_hook(sae, store: dict[str, SpliceLeaves]):
    """A TransformerLens forward hook that splices `sae` in and records its leaves in ``store[hook.name]``."""

    def hook_fn(x: Tensor, hook) -> Tensor:
        with torch.no_grad():
            f = sae.encode(x)
        f = f.detach().requires_grad_(True)
        x_hat = sae.decode(f).to(x.dtype)
        eps = (x.detach() - x_hat.detach()).requires_grad_(True)
        store[hook.name] = SpliceLeaves(f, eps)
        return x + (x_hat - x_hat.detach()) + (eps - eps.detach())

    return hook_fn


def run_spliced(
    model: HookedTransformer, saes: dict, tokens: Tensor
) -> tuple[Tensor, dict[str, SpliceLeaves]]:
    """Logits of the model with every SAE spliced in (equal to the clean logits) and each sublayer's leaves.

    Backpropagating a metric of the logits fills ``leaves[hook].f.grad`` / ``.eps.grad`` with ∂m/∂f, ∂m/∂ε.
    """
    check_saes(model, saes)
    store: dict[str, SpliceLeaves] = {}
    hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = [
        (h, splice_hook(saes[h], store)) for h in ordered_hooks(saes)
    ]
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits, store


@dataclass
class Site:
    """One SAE sublayer in a leaf forward (see `leaf_forward`); every tensor is [batch, pos, ...]."""

    hook: str
    sae: object
    x: Tensor  # [batch, pos, d_model] pre-SAE activation; its graph reaches back only to upstream leaves
    s: Tensor  # [batch, pos, d_model] leaf standing for the spliced output (value == x, bit for bit)
    f: Tensor  # [batch, pos, d_sae] feature activations, detached
    f_leaf: Tensor  # [batch, pos, d_sae] leaf the reconstruction is computed from
    x_hat: Tensor  # [batch, pos, d_model] dec(f_leaf), with its graph to f_leaf (for ∂m/∂f = J_decᵀ ∂m/∂s)
    eps: Tensor  # [batch, pos, d_model] error ε = x - x̂, detached, in the model's dtype


@dataclass
class LeafForward:
    """A forward pass in which the token embedding and every SAE sublayer's spliced output are leaves.

    Every leaf carries its clean value, so ``logits`` equal the clean model's bit for bit. Because each
    SAE sublayer's output is a fresh leaf, a sublayer's input ``site.x`` is a function of the *immediately
    upstream* leaves only: backpropagating from it gives direct effects, with gradients stopped at every
    intermediate SAE sublayer (Marks et al. 2024).

    Several prompts run as one batch, right-padded (`pad_right`): the model is causal, so a prompt's positions
    never read the padding after them and compute what the prompt alone computes (to float rounding: the
    matmuls see other shapes), and nothing of one batch row reaches another. No attention mask is needed.
    """

    embed: Tensor  # [batch, pos, d_model] leaf: token + positional embedding (input of block 0)
    sites: list[Site]  # in forward order
    logits: Tensor

    @property
    def leaves(self) -> list[Tensor]:
        """Leaf 0 is the embedding, leaf k+1 is ``sites[k].s``."""
        return [self.embed] + [s.s for s in self.sites]


def batchable(model: HookedTransformer) -> bool:
    """Whether right-padded prompts can share a forward: not when the model's tokenizer pads on the left
    (TransformerLens then builds an attention mask from pad tokens and shifts positions)."""
    return getattr(getattr(model, "tokenizer", None), "padding_side", "right") != "left"


def pad_right(sequences: list[Tensor], pad_id: int = 0) -> Tensor:
    """[1, pos_i] token tensors -> one [n, max pos_i] batch, each row padded on the right with `pad_id`."""
    for t in sequences:
        if t.ndim != 2 or t.shape[0] != 1:
            raise ValueError(f"tokens must have shape [1, pos], got {tuple(t.shape)}")
    width = max(t.shape[1] for t in sequences)
    batch = torch.full((len(sequences), width), pad_id, dtype=sequences[0].dtype, device=sequences[0].device)
    for b, t in enumerate(sequences):
        batch[b, : t.shape[1]] = t[0]
    return batch


def leaf_forward(model: HookedTransformer, saes: dict, tokens: Tensor) -> LeafForward:
    """The leaf forward of `tokens` [batch, pos] (one prompt, or right-padded prompts: `pad_right`)."""
    if tokens.ndim != 2:
        raise ValueError(f"tokens must have shape [batch, pos], got {tuple(tokens.shape)}")
    if tokens.shape[0] > 1 and not batchable(model):
        raise ValueError("the model's tokenizer pads on the left; batch prompts one at a time")
    check_saes(model, saes)
    hooks = ordered_hooks(saes)
    sites: dict[str, Site] = {}
    embed: list[Tensor] = []

    def embed_leaf(x: Tensor, hook) -> Tensor:
        leaf = x.detach().requires_grad_(True)
        embed.append(leaf)
        return leaf

    def site_leaf(x: Tensor, hook) -> Tensor:
        sae = saes[hook.name]
        with torch.no_grad():
            f = sae.encode(x)
        f_leaf = f.detach().requires_grad_(True)
        x_hat = sae.decode(f_leaf)
        eps = x.detach() - x_hat.detach().to(x.dtype)
        s = x.detach().requires_grad_(True)
        sites[hook.name] = Site(hook.name, sae, x, s, f.detach(), f_leaf, x_hat, eps)
        return s

    # the embedding leaf goes first, so an SAE at blocks.0.hook_resid_pre reads it
    fwd_hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = [(EMBED_HOOK, embed_leaf)]
    fwd_hooks += [(h, site_leaf) for h in hooks]
    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=fwd_hooks)
    return LeafForward(embed[0], [sites[h] for h in hooks], logits)
