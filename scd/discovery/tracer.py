"""Transcoder and cross-layer-transcoder circuits, delegated to circuit-tracer and mapped into a `Circuit`.

scd's own engine (scd.discovery.attribution) does SAE circuits, which circuit-tracer does not; for per-layer
transcoders (PLT) and cross-layer transcoders (CLT) circuit-tracer's ``attribute()`` is the field's reference
implementation (local replacement model: attention patterns and normalisation scales frozen, MLPs replaced by
transcoder features, an error node per layer and position), so scd calls it rather than re-deriving it.

Phases of :func:`trace` (log lines of ``scd.discovery.tracer`` use the names):

1. **load** -- the model (``demo`` or a HookedTransformer + tokenizer) and the transcoders (``demo-plt``,
   ``demo-clt`` or a folder in circuit-tracer's layout: ``config.yaml`` + safetensors); then
   ``TransformerLensReplacementModel.from_config(cfg, transcoders)`` and the model's own state dict (offline).
2. **attribute** -- ``circuit_tracer.attribute`` on the prompt's tokens (BOS first) with the target logit as
   the only attribution target (the same target scd's SAE circuits explain).
3. **prune** -- ``circuit_tracer.graph.prune_graph`` (cumulative influence, ``node_threshold`` /
   ``edge_threshold``).
4. **map** -- every node in the pruned node mask and every edge in the pruned edge mask into a `Circuit`:
   features (kind ``transcoder``, hook ``blocks.L.ln2.hook_normalized`` -- where they read), MLP error nodes
   (kind ``error``, hook ``blocks.L.hook_mlp_out``), token and logit nodes; an edge's weight is circuit-tracer's
   (nonzero) adjacency entry (the direct effect of the source on the target's pre-activation / demeaned logit). A node's
   ``attribution`` is its total (direct + indirect) signed effect on the demeaned target logit, summed over all
   paths of the *unpruned* graph: ``a = e_t (A + A^2 + ...)``.
5. **score** (``scores``) -- faithfulness and completeness of the circuit's features (scd.discovery.tracer_scores:
   zero ablation in the model with its transcoders spliced in, error terms kept).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import torch

from scd.core.circuit import (
    Circuit,
    Edge,
    Feature,
    Node,
    PromptRecord,
    feature_id,
    logit_feature_id,
    token_feature_id,
)
from scd.core.errors import InputError, ModelError
from scd.core.hooks import transcoder_hooks
from scd.core.timing import phase
from scd.models.tokens import Tokenizer

log = logging.getLogger("scd.discovery.tracer")

#: transcoder presets of the bundled demo model -> folder under scd/demo/weights
PRESETS = {"demo-plt": "transcoders/plt", "demo-clt": "transcoders/clt"}
ENGINE = "circuit-tracer"
TOP_COMPLETIONS = 5


def is_transcoder_set(saes: Any) -> bool:
    """True if `saes` names transcoders (a preset or a folder with circuit-tracer's config.yaml)."""
    if not isinstance(saes, str):
        return False
    if saes in PRESETS:
        return True
    folder = Path(saes)
    return folder.is_dir() and (folder / "config.yaml").is_file()


class _Tokenizer:
    """The little of a Hugging Face tokenizer that circuit-tracer's attribute() touches, over an scd tokenizer
    (``encode`` with BOS, ``token_str``, ``bos_id``, ``vocab_size``)."""

    def __init__(self, tok):
        self.tok = tok
        self.bos_token_id = tok.bos_id
        self.pad_token_id = None
        self.eos_token_id = None
        self.padding_side = "right"  # read by HookedTransformer.forward
        self.all_special_ids = [] if tok.bos_id is None else [tok.bos_id]
        self.vocab_size = tok.vocab_size

    def decode(self, ids) -> str:
        if isinstance(ids, int | float) or (isinstance(ids, torch.Tensor) and ids.ndim == 0):
            return self.tok.token_str(int(ids))
        return "".join(self.tok.token_str(int(i)) for i in ids if int(i) not in self.all_special_ids)


@dataclass
class Loaded:
    """A replacement model ready for attribution, and what a Circuit needs to name its parts."""

    model: Any  # circuit_tracer TransformerLensReplacementModel
    tokenizer: Any  # the scd tokenizer
    name: str  # model name in Feature ids
    sae_set: str  # transcoder set name in Feature ids
    kind: str  # "plt" | "clt"
    folder: Path

    @property
    def n_ctx(self) -> int:
        """The model's context length (what scd.ingest.pipeline.check_prompt reads of a model)."""
        return int(self.model.cfg.n_ctx)


def transcoder_folder(saes: str) -> Path:
    if saes in PRESETS:
        import scd.demo as demo

        return demo.WEIGHTS / PRESETS[saes]
    return Path(saes)


def load(model: str = "demo", saes: str = "demo-plt", device: str = "cpu") -> Loaded:
    """Phase 1: the replacement model of `model` with the transcoders `saes`."""
    from circuit_tracer.replacement_model.replacement_model_transformerlens import (
        TransformerLensReplacementModel,
    )

    from scd.demo.transcoders import load as load_transcoders
    from scd.models.bundle import resolve_device

    device = resolve_device(device)
    folder = transcoder_folder(saes)
    if saes in PRESETS and model != "demo":
        raise InputError(f"{saes} are the demo model's transcoders", "use them with --model demo")
    if not (folder / "config.yaml").is_file():
        raise ModelError(
            f"no transcoders at {folder}",
            "pass demo-plt, demo-clt, or a folder with circuit-tracer's config.yaml and weights",
        )
    transcoders = load_transcoders(folder, device=device)
    tok: Tokenizer
    if model == "demo":
        import scd.demo as demo

        hooked, tok = demo.load_model(device=device), demo.load_tokenizer()
        name = "demo"
    else:
        from scd.models.model import load_hf_gpt2_folder

        hooked, tok = load_hf_gpt2_folder(model, device=device)
        name = Path(model).resolve().name
    d_model = transcoders[0].d_model if hasattr(transcoders, "transcoders") else transcoders.d_model
    if transcoders.n_layers != hooked.cfg.n_layers or d_model != hooked.cfg.d_model:
        raise ModelError(
            f"transcoders at {folder} have {transcoders.n_layers} layers of width {d_model}; "
            f"model {name!r} has {hooked.cfg.n_layers} of width {hooked.cfg.d_model}",
            "use transcoders trained on this model",
        )
    rm = TransformerLensReplacementModel.from_config(hooked.cfg, transcoders)
    # circuit-tracer wraps every block's MLP and the unembedding (blocks.L.mlp -> blocks.L.mlp.old_mlp,
    # unembed -> unembed.old_unembed); the weights stay the model's
    state = {_wrapped_key(k): v for k, v in hooked.state_dict().items()}
    missing, unexpected = rm.load_state_dict(state, strict=False)
    missing = [
        k for k in missing if not k.endswith((".mask", ".IGNORE")) and not k.startswith("transcoders.")
    ]
    if missing or unexpected:
        raise ModelError(
            f"the replacement model did not take the weights (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    rm.tokenizer = _Tokenizer(tok)  # type: ignore[assignment]  # duck-typed: what attribute() touches
    rm.eval()
    kind = "clt" if not hasattr(transcoders, "transcoders") else "plt"
    sae_set = saes if saes in PRESETS else folder.resolve().name
    return Loaded(rm, tok, name, sae_set, kind, folder)


def _wrapped_key(key: str) -> str:
    if ".mlp." in key:
        return key.replace(".mlp.", ".mlp.old_mlp.", 1)
    if key.startswith("unembed."):
        return "unembed.old_unembed." + key[len("unembed.") :]
    return key


def trace(
    prompt: str,
    *,
    model: str | Loaded = "demo",
    saes: str = "demo-plt",
    target: str | None = None,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    max_feature_nodes: int | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    scores: bool = False,
    keep_graph: bool = False,
) -> Circuit:
    """The transcoder circuit behind the model's next token on `prompt` (see module docstring).

    ``scores``: also measure the circuit's faithfulness and completeness (phase 5).
    ``keep_graph``: also attach circuit-tracer's Graph and PruneResult as ``circuit.tracer_graph`` /
    ``circuit.tracer_prune`` (not serialised), for checks against the library.
    """
    from circuit_tracer import attribute
    from circuit_tracer.graph import prune_graph

    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
            raise InputError(f"{name} must be a fraction of influence in [0, 1], got {value}")
    t0 = time.time()
    with phase(log, "load", logging.INFO):
        loaded = model if isinstance(model, Loaded) else load(model, saes, device)
    rm, tok = loaded.model, loaded.tokenizer
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(
            "the prompt is empty", 'give the text whose next token to explain, e.g. "Copyright (C"'
        )
    ids = list(tok.encode(prompt))
    if len(ids) > rm.cfg.n_ctx:
        raise InputError(
            f"the prompt is {len(ids)} tokens, longer than the model's context of {rm.cfg.n_ctx}"
        )
    tokens = torch.tensor(ids, dtype=torch.long, device=rm.cfg.device)
    with torch.no_grad():
        logits = rm(tokens[None])[0, -1].float()
    target_id = tok.single_token_id(target) if target is not None else int(logits.argmax())
    with phase(log, "attribute", logging.INFO):
        graph = attribute(
            tokens,
            rm,
            attribution_targets=torch.tensor([target_id]),
            batch_size=batch_size,
            max_feature_nodes=max_feature_nodes,
        )
    with phase(log, "prune", logging.INFO):
        pruned = prune_graph(graph, node_threshold=node_threshold, edge_threshold=edge_threshold)
    with phase(log, "map", logging.INFO):
        circuit = to_circuit(
            graph,
            pruned,
            loaded,
            ids,
            logits,
            target_id,
            params={
                "method": ENGINE,
                "node_threshold": node_threshold,
                "edge_threshold": edge_threshold,
                "max_feature_nodes": max_feature_nodes,
                "metric": "logit",
                "target_mode": "explicit" if target is not None else "predicted",
                "contrast": None,
                "transcoders": loaded.kind,
                # prune_graph's rule, which scd.discovery.selection names this way (tests/test_tracer.py)
                "selection": f"influence:{node_threshold:g}/{edge_threshold:g}",
            },
        )
    if scores:
        from scd.discovery import tracer_scores

        with phase(log, "score", logging.INFO):
            scored = tracer_scores.evaluate(
                loaded,
                ids,
                target_id,
                tracer_scores.graph_features(graph),
                tracer_scores.circuit_features(circuit),
            )
            circuit.scores = scored.as_dict() | {"ablation": tracer_scores.ABLATION}
    log.info("traced %r with %s in %.2f s", prompt, loaded.sae_set, time.time() - t0)
    if keep_graph:
        circuit.tracer_graph, circuit.tracer_prune = graph, pruned  # type: ignore[attr-defined]
    return circuit


def trace_options(discovery: Any = None, contrast: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`trace` that the shared discovery options (a DiscoveryConfig, or a dict of
    its fields) stand for, refusing those that have no meaning for transcoder graphs: ``--node-threshold`` /
    ``--edge-threshold`` are prune_graph's fractions (default 0.8 / 0.98), ``--scores`` is kept; ``--top-k`` and
    ``--batch-size`` are the SAE engine's and ignored."""
    import dataclasses

    if discovery is None:
        discovery = {}
    elif not isinstance(discovery, dict):
        discovery = dataclasses.asdict(discovery)
    if contrast is not None or discovery.get("metric") not in (None, "logit"):
        raise InputError(
            "transcoder graphs explain the target's demeaned logit (circuit-tracer's attribution target)",
            "drop --contrast / --metric with transcoder sets",
        )
    if (
        discovery.get("target_mode") == "last-token"
        or discovery.get("method") == "ig"
        or discovery.get("sublayers") is not None
        or discovery.get("selection") not in (None, "top-k")
    ):
        raise InputError(
            "--last-token-target, --method ig, --sublayers and --selection are SAE-engine options",
            "drop them with transcoders (circuit-tracer prunes by influence with --node-threshold)",
        )
    node_t = discovery.get("node_threshold")
    edge_t = discovery.get("edge_threshold")
    return {
        "node_threshold": 0.8 if node_t is None else float(node_t),
        "edge_threshold": 0.98 if not edge_t else float(edge_t),
        "scores": bool(discovery.get("scores", False)),
    }


def trace_cli(prompt: str, *, model, saes, device, target, contrast, discovery) -> Circuit:
    """`scd discover` with transcoders: the shared discovery options mapped onto :func:`trace`."""
    return trace(
        prompt,
        model=model or "demo",
        saes=saes,
        target=target,
        device=device,
        **trace_options(discovery, contrast),
    )


def request_parts(loaded: Loaded) -> tuple[str, list[str]]:
    """(model, transcoder set) as an ingest request key names them: a preset by name, a folder by its path."""
    where = loaded.sae_set if loaded.sae_set in PRESETS else str(loaded.folder.resolve())
    return loaded.name, [ENGINE, loaded.kind, where]


def total_effects(adjacency: torch.Tensor, row: int) -> torch.Tensor:
    """Signed total effect of every node on node `row`: e_row (A + A^2 + ...), A[target, source] (a DAG, so the
    series ends after at most as many terms as the graph is deep)."""
    a = adjacency.double()
    current = a[row].clone()
    total = current.clone()
    for _ in range(a.shape[0]):
        current = current @ a
        if not bool(current.any()):
            return total
        total += current
    raise ModelError("circuit-tracer's adjacency matrix has a cycle", "report this graph as a bug")


def to_circuit(
    graph, pruned, loaded: Loaded, ids: list[int], logits: torch.Tensor, target_id: int, params: dict
) -> Circuit:
    """Phase 4: the pruned circuit-tracer graph as a Circuit (see module docstring)."""
    tok = loaded.tokenizer
    strs = [tok.token_str(i) for i in ids]
    n_pos, n_layers = len(ids), graph.cfg.n_layers
    n_feat = len(graph.selected_features)
    err_end = n_feat + n_layers * n_pos
    tok_end = err_end + n_pos
    adjacency = graph.adjacency_matrix.cpu()
    logit_row = tok_end  # the target is the first (and only) attribution target
    effects = total_effects(adjacency, logit_row).tolist()
    demeaned = float(logits[target_id] - logits.mean())
    node_mask, edge_mask = pruned.node_mask.cpu(), pruned.edge_mask.cpu()
    nodes: dict[int, Node] = {}
    for k in node_mask.nonzero().flatten().tolist():
        if k < n_feat:
            layer, pos, index = (int(v) for v in graph.active_features[graph.selected_features[k]].tolist())
            hook = transcoder_hooks(layer)[0]
            kind, act = "transcoder", float(graph.activation_values[graph.selected_features[k]])
            nid, fid = f"{hook}/{index}@{pos}", feature_id(loaded.name, loaded.sae_set, hook, index)
        elif k < err_end:
            layer, pos = divmod(k - n_feat, n_pos)
            hook, index, kind, act = transcoder_hooks(layer)[1], -1, "error", 0.0
            nid, fid = f"{hook}/error@{pos}", feature_id(loaded.name, loaded.sae_set, hook, -1)
        elif k < tok_end:
            pos = k - err_end
            layer, hook, index, kind, act = -1, "hook_embed", ids[pos], "token", 1.0
            nid, fid = f"token/{index}@{pos}", token_feature_id(loaded.name, index)
        else:
            layer, hook, pos, kind = n_layers, "unembed", n_pos - 1, "logit"
            index = int(graph.logit_targets[k - tok_end].vocab_idx)
            act = demeaned
            nid, fid = f"logit/{index}@{pos}", logit_feature_id(loaded.name, index)
        attribution = demeaned if kind == "logit" else effects[k]
        nodes[k] = Node(
            id=nid,
            kind=kind,
            layer=layer,
            hook=hook,
            index=index,
            pos=pos,
            token=strs[pos],
            activation=_finite(act),
            attribution=_finite(attribution),
            feature_id=fid,
        )
    # a zero entry is no edge (prune_graph's mask holds zeros only at edge_threshold 1, where it keeps everything)
    dst, src = (edge_mask & (adjacency != 0)).nonzero(as_tuple=True)
    edges = [
        Edge(source=nodes[s].id, target=nodes[d].id, weight=_finite(float(adjacency[d, s])))
        for d, s in zip(dst.tolist(), src.tolist(), strict=True)
        if s in nodes and d in nodes
    ]
    node_list = list(nodes.values())
    return Circuit(
        prompt=_prompt_record(tok, ids, logits, target_id, params["target_mode"]),
        model=loaded.name,
        sae_set=loaded.sae_set,
        saes={transcoder_hooks(layer)[0]: f"{loaded.sae_set}/{layer}" for layer in range(n_layers)},
        params=params,
        nodes=node_list,
        edges=edges,
        features=build_features(loaded, node_list),
        metric_value=demeaned,
    )


def _prompt_record(tok, ids, logits, target_id, source) -> PromptRecord:
    logp = torch.log_softmax(logits.float(), -1)
    top = logp.topk(min(TOP_COMPLETIONS, logp.shape[-1]))
    return PromptRecord(
        text=tok.decode(ids) if hasattr(tok, "decode") else "".join(tok.token_str(i) for i in ids[1:]),
        tokens=[tok.token_str(i) for i in ids],
        token_ids=list(ids),
        target=tok.token_str(target_id),
        target_id=target_id,
        target_prob=float(logp[target_id].exp()),
        loss=float(-logp[target_id]),
        top_completions=[
            (tok.token_str(int(i)), float(v.exp())) for v, i in zip(top.values, top.indices, strict=True)
        ],
        target_source=source,
    )


@torch.no_grad()
def build_features(loaded: Loaded, nodes: list[Node]) -> list[Feature]:
    """Feature metadata as scd.discovery.features builds it for SAEs: a transcoder feature's direct logit effect
    is its decoder (summed over the layers a CLT feature writes to) through ln_final and W_U."""
    from scd.discovery.features import _top_tokens, feature_of, unembed_directions
    from scd.models.bundle import ModelBundle

    rm, tc = loaded.model, loaded.model.transcoders
    # the model and tokenizer are all that _top_tokens and unembed_directions read of a bundle
    shim = cast(ModelBundle, SimpleNamespace(model=rm, tokenizer=loaded.tokenizer))
    out: dict[str, Feature] = {}
    for n in nodes:
        if n.feature_id in out:
            continue
        up = up_v = down = down_v = ()
        label = None
        if n.kind == "transcoder":
            if loaded.kind == "clt":
                vec = tc._get_decoder_vectors(n.layer, torch.tensor([n.index])).sum(-2)
            else:
                vec = tc[n.layer].W_dec[n.index][None]
            ((up, up_v, down, down_v),) = _top_tokens(shim, unembed_directions(shim, vec.float()))
        elif n.kind == "token":
            ((up, up_v, down, down_v),) = _top_tokens(shim, unembed_directions(shim, rm.W_E[[n.index]]))
            label = f"input token {loaded.tokenizer.token_str(n.index)!r}"
        elif n.kind == "logit":
            label = f"logit of {loaded.tokenizer.token_str(n.index)!r}"
        else:
            label = f"MLP reconstruction error at {n.hook} (what the transcoders do not reconstruct)"
        sae = f"{loaded.sae_set}/{n.layer}" if n.kind in ("transcoder", "error") else ""
        out[n.feature_id] = feature_of(n, loaded.name, sae, (up, up_v, down, down_v), label=label)
    return list(out.values())


def _finite(x: float) -> float:
    if not math.isfinite(x):
        raise ModelError(f"circuit-tracer produced a non-finite value ({x})", "try another prompt")
    return float(x)
