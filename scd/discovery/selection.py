"""Choosing a circuit's nodes beyond top-k per sublayer: pruning by cumulative influence on the metric.

The same rule as circuit-tracer's ``prune_graph`` (Ameisen et al. 2025), written here over a Circuit's own edges
because circuit-tracer's works on its own Graph type (transcoder graphs with a fixed node layout) and would need a
conversion both ways:

1. A[d, u] = |weight(u -> d)| / the sum of |weight| into d: each node's inputs, normalised to sum to 1.
2. Influence of a node on the logit node(s): the sum over every path to a logit of the product of A along it,
   I = l (A + A^2 + ...) = l A (1 - A)^-1 with l = 1 on logit nodes (A is nilpotent: the graph is acyclic).
3. Keep the smallest set of nodes, by influence, whose influence adds up to ``share`` of the total; token and logit
   nodes are kept whatever their rank (the input and the output of every path), and the edges between kept nodes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scd.core.circuit import Circuit
from scd.core.errors import InputError

#: the default share of total influence a pruned circuit keeps
INFLUENCE_SHARE = 0.8
ALWAYS_KEPT = ("token", "logit")


def node_influence(circuit: Circuit) -> dict[str, float]:
    """Phases 1-2: each node's influence on the circuit's logit node(s) through its edges."""
    ids = [n.id for n in circuit.nodes]
    at = {nid: i for i, nid in enumerate(ids)}
    a = np.zeros((len(ids), len(ids)))
    for e in circuit.edges:
        a[at[e.target], at[e.source]] += abs(float(e.weight))
    inputs = a.sum(1, keepdims=True)
    a = np.divide(a, inputs, out=np.zeros_like(a), where=inputs > 0)
    logit = np.array([1.0 if n.kind == "logit" else 0.0 for n in circuit.nodes])
    # l A (1 - A)^-1 as a solve: x (1 - A) = l A  <=>  (1 - A)^T x^T = (l A)^T
    influence = np.linalg.solve((np.eye(len(ids)) - a).T, logit @ a)
    return {nid: float(x) for nid, x in zip(ids, influence, strict=True)}


def prune_by_influence(circuit: Circuit, share: float = INFLUENCE_SHARE) -> Circuit:
    """Phase 3: the circuit cut to the fewest feature and error nodes that carry ``share`` of total influence."""
    if not 0.0 < share <= 1.0:
        raise InputError(f"share must be in (0, 1] (got {share})", "e.g. share=0.8")
    influence = node_influence(circuit)
    ranked = sorted(
        (n for n in circuit.nodes if n.kind not in ALWAYS_KEPT), key=lambda n: (-influence[n.id], n.id)
    )
    total = sum(influence[n.id] for n in ranked)
    kept: set[str] = {n.id for n in circuit.nodes if n.kind in ALWAYS_KEPT}
    carried = 0.0
    for n in ranked:
        if carried >= share * total:
            break
        kept.add(n.id)
        carried += influence[n.id]
    nodes = [n for n in circuit.nodes if n.id in kept]
    edges = [e for e in circuit.edges if e.source in kept and e.target in kept]
    used = {n.feature_id for n in nodes}
    params = dict(circuit.params, selection=f"influence:{share:g}")
    return dataclasses.replace(
        circuit,
        nodes=nodes,
        edges=edges,
        features=[f for f in circuit.features if f.id in used],
        params=params,
        scores={},
    )
