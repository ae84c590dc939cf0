"""Read one stored circuit back as a `Circuit` (for `scd export` / `scd serve`), with read-only Cypher that both
stores run.

A circuit written by this scd comes back with the same ``Circuit.id`` and the same ``to_dict()`` up to the order
of its nodes, edges and features (sorted by id here) and two things the store keeps once for all circuits: a
Feature's metadata is its first writer's, and a Prompt's record is the first circuit's of that prompt. The store
keeps no NaN: a value the store has unset (pandas reads it as None or NaN) comes back as the Circuit's "not set"
(None, or 0.0 for a number the Circuit requires). Circuits written before the store kept ``saes``, ``scores``,
``target_source`` and the prompt's ``token_ids`` come back with those empty (scores: faithfulness / completeness
only; token ids: those of token nodes, else -1) and so with another id."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from scd.core.circuit import Circuit, Edge, Feature, Node, PromptRecord
from scd.core.errors import InputError
from scd.store.base import OutdatedStore, Store

_CIRCUIT = """
MATCH (c:Circuit {id: $id})-[:EXPLAINS]->(p:Prompt)
RETURN c.model AS model, c.sae_set AS sae_set, c.params AS params, c.metric_value AS metric_value,
       c.created_at AS created_at, c.faithfulness AS faithfulness, c.completeness AS completeness,
       p.text AS text, p.tokens AS tokens, p.target AS target, p.target_prob AS target_prob, p.loss AS loss,
       p.top_completions AS top_completions, p.top_completion_probs AS top_completion_probs, c.ablation AS ablation
"""
#: what the store keeps since readback rebuilds circuits whole (an embedded store made before has no such columns
#: until its next write: then these read as unset)
_EXTRAS = """
MATCH (c:Circuit {id: $id})-[:EXPLAINS]->(p:Prompt)
RETURN p.token_ids AS token_ids, p.target_id AS target_id, c.saes AS saes, c.scores AS scores,
       c.target_source AS target_source
"""
_NO_EXTRAS = {"token_ids": None, "target_id": None, "saes": None, "scores": None, "target_source": None}
_NODES = """
MATCH (c:Circuit {id: $id})-[:HAS]->(n:Node)
RETURN n.id AS id, n.kind AS kind, n.layer AS layer, n.hook AS hook, n.idx AS idx, n.pos AS pos,
       n.token AS token, n.activation AS activation, n.attribution AS attribution, n.feature_id AS feature_id
ORDER BY n.id
"""
#: read apart from _NODES: an embedded store last written by an older scd has no such column
_EFFECTS = """
MATCH (c:Circuit {id: $id})-[:HAS]->(n:Node)
RETURN n.id AS id, n.effect AS effect
"""
_EDGES = """
MATCH (c:Circuit {id: $id})-[:HAS]->(a:Node)-[r:FEEDS]->(b:Node)
RETURN a.id AS source, b.id AS target, r.weight AS weight
ORDER BY source, target
"""
_FEATURES = """
MATCH (c:Circuit {id: $id})-[:HAS]->(:Node)-[:OF]->(f:Feature)
RETURN DISTINCT f.id AS id, f.model AS model, f.sae AS sae, f.hook AS hook, f.layer AS layer, f.kind AS kind,
       f.idx AS idx, f.top_promoted AS top_promoted, f.top_promoted_logits AS top_promoted_logits,
       f.top_suppressed AS top_suppressed, f.top_suppressed_logits AS top_suppressed_logits,
       f.neuronpedia_url AS neuronpedia_url, f.label AS label
ORDER BY id
"""


def _missing(x: Any) -> bool:
    """Unset in the store: None, or NaN / pd.NA where pandas fills a missing cell (NaN is truthy, so ``x or
    None`` would keep it)."""
    if x is None:
        return True
    try:
        return bool(pd.isna(x)) if pd.api.types.is_scalar(x) else False
    except (TypeError, ValueError):
        return False


def _opt(x: Any) -> Any:
    """The stored value, or None where it is unset."""
    return None if _missing(x) else x


def _num(x: Any, default: float = 0.0) -> float:
    return default if _missing(x) else float(x)


def _list(x: Any) -> list:
    return [] if _missing(x) else list(x)


def read_circuit(store: Store, circuit_id: str) -> Circuit:
    """The circuit `circuit_id` as stored; InputError if the store has none by that id."""
    head = store.read(_CIRCUIT, {"id": circuit_id})
    if head.empty:
        raise InputError(
            f"no circuit {circuit_id!r} in {store.describe()}", "list them with `scd query circuits`"
        )
    c = {str(k): v for k, v in head.iloc[0].items()} | _extras(store, circuit_id)
    prefix = circuit_id + "/"
    effects = _effects(store, circuit_id)
    nodes = [
        Node(
            id=r.id[len(prefix) :],
            kind=r.kind,
            layer=int(r.layer),
            hook=r.hook,
            index=int(r.idx),
            pos=int(r.pos),
            token=r.token,
            activation=_num(r.activation),
            attribution=_num(r.attribution),
            feature_id=r.feature_id,
            effect=effects.get(r.id),
        )
        for r in _records(store.read(_NODES, {"id": circuit_id}))
    ]
    edges = [
        Edge(r.source[len(prefix) :], r.target[len(prefix) :], _num(r.weight))
        for r in _records(store.read(_EDGES, {"id": circuit_id}))
    ]
    features = [
        Feature(
            id=r.id,
            model=r.model,
            sae=_opt(r.sae) or "",
            hook=r.hook,
            layer=int(r.layer),
            kind=r.kind,
            index=int(r.idx),
            top_promoted=[str(t) for t in _list(r.top_promoted)],
            top_promoted_logits=[float(x) for x in _list(r.top_promoted_logits)],
            top_suppressed=[str(t) for t in _list(r.top_suppressed)],
            top_suppressed_logits=[float(x) for x in _list(r.top_suppressed_logits)],
            neuronpedia_url=_opt(r.neuronpedia_url),
            label=_opt(r.label),
        )
        for r in _records(store.read(_FEATURES, {"id": circuit_id}))
    ]
    params = json.loads(_opt(c["params"]) or "{}")
    tokens = [str(t) for t in _list(c["tokens"])]
    token_ids = [int(t) for t in _list(c["token_ids"])]
    if len(token_ids) != len(tokens):  # written before the store kept them: what the token nodes tell
        token_ids = [-1] * len(tokens)
        for n in nodes:
            if n.kind == "token" and 0 <= n.pos < len(tokens):
                token_ids[n.pos] = n.index
    target_id = c["target_id"]
    if _missing(target_id):
        target_id = next((n.index for n in nodes if n.kind == "logit"), -1)
    prompt = PromptRecord(
        text=c["text"],
        tokens=tokens,
        token_ids=token_ids,
        target=c["target"],
        target_id=int(target_id),
        target_prob=_num(c["target_prob"]),
        loss=_num(c["loss"]),
        top_completions=[
            (str(t), float(p))
            for t, p in zip(_list(c["top_completions"]), _list(c["top_completion_probs"]), strict=False)
        ],
        target_source=_opt(c["target_source"]) or "predicted",
        contrast=params.get("contrast"),
    )
    return Circuit(
        prompt=prompt,
        model=c["model"],
        sae_set=c["sae_set"],
        saes=json.loads(_opt(c["saes"]) or "{}"),
        params=params,
        nodes=nodes,
        edges=edges,
        features=features,
        metric_value=_num(c["metric_value"]),
        scores=_scores(c),
        created_at=c["created_at"],
    )


def _scores(c: dict[str, Any]) -> dict[str, Any]:
    """Every stored score (the ``scores`` JSON); for circuits written before it, the score columns."""
    stored = _opt(c["scores"])
    if stored is not None:
        return json.loads(stored)
    out: dict[str, Any] = {k: float(c[k]) for k in ("faithfulness", "completeness") if not _missing(c[k])}
    if out and not _missing(c["ablation"]):
        out["ablation"] = c["ablation"]
    return out


def _extras(store: Store, circuit_id: str) -> dict[str, Any]:
    extras = _newer_columns(store, _EXTRAS, circuit_id)
    return dict(_NO_EXTRAS) if extras is None else {str(k): v for k, v in extras.iloc[0].items()}


def _effects(store: Store, circuit_id: str) -> dict[str, float]:
    """Node id -> measured effect, for the nodes that have one."""
    frame = _newer_columns(store, _EFFECTS, circuit_id)
    return {} if frame is None else {r.id: float(r.effect) for r in _records(frame) if not _missing(r.effect)}


def _newer_columns(store: Store, text: str, circuit_id: str) -> Any:
    """A read of columns the schema gained later: None on an embedded store last written by an older scd, which
    has no such columns until its next write (Neo4j reads a missing property as null)."""
    try:
        return store.read(text, {"id": circuit_id})
    except OutdatedStore:
        return None


def _records(frame: Any) -> list[Any]:
    """A read's rows with attribute access. Any to the type checker: the columns are scd's own schema, their
    types set by what the query returns."""
    return list(frame.itertuples())
