"""Attribution graphs over SAE features: node attributions, error nodes and direct-effect edges.

Method: Marks et al. 2024, "Sparse Feature Circuits" (https://arxiv.org/abs/2403.19647), formulas in
the README's 'Discovery' section. `attribute` runs five phases; comments and log lines (logger ``scd.discovery.attribution``) use their names.

1. **leaf forward** -- one forward pass in which the token embedding and every SAE sublayer's spliced output
   are detached leaves carrying their clean values (`scd.discovery.splice.leaf_forward`). The logits are the clean
   model's, bit for bit. `attribute_batch` runs several prompts in it at once, right-padded: phases 1 and 2
   serve them all, phases 3-5 run per prompt (phase 5 shares the SAE views; see `_edges` for why its
   backward passes stay per prompt).
2. **backward sweep** -- ∂m/∂leaf for every leaf: the direct gradient of m, then sublayer by sublayer from the
   last to the first, ∂m/∂x_D (= ∂m/∂s_D, the splice's backward is the identity) pushed to the leaves
   upstream of D. That is the full gradient, one backward's worth of work (for a batch: of the sum of the
   prompts' metrics, whose gradient in each row is that prompt's own). Node attributions (atp):
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
from scd.discovery.splice import LeafForward, batchable, leaf_forward, pad_right

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
    return attribute_batch(model, saes, [tokens], [metric], config, all_nodes=all_nodes, **options)[0]


def attribute_batch(
    model: HookedTransformer,
    saes: dict,
    tokens: list[Tensor],
    metrics: list[Metric],
    config: DiscoveryConfig | None = None,
    *,
    all_nodes: bool = False,
    **options: Any,
) -> list[AttributionGraph]:
    """`attribute` for several prompts at once: ``tokens[i]`` [1, pos_i] explained by ``metrics[i]``.

    The prompts run right-padded as one batch (`scd.discovery.splice.pad_right`) through phases 1, 2 and 5, so
    each forward and each backward serves them all; every graph equals the one `attribute` gives for that
    prompt alone, to float rounding (the batched matmuls round differently). Phases 3 and 4 run per prompt.
    """
    config = DiscoveryConfig.build(config, **options)  # an OptionError (a ValueError) for bad values
    if len(tokens) != len(metrics) or not tokens:
        raise ValueError(
            f"{len(tokens)} token sequences for {len(metrics)} metrics: give one metric per prompt"
        )
    if len(tokens) > 1 and not batchable(model):  # right padding would be misread: one by one instead
        return [
            attribute(model, saes, t, m, config, all_nodes=all_nodes)
            for t, m in zip(tokens, metrics, strict=True)
        ]
    with torch.enable_grad():  # callers often hold torch.no_grad(); the engine needs autograd
        return _Attribution(model, saes, tokens, metrics).run(config, all_nodes=all_nodes)


@dataclass
class _Kept:
    """Kept nodes of one SAE sublayer, with their ids in the graph."""

    feat_pos: Tensor
    feat_idx: Tensor
    feat_ids: Tensor
    err_pos: Tensor
    err_ids: Tensor


@dataclass
class _SiteRow:
    """One prompt's slice of a `scd.discovery.splice.Site`: [pos, ...] tensors, detached, padding cut off."""

    hook: str
    sae: Any
    x: Tensor  # [pos, d_model] clean input of the sublayer
    f: Tensor  # [pos, d_sae]
    x_hat: Tensor  # [pos, d_model]
    eps: Tensor  # [pos, d_model]


@dataclass
class _Prompt:
    """One prompt of a batch: its row, its tokens and metric, and its slices of the leaf forward and gradients."""

    row: int
    tokens: Tensor  # [1, pos]
    metric: Metric
    m: Tensor  # the metric's value
    embed: Tensor  # [pos, d_model]
    sites: list[_SiteRow]
    direct: list[Tensor | None]  # per leaf, [pos, d_model]: ∂m/∂leaf through no SAE sublayer
    total: list[Tensor]  # per leaf, [pos, d_model]: ∂m/∂leaf
    grad_f: list[Tensor]  # per site, [pos, d_sae]: ∂m/∂f

    @property
    def n_pos(self) -> int:
        return self.tokens.shape[1]


class _Attribution:
    def __init__(self, model: HookedTransformer, saes: dict, tokens: list[Tensor], metrics: list[Metric]):
        self.model, self.saes, self.tokens, self.metrics = model, saes, tokens, metrics

    def run(self, config: DiscoveryConfig, *, all_nodes: bool) -> list[AttributionGraph]:
        batch_size, edge_threshold = config.batch_size, config.edge_threshold
        with phase(log, "leaf forward"):
            fwd = leaf_forward(self.model, self.saes, pad_right(self.tokens))
            # each metric reads its own row, cut at the prompt's last token
            ms = [
                m(fwd.logits[b : b + 1, : t.shape[1]])
                for b, (t, m) in enumerate(zip(self.tokens, self.metrics, strict=True))
            ]
        with phase(log, "backward sweep"):
            # rows never mix, so the gradient of the sum is each prompt's own gradient in its row
            m_all = ms[0]
            for m in ms[1:]:
                m_all = m_all + m
            direct, total = _backward_sweep(fwd, m_all)
            grad_f = _grad_f(fwd, total)
            prompts = [self._prompt(fwd, b, ms[b], direct, total, grad_f) for b in range(len(ms))]
            atp = [_atp_nodes(p) for p in prompts]
        if config.method == "ig":
            with phase(log, "integrated gradients"):
                atp = [
                    (*self._ig_nodes(p, config.ig_steps, batch_size), tok)
                    for p, (_, _, tok) in zip(prompts, atp, strict=True)
                ]
        with phase(log, "selection"):
            kept, tables = [], []
            for p, (feat_attr, err_attr, tok_attr) in zip(prompts, atp, strict=True):
                k = _select(p, feat_attr, err_attr, config.top_k, config.node_threshold, all_nodes)
                kept.append(k)
                tables.append(self._node_table(p, k, feat_attr, err_attr, tok_attr, fwd.logits.dtype))
        logits = [fwd.logits[p.row, p.n_pos - 1].detach().cpu() for p in prompts]
        dtype = fwd.logits.dtype
        # a batch's own graph serves the edges only when it holds one prompt (see _edges)
        one = fwd if len(prompts) == 1 else None
        del fwd, direct, total, grad_f, ms, m_all
        with phase(log, "edges"):
            found = _edges(
                self.model, self.saes, one, prompts, kept, [t[3] for t in tables], batch_size, edge_threshold
            )
        graphs = []
        for p, (nodes, act, attr, _), (pairs, weights), last in zip(
            prompts, tables, found, logits, strict=True
        ):
            edges = torch.cat(pairs).cpu() if pairs else torch.zeros(0, 2, dtype=torch.long)
            w = torch.cat(weights).cpu() if weights else torch.zeros(0, dtype=dtype)
            order = torch.argsort(edges[:, 1] * len(nodes) + edges[:, 0])  # by downstream, then upstream node
            graphs.append(
                AttributionGraph(
                    nodes=nodes,
                    activations=act.cpu(),
                    attributions=attr.cpu(),
                    edges=edges[order],
                    weights=w[order],
                    metric_value=float(p.m),
                    logits=last,
                )
            )
        return graphs

    def _prompt(self, fwd: LeafForward, b: int, m: Tensor, direct, total, grad_f) -> _Prompt:
        n = self.tokens[b].shape[1]
        return _Prompt(
            row=b,
            tokens=self.tokens[b],
            metric=self.metrics[b],
            m=m.detach(),
            embed=fwd.embed[b, :n].detach(),
            sites=[
                _SiteRow(
                    site.hook,
                    site.sae,
                    site.x[b, :n].detach(),
                    site.f[b, :n],
                    site.x_hat[b, :n].detach(),
                    site.eps[b, :n],
                )
                for site in fwd.sites
            ],
            direct=[None if g is None else g[b, :n] for g in direct],
            total=[g[b, :n] for g in total],
            grad_f=[g[b, :n] for g in grad_f],
        )

    # -- phase 3 ------------------------------------------------------------------------------------------
    def _ig_nodes(self, p: _Prompt, steps: int, batch_size: int) -> tuple[list[Tensor], list[Tensor]]:
        feat_attr, err_attr = [], []
        alphas = torch.arange(1, steps + 1, dtype=p.embed.dtype, device=p.embed.device) / steps
        for site in p.sites:
            g_f = torch.zeros_like(site.f)
            g_e = torch.zeros_like(site.eps)
            for chunk in alphas.split(batch_size):
                gf, ge = self._ig_chunk(p, site, chunk)
                g_f += gf
                g_e += ge
            feat_attr.append(site.f * g_f / steps)
            err_attr.append((site.eps * g_e).sum(-1) / steps)
        return feat_attr, err_attr

    def _ig_chunk(self, p: _Prompt, site: _SiteRow, alphas: Tensor) -> tuple[Tensor, Tensor]:
        """Summed gradients w.r.t. features and error of `site` scaled by each alpha (one sequence per alpha)."""
        sae, n = site.sae, len(alphas)
        a = alphas[:, None, None]
        f_a = (a.to(site.f.dtype) * site.f).requires_grad_(True)
        e_a = (a * site.eps).requires_grad_(True)

        def patch(x: Tensor, hook) -> Tensor:
            with torch.no_grad():
                sae.encode(x[:1])  # stateful SAE normalisations read the clean input here
            return sae.decode(f_a).to(x.dtype) + e_a

        logits = self.model.run_with_hooks(p.tokens.expand(n, -1), fwd_hooks=[(site.hook, patch)])
        m = p.metric(logits[0:1])
        for i in range(1, n):  # the same order of additions as sum(), without its int start
            m = m + p.metric(logits[i : i + 1])
        g_f, g_e = torch.autograd.grad(m, [f_a, e_a])
        return g_f.sum(0), g_e.sum(0)

    # -- phase 4 ------------------------------------------------------------------------------------------
    def _node_table(self, p: _Prompt, kept: list[_Kept], feat_attr, err_attr, tok_attr, dtype):
        """Number the kept nodes (fills kept[*].feat_ids/err_ids; token node ids are the positions) and list
        their keys, activations and attributions, and the logit node's id."""
        n_pos = p.n_pos
        nodes: list[NodeKey] = []
        act: list[Tensor] = []
        attr: list[Tensor] = []
        for pos in range(n_pos):
            nodes.append(NodeKey("token", TOKEN_HOOK, -1, int(p.tokens[0, pos]), pos))
        act.append(p.embed.norm(dim=-1))
        attr.append(tok_attr)
        for site, k, fa, ea in zip(p.sites, kept, feat_attr, err_attr, strict=True):
            kind, layer = node_kind(site.hook), node_layer(site.hook)
            k.feat_ids = torch.arange(len(nodes), len(nodes) + len(k.feat_pos), device=k.feat_pos.device)
            for pos, i in zip(k.feat_pos.tolist(), k.feat_idx.tolist(), strict=True):
                nodes.append(NodeKey(kind, site.hook, layer, i, pos))
            act.append(site.f[k.feat_pos, k.feat_idx].to(fa.dtype))
            attr.append(fa[k.feat_pos, k.feat_idx])
            k.err_ids = torch.arange(len(nodes), len(nodes) + len(k.err_pos), device=k.err_pos.device)
            for pos in k.err_pos.tolist():
                nodes.append(NodeKey("error", site.hook, layer, -1, pos))
            act.append(site.eps[k.err_pos].norm(dim=-1))
            attr.append(ea[k.err_pos])
        logit_id = len(nodes)
        nodes.append(NodeKey("logit", LOGIT_HOOK, self.model.cfg.n_layers, -1, n_pos - 1))
        act.append(p.m.reshape(1).to(dtype))
        attr.append(p.m.reshape(1).to(dtype))
        return nodes, torch.cat([a.to(dtype) for a in act]), torch.cat([a.to(dtype) for a in attr]), logit_id


# -- phase 2 --------------------------------------------------------------------------------------------------
def _backward_sweep(fwd: LeafForward, m: Tensor) -> tuple[list[Tensor | None], list[Tensor]]:
    """(direct, total): ∂m/∂leaf through no SAE sublayer (None where m does not depend on the leaf directly)
    and the full ∂m/∂leaf, for every leaf in `fwd.leaves` order, each [batch, pos, d_model]."""
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


def _grad_f(fwd: LeafForward, total: list[Tensor]) -> list[Tensor]:
    """∂m/∂f per sublayer [batch, pos, d_sae]: ∂m/∂s pulled back through the decoder."""
    grad_f = []
    for site, g in zip(fwd.sites, total[1:], strict=True):
        (gf,) = torch.autograd.grad(site.x_hat, site.f_leaf, g.to(site.x_hat.dtype))
        grad_f.append(gf.to(g.dtype))
    return grad_f


def _atp_nodes(p: _Prompt):
    """The atp attributions of one prompt's features, error nodes and token nodes."""
    feat_attr, err_attr = [], []
    for site, g, gf in zip(p.sites, p.total[1:], p.grad_f, strict=True):
        feat_attr.append(site.f.to(g.dtype) * gf)
        err_attr.append((site.eps * g).sum(-1))
    tok_attr = (p.embed * p.total[0]).sum(-1)
    return feat_attr, err_attr, tok_attr


# -- phase 4 --------------------------------------------------------------------------------------------------
def _select(p: _Prompt, feat_attr, err_attr, top_k, node_threshold, all_nodes) -> list[_Kept]:
    device = p.embed.device
    empty = torch.zeros(0, dtype=torch.long, device=device)
    chosen = []
    for site, fa in zip(p.sites, feat_attr, strict=True):
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
def _edges(model, saes, fwd: LeafForward | None, prompts, kept, logit_ids, batch_size, edge_threshold):
    """Every prompt's edges: (pairs, weights) lists per prompt.

    The SAE views are shared by the batch; the backward passes into each sublayer are not. A target's backward
    runs through the whole graph it is part of, so in the batch's graph each would cost as many prompts as the
    batch holds (measured: 8 prompts per batch made the demo model's edges 3x slower than one by one). Each
    prompt gets its edges from a leaf forward of its own instead (`fwd`, the batch's, when it is alone).
    """
    views = _views(prompts, kept)
    found = []
    for p, k, logit_id in zip(prompts, kept, logit_ids, strict=True):
        sources = _sources(p, k, views)
        pairs, weights = edges_into_metric(p.direct, sources, logit_id, edge_threshold)
        own = fwd if fwd is not None else leaf_forward(model, saes, p.tokens)
        leaves = own.leaves
        for d, (site, kd, view) in enumerate(zip(own.sites, k, views, strict=True)):
            if not len(kd.feat_pos) and not len(kd.err_pos):
                continue
            assert view is not None  # a view exists wherever a prompt keeps a node
            row = p.sites[d]
            targets: Targets = sublayer_targets(
                view, row.x, row.f, p.grad_f[d], p.total[d + 1],
                kd.feat_pos, kd.feat_idx, kd.feat_ids, kd.err_pos, kd.err_ids,
            )  # fmt: skip
            parents = [(leaves[u], s) for u, s in enumerate(sources[: d + 1]) if s is not None]
            pw, ww = edges_into(
                site.x, targets, parents, batch_size=batch_size, edge_threshold=edge_threshold
            )
            pairs += pw
            weights += ww
        found.append((pairs, weights))
        del own, leaves
    return found


def _views(prompts: list[_Prompt], kept: list[list[_Kept]]) -> list[SAEView | None]:
    """One SAEView per sublayer where some prompt keeps a node, over the latents active in those prompts."""
    views: list[SAEView | None] = []
    for d, site in enumerate(prompts[0].sites):
        rows = [p for p, k in zip(prompts, kept, strict=True) if len(k[d].feat_pos) or len(k[d].err_pos)]
        if not rows:
            views.append(None)
            continue
        x = torch.cat([p.sites[d].x for p in rows])
        f = torch.cat([p.sites[d].f for p in rows])
        x_hat = torch.cat([p.sites[d].x_hat for p in rows])
        views.append(SAEView(site.sae, x, f, x_hat))
    return views


def _sources(p: _Prompt, kept: list[_Kept], views: list[SAEView | None]) -> list[Sources | None]:
    """The kept nodes of one prompt per leaf (token node id == position), with their contribution vectors."""
    positions = torch.arange(p.n_pos, device=p.embed.device)
    sources: list[Sources | None] = [Sources(positions, positions, p.embed)]
    for site, k, view in zip(p.sites, kept, views, strict=True):
        vecs = [site.eps[k.err_pos]]
        if len(k.feat_pos):
            lat, inv = torch.unique(k.feat_idx, return_inverse=True)
            assert view is not None  # a view exists wherever a prompt keeps a feature
            rows = view.decoder_rows(site.x, lat)  # [n_lat, pos, d_model]
            row = rows[inv, k.feat_pos].to(site.eps.dtype)
            vecs.insert(0, site.f[k.feat_pos, k.feat_idx].to(row.dtype)[:, None] * row)
        ids = torch.cat([k.feat_ids, k.err_ids])
        sources.append(
            Sources(ids, torch.cat([k.feat_pos, k.err_pos]), torch.cat(vecs)) if len(ids) else None
        )
    return sources
