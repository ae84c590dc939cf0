"""What ablating each of a circuit's latents does to the model: an exact intervention, not an estimate.

A node's ``attribution`` is first-order (activation x gradient). Where a latent acts through a nonlinearity -- on
the demo model attention-0 latent 194 feeds layer-1 attention patterns -- that estimate can be far off: its
summed attribution over the demo's ')' prompts is 0.25 while zeroing it drops the ')' logit by 2.8, more than any
other latent (Kramar et al. 2024, "AtP*", name this attention-saturation failure of attribution patching). So a
ranking of "what drives the prediction" built from attributions can put the strongest latent tenth.

``latent_effects`` measures each latent instead:

    effect(latent) = m(clean) - m(model with only that latent's SAE spliced, the latent ablated at every position)

* Only that SAE is spliced, keeping its error term, so the change is exactly the latent's decoder contribution
  at that sublayer; everything downstream is the real model (no other SAE, nothing clamped).
* Ablated means set to 0 (``"zero"``) or to its reference mean (``"mean"``; without a reference, its mean over
  the prompt's positions, as `scd.discovery.evaluate.Ablator`) at the positions where it is active;
  BOS is never ablated (the same convention as `scd.discovery.evaluate`).
* One value per latent and prompt, the same for all of that latent's nodes in the circuit: it is what
  `bench/reading.py` measures, prompt by prompt. Cost: per distinct latent, a forward pass from the latent's
  block on (``batch`` copies of the prompt per pass, started from the clean residual stream), no backward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from scd.core.circuit import Circuit
from scd.core.errors import InputError
from scd.discovery.evaluate import ABLATIONS, SPLICED_KINDS, circuit_metric
from scd.models.bundle import ModelBundle

Latent = tuple[str, int]  # (hook, index)


def latent_effects(
    circuit: Circuit,
    bundle: ModelBundle,
    *,
    ablation: str = "zero",
    means: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    batch: int = 64,
) -> dict[Latent, float]:
    """``{(hook, index): effect}`` for every distinct SAE latent among `circuit`'s nodes, on its prompt and metric
    (see the module docstring). ``means``: per hook the reference mean latent vector, for ``ablation="mean"``."""
    latents = sorted({(n.hook, n.index) for n in circuit.nodes if n.kind in SPLICED_KINDS})
    metric = circuit_metric(bundle, circuit)
    return measure(
        bundle, circuit.prompt.token_ids, metric, latents, ablation=ablation, means=means, batch=batch
    )


@torch.no_grad()
def measure(
    bundle: ModelBundle,
    token_ids: Sequence[int],
    metric,
    latents: Sequence[Latent],
    *,
    ablation: str = "zero",
    means: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    batch: int = 64,
) -> dict[Latent, float]:
    """m(clean) - m(latent ablated) on one prompt for each of ``latents``, ``batch`` of them per forward pass."""
    if ablation not in ABLATIONS:
        raise InputError(f"unknown ablation {ablation!r}", f"use one of {', '.join(ABLATIONS)}")
    if not latents:
        return {}
    ids = list(token_ids)
    tokens = torch.tensor([ids], dtype=torch.long, device=bundle.device)
    bos = bundle.tokenizer.bos_id
    first = 1 if bos is not None and ids[0] == bos and len(ids) > 1 else 0
    # every copy of the prompt is the clean run up to the block of the latent it ablates: start there, from the
    # clean residual stream (about half the compute of full passes, averaged over the layers)
    block = {h: _block(h) for h, _ in latents}
    starts = sorted(set(block.values()))
    logits, cache = bundle.model.run_with_cache(tokens, names_filter=[_resid_pre(b) for b in starts])
    clean = float(metric(logits))
    out: dict[Latent, float] = {}
    for b in starts:
        group = [latent for latent in latents if block[latent[0]] == b]
        for start in range(0, len(group), batch):
            chunk = group[start : start + batch]
            ms = _ablated(bundle, cache[_resid_pre(b)], b, chunk, first, ablation, means, metric)
            out.update((latent, clean - m) for latent, m in zip(chunk, ms, strict=True))
    return out


def _block(hook: str) -> int:
    """The transformer block a hook is inside of (``blocks.3.hook_mlp_out`` -> 3)."""
    return int(hook.split(".")[1])


def _resid_pre(block: int) -> str:
    return f"blocks.{block}.hook_resid_pre"


def _ablated(
    bundle, resid, block: int, chunk: Sequence[Latent], first: int, ablation: str, means, metric
) -> list[float]:
    """The metric of each copy of the prompt, copy i with latent ``chunk[i]`` ablated (only its SAE spliced), run
    from the clean residual stream ``resid`` entering ``block``."""
    n = len(chunk)
    rows_at: dict[str, list[tuple[int, int]]] = {}
    for row, (hook, index) in enumerate(chunk):
        rows_at.setdefault(hook, []).append((row, index))

    def splice(x, hook):
        sae = bundle.saes[hook.name]
        rows = rows_at[hook.name]
        r = torch.tensor([row for row, _ in rows], device=x.device)
        i = torch.tensor([index for _, index in rows], device=x.device)
        f = sae.encode(x[r])  # [k, pos, d_sae]: only the copies ablating a latent here
        g = f.clone()
        picked = g[torch.arange(len(rows)), first:, i]  # [k, pos - first]
        if ablation == "mean":  # the reference mean; without one, the prompt's own (as evaluate's Ablator)
            if means is not None:
                value = means[hook.name][0].to(g.device, g.dtype)[i][:, None]
            else:
                value = picked.mean(1, keepdim=True)
            picked = torch.where(picked != 0, value.expand_as(picked), picked)
        else:
            picked = torch.zeros_like(picked)
        g[torch.arange(len(rows)), first:, i] = picked
        x = x.clone()
        x[r] = x[r] + (sae.decode(g) - sae.decode(f)).to(x.dtype)
        return x

    logits = bundle.model.run_with_hooks(
        resid.expand(n, -1, -1), start_at_layer=block, fwd_hooks=[(h, splice) for h in rows_at]
    )
    return [float(metric(logits[j : j + 1])) for j in range(n)]
