"""Attribution graphs over SAE features: node attributions, error nodes and direct-effect edges.

Method: Marks et al. 2024, "Sparse Feature Circuits" (https://arxiv.org/abs/2403.19647), formulas in
the README's 'Discovery' section. `attribute` runs five phases; comments and log lines (logger ``scd.discovery.attribution``) use their names.

1. **leaf forward** -- one forward pass in which the token embedding and every SAE sublayer's spliced output
   are detached leaves carrying their clean values (`scd.discovery.splice.leaf_forward`). The logits are the clean
   model's, bit for bit.
2. **backward sweep** -- ∂m/∂leaf for every leaf: the direct gradient of m, then sublayer by sublayer from the
   last to the first, ∂m/∂x_D (= ∂m/∂s_D, the splice's backward is the identity) pushed to the leaves
   upstream of D. That is the full gradient, one backward's worth of work. Node attributions (atp):
   feature f · ∂m/∂f, error node Σ_d ε · ∂m/∂ε, token node Σ_d e · ∂m/∂e (e = token + positional embedding).
3. **integrated gradients** (``method="ig"`` only) -- Marks' variant: one sublayer at a time, its features
   and error scaled by α = 1/N, 2/N, ..., 1 (zero baseline), the rest of the model clean; attribution =
   value × mean gradient. ``ig_steps=1`` reproduces atp. Token nodes and edges stay atp.
4. **selection** -- per sublayer, the ``top_k`` active features by |attribution| over all positions, and/or
   those with |attribution| >= ``node_threshold`` (both given: both must hold). An error node is kept where
   |attribution| >= the smallest kept feature |attribution| of its sublayer (a sublayer without kept features
   uses ``node_threshold``, else the smallest kept feature |attribution| of the whole graph): it is kept exactly
   when it would have made the cut as a feature. Every token node and the logit node are always kept;
   ``all_nodes=True`` keeps every active feature and every error node.
5. **edges** -- direct effects between kept nodes (`scd.discovery.edges`), batched many targets per backward.

Conservation (tested): with ``all_nodes=True``, a node's edges to all its children plus its edge to the logit
node sum to its (atp) attribution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from scd.core.hooks import LOGIT_HOOK, TOKEN_HOOK, node_kind, node_layer
from scd.core.timing import phase
from scd.discovery.config import DiscoveryConfig
from scd.discovery.edges import SAEView, Sources, Targets, edges_into, edges_into_metric, sublayer_targets
from scd.discovery.metrics import Metric
from scd.discovery.splice import LeafForward, leaf_forward

log = logging.getLogger("scd.discovery.attribution")


@dataclass
class NodeKey:
    """One node. kind: one of scd.core.hooks.NODE_KINDS.

    hook: the TransformerLens hook of the SAE ("hook_embed" for tokens, "unembed" for the logit node);
    layer: block index (resid_post of block L is layer L+1; tokens -1; the logit node n_layers);
    index: SAE latent for features, token id for token nodes, -1 for error and logit nodes;
    pos: token position (the logit node sits at the last position).
    """

    kind: str
    hook: str
    layer: int
    index: int
    pos: int


@dataclass
class AttributionGraph:
    """Nodes and direct-effect edges explaining one metric on one prompt.

    Node order: token nodes by position; then each SAE sublayer in forward order, its kept features (by
    position, then latent) followed by its kept error nodes (by position); the logit node last.
    ``activations``: feature value; L2 norm of ε (error) or of the embedding (token); metric value (logit).
    ``attributions``: estimated effect on m (positive = toward the target); for the logit node, m itself.
    ``edges[k] = (upstream, downstream)`` indexes ``nodes``, ``weights[k]`` its direct effect; edges are sorted by
    downstream node, then upstream node. All tensors are on the CPU.
    """

    nodes: list[NodeKey]
    activations: Tensor
    attributions: Tensor
    edges: Tensor
    weights: Tensor
    metric_value: float
    logits: Tensor  # clean model's logits at the last position [d_vocab]


def attribute(
    model: HookedTransformer,
    saes: dict,
    tokens: Tensor,
    metric: Metric,
    config: DiscoveryConfig | None = None,
    *,
    all_nodes: bool = False,
    **options: Any,
) -> AttributionGraph:
    """The attribution graph of `metric` on `tokens` [1, pos] with `saes` (hook name -> sae_lens SAE) spliced in.

    How: `config` (a DiscoveryConfig; method, ig_steps, top_k, node_threshold, edge_threshold, batch_size are
    read), and/or those fields as keywords. ``batch_size`` caps how many downstream targets share one backward
    pass (memory grows with it); ``batch_size=1`` is the one-backward-per-target baseline.
    """
    config = DiscoveryConfig.build(config, **options)  # an OptionError (a ValueError) for bad values
    with torch.enable_grad():  # callers often hold torch.no_grad(); the engine needs autograd
        return _Attribution(model, saes, tokens, metric).run(config, all_nodes=all_nodes)


@dataclass
class _Kept:
    """Kept nodes of one SAE sublayer, with their ids in the graph."""

    feat_pos: Tensor
    feat_idx: Tensor
    feat_ids: Tensor
    err_pos: Tensor
    err_ids: Tensor


class _Attribution:
    def __init__(self, model: HookedTransformer, saes: dict, tokens: Tensor, metric: Metric):
        self.model, self.saes, self.tokens, self.metric = model, saes, tokens, metric

    def run(self, config: DiscoveryConfig, *, all_nodes: bool) -> AttributionGraph:
        batch_size, edge_threshold = config.batch_size, config.edge_threshold
        with phase(log, "leaf forward"):
            fwd = leaf_forward(self.model, self.saes, self.tokens)
            m = self.metric(fwd.logits)
        with phase(log, "backward sweep"):
            direct, total = _backward_sweep(fwd, m)
            grad_f, feat_attr, err_attr, tok_attr = _atp_nodes(fwd, total)
        if config.method == "ig":
            with phase(log, "integrated gradients"):
                feat_attr, err_attr = self._ig_nodes(fwd, config.ig_steps, batch_size)
        with phase(log, "selection"):
            kept = _select(fwd, feat_attr, err_attr, config.top_k, config.node_threshold, all_nodes)
            nodes, act, attr, logit_id = self._node_table(fwd, kept, feat_attr, err_attr, tok_attr, m)
        with phase(log, "edges"):
            pairs, weights = _edges(fwd, kept, direct, total, grad_f, logit_id, batch_size, edge_threshold)
        edges = torch.cat(pairs).cpu() if pairs else torch.zeros(0, 2, dtype=torch.long)
        weights = torch.cat(weights).cpu() if weights else torch.zeros(0, dtype=fwd.logits.dtype)
        order = torch.argsort(edges[:, 1] * len(nodes) + edges[:, 0])  # by downstream, then upstream node
        return AttributionGraph(
            nodes=nodes,
            activations=act.cpu(),
            attributions=attr.cpu(),
            edges=edges[order],
            weights=weights[order],
            metric_value=float(m.detach()),
            logits=fwd.logits[0, -1].detach().cpu(),
        )

    # -- phase 3 ------------------------------------------------------------------------------------------
    def _ig_nodes(self, fwd: LeafForward, steps: int, batch_size: int) -> tuple[list[Tensor], list[Tensor]]:
        feat_attr, err_attr = [], []
        alphas = torch.arange(1, steps + 1, dtype=fwd.logits.dtype, device=fwd.logits.device) / steps
        for site in fwd.sites:
            g_f = torch.zeros_like(site.f)
            g_e = torch.zeros_like(site.eps)
            for chunk in alphas.split(batch_size):
                gf, ge = self._ig_chunk(site, chunk)
                g_f += gf
                g_e += ge
            feat_attr.append(site.f * g_f / steps)
            err_attr.append((site.eps * g_e).sum(-1) / steps)
        return feat_attr, err_attr

    def _ig_chunk(self, site, alphas: Tensor) -> tuple[Tensor, Tensor]:
        """Summed gradients w.r.t. features and error of `site` scaled by each alpha (one sequence per alpha)."""
        sae, n = site.sae, len(alphas)
        a = alphas[:, None, None]
        f_a = (a.to(site.f.dtype) * site.f).requires_grad_(True)
        e_a = (a * site.eps).requires_grad_(True)

        def patch(x: Tensor, hook) -> Tensor:
            with torch.no_grad():
                sae.encode(x[:1])  # stateful SAE normalisations read the clean input here
            return sae.decode(f_a).to(x.dtype) + e_a

        logits = self.model.run_with_hooks(self.tokens.expand(n, -1), fwd_hooks=[(site.hook, patch)])
        m = self.metric(logits[0:1])
        for i in range(1, n):  # the same order of additions as sum(), without its int start
            m = m + self.metric(logits[i : i + 1])
        g_f, g_e = torch.autograd.grad(m, [f_a, e_a])
        return g_f.sum(0), g_e.sum(0)

    # -- phase 4 ------------------------------------------------------------------------------------------
    def _node_table(self, fwd, kept: list[_Kept], feat_attr, err_attr, tok_attr, m):
        """Number the kept nodes (fills kept[*].feat_ids/err_ids; token node ids are the positions) and list
        their keys, activations and attributions."""
        n_pos = self.tokens.shape[1]
        nodes: list[NodeKey] = []
        act: list[Tensor] = []
        attr: list[Tensor] = []
        for p in range(n_pos):
            nodes.append(NodeKey("token", TOKEN_HOOK, -1, int(self.tokens[0, p]), p))
        act.append(fwd.embed[0].detach().norm(dim=-1))
        attr.append(tok_attr)
        for site, k, fa, ea in zip(fwd.sites, kept, feat_attr, err_attr, strict=True):
            kind, layer = node_kind(site.hook), node_layer(site.hook)
            k.feat_ids = torch.arange(len(nodes), len(nodes) + len(k.feat_pos), device=k.feat_pos.device)
            for p, i in zip(k.feat_pos.tolist(), k.feat_idx.tolist(), strict=True):
                nodes.append(NodeKey(kind, site.hook, layer, i, p))
            act.append(site.f[k.feat_pos, k.feat_idx].to(fa.dtype))
            attr.append(fa[k.feat_pos, k.feat_idx])
            k.err_ids = torch.arange(len(nodes), len(nodes) + len(k.err_pos), device=k.err_pos.device)
            for p in k.err_pos.tolist():
                nodes.append(NodeKey("error", site.hook, layer, -1, p))
            act.append(site.eps[k.err_pos].norm(dim=-1))
            attr.append(ea[k.err_pos])
        logit_id = len(nodes)
        nodes.append(NodeKey("logit", LOGIT_HOOK, self.model.cfg.n_layers, -1, n_pos - 1))
        dtype = fwd.logits.dtype
        act.append(m.detach().reshape(1).to(dtype))
        attr.append(m.detach().reshape(1).to(dtype))
        return nodes, torch.cat([a.to(dtype) for a in act]), torch.cat([a.to(dtype) for a in attr]), logit_id


# -- phase 2 --------------------------------------------------------------------------------------------------
def _backward_sweep(fwd: LeafForward, m: Tensor) -> tuple[list[Tensor | None], list[Tensor]]:
    """(direct, total): ∂m/∂leaf through no SAE sublayer (None where m does not depend on the leaf directly)
    and the full ∂m/∂leaf, for every leaf in `fwd.leaves` order, each [1, pos, d_model]."""
    leaves = fwd.leaves
    direct: list[Tensor | None] = list(torch.autograd.grad(m, leaves, retain_graph=True, allow_unused=True))
    total = [
        torch.zeros_like(leaf) if g is None else g.clone() for leaf, g in zip(leaves, direct, strict=True)
    ]
    for k in range(len(fwd.sites) - 1, -1, -1):
        g = total[k + 1]
        grads = torch.autograd.grad(fwd.sites[k].x, leaves[: k + 1], g, retain_graph=True, allow_unused=True)
        for u, gu in enumerate(grads):
            if gu is not None:
                total[u] += gu
    return direct, total


def _atp_nodes(fwd: LeafForward, total: list[Tensor]):
    """∂m/∂f per sublayer and the atp attributions of features, error nodes and token nodes."""
    grad_f, feat_attr, err_attr = [], [], []
    for site, g in zip(fwd.sites, total[1:], strict=True):
        (gf,) = torch.autograd.grad(site.x_hat, site.f_leaf, g[0].to(site.x_hat.dtype))
        gf = gf.to(g.dtype)
        grad_f.append(gf)
        feat_attr.append(site.f.to(g.dtype) * gf)
        err_attr.append((site.eps * g[0]).sum(-1))
    tok_attr = (fwd.embed[0].detach() * total[0][0]).sum(-1)
    return grad_f, feat_attr, err_attr, tok_attr


# -- phase 4 --------------------------------------------------------------------------------------------------
def _select(fwd, feat_attr, err_attr, top_k, node_threshold, all_nodes) -> list[_Kept]:
    device = fwd.logits.device
    empty = torch.zeros(0, dtype=torch.long, device=device)
    chosen = []
    for site, fa in zip(fwd.sites, feat_attr, strict=True):
        pos, idx = (site.f != 0).nonzero(as_tuple=True)
        score = fa[pos, idx].abs()
        if not all_nodes:
            order = torch.argsort(score, descending=True, stable=True)
            order = order[score[order] > 0]
            if top_k is not None:
                order = order[:top_k]
            if node_threshold is not None:
                order = order[score[order] >= node_threshold]
            pos, idx, score = pos[order], idx[order], score[order]
        chosen.append((pos, idx, score))
    kept_scores = torch.cat([s for _, _, s in chosen])
    global_min = kept_scores.min() if len(kept_scores) else None
    kept = []
    for (pos, idx, score), ea in zip(chosen, err_attr, strict=True):
        if all_nodes:
            err_pos = torch.arange(len(ea), device=device)
        else:
            if len(score):
                cut = score.min()
            elif node_threshold is not None:
                cut = torch.tensor(node_threshold, device=device)
            else:
                cut = global_min
            err_pos = empty if cut is None else (ea.abs() >= cut).nonzero().squeeze(1)
        order = torch.argsort(pos * (idx.max() + 1 if len(idx) else 1) + idx)  # by position, then latent
        kept.append(_Kept(pos[order], idx[order], empty, err_pos, empty))
    return kept


# -- phase 5 --------------------------------------------------------------------------------------------------
def _edges(fwd: LeafForward, kept: list[_Kept], direct, total, grad_f, logit_id, batch_size, edge_threshold):
    embed = fwd.embed[0].detach()
    positions = torch.arange(embed.shape[0], device=embed.device)
    sources: list[Sources | None] = [Sources(positions, positions, embed)]  # token node id == position
    views: list[SAEView | None] = []
    for site, k in zip(fwd.sites, kept, strict=True):
        x = site.x[0].detach()
        needs_view = len(k.feat_pos) > 0 or len(k.err_pos) > 0
        view = SAEView(site.sae, x, site.f, site.x_hat) if needs_view else None
        views.append(view)
        vecs = [site.eps[k.err_pos]]
        if len(k.feat_pos):
            lat, inv = torch.unique(k.feat_idx, return_inverse=True)
            assert view is not None  # needs_view holds whenever there are feature targets
            rows = view.decoder_rows(x, lat)  # [n_lat, pos, d_model]
            row = rows[inv, k.feat_pos].to(site.eps.dtype)
            vecs.insert(0, site.f[k.feat_pos, k.feat_idx].to(row.dtype)[:, None] * row)
        ids = torch.cat([k.feat_ids, k.err_ids])
        sources.append(
            Sources(ids, torch.cat([k.feat_pos, k.err_pos]), torch.cat(vecs)) if len(ids) else None
        )

    pairs, weights = edges_into_metric(direct, sources, logit_id, edge_threshold)
    leaves = fwd.leaves
    for d, (site, k, view) in enumerate(zip(fwd.sites, kept, views, strict=True)):
        if view is None:
            continue
        x = site.x[0].detach()
        targets: Targets = sublayer_targets(
            view,
            x,
            site.f,
            grad_f[d],
            total[d + 1][0],
            k.feat_pos,
            k.feat_idx,
            k.feat_ids,
            k.err_pos,
            k.err_ids,
        )
        parents = [(leaves[u], s) for u, s in enumerate(sources[: d + 1]) if s is not None]
        p, w = edges_into(site.x, targets, parents, batch_size=batch_size, edge_threshold=edge_threshold)
        pairs += p
        weights += w
    return pairs, weights
