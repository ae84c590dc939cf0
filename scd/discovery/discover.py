"""`discover(prompt, config)`: one prompt in, one Circuit out; `discover_batch(prompts, config)`: many, batched;
`faithfulness_curve(prompt, ks)` on top of them.

This is the orchestration floor of the engine: it calls attribution, features and evaluation, none of which
calls back up. The options come as one `scd.discovery.config.DiscoveryConfig` (validated when it is built).

Phases (log lines of logger ``scd.discovery.discover`` use these names):

1. **load** -- the model bundle (`scd.models.bundle.load_bundle`), unless a ModelBundle is passed in.
2. **target** -- tokenise the prompt and pick what to explain (README 'Discovery', target convention):
   * default (``target_mode="predicted"``): the model's top next-token prediction after the whole prompt --
     "Copyright (C" explains the predicted ")";
   * ``target="TOKEN"``: that token instead (it must be exactly one token);
   * ``target_mode="last-token"``: the seed's convention -- the prompt's last token is the target, predicted
     from the tokens before it.
   The metric (``metric=``) is the target's log-probability (minus its cross-entropy; the default), its
   demeaned logit (``"logit"``: does not saturate when the model is already sure), or with ``contrast`` the
   logit difference target - contrast (Marks et al.; the default when a contrast is given).
   `discover_batch` runs the clean forward of ``config.prompt_batch`` prompts at once (right-padded).
3. **attribute** -- nodes and direct-effect edges (`scd.discovery.attribution.attribute_batch`: the prompts of
   one batch share each forward and backward).
4. **assemble** -- Nodes, Edges and Features (`scd.discovery.features`) into a `scd.core.circuit.Circuit`.
   4b. **select** (``config.selection``) -- the top-k circuit cut further by cumulative influence or by greedy
   ablation-checked selection (`scd.discovery.selection`).
5. **score** (``config.scores``) -- faithfulness and completeness by ablation (`scd.discovery.evaluate`), and each
   latent's measured effect on the metric (`scd.discovery.effects`).

Every expected problem is an InputError or ModelError with one line that says how to fix it. In a batch, a
prompt's InputError is that prompt's result (the others go on); a ModelError stops the batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from scd.core.circuit import Circuit, Edge, Node, PromptRecord, feature_id, logit_feature_id, token_feature_id
from scd.core.errors import InputError, ModelError
from scd.core.hooks import FEATURE_KINDS
from scd.core.timing import phase
from scd.discovery.config import DiscoveryConfig
from scd.discovery.effects import latent_effects
from scd.discovery.evaluate import SPLICED_KINDS, CurvePoint, curve, default_means, evaluate
from scd.models.bundle import ModelBundle, load_bundle

log = logging.getLogger("scd.discovery.discover")


def _phase(name: str):
    return phase(log, name, logging.INFO)


TOP_COMPLETIONS = 5


def discover(
    prompt: str,
    config: DiscoveryConfig | None = None,
    *,
    model: str | ModelBundle = "demo",
    saes: str | list[str] | None = None,
    target: str | None = None,
    contrast: str | None = None,
    device: str = "cpu",
    **options: Any,
) -> Circuit:
    """The circuit behind the model's next-token prediction on `prompt`.

    >>> circuit = discover("Copyright (C", model="demo")          # doctest: +SKIP
    >>> circuit.prompt.target, round(circuit.prompt.target_prob, 2)  # doctest: +SKIP
    (')', 0.97)

    ``model``: "demo", "gpt2-small", a local Hugging Face GPT-2 folder, or a loaded ModelBundle (then ``saes``
    must be None). How to discover: a `DiscoveryConfig`, and/or its fields as keywords (``top_k=10``,
    ``method="ig"``, ...; they override the config's).
    """
    config = DiscoveryConfig.build(config, **options)
    with _phase("load"):
        bundle = _bundle(model, saes, device).with_sublayers(config.sublayers)
    (result,) = _discover_batch(bundle, [prompt], [target], [contrast], config)
    if isinstance(result, InputError):
        raise result
    return result


def discover_batch(
    prompts: Sequence[str],
    config: DiscoveryConfig | None = None,
    *,
    model: str | ModelBundle = "demo",
    saes: str | list[str] | None = None,
    targets: Sequence[str | None] | None = None,
    contrasts: Sequence[str | None] | None = None,
    device: str = "cpu",
    **options: Any,
) -> list[Circuit | InputError]:
    """`discover` for each of `prompts`, ``config.prompt_batch`` prompts per forward and backward.

    ``targets`` / ``contrasts``: one per prompt (None entries: the default). Returns one result per prompt, in
    order: its Circuit, or the InputError that `discover` would raise for it. Each circuit equals the one
    `discover` finds for that prompt alone, to float rounding (see `scd.discovery.attribution.attribute_batch`).
    """
    config = DiscoveryConfig.build(config, **options)
    n = len(prompts)
    targets = list(targets) if targets is not None else [None] * n
    contrasts = list(contrasts) if contrasts is not None else [None] * n
    if len(targets) != n or len(contrasts) != n:
        raise InputError(
            f"{n} prompts with {len(targets)} targets and {len(contrasts)} contrasts",
            "give one target and one contrast (or None) per prompt",
        )
    with _phase("load"):
        bundle = _bundle(model, saes, device).with_sublayers(config.sublayers)
    out: list[Circuit | InputError] = []
    step = config.prompt_batch
    for i in range(0, n, step):
        out += _discover_batch(
            bundle, prompts[i : i + step], targets[i : i + step], contrasts[i : i + step], config
        )
    return out


def _discover_batch(bundle: ModelBundle, prompts, targets, contrasts, config) -> list[Circuit | InputError]:
    """Phases 2-5 for one batch of prompts."""
    with _phase("target"):
        results: list[Any] = prepare_batch(
            bundle, prompts, targets=targets, contrasts=contrasts, config=config
        )
    ready = [i for i, r in enumerate(results) if isinstance(r, Setup)]
    if not ready:
        return results
    with _phase("attribute"):
        graphs = _attribute(bundle, [results[i] for i in ready], config)
    means, reference = default_means(bundle, config.reference) if config.ablation == "mean" else (None, None)
    rule = config.selection_rule()
    for i, graph in zip(ready, graphs, strict=True):
        setup = results[i]
        try:
            _check_gradient(bundle, setup, graph)
        except InputError as e:
            results[i] = e
            continue
        with _phase("assemble"):
            circuit = assemble(bundle, setup, graph, _params(setup, config))
        if rule is not None:
            with _phase("select"):
                circuit = _select(circuit, bundle, rule, config.ablation, means)
        if config.scores:
            with _phase("score"):
                errors = "circuit"  # evaluate's documented default, named in the stored scores
                scored = evaluate(circuit, bundle, ablation=config.ablation, errors=errors, means=means)
                circuit.scores = scored.as_dict() | {"ablation": f"{config.ablation}/{errors}"}
                if reference is not None:
                    circuit.scores["reference"] = reference
                if config.effects:
                    effects = latent_effects(circuit, bundle, ablation=config.ablation, means=means)
                    for node in circuit.nodes:
                        node.effect = (
                            effects.get((node.hook, node.index)) if node.kind in SPLICED_KINDS else None
                        )
        results[i] = circuit
    return results


def _select(circuit: Circuit, bundle: ModelBundle, rule: tuple[str, float], ablation: str, means) -> Circuit:
    """Phase 4b: cut the top-k circuit further (`scd.discovery.selection`)."""
    from scd.discovery.selection import greedy, prune_by_influence

    name, value = rule
    if name == "influence":
        return prune_by_influence(circuit, value)
    return greedy(circuit, bundle, int(value), ablation=ablation, means=means)


def faithfulness_curve(
    prompt: str,
    ks: Sequence[int] = (1, 2, 5, 10, 20, 50),
    config: DiscoveryConfig | None = None,
    *,
    model: str | ModelBundle = "demo",
    saes: str | list[str] | None = None,
    target: str | None = None,
    contrast: str | None = None,
    ablation: str = "zero",
    errors: str = "circuit",
    device: str = "cpu",
    **options: Any,
) -> list[CurvePoint]:
    """Faithfulness and completeness of the top-k circuit for each k in `ks`, from one attribution run: the
    circuit discovered at ``top_k=max(ks)``, cut down by `scd.discovery.evaluate.curve`."""
    if not ks or min(ks) < 1:
        raise InputError("ks must be a non-empty list of sizes >= 1", "e.g. ks=[1, 5, 20]")
    config = DiscoveryConfig.build(config, **{**options, "top_k": max(ks)})
    bundle = _bundle(model, saes, device)
    circuit = discover(prompt, config, model=bundle, target=target, contrast=contrast)
    return curve(circuit, bundle, ks, ablation=ablation, errors=errors)


# -- phase 1 ------------------------------------------------------------------------------------------------------


def _bundle(model, saes, device) -> ModelBundle:
    if isinstance(model, ModelBundle):
        if saes is not None:
            raise InputError(
                "saes were given together with a loaded ModelBundle",
                "load the bundle with the SAEs you want (load_bundle(model, saes)) and pass only it",
            )
        return model
    return load_bundle(model, saes, device=device)


# -- phase 2 ------------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """What the metric is about: tokens the model reads, the target, the contrast, the clean prediction."""

    bundle: ModelBundle
    text: str  # the text the model reads (the prompt, minus its last token under the last-token convention)
    token_ids: list[int]
    target_id: int
    contrast_id: int | None
    source: str  # predicted | explicit | last-token
    logits: torch.Tensor  # clean logits at the last position [d_vocab]
    metric_name: str = "log_prob"  # log_prob | logit | logit_diff (scd.discovery.config.METRICS values)

    @property
    def tokens(self) -> torch.Tensor:
        return torch.tensor([self.token_ids], dtype=torch.long, device=self.bundle.device)

    def metric(self):
        from scd.discovery import metrics

        return metrics.build(self.metric_name, self.target_id, self.contrast_id)


def prepare(
    bundle: ModelBundle,
    prompt: str,
    *,
    target: str | None = None,
    contrast: str | None = None,
    config: DiscoveryConfig | None = None,
) -> Setup:
    """Tokenise `prompt`, run the clean model once and decide the target (see module docstring)."""
    (setup,) = prepare_batch(bundle, [prompt], targets=[target], contrasts=[contrast], config=config)
    if isinstance(setup, InputError):
        raise setup
    return setup


def prepare_batch(
    bundle: ModelBundle,
    prompts: Sequence[str],
    *,
    targets: Sequence[str | None],
    contrasts: Sequence[str | None],
    config: DiscoveryConfig | None = None,
) -> list[Setup | InputError]:
    """`prepare` for several prompts, with one clean forward for all; a bad prompt's InputError is its result."""
    config = config if config is not None else DiscoveryConfig()
    results: list[Any] = []
    for prompt, target in zip(prompts, targets, strict=True):
        try:
            results.append(_tokenize(bundle, prompt, target, config))
        except InputError as e:
            results.append(e)
    ready = [i for i, r in enumerate(results) if not isinstance(r, InputError)]
    if not ready:
        return results
    logits = _last_logits(bundle, [results[i][1] for i in ready])
    for i, last_logits in zip(ready, logits, strict=True):
        try:
            text, ids, last = results[i]
            results[i] = _setup(bundle, text, ids, last, last_logits, targets[i], contrasts[i], config)
        except InputError as e:
            results[i] = e
    return results


def _tokenize(bundle: ModelBundle, prompt: str, target: str | None, config: DiscoveryConfig):
    """(text the model reads, its token ids, the last token under the last-token convention else None)."""
    target_mode = config.target_mode
    if target_mode == "last-token" and target is not None:
        raise InputError(
            "a target was given together with the last-token convention",
            "drop --target (the prompt's last token is the target) or drop --last-token-target",
        )
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(
            "the prompt is empty", 'give the text whose next token to explain, e.g. "Copyright (C"'
        )
    tok = bundle.tokenizer
    ids = list(tok.encode(prompt))
    text = prompt
    last = None
    n_bos = 1 if tok.bos_id is not None and ids and ids[0] == tok.bos_id else 0
    if target_mode == "last-token":
        if len(ids) - n_bos < 2:
            raise InputError(
                f"the prompt {prompt!r} is a single token; with the last-token convention it would be all target",
                "give a longer prompt, or drop --last-token-target",
            )
        *ids, last = ids
        last_str = tok.token_str(last)
        text = prompt[: -len(last_str)] if last_str and prompt.endswith(last_str) else prompt
    if len(ids) > bundle.n_ctx:
        raise InputError(
            f"the prompt is {len(ids)} tokens, longer than the model's context of {bundle.n_ctx}",
            f"shorten it to at most {bundle.n_ctx - n_bos} tokens",
        )
    return text, ids, last


def _last_logits(bundle: ModelBundle, sequences: list[list[int]]) -> list[torch.Tensor]:
    """The clean model's logits [d_vocab] after each token sequence: one forward, right-padded (the model is
    causal: a sequence never reads the padding after it), or one forward each where that is not exact."""
    from scd.discovery.splice import batchable, pad_right

    tokens = [torch.tensor([ids], dtype=torch.long, device=bundle.device) for ids in sequences]
    groups = [tokens] if batchable(bundle.model) else [[t] for t in tokens]
    out = []
    with torch.no_grad():
        for group in groups:
            logits = bundle.model(pad_right(group))
            out += [logits[b, t.shape[1] - 1].float() for b, t in enumerate(group)]
    return out


def _setup(bundle, text, ids, last, logits, target, contrast, config: DiscoveryConfig) -> Setup:
    tok = bundle.tokenizer
    if config.target_mode == "last-token":
        target_id, source = last, "last-token"
    elif target is not None:
        target_id, source = tok.single_token_id(target), "explicit"
    else:
        target_id, source = int(logits.argmax()), "predicted"
    contrast_id = None
    if contrast is not None:
        contrast_id = tok.single_token_id(contrast)
        if contrast_id == target_id:
            raise InputError(
                f"the contrast {contrast!r} is the target itself: the logit difference would be 0",
                "pick a different --contrast token",
            )
    return Setup(
        text=text,
        token_ids=ids,
        target_id=target_id,
        contrast_id=contrast_id,
        source=source,
        logits=logits,
        bundle=bundle,
        metric_name=config.metric_name(contrast_id is not None),
    )


# -- phase 3 ------------------------------------------------------------------------------------------------------


def _attribute(bundle, setups: list[Setup], config: DiscoveryConfig):
    from scd.discovery.attribution import attribute_batch

    try:
        if bundle.lazy:  # a lazy set's slices are per prompt (scd.models.lazy): no SAEs to share, one by one
            graphs = []
            for s in setups:
                saes = bundle.saes_for(s.tokens)
                graph = attribute_batch(bundle.model, saes, [s.tokens], [s.metric()], config)[0]
                graph.nodes = [_original_latent(n, saes) for n in graph.nodes]
                graphs.append(graph)
            return graphs
        return attribute_batch(
            bundle.model, bundle.saes, [s.tokens for s in setups], [s.metric() for s in setups], config
        )
    except ValueError as e:  # the engine's refusals: unsupported hooks, SAEs that do not fit
        raise ModelError(
            f"cannot attribute with SAE set {bundle.sae_set!r}: {e}",
            "use SAEs at resid_pre/attn_out/resid_mid/mlp_out/resid_post hooks of this model",
        ) from e


def _check_gradient(bundle, setup: Setup, graph) -> None:
    """InputError when no node has any effect on the metric (nothing to explain)."""
    inner = [k for k, n in enumerate(graph.nodes) if n.kind != "logit"]
    if not inner or not bool(graph.attributions[inner].abs().sum() > 0):
        tok = bundle.tokenizer.token_str(setup.target_id)
        raise InputError(
            f"the metric's gradient is zero on this prompt: no node has any effect on {tok!r} "
            f"(target probability {_prob(setup.logits, setup.target_id):.3g})",
            "explain a target the model is not already certain of (--target), or use --contrast TOKEN",
        )


def _original_latent(node, saes: dict):
    """A node of a sliced SAE with its latent index in the whole SAE (slices keep latents in index order)."""
    if node.kind in FEATURE_KINDS and node.hook in saes:
        return replace(node, index=saes[node.hook].global_index(node.index))
    return node


# -- phase 4 ------------------------------------------------------------------------------------------------------


def _params(setup: Setup, config: DiscoveryConfig) -> dict:
    """What determines the circuit besides the prompt, model and SAEs (batch_size does not change results)."""
    contrast = None if setup.contrast_id is None else setup.bundle.tokenizer.token_str(setup.contrast_id)
    return config.circuit_params(setup.metric_name, contrast)


def _prob(logits: torch.Tensor, token_id: int) -> float:
    return float(torch.softmax(logits.float(), -1)[token_id])


def prompt_record(bundle: ModelBundle, setup: Setup) -> PromptRecord:
    tok = bundle.tokenizer
    logp = torch.log_softmax(setup.logits.float(), -1)
    top = logp.topk(min(TOP_COMPLETIONS, logp.shape[-1]))
    return PromptRecord(
        text=setup.text,
        tokens=[tok.token_str(i) for i in setup.token_ids],
        token_ids=list(setup.token_ids),
        target=tok.token_str(setup.target_id),
        target_id=setup.target_id,
        target_prob=float(logp[setup.target_id].exp()),
        loss=float(-logp[setup.target_id]),
        top_completions=[
            (tok.token_str(int(i)), float(v.exp())) for v, i in zip(top.values, top.indices, strict=True)
        ],
        target_source=setup.source,
        contrast=None if setup.contrast_id is None else tok.token_str(setup.contrast_id),
    )


def node_id(kind: str, hook: str, index: int, pos: int) -> str:
    """Node ids as scd/circuit.py documents them."""
    if kind == "token":
        return f"token/{index}@{pos}"
    if kind == "logit":
        return f"logit/{index}@{pos}"
    if kind == "error":
        return f"{hook}/error@{pos}"
    return f"{hook}/{index}@{pos}"


def assemble(bundle: ModelBundle, setup: Setup, graph, params: dict) -> Circuit:
    """Turn the engine's AttributionGraph into a Circuit (nodes, edges, features, prompt record)."""
    from scd.discovery.features import build_features

    strs = [bundle.tokenizer.token_str(i) for i in setup.token_ids]
    acts = graph.activations.tolist()
    attrs = graph.attributions.tolist()
    nodes: list[Node] = []
    for k, key in enumerate(graph.nodes):
        index = setup.target_id if key.kind == "logit" else key.index
        if key.kind == "token":
            fid = token_feature_id(bundle.name, index)
        elif key.kind == "logit":
            fid = logit_feature_id(bundle.name, index)
        else:
            fid = feature_id(bundle.name, bundle.sae_set, key.hook, index)
        nodes.append(
            Node(
                id=node_id(key.kind, key.hook, index, key.pos),
                kind=key.kind,
                layer=key.layer,
                hook=key.hook,
                index=index,
                pos=key.pos,
                token=strs[key.pos],
                activation=_finite(acts[k]),
                attribution=_finite(attrs[k]),
                feature_id=fid,
            )
        )
    edges = [
        Edge(source=nodes[u].id, target=nodes[d].id, weight=_finite(w))
        for (u, d), w in zip(graph.edges.tolist(), graph.weights.tolist(), strict=True)
    ]
    return Circuit(
        prompt=prompt_record(bundle, setup),
        model=bundle.name,
        sae_set=bundle.sae_set,
        saes=dict(bundle.sae_ids),
        params=params,
        nodes=nodes,
        edges=edges,
        features=build_features(bundle, nodes),
        metric_value=float(graph.metric_value),
    )


def _finite(x: float) -> float:
    if not math.isfinite(x):
        raise ModelError(
            f"the attribution produced a non-finite value ({x})",
            "the model or an SAE overflows on this prompt: try another prompt or float32 weights",
        )
    return float(x)
