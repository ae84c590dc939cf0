"""Feature cards: what each SAE latent responds to over a reference corpus, and a short automatic label.

For every latent of a model's SAE set:

1. run the reference texts through the model with the SAEs read out (not spliced: reading changes nothing) and
   keep, per latent, its activation frequency (share of non-BOS positions where it is > 0), its maximum, and its
   ``TOP_CONTEXTS`` strongest positions (ties by text and position order);
2. its direct logit effect (the decoder row through the unembedding, scd.discovery.features);
3. a label from both: what the top contexts share -- the same current token ("fires on 'x'"), or, for bracketed
   text, the same innermost open bracket ("fires inside an open '('") -- with how selective that is over *all*
   its firings, not only the top ones ("(46% of firings, base 25%)": the share of the positions where it fires
   that have the property, and the share of all positions that do; under ``LIFT`` times the base the property
   describes the top contexts only and is not named: "no selective context"), and the top promoted token
   ("promotes ')'"). A rule, not a language model: it says only what the numbers show, and "no common
   context" when the contexts share nothing. Labels are data: regenerate them (``scd features label``), never
   edit them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from scd.core.circuit import Feature, Node, feature_id
from scd.core.hooks import node_kind, node_layer
from scd.discovery.features import _top_tokens, build_features, unembed_directions
from scd.models.bundle import ModelBundle

TOP_CONTEXTS = 8
CONTEXT_CHARS = 24  # of text before the firing position shown in a context
SHARED = 0.75  # share of top contexts that must agree for a label to name what they share
LIFT = 1.5  # ... and how much likelier than at a random position that context must be over all its firings
OPENERS = {"(": ")", "[": "]", "{": "}"}


@dataclass
class FeatureCard:
    feature_id: str
    hook: str
    index: int
    frequency: float
    max_activation: float
    top_contexts: list[str] = field(default_factory=list)  # "...text[tok]" with the firing token bracketed
    top_activations: list[float] = field(default_factory=list)
    top_promoted: list[str] = field(default_factory=list)
    label: str = ""


def innermost_open(prefix: str) -> str | None:
    """The innermost bracket still open at the end of ``prefix`` (None if none is open)."""
    stack: list[str] = []
    closers = {v: k for k, v in OPENERS.items()}
    for ch in prefix:
        if ch in OPENERS:
            stack.append(ch)
        elif ch in closers and stack and stack[-1] == closers[ch]:
            stack.pop()
    return stack[-1] if stack else None


#: (what, value) -> (share of the latent's firing positions with it, share of all positions with it); what is
#: "token" (the current token is value) or "open" (the innermost open bracket is value)
Rates = Callable[[str, str], tuple[float, float]]


def auto_label(
    tokens: Sequence[str],
    prefixes: Sequence[str],
    promoted: Sequence[str],
    frequency: float,
    rates: Rates | None = None,
) -> str:
    """Phase 3: the label from the top contexts' firing tokens, their text so far, the top promoted token, and
    (``rates``) how selective a shared context is over all of the latent's firings."""
    if frequency == 0:
        return "never fires on the reference text"

    parts: list[str] = []
    unselective = False

    def name(text: str, what: str, value: str) -> None:
        nonlocal unselective
        if rates is None:
            parts.append(text)
            return
        share, base = rates(what, value)
        if (
            share < LIFT * base
        ):  # the top contexts share it, its firings overall hardly more than any position
            unselective = True
            return
        parts.append(f"{text} ({share:.0%} of firings, base {base:.0%})")

    if tokens:
        tok, n = Counter(tokens).most_common(1)[0]
        if n >= SHARED * len(tokens):
            name(f"fires on {tok!r}", "token", tok)
        opens = Counter(innermost_open(p) for p in prefixes).most_common(1)[0]
        if opens[0] is not None and opens[1] >= SHARED * len(prefixes):
            name(f"fires inside an open {opens[0]!r}", "open", opens[0])
    if not parts:
        parts.append("no selective context" if unselective else "no common context")
    if promoted:
        parts.append(f"promotes {promoted[0]!r}")
    return "; ".join(parts)


@torch.no_grad()
def feature_cards(bundle: ModelBundle, texts: Sequence[str], *, top: int = TOP_CONTEXTS) -> list[FeatureCard]:
    """Phases 1-3 for every latent of every SAE in ``bundle``, over ``texts``."""
    tok = bundle.tokenizer
    bos = tok.bos_id
    encoded = [tok.encode(t) for t in texts]
    acts: dict[str, list[torch.Tensor]] = {h: [] for h in bundle.saes}  # per text [pos, d_sae]
    for ids in encoded:
        tokens = torch.tensor([ids], dtype=torch.long, device=bundle.device)

        def grab(x, hook):
            acts[hook.name].append(bundle.saes[hook.name].encode(x)[0].float().cpu())

        bundle.model.run_with_hooks(tokens, fwd_hooks=[(h, grab) for h in bundle.saes])
    strs = [[tok.token_str(i) for i in ids] for ids in encoded]
    starts = [1 if bos is not None and ids and ids[0] == bos else 0 for ids in encoded]
    # per non-BOS position (the rows of each hook's matrix below): its token and innermost open bracket
    row_token, row_open = [], []
    for t, s in enumerate(strs):
        for p in range(starts[t], len(s)):
            row_token.append(s[p])
            row_open.append(innermost_open("".join(s[starts[t] : p + 1])) or "")
    properties = {"token": row_token, "open": row_open}
    masks: dict[tuple[str, str], torch.Tensor] = {}  # (what, value) -> [rows] bool, built once each

    def has(what: str, value: str) -> torch.Tensor:
        if (what, value) not in masks:
            masks[(what, value)] = torch.tensor([v == value for v in properties[what]])
        return masks[(what, value)]

    cards = []
    for hook, per_text in acts.items():
        # every non-BOS position of every text, in text then position order: [n_positions, d_sae]
        rows = [(t, p) for t, ids in enumerate(encoded) for p in range(starts[t], len(ids))]
        matrix = torch.cat([a[s:] for a, s in zip(per_text, starts, strict=True)])
        freq = (matrix > 0).float().mean(0)
        peak = matrix.max(0).values
        k = min(top, matrix.shape[0])
        # stable top-k: sort by -activation with position order breaking ties
        order = torch.sort(-matrix, dim=0, stable=True).indices[:k]
        sae = bundle.saes[hook]
        effects = _top_tokens(bundle, unembed_directions(bundle, sae.W_dec.detach()), n=3)
        for j in range(matrix.shape[1]):
            ctx, vals, toks, prefixes = [], [], [], []
            for r in order[:, j].tolist():
                v = float(matrix[r, j])
                if v <= 0:
                    break
                t, p = rows[r]
                s = strs[t]
                before = "".join(s[starts[t] : p])
                ctx.append(f"{before[-CONTEXT_CHARS:]}[{s[p]}]")
                vals.append(round(v, 6))
                toks.append(s[p])
                prefixes.append(before + s[p])
            promoted = effects[j][0]
            firing = matrix[:, j] > 0

            def rates(what: str, value: str, firing=firing) -> tuple[float, float]:
                mask = has(what, value)
                return float(mask[firing].float().mean()), float(mask.float().mean())

            cards.append(
                FeatureCard(
                    feature_id=_feature_id(bundle, hook, j),
                    hook=hook,
                    index=j,
                    frequency=round(float(freq[j]), 6),
                    max_activation=round(float(peak[j]), 6),
                    top_contexts=ctx,
                    top_activations=vals,
                    top_promoted=promoted,
                    label=auto_label(toks, prefixes, promoted, float(freq[j]), rates),
                )
            )
    return cards


def _feature_id(bundle: ModelBundle, hook: str, index: int) -> str:
    return feature_id(bundle.name, bundle.sae_set, hook, index)


def latent_features(bundle: ModelBundle) -> list[Feature]:
    """The Feature record of every latent of every SAE in ``bundle`` -- the same metadata a circuit that uses the
    latent would carry (scd.discovery.features.build_features on a node standing for it), so labelling can create
    the Features no circuit has stored yet."""
    stubs = [
        Node(
            id="",
            kind=node_kind(hook),
            layer=node_layer(hook),
            hook=hook,
            index=j,
            pos=0,
            token="",
            activation=0.0,
            attribution=0.0,
            feature_id=_feature_id(bundle, hook, j),
        )
        for hook, sae in bundle.saes.items()
        for j in range(sae.W_dec.shape[0])
    ]
    return build_features(bundle, stubs)
