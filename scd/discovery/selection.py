"""Choosing a circuit's nodes beyond top-k per sublayer: pruning by cumulative influence on the metric, and
greedy selection checked by ablation (`greedy`, at the end of this module).

The same rule as circuit-tracer's ``prune_graph`` (Ameisen et al. 2025), written here over a Circuit's own edges
because circuit-tracer's works on its own Graph type (transcoder graphs with a fixed node layout) and would need a
conversion both ways. tests/test_tracer.py checks that both keep the same nodes on the same graph.

1. A[d, u] = |weight(u -> d)| / the sum of |weight| into d: each node's inputs, normalised to sum to 1.
2. Influence of a node on the logit node(s): the sum over every path to a logit of the product of A along it,
   I = l (A + A^2 + ...) = l A (1 - A)^-1 with l = 1 on logit nodes (A is nilpotent: the graph is acyclic).
3. Nodes: rank every node by influence (input tokens included, as circuit-tracer ranks them) and keep those at
   or above the influence where the running sum first reaches ``share`` of the total (ties kept); token and
   logit nodes are kept whatever their rank (the input and the output of every path).
4. Edges (``edge_share``): step 1-2 again on the graph of kept nodes; an edge's score is its normalised weight
   times the influence of its target (1 added on logit nodes), and the edges at or above the score where the
   running sum first reaches ``edge_share`` of the total are kept. Then, until nothing changes, a feature or error
   node with no kept outgoing edge, or a feature node with no kept incoming edge, is dropped with its edges.
   Without ``edge_share`` every edge between kept nodes is kept and no node is dropped.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from scd.core.circuit import Circuit
from scd.core.errors import InputError
from scd.discovery.evaluate import SPLICED_KINDS, ablator_for
from scd.models.bundle import ModelBundle

#: the default share of total influence a pruned circuit keeps (circuit-tracer's default node threshold)
INFLUENCE_SHARE = 0.8
ALWAYS_KEPT = ("token", "logit")
#: the default number of nodes greedy selection adds
GREEDY_SIZE = 30
#: kinds that are no feature: circuit-tracer drops only features that lost every incoming edge
NOT_FEATURES = ("token", "logit", "error")


def _normalised(circuit: Circuit, ids: list[str]) -> np.ndarray:
    """Phase 1 over the nodes ``ids`` (edges with an end elsewhere left out)."""
    at = {nid: i for i, nid in enumerate(ids)}
    a = np.zeros((len(ids), len(ids)))
    for e in circuit.edges:
        if e.source in at and e.target in at:
            a[at[e.target], at[e.source]] += abs(float(e.weight))
    inputs = a.sum(1, keepdims=True)
    return np.divide(a, inputs, out=np.zeros_like(a), where=inputs > 0)


def _influence(a: np.ndarray, logit: np.ndarray) -> np.ndarray:
    # l A (1 - A)^-1 as a solve: x (1 - A) = l A  <=>  (1 - A)^T x^T = (l A)^T
    return np.linalg.solve((np.eye(a.shape[0]) - a).T, logit @ a)


def node_influence(circuit: Circuit) -> dict[str, float]:
    """Phases 1-2: each node's influence on the circuit's logit node(s) through its edges."""
    ids = [n.id for n in circuit.nodes]
    logit = np.array([1.0 if n.kind == "logit" else 0.0 for n in circuit.nodes])
    influence = _influence(_normalised(circuit, ids), logit)
    return {nid: float(x) for nid, x in zip(ids, influence, strict=True)}


def cutoff(scores: np.ndarray, share: float) -> float:
    """The score at which the running sum of ``scores`` (largest first) first reaches ``share`` of their total:
    keeping every score >= it keeps that share (circuit-tracer's ``find_threshold``)."""
    ranked = np.sort(scores.ravel())[::-1]
    total = ranked.sum()
    if total <= 0:
        return 0.0
    at = int(np.searchsorted(np.cumsum(ranked) / total, share))
    return float(ranked[min(at, len(ranked) - 1)])


def prune_by_influence(
    circuit: Circuit, share: float = INFLUENCE_SHARE, edge_share: float | None = None
) -> Circuit:
    """Phases 3-4: the circuit cut to the feature and error nodes (and, with ``edge_share``, the edges) that
    carry ``share`` of total influence."""
    for name, value in (("share", share), ("edge_share", edge_share)):
        if value is not None and not 0.0 < value <= 1.0:
            raise InputError(f"{name} must be in (0, 1] (got {value})", f"e.g. {name}=0.8")
    influence = node_influence(circuit)
    scores = np.array([influence[n.id] for n in circuit.nodes])
    at_least = cutoff(scores, share)
    kept = {n.id for n in circuit.nodes if n.kind in ALWAYS_KEPT or influence[n.id] >= at_least}
    edges = [e for e in circuit.edges if e.source in kept and e.target in kept]
    if edge_share is not None:
        kept, edges = _prune_edges(circuit, kept, edge_share)
    nodes = [n for n in circuit.nodes if n.id in kept]
    used = {n.feature_id for n in nodes}
    selection = f"influence:{share:g}" + ("" if edge_share is None else f"/{edge_share:g}")
    return dataclasses.replace(
        circuit,
        nodes=nodes,
        edges=edges,
        features=[f for f in circuit.features if f.id in used],
        params=dict(circuit.params, selection=selection),
        scores={},
    )


def _prune_edges(circuit: Circuit, kept: set[str], edge_share: float) -> tuple[set[str], list]:
    """Phase 4 (see module docstring)."""
    nodes = [n for n in circuit.nodes if n.id in kept]
    ids = [n.id for n in nodes]
    at = {nid: i for i, nid in enumerate(ids)}
    a = _normalised(circuit, ids)
    logit = np.array([1.0 if n.kind == "logit" else 0.0 for n in nodes])
    score = a * (_influence(a, logit) + logit)[:, None]  # score[d, u]: the edge u -> d
    # every entry of the matrix takes part in the ranking, as in circuit-tracer: the zeros matter only when the
    # cutoff falls on them (edge_share = 1), and then circuit-tracer keeps every entry and drops no node
    at_least = cutoff(score, edge_share)
    edges = [e for e in circuit.edges if e.source in at and e.target in at]
    if at_least <= 0:
        return set(ids), edges  # every entry passes, zeros included: every node keeps its edges
    edges = [e for e in edges if score[at[e.target], at[e.source]] >= at_least]
    alive = set(ids)
    while True:
        live = [e for e in edges if e.source in alive and e.target in alive]
        has_out, has_in = {e.source for e in live}, {e.target for e in live}
        now = {
            n.id
            for n in nodes
            if n.id in alive
            and (n.kind in ALWAYS_KEPT or n.id in has_out)
            and (n.kind in NOT_FEATURES or n.id in has_in)
        }
        if now == alive:
            return alive, live
        alive = now


def _restrict(circuit: Circuit, kept: set[str], selection: str) -> Circuit:
    """The circuit cut to the node ids in ``kept`` (plus token and logit nodes), the edges between them."""
    kept = kept | {n.id for n in circuit.nodes if n.kind in ALWAYS_KEPT}
    nodes = [n for n in circuit.nodes if n.id in kept]
    edges = [e for e in circuit.edges if e.source in kept and e.target in kept]
    used = {n.feature_id for n in nodes}
    params = dict(circuit.params, selection=selection)
    return dataclasses.replace(
        circuit,
        nodes=nodes,
        edges=edges,
        features=[f for f in circuit.features if f.id in used],
        params=params,
        scores={},
    )


# -- greedy selection checked by ablation -------------------------------------------------------------------------


class GreedyStep(NamedTuple):
    node: str  # the node id added at this step
    n_features: int  # feature nodes chosen so far
    n_errors: int  # error nodes chosen so far
    faithfulness: float  # F of the nodes chosen so far, measured by ablation


def greedy_path(
    circuit: Circuit,
    bundle: ModelBundle,
    size: int = GREEDY_SIZE,
    *,
    ablation: str = "zero",
    errors: str = "circuit",
    means: dict | None = None,
    pool: int | None = None,
) -> list[GreedyStep]:
    """Greedy forward selection, each step checked by actually ablating (`scd.discovery.evaluate.Ablator`).

    1. **pool** -- the candidates are the circuit's own feature nodes at spliced SAE sublayers (the engine's
       top-k per sublayer by |attribution|: a cheap pre-selection) and, with ``errors="circuit"``, its error
       nodes; ordered by |attribution|, the first ``pool`` of them (None: all).
    2. **step** -- for every candidate c not yet chosen, F(chosen + c) by ablating everything else, all
       candidates of a step in one batched forward; the c that brings F closest to 1 is added (ties: the
       larger |attribution|). Closest to 1, not largest: F = 1 is the model's own behaviour, and a node set
       that overshoots it (F > 1) explains the behaviour no better than one that falls short.
    3. **stop** after ``size`` nodes (feature and error nodes both count) or when the pool is used up. A step
       may move F away from 1 (nodes can matter only together); `best_prefix` picks the circuit.

    Returns one GreedyStep per addition: its F values are the greedy faithfulness curve over circuit size.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputError(f"size must be a whole number >= 1 (got {size!r})", "e.g. size=30")
    if pool is not None and (isinstance(pool, bool) or not isinstance(pool, int) or pool < 1):
        raise InputError(f"pool must be a whole number >= 1 (got {pool!r})", "e.g. pool=100")
    ablator = ablator_for(circuit, bundle, ablation=ablation, errors=errors, means=means)
    kinds = SPLICED_KINDS + (("error",) if errors == "circuit" else ())
    candidates = sorted(
        (n for n in circuit.nodes if n.kind in kinds), key=lambda n: (-abs(n.attribution), n.id)
    )[:pool]
    m_model = circuit.metric_value
    keep, keep_err = ablator.masks([]), ablator.error_masks([])
    (m_empty,) = ablator.metrics_with([keep], [keep_err])
    denom = m_model - m_empty
    path: list[GreedyStep] = []
    n_feat = n_err = 0
    remaining = list(candidates)
    while remaining and len(path) < size:
        trial_f, trial_e = [], []
        for n in remaining:
            f = {h: m.clone() for h, m in keep.items()}
            e = {h: m.clone() for h, m in keep_err.items()}
            if n.kind == "error":
                e[n.hook][n.pos] = True
            else:
                f[n.hook][n.pos, n.index] = True
            trial_f.append(f)
            trial_e.append(e)
        ms = ablator.metrics_with(trial_f, trial_e)
        if denom == 0:  # ablating everything changes nothing: F is undefined, nothing to select by
            break
        faiths = [(m - m_empty) / denom for m in ms]
        best = min(range(len(remaining)), key=lambda i: (abs(1.0 - faiths[i]), i))
        node = remaining.pop(best)
        keep, keep_err = trial_f[best], trial_e[best]
        n_err += node.kind == "error"
        n_feat += node.kind != "error"
        path.append(GreedyStep(node.id, n_feat, n_err, faiths[best]))
    return path


def best_prefix(path: list[GreedyStep], size: int) -> list[GreedyStep]:
    """The greedy circuit of at most ``size`` nodes: the prefix of ``path`` whose F is closest to 1 (the shorter
    one on a tie). Never empty when the path is not: a circuit of one node is the least it reports."""
    steps = path[:size]
    if not steps:
        return []
    k = min(range(len(steps)), key=lambda i: (abs(1.0 - steps[i].faithfulness), i))
    return steps[: k + 1]


def greedy(
    circuit: Circuit,
    bundle: ModelBundle,
    size: int = GREEDY_SIZE,
    *,
    ablation: str = "zero",
    errors: str = "circuit",
    means: dict | None = None,
    pool: int | None = None,
) -> Circuit:
    """The circuit cut to the nodes `greedy_path` chooses (see it for the method)."""
    path = greedy_path(circuit, bundle, size, ablation=ablation, errors=errors, means=means, pool=pool)
    return _restrict(circuit, {s.node for s in best_prefix(path, size)}, f"greedy:{size}")
