"""Feature metadata: what each feature of a circuit is, independent of the prompt it was found on.

* **SAE latents** get their *direct logit effect*: the decoder row W_dec[i] pushed straight through the final
  normalisation and the unembedding, ``logits = norm(W_dec[i]) @ W_U``, listing the top-10 promoted and the top-10
  suppressed tokens with their values. ``norm`` is ln_final as a linear map: centring (LayerNorm models) and the
  gain ``ln_final.w`` where the model still has one. Models loaded with LayerNorm folded (GPT-2 through
  TransformerLens) carry the gain inside W_U already, so no gain is applied twice. The per-position 1/sigma scale
  of LayerNorm is left out: values are logit changes per unit of the latent at unit residual scale, comparable
  within one model, and the ranking is what matters. This is the causal "bottom row" of the seed article.
* **Input tokens** get the same for their embedding row W_E[id]: what the token promotes on its own.
* **Error terms** and **logits** get a label saying what they are.
* A Neuronpedia URL where the SAE set has one (presets read it from sae_lens' yaml).
"""

from __future__ import annotations

import torch

from scd.core.circuit import Feature, Node
from scd.core.hooks import FEATURE_KINDS, TOKEN_HOOK
from scd.models.bundle import ModelBundle
from scd.models.lazy import decoder_rows

TOP_N = 10
_CHUNK = 256


def unembed_directions(bundle: ModelBundle, directions: torch.Tensor) -> torch.Tensor:
    """Direct logit effects [n, d_vocab] of residual-stream directions [n, d_model] (see module docstring)."""
    model = bundle.model
    v = directions.to(model.W_U.dtype)
    norm = model.cfg.normalization_type
    if norm in ("LN", "LNPre"):
        v = v - v.mean(-1, keepdim=True)
    gain = getattr(model.ln_final, "w", None)
    if gain is not None:
        v = v * gain
    return v @ model.W_U


def _top_tokens(bundle: ModelBundle, effects: torch.Tensor, n: int = TOP_N):
    """Per row: (promoted strings, values, suppressed strings, values)."""
    k = min(n, effects.shape[-1])
    top = effects.topk(k, dim=-1)
    bottom = (-effects).topk(k, dim=-1)
    tok = bundle.tokenizer.token_str
    out = []
    for r in range(effects.shape[0]):
        out.append(
            (
                [tok(int(i)) for i in top.indices[r]],
                [round(float(x), 6) for x in top.values[r]],
                [tok(int(i)) for i in bottom.indices[r]],
                [round(-float(x), 6) for x in bottom.values[r]],
            )
        )
    return out


@torch.no_grad()
def build_features(bundle: ModelBundle, nodes: list[Node]) -> list[Feature]:
    """One Feature per distinct ``feature_id`` among `nodes`, in first-seen order, with its metadata."""
    first: dict[str, Node] = {}
    for n in nodes:
        first.setdefault(n.feature_id, n)
    features: dict[str, Feature] = {}
    # SAE latents and tokens: direct logit effects, computed in chunks of rows per SAE / for the embedding
    rows: dict[str, list[Node]] = {}
    for n in first.values():
        if n.kind in FEATURE_KINDS:
            rows.setdefault(n.hook, []).append(n)
        elif n.kind == "token":
            rows.setdefault(TOKEN_HOOK, []).append(n)
    for hook, group in rows.items():
        for start in range(0, len(group), _CHUNK):
            chunk = group[start : start + _CHUNK]
            idx = torch.tensor([n.index for n in chunk], device=bundle.device)
            if hook == TOKEN_HOOK:
                vectors = bundle.model.W_E[idx]
            else:  # a lazy set's rows come from the prompt's slice (scd.models.lazy)
                vectors = decoder_rows(bundle.saes[hook], idx)
            effects = unembed_directions(bundle, vectors.float())
            for n, (up, up_v, down, down_v) in zip(chunk, _top_tokens(bundle, effects), strict=True):
                features[n.feature_id] = _feature(bundle, n, up, up_v, down, down_v)
    for fid, n in first.items():
        if fid not in features:
            features[fid] = _feature(bundle, n)
    return [features[fid] for fid in first]


def _feature(bundle: ModelBundle, n: Node, up=(), up_v=(), down=(), down_v=()) -> Feature:
    sae = bundle.sae_ids.get(n.hook, "") if n.kind not in ("token", "logit") else ""
    if n.kind == "token":
        label = f"input token {bundle.tokenizer.token_str(n.index)!r}"
    elif n.kind == "logit":
        label = f"logit of {bundle.tokenizer.token_str(n.index)!r}"
    elif n.kind == "error":
        label = f"SAE error term at {n.hook} (what the SAE does not reconstruct)"
    else:
        label = None
    url = bundle.neuronpedia(n.hook, n.index) if n.kind in FEATURE_KINDS else None
    return feature_of(n, bundle.name, sae, (up, up_v, down, down_v), url=url, label=label)


def feature_of(
    n: Node,
    model: str,
    sae: str,
    tops: tuple = ((), (), (), ()),
    *,
    url: str | None = None,
    label: str | None = None,
) -> Feature:
    """The Feature record of node `n`'s dictionary entry: its identity from the node, ``tops`` its direct logit
    effects (promoted tokens, their logits, suppressed tokens, their logits). Used by every engine."""
    up, up_v, down, down_v = tops
    return Feature(
        id=n.feature_id,
        model=model,
        sae=sae,
        hook=n.hook,
        layer=n.layer,
        kind=n.kind,
        index=n.index,
        top_promoted=list(up),
        top_promoted_logits=list(up_v),
        top_suppressed=list(down),
        top_suppressed_logits=list(down_v),
        neuronpedia_url=url,
        label=label,
    )
