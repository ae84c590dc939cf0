"""A circuit as readable text: what it explains, its top nodes per sublayer, its strongest edges and paths.

``summarize(circuit)`` is what ``scd discover`` prints. ``strongest_paths(circuit)`` finds the paths whose weakest
edge is strongest (the "widest" paths): a path is only as strong as its weakest link, and ranking by the bottleneck
needs no normalisation of edge weights that live on different scales. The search is exact best-first: strengths
only shrink as a path grows, so the first complete paths popped from the queue are the strongest ones.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from typing import NamedTuple

from scd.core.circuit import Circuit, Node
from scd.core.hooks import FEATURE_KINDS, TOKEN_HOOK, hook_label
from scd.discovery import metrics

_MAX_EXPANSIONS = 200_000


class Path(NamedTuple):
    nodes: list[str]  # node ids, upstream first
    weights: list[float]  # weights[k] is the edge nodes[k] -> nodes[k + 1]
    strength: float  # the smallest |weight| along the path


def strongest_paths(circuit: Circuit, n: int = 3, *, end: str | None = "logit") -> list[Path]:
    """The `n` strongest maximal paths of the circuit (sources -> sinks), strongest first.

    ``end="logit"`` (default): only paths ending in the logit node; a node id: paths ending there; None: paths
    ending in any sink (a node without outgoing edges).
    """
    incoming: dict[str, list[tuple[str, float]]] = defaultdict(list)
    outgoing: set[str] = set()
    for e in circuit.edges:
        incoming[e.target].append((e.source, e.weight))
        outgoing.add(e.source)
    if end == "logit":
        ends = [nd.id for nd in circuit.nodes if nd.kind == "logit"]
    elif end is None:
        ends = [nd.id for nd in circuit.nodes if nd.id not in outgoing and nd.id in incoming]
    else:
        ends = [end]
    # best-first backwards from the ends; entries (-strength, tiebreak, node ids reversed, weights reversed)
    heap: list[tuple[float, int, tuple[str, ...], tuple[float, ...]]] = [
        (-float("inf"), k, (e,), ()) for k, e in enumerate(ends) if e in incoming
    ]
    heapq.heapify(heap)
    found: list[Path] = []
    counter = len(heap)
    while heap and len(found) < n and counter < _MAX_EXPANSIONS:
        neg, _, rev, rev_w = heapq.heappop(heap)
        parents = incoming.get(rev[-1])
        if not parents:
            found.append(Path(list(reversed(rev)), list(reversed(rev_w)), -neg))
            continue
        for src, w in parents:
            if src in rev or w == 0:
                continue
            counter += 1
            heapq.heappush(heap, (max(neg, -abs(w)), counter, (*rev, src), (*rev_w, w)))
    return found


# -- text ---------------------------------------------------------------------------------------------------------


def node_label(node: Node, circuit: Circuit | None = None) -> str:
    """Short readable name of a node: ``mlp_out1 #45 ')'@5``, ``resid_pre0 error 'C'@4``, ``token 'C'@4``,
    ``logit ')'`` (the token is spelled out when `circuit` is given and the node is its target's logit)."""
    at = f"{node.token!r}@{node.pos}"
    if node.kind == "token":
        return f"token {at}"
    if node.kind == "logit":
        if circuit is not None and node.index == circuit.prompt.target_id:
            return f"logit {circuit.prompt.target!r}"
        return f"logit #{node.index}"
    what = "error" if node.kind == "error" else f"#{node.index}"
    return f"{hook_label(node.hook)} {what} {at}"


def summarize(circuit: Circuit, *, per_sublayer: int = 3, n_edges: int = 8, n_paths: int = 3) -> str:
    """The text ``scd discover`` prints."""
    p = circuit.prompt
    by_id = {nd.id: nd for nd in circuit.nodes}
    feats = {f.id: f for f in circuit.features}
    metric_text = metrics.describe(circuit.params.get("metric", "log_prob"), p.target, p.contrast)
    source = {
        "predicted": "the model's top prediction",
        "explicit": "chosen with --target",
        "last-token": "the prompt's last token",
    }.get(p.target_source, p.target_source)
    kinds: defaultdict[str, int] = defaultdict(int)
    for nd in circuit.nodes:
        kinds["feature" if nd.kind in FEATURE_KINDS else nd.kind] += 1
    out = [
        f"{p.text!r} -> {p.target!r}   model {circuit.model}, SAE set {circuit.sae_set} ({len(circuit.saes)} SAEs)",
        f"target {p.target!r} ({source}): p = {p.target_prob:.3f}, loss {p.loss:.3f}; "
        f"metric {metric_text} = {circuit.metric_value:.4g}",
        "top completions: " + ", ".join(f"{t!r} {q:.3f}" for t, q in p.top_completions),
        f"circuit: {len(circuit.nodes)} nodes ({kinds['feature']} features, {kinds['error']} error, "
        f"{kinds['token']} token, {kinds['logit']} logit), {len(circuit.edges)} edges; "
        + ", ".join(f"{k} {v}" for k, v in circuit.params.items() if v is not None),
    ]
    if circuit.scores:
        out.append(
            "scores: "
            + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in circuit.scores.items()
            )
            + _ablation_note(circuit)
        )

    out += [
        "",
        f"Top nodes per sublayer (attribution to {metric_text}; + pushes toward {p.target!r}; "
        "promotes = top tokens of the feature's direct logit effect):",
    ]
    groups: dict[str, list[Node]] = {}
    for nd in circuit.nodes:
        if nd.kind not in ("token", "logit"):
            groups.setdefault(nd.hook, []).append(nd)
    tokens = [nd for nd in circuit.nodes if nd.kind == "token"]
    if tokens:
        groups = {TOKEN_HOOK: tokens, **groups}
    for hook, members in groups.items():
        out.append(f"  {'input tokens' if hook == TOKEN_HOOK else hook}")
        for nd in sorted(members, key=lambda x: -abs(x.attribution))[:per_sublayer]:
            line = f"  {nd.attribution:+10.3g}  {node_label(nd, circuit)}"
            f = feats.get(nd.feature_id)
            if f is not None and f.top_promoted and nd.kind != "token":
                line += "   promotes " + " ".join(repr(t) for t in f.top_promoted[:3])
            if f is not None and f.neuronpedia_url:
                line += f"   {f.neuronpedia_url}"
            out.append(line)

    out += ["", "Strongest edges (direct effect on the metric through the downstream node):"]
    for e in sorted(circuit.edges, key=lambda e: -abs(e.weight))[:n_edges]:
        src, dst = node_label(by_id[e.source], circuit), node_label(by_id[e.target], circuit)
        out.append(f"  {e.weight:+10.3g}  {src} -> {dst}")

    paths = strongest_paths(circuit, n_paths)
    logit = next((nd for nd in circuit.nodes if nd.kind == "logit"), None)
    out += [
        "",
        f"Strongest paths to the logit {p.target!r} (strength = its weakest |edge|; =w=> marks each edge's weight):",
    ]
    if not paths:
        out.append(
            "    (none: no edges reach the logit node)" if logit is not None else "    (no logit node)"
        )
    for k, path in enumerate(paths, 1):
        chain = node_label(by_id[path.nodes[0]], circuit)
        for w, i in zip(path.weights, path.nodes[1:], strict=True):
            chain += f" ={w:+.3g}=> {node_label(by_id[i], circuit)}"
        out.append(f"  {k}. [{path.strength:.3g}] {chain}")
    return "\n".join(out)


def _ablation_note(circuit: Circuit) -> str:
    """How the stored scores were measured, from the circuit's own ``scores["ablation"]`` ("zero/circuit", ...)."""
    name = circuit.scores.get("ablation")
    if not isinstance(name, str):
        return ""
    mode, _, errors = name.partition("/")
    err = {
        "circuit": "error nodes as circuit members",
        "keep": "error terms kept at their clean values",
    }.get(errors, f"error terms: {errors}")
    where = (
        "scd.discovery.tracer_scores"
        if any(n.kind == "transcoder" for n in circuit.nodes)
        else "scd.discovery.evaluate"
    )
    return f" ({where}: {mode} ablation, {err})"
