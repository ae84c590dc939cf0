"""Direct-effect edges between kept nodes, many downstream targets per backward pass.

Edge u -> d is u · ∂(g_d · d)/∂u with g_d = ∂m/∂d held constant (Marks et al. 2024; README 'Discovery'), computed in a `LeafForward`
so that gradients stop at every intermediate SAE sublayer. For a downstream sublayer D the work splits in three:

1. **Targets at D** (`sublayer_targets`): each kept node d at D (feature j or error at position q) becomes a
   vector v_d = ∂(g_d · d)/∂x_D[q] in d_model. Features: g_d ∂f_j/∂x; error ε = x - dec(enc(x)):
   g_ε - J_encᵀ (∂m/∂f), the second term over the features active at q. Both go through ``sae.encode`` of
   an `SAEView`, a small copy of the SAE holding only the latents active somewhere in the prompt.
2. **One block backward per batch** (`edges_into`): backpropagate a batch of v_d's from x_D to the
   immediately upstream leaves with ``torch.autograd.grad(..., is_grads_batched=True)``: [B, pos, d_model]
   per upstream leaf, attention carrying it across positions.
3. **Dot products with the upstream nodes** (`Sources`): a kept upstream node u contributes a vector c_u to its
   leaf (feature: f_u · decoder row, error: ε, token: the embedding), so w(u -> d) = grad_d[pos_u] · c_u.

Edges into the logit node use the same dot products with the direct gradient ∂m/∂leaf.

Decoder Jacobians hold an SAE's input-normalisation statistics (sae_lens' ``layer_norm`` and
``constant_norm_rescale``) constant, as the node attributions ∂m/∂f do; the error node's edges then absorb the
path through those statistics, so conservation stays exact for every SAE class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scd.models.lazy import sub_sae


class SAEView:
    """The latents of one SAE that a prompt activates, as a small sae_lens SAE of the same class.

    Decoder rows and encoder Jacobians of a few latents are then cheap (the full SAE would need d_sae-wide
    matmuls per target) while still computed by the library's own ``encode``/``decode``. The copy is checked
    against the full SAE on the prompt (same active values, same reconstruction); an SAE class it cannot copy
    faithfully is used whole instead (correct, slower).
    """

    def __init__(self, sae, x: Tensor, f: Tensor, x_hat: Tensor):
        d_sae = f.shape[-1]
        active = (f != 0).any(0).nonzero().squeeze(1)
        sub = sub_sae(sae, active, x, f, x_hat)
        if sub is None:
            self.sae, self.latents = sae, torch.arange(d_sae, device=f.device)
        else:
            self.sae, self.latents = sub, active
        self.is_copy = sub is not None
        self.local = torch.full((d_sae,), -1, dtype=torch.long, device=f.device)
        self.local[self.latents] = torch.arange(len(self.latents), device=f.device)

    @torch.no_grad()
    def decoder_rows(self, x: Tensor, latents: Tensor) -> Tensor:
        """[n, pos, d_model]: ∂dec(f)[p]/∂f[p, latents[k]] at every position p (x: [pos, d_model], clean)."""
        n, pos = len(latents), x.shape[0]
        probes = torch.zeros(n + 1, pos, len(self.latents), dtype=self.sae.dtype, device=x.device)
        probes[torch.arange(n, device=x.device), :, self.local[latents]] = 1.0
        self.sae.encode(x)  # stateful normalisations (layer_norm, constant_norm_rescale) read x here
        out = self.sae.decode(probes)
        return out[:n] - out[n]  # decode is affine in f: the last probe is the zero vector

    def encoder_vjp(self, x_rows: Tensor, grad_local: Tensor) -> Tensor:
        """[B, d_model]: Σ_k grad_local[b, k] ∂f_k/∂x evaluated at x_rows[b] (latents in view order)."""
        with torch.enable_grad():
            x_rows = x_rows.detach().requires_grad_(True)
            f = self.sae.encode(x_rows)
            (g,) = torch.autograd.grad(f, x_rows, grad_local.to(f.dtype))
        return g


@dataclass
class Sources:
    """The kept nodes of one leaf seen from downstream: node ids, positions, and contribution vectors c_u."""

    node_ids: Tensor  # [n] int64
    pos: Tensor  # [n] int64
    vectors: Tensor  # [n, d_model]

    def weights(self, grad: Tensor) -> Tensor:
        """grad [B, pos, d_model] -> [B, n] edge weights c_u · grad[:, pos_u]."""
        return torch.einsum("bnd,nd->bn", grad[:, self.pos], self.vectors)


@dataclass
class Targets:
    """The kept nodes of one sublayer as edge targets: node ids, positions, and v_d = ∂(g_d · d)/∂x_D[q]."""

    node_ids: Tensor  # [B] int64
    pos: Tensor  # [B] int64
    vectors: Tensor  # [B, d_model]


def sublayer_targets(
    view: SAEView,
    x: Tensor,
    f: Tensor,
    grad_f: Tensor,
    grad_s: Tensor,
    feat_pos: Tensor,
    feat_idx: Tensor,
    feat_ids: Tensor,
    err_pos: Tensor,
    err_ids: Tensor,
) -> Targets:
    """Targets for the kept features (feat_*) and error nodes (err_*) of one sublayer.

    x [pos, d_model] is the clean input of the sublayer; grad_f [pos, d_sae] = ∂m/∂f, grad_s [pos, d_model]
    = ∂m/∂ε (= ∂m/∂ of the spliced output).
    """
    n_f, n_e = len(feat_pos), len(err_pos)
    rows = torch.cat([feat_pos, err_pos])
    grad_local = torch.zeros(n_f + n_e, len(view.latents), dtype=grad_f.dtype, device=x.device)
    grad_local[torch.arange(n_f, device=x.device), view.local[feat_idx]] = grad_f[feat_pos, feat_idx]
    # error targets: -J_encᵀ ∂m/∂f over the latents active at the error's position
    lat = view.latents
    grad_local[n_f:] = -(grad_f[err_pos][:, lat] * (f[err_pos][:, lat] != 0))
    v = view.encoder_vjp(x[rows], grad_local).to(x.dtype)
    v[n_f:] += grad_s[err_pos]
    return Targets(torch.cat([feat_ids, err_ids]), rows, v)


def edges_into(
    x_out: Tensor,
    targets: Targets,
    parents: list[tuple[Tensor, Sources]],
    *,
    batch_size: int,
    edge_threshold: float,
) -> tuple[list[Tensor], list[Tensor]]:
    """Edges from the `parents` (leaf, kept sources) into every target of one sublayer with input `x_out`.

    ``batch_size`` targets share one backward (``is_grads_batched``); ``batch_size=1`` is the one backward
    per target baseline. Returns lists of [e, 2] (upstream id, downstream id) pairs and [e] weights.
    """
    pairs: list[Tensor] = []
    weights: list[Tensor] = []
    leaves = [leaf for leaf, _ in parents]
    n = len(targets.pos)
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        b = sl.stop - sl.start
        grad_out = torch.zeros((b, *x_out.shape), dtype=x_out.dtype, device=x_out.device)
        grad_out[torch.arange(b, device=x_out.device), 0, targets.pos[sl]] = targets.vectors[sl]
        grads = torch.autograd.grad(
            x_out,
            leaves,
            grad_out if b > 1 else grad_out[0],
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=b > 1,
        )
        for (_, src), grad in zip(parents, grads, strict=True):
            if grad is None:
                continue
            grad = grad.reshape(b, *grad.shape[-2:])  # [b, pos, d_model]
            _collect(src, targets.node_ids[sl], src.weights(grad), edge_threshold, pairs, weights)
    return pairs, weights


def edges_into_metric(
    direct: list[Tensor | None], sources: list[Sources | None], logit_id: int, edge_threshold: float
) -> tuple[list[Tensor], list[Tensor]]:
    """Edges u -> logit node from the direct gradient ∂m/∂leaf (paths through no other SAE sublayer)."""
    pairs: list[Tensor] = []
    weights: list[Tensor] = []
    for grad, src in zip(direct, sources, strict=True):
        if grad is None or src is None:
            continue
        target = torch.tensor([logit_id], device=grad.device)
        _collect(src, target, src.weights(grad.reshape(1, *grad.shape[-2:])), edge_threshold, pairs, weights)
    return pairs, weights


def _collect(
    src: Sources, target_ids: Tensor, w: Tensor, threshold: float, pairs: list, weights: list
) -> None:
    """Append the edges of w [targets, sources] with |w| > threshold (exact zeros always dropped)."""
    keep = (w.abs() > threshold).nonzero()
    if len(keep) == 0:
        return
    pairs.append(torch.stack([src.node_ids[keep[:, 1]], target_ids[keep[:, 0]]], dim=1))
    weights.append(w[keep[:, 0], keep[:, 1]])
