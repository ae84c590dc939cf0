"""Read one stored circuit back as a `Circuit` (for `scd export` / `scd serve`), with read-only Cypher that both
stores run. What the store does not keep comes back empty: prompt token ids other than those of token nodes (-1),
the circuit's ``saes`` map, and scores other than faithfulness / completeness."""

from __future__ import annotations

import json
import math
from typing import Any

from scd.core.circuit import Circuit, Edge, Feature, Node, PromptRecord
from scd.core.errors import InputError
from scd.store.base import Store

_CIRCUIT = """
MATCH (c:Circuit {id: $id})-[:EXPLAINS]->(p:Prompt)
RETURN c.model AS model, c.sae_set AS sae_set, c.params AS params, c.metric_value AS metric_value,
       c.created_at AS created_at, c.faithfulness AS faithfulness, c.completeness AS completeness,
       p.text AS text, p.tokens AS tokens, p.target AS target, p.target_prob AS target_prob, p.loss AS loss,
       p.top_completions AS top_completions, p.top_completion_probs AS top_completion_probs
"""
_NODES = """
MATCH (c:Circuit {id: $id})-[:HAS]->(n:Node)
RETURN n.id AS id, n.kind AS kind, n.layer AS layer, n.hook AS hook, n.idx AS idx, n.pos AS pos,
       n.token AS token, n.activation AS activation, n.attribution AS attribution, n.feature_id AS feature_id
ORDER BY n.id
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
"""


def _num(x, default=0.0) -> float:
    return default if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def read_circuit(store: Store, circuit_id: str) -> Circuit:
    """The circuit `circuit_id` as stored; InputError if the store has none by that id."""
    head = store.read(_CIRCUIT, {"id": circuit_id})
    if head.empty:
        raise InputError(
            f"no circuit {circuit_id!r} in {store.describe()}", "list them with `scd query circuits`"
        )
    c = head.iloc[0]
    prefix = circuit_id + "/"
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
        )
        for r in _records(store.read(_NODES, {"id": circuit_id}))
    ]
    edges = [
        Edge(r.source[len(prefix) :], r.target[len(prefix) :], float(r.weight))
        for r in _records(store.read(_EDGES, {"id": circuit_id}))
    ]
    features = [
        Feature(
            id=r.id,
            model=r.model,
            sae=r.sae or "",
            hook=r.hook,
            layer=int(r.layer),
            kind=r.kind,
            index=int(r.idx),
            top_promoted=list(r.top_promoted or []),
            top_promoted_logits=list(r.top_promoted_logits or []),
            top_suppressed=list(r.top_suppressed or []),
            top_suppressed_logits=list(r.top_suppressed_logits or []),
            neuronpedia_url=r.neuronpedia_url or None,
            label=r.label or None,
        )
        for r in _records(store.read(_FEATURES, {"id": circuit_id}))
    ]
    tokens = list(c.tokens)
    token_ids = [-1] * len(tokens)
    for n in nodes:
        if n.kind == "token" and 0 <= n.pos < len(tokens):
            token_ids[n.pos] = n.index
    target_id = next((n.index for n in nodes if n.kind == "logit"), -1)
    scores = {k: float(c[k]) for k in ("faithfulness", "completeness") if c[k] is not None and c[k] == c[k]}
    prompt = PromptRecord(
        text=c.text,
        tokens=tokens,
        token_ids=token_ids,
        target=c.target,
        target_id=int(target_id),
        target_prob=_num(c.target_prob),
        loss=_num(c.loss),
        top_completions=list(
            zip(list(c.top_completions or []), [float(x) for x in c.top_completion_probs or []], strict=False)
        ),
    )
    return Circuit(
        prompt=prompt,
        model=c.model,
        sae_set=c.sae_set,
        saes={},
        params=json.loads(c.params or "{}"),
        nodes=nodes,
        edges=edges,
        features=features,
        metric_value=_num(c.metric_value),
        scores=scores,
        created_at=c.created_at,
    )


def _records(frame: Any) -> list[Any]:
    """A read's rows with attribute access. Any to the type checker: the columns are scd's own schema, their
    types set by what the query returns."""
    return list(frame.itertuples())
