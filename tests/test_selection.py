"""Pruning by cumulative influence: influence recomputed by walking every path, and the documented share kept."""

from __future__ import annotations

from functools import cache

import pytest

from scd.core.errors import InputError
from scd.discovery.selection import ALWAYS_KEPT, node_influence, prune_by_influence

from .synthetic import synthetic_circuit


def path_influence(circuit) -> dict[str, float]:
    """Sum over every path to a logit node of the product of normalised |weights|, by recursion over children."""
    into: dict[str, float] = {}
    for e in circuit.edges:
        into[e.target] = into.get(e.target, 0.0) + abs(e.weight)
    children: dict[str, list] = {}
    for e in circuit.edges:
        children.setdefault(e.source, []).append(e)
    kind = {n.id: n.kind for n in circuit.nodes}

    @cache
    def walk(nid: str) -> float:  # paths from nid to any logit
        return sum(
            abs(e.weight) / into[e.target] * ((1.0 if kind[e.target] == "logit" else 0.0) + walk(e.target))
            for e in children.get(nid, [])
        )

    return {n.id: walk(n.id) for n in circuit.nodes}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_influence_is_the_sum_over_paths(seed):
    c = synthetic_circuit(seed, n_nodes=50, n_edges=180)
    got, want = node_influence(c), path_influence(c)
    assert any(v > 0 for v in want.values())
    for nid in want:
        assert got[nid] == pytest.approx(want[nid], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("share", [0.5, 0.8, 0.95])
def test_pruning_keeps_the_documented_share_with_the_fewest_nodes(share):
    """Every node but the logits is ranked (input tokens too, as circuit-tracer ranks them); the strongest that
    reach the share are kept, and tokens and logits whatever their rank."""
    c = synthetic_circuit(7, n_nodes=60, n_edges=220)
    infl = path_influence(c)
    pruned = prune_by_influence(c, share)
    kept = {n.id for n in pruned.nodes}
    ranked = sorted((n for n in c.nodes if n.kind != "logit"), key=lambda n: -infl[n.id])
    total = sum(infl[n.id] for n in ranked)
    mine, carried = [], 0.0
    for n in ranked:  # the shortest prefix of the ranking that carries the share
        if carried >= share * total:
            break
        mine.append(n)
        carried += infl[n.id]
    assert carried - infl[mine[-1].id] < share * total <= carried
    assert kept == {n.id for n in mine} | {n.id for n in c.nodes if n.kind in ALWAYS_KEPT}
    assert all(e.source in kept and e.target in kept for e in pruned.edges)
    assert len(pruned.nodes) < len(c.nodes) and pruned.id != c.id
    assert pruned.params["selection"] == f"influence:{share:g}"


def test_pruning_share_must_be_a_fraction():
    with pytest.raises(InputError, match="share must be in"):
        prune_by_influence(synthetic_circuit(0), 1.5)
    with pytest.raises(InputError, match="edge_share must be in"):
        prune_by_influence(synthetic_circuit(0), 0.8, 0.0)
