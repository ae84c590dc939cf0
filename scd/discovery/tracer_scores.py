"""Faithfulness and completeness of a transcoder / CLT graph, measured in the model with its transcoders spliced in.

scd.discovery.evaluate scores SAE circuits by ablating SAE latents at the sublayers they are spliced into; a
circuit-tracer graph's features are transcoder latents that stand in for the MLPs, so they are ablated there
instead. The score is of the *features*: every error term keeps its clean value (Marks et al.'s
``handle_errors='keep'``; stored as ablation ``zero/keep``), as bench/dictionaries.py has always measured it.

1. **clean run** -- every layer's MLP input x (``blocks.L.ln2.hook_normalized``, where the features read) and
   output y (scd.core.hooks.transcoder_hooks); the error term is y minus the transcoders' reconstruction of x.
2. **ablated run** with a feature set S -- every MLP output is replaced by the transcoders' reconstruction from the
   features in S alone, encoded from *this* run's MLP inputs (attention and normalisation recompute downstream),
   plus the clean error term; features outside S are zero; BOS keeps its real MLP output (circuit-tracer gives it
   no features).
3. **scores** -- m = the target's demeaned logit (what the graph explains), M = every active feature of the graph,
   F(C) = (m(C) - m(empty)) / (m(M) - m(empty)), completeness = 1 - F(M minus C). With S = M the run is the clean
   model (reconstruction + its own error), so F(M) = 1 and F(empty) = 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from scd.core.circuit import Circuit
from scd.core.hooks import transcoder_hooks
from scd.discovery.evaluate import Scores

ABLATION = "zero/keep"  # features zero-ablated, error terms kept (stored on the Circuit with the scores)

FeatureKey = tuple[int, int, int]  # (layer, position, latent)


def graph_features(graph) -> list[FeatureKey]:
    """Every active feature of a circuit-tracer Graph, in its node order."""
    return [(int(a), int(b), int(c)) for a, b, c in graph.active_features[graph.selected_features].tolist()]


def circuit_features(circuit: Circuit) -> set[FeatureKey]:
    """The transcoder feature nodes of a Circuit made by scd.discovery.tracer."""
    return {(n.layer, n.pos, n.index) for n in circuit.nodes if n.kind == "transcoder"}


@torch.no_grad()
def evaluate(
    loaded, token_ids: list[int], target_id: int, model_set: Iterable, circuit_set: Iterable
) -> Scores:
    """Phases 1-3: scores of the features ``circuit_set`` within ``model_set`` (M), both as FeatureKeys.
    ``loaded``: a scd.discovery.tracer.Loaded (its replacement model runs as the plain model outside attribution)."""
    model, tc = loaded.model, loaded.model.transcoders
    n_layers = model.cfg.n_layers
    clt = not hasattr(tc, "transcoders")
    tokens = torch.tensor([token_ids], device=model.cfg.device)
    all_keys, keys = set(model_set), set(circuit_set)

    def metric(logits: torch.Tensor) -> float:
        last = logits[0, -1].float()
        return float(last[target_id] - last.mean())

    hooks_of = [transcoder_hooks(layer) for layer in range(n_layers)]  # (MLP input, MLP output) per layer
    _, cache = model.run_with_cache(tokens, names_filter=[h for pair in hooks_of for h in pair])
    x = torch.stack([cache[h_in][0] for h_in, _ in hooks_of])  # [L, pos, d]
    y = torch.stack([cache[h_out][0] for _, h_out in hooks_of])
    error = y - torch.stack([_decode(tc, clt, _encode(tc, clt, x), layer) for layer in range(n_layers)])

    def run(keep: set[FeatureKey]) -> float:
        seen: dict[int, torch.Tensor] = {}
        mask = None

        def read(a, hook, layer):
            seen[layer] = a[0]

        def write(out, hook, layer):
            nonlocal mask
            xin = torch.stack([seen[min(i, layer)] for i in range(n_layers)])  # later layers: unused
            f = _encode(tc, clt, xin)  # [L, pos, d_t]
            if mask is None:
                mask = torch.zeros_like(f, dtype=torch.bool)
                for lay, pos, idx in keep:
                    mask[lay, pos, idx] = True
            new = _decode(tc, clt, torch.where(mask, f, torch.zeros_like(f)), layer) + error[layer]
            new[0] = out[0, 0]
            return new[None].to(out.dtype)

        hooks = []
        for layer, (mlp_in, mlp_out) in enumerate(hooks_of):
            hooks.append((mlp_in, lambda a, hook, layer=layer: read(a, hook, layer)))
            hooks.append((mlp_out, lambda o, hook, layer=layer: write(o, hook, layer)))
        return metric(model.run_with_hooks(tokens, fwd_hooks=hooks))

    m_model, m_empty = run(all_keys), run(set())
    m_circuit, m_complement = run(keys & all_keys), run(all_keys - keys)
    d = m_model - m_empty
    faithfulness = (m_circuit - m_empty) / d if d else float("nan")
    completeness = 1 - (m_complement - m_empty) / d if d else float("nan")
    return Scores(faithfulness, completeness, m_model, m_empty, m_circuit, m_complement)


def _encode(tc, clt: bool, x: torch.Tensor) -> torch.Tensor:
    """Feature activations [L, pos, d_t] from MLP inputs x [L, pos, d]."""
    if clt:
        return tc.encode(x)
    return torch.stack([t.encode(x[i]) for i, t in enumerate(tc)])


def _decode(tc, clt: bool, f: torch.Tensor, layer: int) -> torch.Tensor:
    """MLP output of ``layer`` [pos, d] from feature activations f [L, pos, d_t] (a CLT: every layer <= it)."""
    if not clt:
        return f[layer] @ tc[layer].W_dec + tc[layer].b_dec
    out = tc.b_dec[layer].expand(f.shape[1], -1).clone()
    for source in range(layer + 1):
        out = out + f[source] @ tc.W_dec[source][:, layer - source]
    return out
