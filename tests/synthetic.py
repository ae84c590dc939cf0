"""Seeded, realistic synthetic circuits: for store tests, query tests and benchmarks without a model.

``synthetic_circuit(seed)`` returns a :class:`scd.core.circuit.Circuit` shaped like the demo model's: a character-level
prompt, token nodes at every position, SAE feature and error nodes at ``resid_pre`` / ``attn_out`` / ``mlp_out`` of
each layer, one logit node, and edges that always run upstream -> downstream (by layer and sublayer, never from a
later position to an earlier one). Latent indices come from a small pool (``d_sae``), so different seeds share
Features, as real circuits over one SAE set do. The same arguments always give the same circuit, ``created_at``
included.

    >>> c = synthetic_circuit(0)
    >>> c2 = synthetic_circuit(0); c.id == c2.id and c.to_json() == c2.to_json()
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from typing import Any

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

VOCAB = list("abcdefghijklmnopqrstuvwxyz()[]{}<> .,")  # character-level, like the demo model
BOS = "<bos>"
SUBLAYERS = ("resid", "attn", "mlp")  # kinds, in forward order within a block
_HOOK = {
    "resid": "blocks.{L}.hook_resid_pre",
    "attn": "blocks.{L}.hook_attn_out",
    "mlp": "blocks.{L}.hook_mlp_out",
}


def token_id(ch: str) -> int:
    """The synthetic vocabulary: 0 is BOS, VOCAB characters 1.., anything else an id from its code point."""
    return VOCAB.index(ch) + 1 if ch in VOCAB else 100 + sum(ord(c) for c in ch) % 10_000


def hook_name(kind: str, layer: int) -> str:
    return _HOOK[kind].format(L=layer)


def _order(n: Node, n_layers: int) -> tuple[int, int]:
    """Topological rank of a node's sublayer: tokens first, then (layer, resid < attn < mlp), the logit last."""
    if n.kind == "token":
        return (-1, 0)
    if n.kind == "logit":
        return (n_layers + 1, 0)
    sub = n.hook.rsplit("hook_", 1)[1]
    return (n.layer, {"resid_pre": 0, "attn_out": 1, "mlp_out": 2}[sub])


def synthetic_circuit(
    seed: int,
    n_nodes: int = 60,
    n_edges: int = 200,
    model: str = "demo",
    *,
    sae_set: str = "demo",
    n_layers: int = 4,
    d_sae: int = 512,
    n_tokens: int | None = None,
    text: str | None = None,
    target: str | None = None,
    params: dict[str, Any] | None = None,
    error_share: float = 0.1,
    with_scores: bool = True,
) -> Circuit:
    """A deterministic synthetic circuit.

    n_nodes counts every node (tokens, features, errors and the logit); it is raised to the minimum the prompt
    needs (one token node per position, the logit). n_edges is capped at what the node set allows. ``text``
    fixes the prompt (characters from VOCAB); otherwise one of ``n_tokens`` characters (default 6-12) is drawn.
    ``params`` overrides discovery parameters (they are part of the circuit id).
    """
    rng = random.Random(seed)
    if text is None:
        n_chars = n_tokens if n_tokens is not None else rng.randint(6, 12)
        text = "".join(rng.choice(VOCAB) for _ in range(n_chars))
    ids = [token_id(ch) for ch in text]
    tokens = [BOS, *text]
    token_ids = [0, *ids]
    target_source = "explicit" if target is not None else "predicted"
    target = target if target is not None else rng.choice(VOCAB)
    target_id = token_id(target)
    last = len(tokens) - 1
    target_prob = round(rng.uniform(0.05, 0.95), 6)
    others = rng.sample([v for v in VOCAB if v != target], 4)
    rest = sorted((round(rng.uniform(0, 1 - target_prob) / 4, 6) for _ in others), reverse=True)
    prompt = PromptRecord(
        text=text,
        tokens=tokens,
        token_ids=token_ids,
        target=target,
        target_id=target_id,
        target_prob=target_prob,
        loss=round(-math.log(target_prob), 6),
        top_completions=[(target, target_prob), *zip(others, rest, strict=True)],
        target_source=target_source,
    )
    p = {
        "method": "atp",
        "metric": "ce",
        "ig_steps": 10,
        "top_k": 20,
        "node_threshold": None,
        "edge_threshold": 0.0,
        "target_mode": "predicted",
    }
    p.update(params or {})

    nodes: list[Node] = []
    features: dict[str, Feature] = {}
    # input tokens (the embedding) at every position
    for pos, (tok, tid) in enumerate(zip(tokens, token_ids, strict=True)):
        fid = token_feature_id(model, tid)
        nodes.append(
            Node(
                f"token/{tid}@{pos}",
                "token",
                -1,
                "hook_embed",
                tid,
                pos,
                tok,
                1.0,
                round(rng.gauss(0, 0.3), 6),
                fid,
            )
        )
        features.setdefault(fid, Feature(fid, model, "", "hook_embed", -1, "token", tid))
    # the target logit at the last position
    lfid = logit_feature_id(model, target_id)
    nodes.append(
        Node(
            f"logit/{target_id}@{last}",
            "logit",
            n_layers,
            "unembed",
            target_id,
            last,
            tokens[last],
            round(rng.uniform(1, 10), 6),
            round(-prompt.loss, 6),
            lfid,
        )
    )
    features[lfid] = Feature(lfid, model, "", "unembed", n_layers, "logit", target_id)
    # SAE features and error terms
    seen = {n.id for n in nodes}
    budget = max(0, n_nodes - len(nodes))
    tries = 0
    while budget and tries < 50 * n_nodes + 100:
        tries += 1
        layer = rng.randrange(n_layers)
        kind = rng.choice(SUBLAYERS)
        hook = hook_name(kind, layer)
        pos = rng.randint(max(0, last - 4), last) if rng.random() < 0.7 else rng.randint(0, last)
        if rng.random() < error_share:
            idx, nid, nkind = -1, f"{hook}/error@{pos}", "error"
        else:
            # popular latents recur across prompts
            idx = min(int(rng.expovariate(1 / (d_sae / 6))), d_sae - 1)
            nid, nkind = f"{hook}/{idx}@{pos}", kind
        if nid in seen:
            continue
        seen.add(nid)
        budget -= 1
        fid = feature_id(model, sae_set, hook, idx)
        act = 0.0 if idx < 0 else round(rng.uniform(0.1, 8.0), 6)
        nodes.append(
            Node(nid, nkind, layer, hook, idx, pos, tokens[pos], act, round(rng.gauss(0, 0.5), 6), fid)
        )
        if fid not in features:
            features[fid] = _feature_meta(rng, fid, model, sae_set, hook, layer, nkind, idx)

    # edges: upstream -> downstream by sublayer rank, source position <= target position
    ranked = sorted(nodes, key=lambda n: (_order(n, n_layers), n.pos, n.id))
    rank = {n.id: _order(n, n_layers) for n in ranked}
    edges: dict[tuple[str, str], Edge] = {}
    logit = nodes[len(tokens)]
    feeders = [n for n in ranked if n.pos == last and n.kind != "logit"]
    for n in feeders[: max(1, min(len(feeders), n_edges // 10))]:  # the logit always has direct feeders
        if len(edges) < n_edges:
            edges[(n.id, logit.id)] = Edge(n.id, logit.id, round(rng.gauss(0, 1), 6))
    n_ranked = len(ranked)
    tries = 0
    while len(edges) < n_edges and tries < 20 * n_edges + 100:
        tries += 1
        i, j = sorted(rng.sample(range(n_ranked), 2))
        a, b = ranked[i], ranked[j]
        if rank[a.id] >= rank[b.id] or a.pos > b.pos or (a.id, b.id) in edges:
            continue
        edges[(a.id, b.id)] = Edge(a.id, b.id, round(rng.gauss(0, 0.5), 6))

    scores = {"faithfulness": round(rng.uniform(0.5, 1.0), 6), "completeness": round(rng.uniform(0, 0.5), 6)}
    if with_scores:  # a scored circuit measures each latent's effect (scd.discovery.effects): one per latent
        scores["ablation"] = "zero/circuit"
        erng, effect = random.Random(f"effects/{seed}"), {}
        for n in nodes:
            if n.kind in SUBLAYERS:
                n.effect = effect.setdefault((n.hook, n.index), round(erng.gauss(0, 1), 6))
    return Circuit(
        prompt=prompt,
        model=model,
        sae_set=sae_set,
        saes={
            hook_name(k, layer): f"{sae_set}/{hook_name(k, layer)}"
            for layer in range(n_layers)
            for k in SUBLAYERS
        },
        params=p,
        nodes=nodes,
        edges=list(edges.values()),
        features=sorted(features.values(), key=lambda f: f.id),
        metric_value=prompt.loss,
        scores=scores if with_scores else {},
        created_at="2025-01-01T00:00:00+00:00",
    )


def _feature_meta(
    rng: random.Random, fid: str, model: str, sae_set: str, hook: str, layer: int, kind: str, idx: int
) -> Feature:
    """Feature metadata as a pure function of its id, so every circuit that meets a feature agrees on it."""
    if idx < 0:
        return Feature(fid, model, f"{sae_set}/{hook}", hook, layer, "error", -1)
    r = random.Random(fid)
    promoted = r.sample(VOCAB, 5)
    suppressed = r.sample(VOCAB, 5)
    return Feature(
        fid,
        model,
        f"{sae_set}/{hook}",
        hook,
        layer,
        kind,
        idx,
        top_promoted=promoted,
        top_promoted_logits=sorted((round(r.uniform(0.5, 3), 6) for _ in promoted), reverse=True),
        top_suppressed=suppressed,
        top_suppressed_logits=sorted(round(-r.uniform(0.5, 3), 6) for _ in suppressed),
        neuronpedia_url=None,
        label=f"feature {idx} of {hook}" if r.random() < 0.3 else None,
    )


def synthetic_circuits(n: int, seed: int = 0, **kwargs: Any) -> list[Circuit]:
    """``n`` circuits with seeds ``seed .. seed+n-1`` (distinct prompts; shared Features)."""
    return [synthetic_circuit(seed + i, **kwargs) for i in range(n)]


# -- a stand-in for discovery, for ingest tests and benchmarks ----------------------------------------------------
UNKNOWN_CHAR = "\u2603"  # the synthetic "vocabulary" lacks the snowman: prompts containing it are bad prompts


def synthetic_discover(
    text: str,
    *,
    target: str | None = None,
    contrast: str | None = None,
    n_nodes: int = 40,
    n_edges: int = 150,
    delay: float = 0.0,
    **params: Any,
) -> Circuit:
    """What ``scd.discovery.discover.discover`` returns, made up: the circuit is a pure function of the arguments."""
    from scd.core.errors import InputError

    if UNKNOWN_CHAR in text:
        raise InputError(f"the prompt has characters the vocabulary lacks: {UNKNOWN_CHAR!r}", "remove them")
    if delay:
        time.sleep(delay)
    seed = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16)
    return synthetic_circuit(seed, n_nodes, n_edges, text=text, target=target, params=params or None)


def expected_aggregates(circuits: list[Circuit]) -> dict[str, dict[tuple[str, str], tuple]]:
    """The pre-aggregated layer, computed from the Circuit objects (first-seen feature metadata, as the stores keep):
    {relationship: {(a, b): (circuits, n_edges, weight_sum, abs_weight_sum, example_circuit, effect_sum,
    effect_circuits)}}: effect_sum over the circuits where the upstream side has a measured effect, one value per
    circuit (the largest of the group's upstream nodes'), effect_circuits their number."""
    top: dict[str, str | None] = {}
    for c in circuits:
        for f in c.features:
            top.setdefault(f.id, str(f.top_promoted[0]) if len(f.top_promoted) else None)
    groups: dict[str, dict[tuple[str, str], list]] = {
        "FEEDS_FEATURE": {},
        "FEEDS_TOKEN": {},
        "TOKEN_FEEDS": {},
    }
    for c in {c.id: c for c in circuits}.values():
        for e in c.edges:
            u, d = c.node(e.source).feature_id, c.node(e.target).feature_id
            keys = [("FEEDS_FEATURE", (u, d))]
            keys += [("FEEDS_TOKEN", (u, top[d]))] if top[d] is not None else []
            keys += [("TOKEN_FEEDS", (top[u], d))] if top[u] is not None else []
            for rel, key in keys:
                g = groups[rel].setdefault(key, [set(), 0, 0.0, 0.0, {}])
                g[0].add(c.id)
                g[1] += 1
                g[2] += float(e.weight)
                g[3] += abs(float(e.weight))
                _add_effect(g[4], c.id, c.node(e.source).effect)
    return {rel: {k: _aggregate_row(g) for k, g in group.items()} for rel, group in groups.items()}


def _add_effect(per_circuit: dict, circuit: str, effect: Any) -> None:
    if effect is not None and not (isinstance(effect, float) and math.isnan(effect)):
        per_circuit[circuit] = max(per_circuit.get(circuit, -math.inf), float(effect))


def _aggregate_row(g: list) -> tuple:
    return (len(g[0]), g[1], g[2], g[3], min(g[0]), sum(g[4].values()), len(g[4]))


def aggregate_counts(circuits: list[Circuit]) -> dict[str, int]:
    """Store counts of the pre-aggregated layer (Token nodes and the three relationships) for these circuits."""
    agg = expected_aggregates(circuits)
    tokens = {t for _, t in agg["FEEDS_TOKEN"]} | {t for t, _ in agg["TOKEN_FEEDS"]}
    return {"Token": len(tokens)} | {rel: len(group) for rel, group in agg.items()}


def stored_aggregates(store: Any) -> dict[str, dict[tuple[str, str], tuple]]:
    """The pre-aggregated layer as a store holds it (same shape as expected_aggregates)."""
    out = {}
    for rel in ("FEEDS_FEATURE", "FEEDS_TOKEN", "TOKEN_FEEDS"):
        df = store.read(
            f"MATCH (a)-[x:{rel}]->(b) RETURN a.id AS a, b.id AS b, x.circuits AS c, x.n_edges AS n, "
            "x.weight_sum AS w, x.abs_weight_sum AS aw, x.example_circuit AS ex, x.effect_sum AS es, "
            "x.effect_circuits AS ec"
        )
        out[rel] = {
            (a, b): (c, n, w, aw, ex, es, ec) for a, b, c, n, w, aw, ex, es, ec in df.itertuples(index=False)
        }
    return out


def raw_aggregates(store: Any) -> dict[str, dict[tuple[str, str], tuple]]:
    """The pre-aggregated layer recomputed from a store's Node-level FEEDS edges (same shape as above)."""
    df = store.read(
        "MATCH (a:Feature)<-[:OF]-(u:Node)-[e:FEEDS]->(d:Node)-[:OF]->(b:Feature) "
        "RETURN a.id AS a, a.top_token AS ta, b.id AS b, b.top_token AS tb, d.circuit_id AS c, e.weight AS w, "
        "u.effect AS ue"
    )
    groups: dict[str, dict[tuple[str, str], list]] = {
        "FEEDS_FEATURE": {},
        "FEEDS_TOKEN": {},
        "TOKEN_FEEDS": {},
    }
    for a, ta, b, tb, c, w, ue in df.itertuples(index=False):
        ta, tb = (t if isinstance(t, str) else None for t in (ta, tb))  # unset: None or NaN from pandas
        keys = [("FEEDS_FEATURE", (a, b))]
        keys += [("FEEDS_TOKEN", (a, tb))] if tb is not None else []
        keys += [("TOKEN_FEEDS", (ta, b))] if ta is not None else []
        for rel, key in keys:
            g = groups[rel].setdefault(key, [set(), 0, 0.0, 0.0, {}])
            g[0].add(c)
            g[1] += 1
            g[2] += w
            g[3] += abs(w)
            _add_effect(g[4], c, ue)
    return {rel: {k: _aggregate_row(g) for k, g in group.items()} for rel, group in groups.items()}


def same_aggregates(x: dict, y: dict, tol: float = 1e-9) -> bool:
    """Equal keys, counts and example circuits; sums to ``tol`` (the store rounds each circuit's sums)."""
    for rel in x.keys() | y.keys():
        a, b = x.get(rel, {}), y.get(rel, {})
        if a.keys() != b.keys():
            return False
        for k in a:
            (c1, n1, w1, aw1, e1, es1, ec1), (c2, n2, w2, aw2, e2, es2, ec2) = a[k], b[k]
            if (c1, n1, e1, ec1) != (c2, n2, e2, ec2) or max(
                abs(w1 - w2), abs(aw1 - aw2), abs(es1 - es2)
            ) > tol:
                return False
    return True


def store_snapshot(store: Any) -> list[str]:
    """Every node and relationship of a store with all properties except ``created_at``, as sorted JSON lines.
    Two stores with equal snapshots hold the same graph."""
    from scd.store.schema import LABELS, RELATIONSHIPS

    out: list[str] = []
    for label in LABELS:
        for (props,) in store.read(f"MATCH (n:{label}) RETURN n").itertuples(index=False):
            props = {k: v for k, v in props.items() if k != "created_at"}
            out.append(json.dumps(props, sort_keys=True))
    for rel in RELATIONSHIPS:
        df = store.read(f"MATCH (a)-[r:{rel}]->(b) RETURN a.id AS a, b.id AS b, r")
        for a, b, props in df.itertuples(index=False):
            out.append(json.dumps({"a": a, "b": b, **props}, sort_keys=True))
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.synthetic PROMPTS (--neo4j URI | --store PATH) [--nodes N] [--edges M] [--delay S]
    [--shard I/N] [--no-fold]``:
    ``scd ingest`` with synthetic discovery (a child process for the kill -9 and concurrency tests)."""
    import argparse

    from scd.core.config import StoreConfig
    from scd.ingest.pipeline import ingest
    from scd.ingest.prompts import parse_shard, read_prompts, select_shard
    from scd.store import open_store

    ap = argparse.ArgumentParser()
    ap.add_argument("prompts")
    ap.add_argument("--neo4j")
    ap.add_argument("--store")
    ap.add_argument("--nodes", type=int, default=40)
    ap.add_argument("--edges", type=int, default=150)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--shard", default=None, help="I/N, as scd ingest --shard")
    ap.add_argument("--no-fold", action="store_true")
    a = ap.parse_args(argv)
    from scd.cli import quiet_driver_retries
    from scd.core.errors import ScdError
    from scd.ingest.pipeline import IngestInterrupted

    quiet_driver_retries()  # as `scd ingest` does
    specs = read_prompts(a.prompts)
    if a.shard is not None:
        specs = select_shard(specs, *parse_shard(a.shard))
    code = 0
    with open_store(StoreConfig.resolve(neo4j=a.neo4j, store=a.store)) as store:
        try:
            report = ingest(
                specs,
                store,
                progress=False,
                discover_fn=synthetic_discover,
                n_nodes=a.nodes,
                n_edges=a.edges,
                delay=a.delay,
                fold=not a.no_fold,
            )
        except IngestInterrupted as e:  # Ctrl-C: the summary of what was written, as `scd ingest` prints it
            report, code = e.report, 130
        except ScdError as e:  # a store error after some writes: the summary too, then the error
            if e.done is None:
                raise
            print(json.dumps(e.done.to_dict()), flush=True)  # type: ignore[attr-defined]
            print(f"Error: {e.line()}", file=sys.stderr, flush=True)
            return e.exit_code
    print(json.dumps(report.to_dict()), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
