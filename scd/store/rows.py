"""Circuit -> typed rows for the store writers (the neutral layer between discovery and a database).

Each function returns plain dicts whose keys are the property names of :mod:`scd.store.schema`, with values
cleaned for both databases: floats are Python floats (NaN and infinities become ``None``, i.e. "not set"), ints
are Python ints, lists are homogeneous and never contain ``None``. Node rows carry ``feature_id`` (for the OF
relationship) and edge rows ``src`` / ``dst`` (full Node ids); writers drop what they don't store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from scd.core.circuit import Circuit, Feature


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _fl(xs: Any) -> list[float]:
    return [x if math.isfinite(x) else 0.0 for x in map(float, xs or ())]


def _i(x: Any) -> int | None:
    return None if x is None else int(x)


T = TypeVar("T")


def batches(rows: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``rows`` in consecutive slices of at most ``size`` (one ``UNWIND $rows`` statement each)."""
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def node_key(circuit_id: str, node_id: str) -> str:
    """A Node's store-wide id: the circuit id, then the node's id within the circuit."""
    return f"{circuit_id}/{node_id}"


@dataclass
class CircuitRows:
    circuit: dict[str, Any]
    prompt: dict[str, Any]
    features: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


# the Node columns in the order of the positional node rows the Neo4j writer sends (write-create-nodes.cypher)
NODE_PROPS = (
    "id",
    "circuit_id",
    "feature_id",
    "kind",
    "layer",
    "hook",
    "idx",
    "pos",
    "token",
    "activation",
    "attribution",
    "effect",
)


def feature_rows(circuit: Circuit) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for f in circuit.features:
        if f.id not in rows:
            rows[f.id] = feature_row(f)
    return list(rows.values())


def feature_row(f: Feature) -> dict[str, Any]:
    """One Feature's properties as the stores write them (a circuit's, or every latent's for its card)."""
    return {
        "id": f.id,
        "model": f.model,
        "sae": f.sae or "",
        "hook": f.hook,
        "layer": int(f.layer),
        "kind": f.kind,
        "idx": int(f.index),
        "top_promoted": [str(t) for t in f.top_promoted],
        "top_promoted_logits": _fl(f.top_promoted_logits),
        "top_suppressed": [str(t) for t in f.top_suppressed],
        "top_suppressed_logits": _fl(f.top_suppressed_logits),
        "neuronpedia_url": f.neuronpedia_url,
        "label": f.label,
        "top_token": str(f.top_promoted[0]) if len(f.top_promoted) else None,
    }


def card_batches(rows: list[dict[str, Any]], size: int) -> Iterator[tuple[bool, Sequence[dict[str, Any]]]]:
    """Feature cards in batches: (True, rows with contexts), then (False, rows without -- a latent that never
    fired has none, and LadybugDB cannot bind an empty list), each kind written by its own statement."""
    fired = [r for r in rows if r.get("top_contexts")]
    silent = [r for r in rows if not r.get("top_contexts")]
    for has, group in ((True, fired), (False, silent)):
        for batch in batches(group, size):
            yield has, batch


def prompt_row(circuit: Circuit) -> dict[str, Any]:
    p = circuit.prompt
    return {
        "id": circuit.prompt_id,
        "text": p.text,
        "model": circuit.model,
        "tokens": [str(t) for t in p.tokens],
        "target": p.target,
        "target_prob": _f(p.target_prob),
        "loss": _f(p.loss),
        "top_completions": [str(t) for t, _ in p.top_completions],
        "top_completion_probs": _fl(prob for _, prob in p.top_completions),
        "token_ids": [int(t) for t in p.token_ids],
        "target_id": int(p.target_id),
    }


def circuit_row(circuit: Circuit, request: str | None = None) -> dict[str, Any]:
    params = circuit.params
    return {
        "id": circuit.id,
        "prompt_id": circuit.prompt_id,
        "model": circuit.model,
        "sae_set": circuit.sae_set,
        "method": params.get("method"),
        "metric": params.get("metric"),
        "top_k": _i(params.get("top_k")),
        "edge_threshold": _f(params.get("edge_threshold")),
        "params": json.dumps(params, sort_keys=True, ensure_ascii=False),
        "metric_value": _f(circuit.metric_value),
        "faithfulness": _f(circuit.scores.get("faithfulness")),
        "completeness": _f(circuit.scores.get("completeness")),
        # how the scores were measured (scd.discovery.evaluate) and how the nodes were chosen (scd.discovery.selection)
        "ablation": circuit.scores.get("ablation")
        if circuit.scores.get("faithfulness") is not None
        else None,
        # an imported graph was chosen by whoever made it (e.g. circuit-tracer's pruning): say so, not "top-k"
        "selection": params.get("selection")
        or ("imported" if params.get("method") == "imported" else "top-k"),
        # what the columns above leave out, so scd.store.readback rebuilds the circuit with its id: the SAE map
        # (hashed into the id), every score (m_model, m_empty, ... beside faithfulness / completeness) and how
        # the target was chosen
        "saes": json.dumps(circuit.saes, ensure_ascii=False),
        "scores": json.dumps(
            _finite_scores(circuit.scores), sort_keys=True, ensure_ascii=False, allow_nan=False
        ),
        "target_source": circuit.prompt.target_source,
        "n_nodes": len(circuit.nodes),
        "n_edges": len(circuit.edges),
        "created_at": circuit.created_at,
        "request": request,
        "aggregated": False,  # not yet folded into the aggregate layer (scd.store.aggregates)
    }


def _finite_scores(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores with NaN / infinities left out (unset, as in the faithfulness / completeness columns)."""
    return {k: v for k, v in scores.items() if not (isinstance(v, float) and not math.isfinite(v))}


def node_rows(circuit: Circuit) -> list[dict[str, Any]]:
    cid = circuit.id
    rows: dict[str, dict[str, Any]] = {}
    for n in circuit.nodes:
        key = node_key(cid, n.id)
        rows.setdefault(
            key,
            {
                "id": key,
                "circuit_id": cid,
                "kind": n.kind,
                "layer": int(n.layer),
                "hook": n.hook,
                "idx": int(n.index),
                "pos": int(n.pos),
                "token": n.token,
                "activation": _f(n.activation),
                "attribution": _f(n.attribution),
                "effect": _f(n.effect),
                "feature_id": n.feature_id,
            },
        )
    return list(rows.values())


def edge_tuples(circuit: Circuit) -> list[tuple[str, str, float, float]]:
    """(source, target, weight, share) per distinct edge, with the circuit's own node ids; ``share`` = |weight| /
    the circuit's strongest |weight|, so queries can ask for "the strong edges" of circuits whose weights live on
    different scales (metrics, models) with one parameter."""
    weights: dict[tuple[str, str], Any] = {}
    for e in circuit.edges:  # the first of duplicate edges wins
        if (key := (e.source, e.target)) not in weights:
            weights[key] = e.weight
    clean = [_f(w) or 0.0 for w in weights.values()]  # None, NaN, inf -> 0.0
    strongest = max(map(abs, clean), default=0.0) or 1.0
    return [(s, t, w, abs(w) / strongest) for (s, t), w in zip(weights, clean, strict=True)]


def edge_rows(circuit: Circuit) -> list[dict[str, Any]]:
    """FEEDS rows (``edge_tuples`` with store-wide node ids)."""
    cid = circuit.id
    return [
        {"src": node_key(cid, s), "dst": node_key(cid, t), "weight": w, "share": share}
        for s, t, w, share in edge_tuples(circuit)
    ]


def circuit_rows(circuit: Circuit, request: str | None = None, *, edges: bool = True) -> CircuitRows:
    """Every row one circuit writes, de-duplicated by key (a store write may rely on unique keys). ``edges=False``
    leaves ``edges`` empty, for a writer that builds its edges from ``edge_tuples`` in a shape of its own."""
    return CircuitRows(
        circuit=circuit_row(circuit, request),
        prompt=prompt_row(circuit),
        features=feature_rows(circuit),
        nodes=node_rows(circuit),
        edges=edge_rows(circuit) if edges else [],
    )


def check_references(rows: CircuitRows) -> None:
    """Raise InputError if an edge or a node points at something the circuit does not contain."""
    check_node_features(rows)
    node_ids = {n["id"] for n in rows.nodes}
    for e in rows.edges:
        if e["src"] not in node_ids or e["dst"] not in node_ids:
            raise missing_node(rows.circuit["id"], e["src"], e["dst"])


def check_node_features(rows: CircuitRows) -> None:
    from scd.core.errors import InputError

    feature_ids = {f["id"] for f in rows.features}
    for n in rows.nodes:
        if n["feature_id"] not in feature_ids:
            raise InputError(
                f"circuit {rows.circuit['id']}: node {n['id']} points at feature {n['feature_id']} "
                "that the circuit does not list",
                "regenerate the circuit with `scd discover`",
            )


def missing_node(circuit_id: str, src: str, dst: str) -> Exception:
    from scd.core.errors import InputError

    return InputError(
        f"circuit {circuit_id}: edge {src} -> {dst} names a node the circuit lacks",
        "regenerate the circuit with `scd discover`",
    )
