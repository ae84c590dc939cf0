"""Both graph stores pass the same suite: counts, idempotence, atomicity, read-only reads, concurrency, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from scd.core.config import StoreConfig
from scd.core.errors import InputError, QueryError, StoreError
from scd.store import open_store
from scd.store.schema import AGGREGATES

from .synthetic import (
    aggregate_counts,
    expected_aggregates,
    raw_aggregates,
    same_aggregates,
    store_snapshot,
    stored_aggregates,
    synthetic_circuit,
    synthetic_circuits,
)

REPO = Path(__file__).resolve().parents[1]


def expected_counts(circuits, folded: bool = False) -> dict[str, int]:
    """Store counts after writing these circuits; the aggregate layer only once they are folded."""
    return {
        "Feature": len({f.id for c in circuits for f in c.features}),
        "Prompt": len({c.prompt_id for c in circuits}),
        "Circuit": len({c.id for c in circuits}),
        "Node": sum(len(c.nodes) for c in circuits),
        "EXPLAINS": len(circuits),
        "HAS": sum(len(c.nodes) for c in circuits),
        "OF": sum(len(c.nodes) for c in circuits),
        "FEEDS": sum(len(c.edges) for c in circuits),
    } | (aggregate_counts(circuits) if folded else {k: 0 for k in ("Token", *AGGREGATES)})


@pytest.mark.slow  # ~11 s on the embedded store
def test_aggregates_equal_the_feeds_edges(store_config):
    """The pre-aggregated layer equals an aggregation of the raw FEEDS edges, computed independently, after
    overlapping ingests (circuits sharing features, each set ingested twice, folded in between) and a re-ingest
    of written circuits; and it depends neither on the ingest order nor on how circuits were grouped into folds."""
    first = synthetic_circuits(8)
    second = synthetic_circuits(6, seed=3) + first[2:5]  # overlaps the first set
    with open_store(store_config) as store:
        for batch in (first, first, second, second):
            for c in batch:
                store.write_circuit(c)
            store.fold()
        everything = list({c.id: c for c in first + second}.values())
        got = stored_aggregates(store)
        assert got["FEEDS_FEATURE"] and got["FEEDS_TOKEN"] and got["TOKEN_FEEDS"]
        assert same_aggregates(got, raw_aggregates(store))
        assert same_aggregates(got, expected_aggregates(everything))
        assert store.stats() == expected_counts(everything, folded=True)
        before = store_snapshot(store)
        store.clear()
        for c in reversed(
            everything
        ):  # another order, one fold per circuit: the very same store, sums included
            assert store.write_circuit(c)
            assert store.fold().circuits == 1
        assert store_snapshot(store) == before
        store.clear()
        for c in everything:  # and one fold of everything, several circuits per fold transaction
            assert store.write_circuit(c)
        assert store.fold(max_edges=1_000).circuits == len(everything)
        assert store_snapshot(store) == before


def pandas_aggregates(store) -> dict[str, dict[tuple[str, str], tuple]]:
    """The aggregate layer computed independently of scd.store.aggregates: pandas over a plain read of every FEEDS
    edge and every Feature's stored top_token (same shape as tests.synthetic.expected_aggregates)."""
    edges = store.read(
        "MATCH (u)-[e:FEEDS]->(d) RETURN u.feature_id AS u, d.feature_id AS d, u.circuit_id AS c, e.weight AS w, "
        "u.effect AS ue"
    )
    top = store.read("MATCH (f:Feature) RETURN f.id AS id, f.top_token AS top_token")
    token = dict(zip(top["id"], top["top_token"].where(top["top_token"].notna(), None), strict=True))
    edges["tu"], edges["td"] = edges["u"].map(token), edges["d"].map(token)
    edges["aw"] = edges["w"].abs()
    out = {}
    for rel, (a, b) in {
        "FEEDS_FEATURE": ("u", "d"),
        "FEEDS_TOKEN": ("u", "td"),
        "TOKEN_FEEDS": ("tu", "d"),
    }.items():
        pairs = edges.dropna(subset=[a, b])
        g = pairs.groupby([a, b]).agg(
            circuits=("c", "nunique"), n=("w", "size"), w=("w", "sum"), aw=("aw", "sum"), ex=("c", "min")
        )
        # the upstream side's measured effect: one per circuit (the largest), summed over the circuits with one
        per = pairs.groupby([a, b, "c"])["ue"].max().groupby(level=[0, 1])
        g["es"], g["ec"] = per.sum(), per.count()
        out[rel] = {
            k: (int(r.circuits), int(r.n), r.w, r.aw, r.ex, r.es, int(r.ec))
            for k, r in zip(g.index, g.itertuples(), strict=True)
        }
    return out


def pandas_node_totals(store) -> dict[tuple[str, str], list[float]]:
    """Every Feature's and Token's totals over the aggregate layer (scd.store.schema NODE_TOTALS, in that order),
    computed independently of scd.store.aggregates: pandas over a plain read of every FEEDS edge, each end's kind
    and stored top_token. {(label, id): [in all, in from error terms, in from tokens, out all, out into error
    terms, out into logits]}; nodes no edge touches left out."""
    edges = store.read("MATCH (u)-[e:FEEDS]->(d) RETURN u.feature_id AS u, d.feature_id AS d, e.weight AS w")
    f = store.read("MATCH (f:Feature) RETURN f.id AS id, f.kind AS kind, f.top_token AS top_token")
    kind = dict(zip(f["id"], f["kind"], strict=True))
    token = dict(zip(f["id"], f["top_token"].where(f["top_token"].notna(), None), strict=True))
    edges["aw"] = edges["w"].abs()
    edges["uk"], edges["dk"] = edges["u"].map(kind), edges["d"].map(kind)
    edges["tu"], edges["td"] = edges["u"].map(token), edges["d"].map(token)
    out: dict[tuple[str, str], list[float]] = {}

    def add(label, node_col, other_kind, first, parts, rows):
        for node, g in rows.groupby(node_col):
            sums = out.setdefault((label, node), [0.0] * 6)
            sums[first] = g["aw"].sum()
            for i, k in enumerate(parts, first + 1):
                sums[i] = g.loc[g[other_kind] == k, "aw"].sum()

    add("Feature", "d", "uk", 0, ("error", "token"), edges)  # into a feature, by the upstream kind
    add("Feature", "u", "dk", 3, ("error", "logit"), edges)  # out of it, by the downstream kind
    add(
        "Token", "td", "uk", 0, ("error", "token"), edges.dropna(subset=["td"])
    )  # into any feature of a top token
    add("Token", "tu", "dk", 3, ("error", "logit"), edges.dropna(subset=["tu"]))
    return out


def stored_node_totals(store) -> dict[tuple[str, str], list[float]]:
    """The totals the store holds on its Features and Tokens (those that have any)."""
    from scd.store.schema import NODE_TOTALS

    out = {}
    for label in ("Feature", "Token"):
        df = store.read(
            f"MATCH (n:{label}) WHERE n.in_abs_weight IS NOT NULL RETURN n.id AS id, "
            + ", ".join(f"n.{c} AS {c}" for c in NODE_TOTALS)
        )
        for row in df.itertuples(index=False):
            out[(label, row[0])] = list(row[1:])
    return out


def same_totals(got, want) -> bool:
    """Equal up to the per-circuit rounding of the sums (2**-36 each, scd.store.aggregates.quantize)."""
    assert set(got) == set(want), set(got) ^ set(want)
    for key, sums in want.items():
        assert got[key] == pytest.approx(sums, abs=1e-8), key
    return True


@pytest.mark.slow  # ~11 s on the embedded store
def test_fold_equals_a_pandas_aggregation_in_any_order(store_config):
    """After the fold, the aggregate layer equals pandas' aggregation of the raw FEEDS edges, for stores built in
    different orders (circuits written forwards and folded once; backwards with a fold after each few circuits,
    several small fold transactions each; forwards again with every edge read back from the store, as `scd store
    fold` in another process does, where the others fold the edges this process wrote without reading them back),
    and the stores are identical."""
    circuits = synthetic_circuits(10, seed=40) + synthetic_circuits(4, seed=60, n_edges=400)
    snapshots = []
    with open_store(store_config) as store:
        for order, every, max_edges, reuse in (
            (circuits, len(circuits), 100_000, True),
            (circuits[::-1], 3, 500, True),
            (circuits, len(circuits), 100_000, False),
        ):
            store.clear()
            reused = 0
            for i, c in enumerate(order, 1):
                store.write_circuit(c)
                if not reuse:
                    store.written.forget()
                if i % every == 0:
                    reused += store.fold(max_edges=max_edges).reused
            reused += store.fold(max_edges=max_edges).reused
            assert reused == (len(circuits) if reuse else 0)
            assert store.pending() == 0
            got = stored_aggregates(store)
            assert all(got[rel] for rel in AGGREGATES)
            assert same_aggregates(got, pandas_aggregates(store))
            assert same_totals(stored_node_totals(store), pandas_node_totals(store))
            snapshots.append(store_snapshot(store))
    assert snapshots[0] == snapshots[1] == snapshots[2]  # the totals too: exact sums, in any order


def test_fold_of_circuits_without_edges_or_top_tokens(store_config):
    """Circuits without edges (a high --edge-threshold) fold in the process that wrote them (nothing to add), and
    circuits none of whose features has a top token fold without token groups; the layer equals pandas'
    aggregation of the FEEDS edges."""
    import dataclasses

    no_edges = [dataclasses.replace(c, edges=[]) for c in synthetic_circuits(2, seed=300)]
    no_tokens = [
        dataclasses.replace(
            c, features=[dataclasses.replace(f, top_promoted=[], top_promoted_logits=[]) for f in c.features]
        )
        for c in synthetic_circuits(2, seed=310, model="no-tokens")
    ]
    with open_store(store_config) as store:
        store.clear()
        for circuits, groups in ((no_edges, 0), (no_tokens, None)):
            for c in circuits:
                store.write_circuit(c)
            report = store.fold()
            assert report.circuits == len(circuits) and store.pending() == 0
            if groups is not None:
                assert report.groups == groups
        got = stored_aggregates(store)
        assert got["FEEDS_FEATURE"] and not got["FEEDS_TOKEN"] and not got["TOKEN_FEEDS"]
        assert same_aggregates(got, pandas_aggregates(store))
        assert same_totals(stored_node_totals(store), pandas_node_totals(store))


def test_a_circuit_stored_again_elsewhere_is_folded_from_the_store(store_config):
    """The fold takes the edges this process wrote only while the stored Circuit is that write: after another
    writer cleared the store and stored the same circuit id with other weights (an id hashes the inputs, not the
    results: another machine, another SAE folder of the same name), this process's fold reads what is stored."""
    import dataclasses

    c = synthetic_circuit(320)
    again = dataclasses.replace(
        c,
        edges=[dataclasses.replace(e, weight=2 * e.weight + 0.25) for e in c.edges],
        created_at="2001-01-01T00:00:00+00:00",
    )
    assert again.id == c.id
    with open_store(store_config) as a:
        a.clear()
        a.write_circuit(c)
        if a.kind == "embedded":
            a._release()  # the other writer needs the store's one write handle
        with open_store(store_config) as b:
            b.clear()
            b.write_circuit(again)
        report = a.fold()
        assert report.circuits == 1 and report.reused == 0
        assert same_aggregates(stored_aggregates(a), pandas_aggregates(a))


def _write(store, statement: str, params: dict | None = None) -> None:
    """One write statement on the store, outside scd's own write paths (to make an older scd's layer)."""
    if store.kind == "neo4j":
        with store._session() as s:
            s.run(statement, params or {}).consume()
    else:
        with store._writer() as conn:
            conn.execute(statement, params or {})


def _set_totals(store, totals: dict) -> None:
    """Every Feature's and Token's totals set to ``totals`` ({(label, id): [6 sums]}, stored_node_totals' shape;
    the others unset)."""
    from scd.store.schema import NODE_TOTALS

    for label in ("Feature", "Token"):
        _write(store, f"MATCH (n:{label}) SET " + ", ".join(f"n.{c} = NULL" for c in NODE_TOTALS))
        for (lab, node), sums in totals.items():
            if lab == label:
                assignments = ", ".join(f"n.{c} = $v{i}" for i, c in enumerate(NODE_TOTALS))
                _write(store, f"MATCH (n:{label} {{id: $id}}) SET {assignments}",
                       {"id": node} | {f"v{i}": v for i, v in enumerate(sums)})  # fmt: skip


def test_node_totals_an_older_scd_left_behind_are_computed_again_by_the_next_fold(store_config):
    """An older scd folds without adding to the nodes' totals or marking the circuits in_totals: a layer it folded
    before the totals existed has none, and one it folded into after a newer fold has stale ones. The summary line
    reads the FEEDS edges while the totals are unset; the next fold -- even one with nothing pending -- computes
    every total again from the relationships, after which they equal pandas' aggregation of the FEEDS edges and add
    up with what later folds bring."""
    from scd.queries.runner import get_query, query

    circuits = synthetic_circuits(8, seed=70)
    with open_store(store_config) as store:
        for c in circuits[:4]:
            store.write_circuit(c)
        store.fold()
        token = store.read(
            "MATCH (k:Token)<-[a:FEEDS_TOKEN]-() RETURN k.id AS id ORDER BY a.abs_weight_sum DESC LIMIT 1"
        )
        params = {"token": token["id"][0], "include_errors": False}
        line = query("feeders", store, **params).attrs["summary"]
        assert line.startswith("unexplained by features")
        from_node = dict(get_query("feeders").summary)["token"]  # the line's text while the totals are set
        assert store.read(from_node, {"token": params["token"]})["abs_weight"].notna().all()
        # 1. folded before the totals existed: none anywhere, no circuit marked
        _set_totals(store, {})
        _write(store, "MATCH (c:Circuit) SET c.in_totals = NULL")
        assert stored_node_totals(store) == {}
        assert query("feeders", store, **params).attrs["summary"] == line  # from the FEEDS edges
        report = store.fold()  # nothing pending
        assert report.circuits == 0 and report.migrated
        assert same_totals(stored_node_totals(store), pandas_node_totals(store))
        assert query("feeders", store, **params).attrs["summary"] == line
        # 2. an older scd folds two more circuits after this one: relationships updated, totals left as they were
        before = stored_node_totals(store)
        for c in circuits[4:6]:
            store.write_circuit(c)
        store.fold()
        _set_totals(store, before)
        _write(
            store,
            "MATCH (c:Circuit) WHERE c.id IN $ids SET c.in_totals = NULL",
            {"ids": [c.id for c in circuits[4:6]]},
        )
        stale = stored_node_totals(store)
        with pytest.raises(AssertionError):  # (the scenario is real: the totals do miss those circuits)
            same_totals(stale, pandas_node_totals(store))
        for c in circuits[6:]:
            store.write_circuit(c)
        report = store.fold()  # the migration round, then the two pending circuits
        assert report.migrated and report.circuits == 2
        assert same_totals(stored_node_totals(store), pandas_node_totals(store))
        assert store.fold().circuits == 0


def test_circuits_are_pending_until_folded(store_config):
    """A written circuit is pending (aggregated = false) until a fold; a fold that fails leaves everything as it
    was; a second fold finds nothing; --rebuild recomputes the same layer from the FEEDS edges."""
    from scd.store import aggregates

    circuits = synthetic_circuits(4, seed=20)
    with open_store(store_config) as store:
        assert store.pending() == 0
        for c in circuits:
            store.write_circuit(c)
        assert store.pending() == 4
        assert store.stats() == expected_counts(circuits)
        flags = store.read("MATCH (c:Circuit) RETURN DISTINCT c.aggregated AS a")
        assert flags["a"].tolist() == [False]

        before = store_snapshot(store)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(aggregates, "MARK_FOLDED", "THIS IS NOT CYPHER")  # the last statement fails
            with pytest.raises(StoreError):
                store.fold()
        assert store_snapshot(store) == before and store.pending() == 4

        report = store.fold()
        assert (report.circuits, report.edges) == (4, sum(len(c.edges) for c in circuits))
        assert store.pending() == 0
        assert store.stats() == expected_counts(circuits, folded=True)
        folded = store_snapshot(store)
        assert store.fold().circuits == 0 and store_snapshot(store) == folded
        assert store.fold(rebuild=True).circuits == 4
        assert store_snapshot(store) == folded


def test_write_counts_match_circuits(store_config):
    circuits = synthetic_circuits(6)
    with open_store(store_config) as store:
        assert all(store.write_circuit(c) for c in circuits)
        assert store.stats() == expected_counts(circuits)
        assert all(store.has_circuit(c.id) for c in circuits)
        assert not store.has_circuit("c-missing")


def test_rewrite_writes_nothing(store_config):
    circuits = synthetic_circuits(3)
    with open_store(store_config) as store:
        for c in circuits:
            store.write_circuit(c, request=f"r-{c.id}")
        before = store_snapshot(store)
        assert not any(store.write_circuit(c) for c in circuits)
        assert store_snapshot(store) == before
        assert store.has_request(f"r-{circuits[0].id}") and not store.has_request("r-other")


def test_same_prompt_new_parameters_makes_second_circuit(store_config):
    a = synthetic_circuit(1)
    b = synthetic_circuit(1, params={"top_k": 5})
    assert a.prompt_id == b.prompt_id and a.id != b.id
    with open_store(store_config) as store:
        store.write_circuit(a)
        store.write_circuit(b)
        s = store.stats()
    assert (s["Prompt"], s["Circuit"], s["EXPLAINS"]) == (1, 2, 2)


def test_properties_round_trip(store_config):
    c = synthetic_circuit(3)
    with open_store(store_config) as store:
        store.write_circuit(c)
        feature = next(f for f in c.features if f.top_promoted)
        df = store.read("MATCH (f:Feature {id: $id}) RETURN f", {"id": feature.id})
        got = df.iloc[0, 0]
        assert got["_label"] == "Feature"
        assert got["top_promoted"] == feature.top_promoted
        assert got["top_suppressed_logits"] == pytest.approx(feature.top_suppressed_logits)
        assert (got["idx"], got["layer"], got["kind"]) == (feature.index, feature.layer, feature.kind)

        node = c.nodes[-1]
        df = store.read(
            "MATCH (c:Circuit {id: $c})-[:HAS]->(n:Node)-[:OF]->(f:Feature) WHERE n.id = $n "
            "RETURN n.pos AS pos, n.token AS token, n.attribution AS attribution, f.id AS feature",
            {"c": c.id, "n": f"{c.id}/{node.id}"},
        )
        assert df.to_dict("records") == [
            {
                "pos": node.pos,
                "token": node.token,
                "attribution": pytest.approx(node.attribution),
                "feature": node.feature_id,
            }
        ]
        prompt = store.read("MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt) RETURN p").iloc[0, 0]
        assert prompt["tokens"] == c.prompt.tokens and prompt["target"] == c.prompt.target
        assert prompt["top_completions"] == [t for t, _ in c.prompt.top_completions]
        circuit = store.read("MATCH (c:Circuit) RETURN c").iloc[0, 0]
        assert json.loads(circuit["params"]) == c.params
        assert (circuit["n_nodes"], circuit["n_edges"]) == (len(c.nodes), len(c.edges))
        weights = store.read(
            "MATCH (a:Node)-[r:FEEDS]->(b:Node) RETURN a.id AS src, b.id AS dst, r.weight AS w ORDER BY src, dst"
        )
        expected = sorted((f"{c.id}/{e.source}", f"{c.id}/{e.target}", e.weight) for e in c.edges)
        assert [tuple(r) for r in weights.itertuples(index=False)] == expected


def test_edge_share_is_weight_over_the_circuits_strongest(store_config):
    c = synthetic_circuit(5)
    strongest = max(abs(e.weight) for e in c.edges)
    expected = sorted(
        (f"{c.id}/{e.source}", f"{c.id}/{e.target}", abs(e.weight) / strongest) for e in c.edges
    )
    with open_store(store_config) as store:
        store.write_circuit(c)
        df = store.read(
            "MATCH (a:Node)-[r:FEEDS]->(b:Node) RETURN a.id AS src, b.id AS dst, r.share AS s ORDER BY src, dst"
        )
    got = [tuple(r) for r in df.itertuples(index=False)]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected], rel=1e-12)
    assert max(g[2] for g in got) == 1.0


def test_graph_values_come_back_as_dicts(store_config):
    c = synthetic_circuit(4)
    with open_store(store_config) as store:
        store.write_circuit(c)
        df = store.read("MATCH (a:Node)-[r:FEEDS]->(b:Node) RETURN a, r LIMIT 1")
        a, r = df.iloc[0]
        assert a["_label"] == "Node" and a["circuit_id"] == c.id
        assert set(r) == {"weight", "share", "_label"} and r["_label"] == "FEEDS" and 0 <= r["share"] <= 1
        path = store.read("MATCH p = (:Circuit)-[:HAS]->(:Node)-[:OF]->(:Feature) RETURN p LIMIT 1").iloc[
            0, 0
        ]
        assert [n["_label"] for n in path["nodes"]] == ["Circuit", "Node", "Feature"]
        assert [r["_label"] for r in path["relationships"]] == ["HAS", "OF"]


WRITES = [
    "CREATE (n:Prompt {id: 'x'}) RETURN n",
    "MATCH (n:Prompt) SET n.text = 'changed'",
    "MATCH (n:Prompt) DETACH DELETE n",
    "MERGE (n:Feature {id: 'x'}) RETURN n",
    "MATCH (c:Circuit) WITH c LIMIT 1 CREATE (c)-[:EXPLAINS]->(:Prompt {id: 'y'})",
]


@pytest.mark.parametrize("cypher", WRITES)
def test_read_refuses_writes(store_config, cypher):
    with open_store(store_config) as store:
        store.write_circuit(synthetic_circuit(5))
        before = store_snapshot(store)
        with pytest.raises(QueryError, match="refused"):
            store.read(cypher)
        assert store_snapshot(store) == before


def test_read_reports_bad_cypher(store_config):
    with open_store(store_config) as store:
        with pytest.raises(QueryError, match="rejected the query"):
            store.read("MATCH (n RETURN n LIMIT 1")  # passes the gate (scd.store.gate); the engine rejects it


def test_clear_keeps_schema(store_config):
    with open_store(store_config) as store:
        store.write_circuit(synthetic_circuit(6))
        store.clear()
        assert set(store.stats().values()) == {0}
        c = synthetic_circuit(7)
        assert store.write_circuit(c)
        assert store.stats() == expected_counts([c])
        store.fold()
        assert store.stats() == expected_counts([c], folded=True)


@pytest.mark.neo4j
def test_neo4j_clear_deletes_only_scd_data(neo4j_config):
    """`clear` deletes scd's labels and relationships, not other data in the same Neo4j database."""
    with open_store(neo4j_config) as store:
        store.write_circuit(synthetic_circuit(8))
        store.driver.execute_query(
            "CREATE (:Other {id: 'x'})-[:LINKS]->(:Other {id: 'y'})", database_=store.database
        )
        try:
            store.clear()
            assert set(store.stats().values()) == {0}
            assert store.read(
                "MATCH (a:Other)-[:LINKS]->(b:Other) RETURN a.id AS a, b.id AS b"
            ).values.tolist() == [["x", "y"]]
        finally:
            store.driver.execute_query("MATCH (o:Other) DETACH DELETE o", database_=store.database)


def test_failed_write_leaves_nothing(store_config, monkeypatch):
    """A statement failing after Prompt, Circuit and Nodes were written rolls all of them back. Neo4j commits a
    circuit's new Features just before (global metadata, see neo4j_store): they may stay, without any node."""
    from scd.store import embedded as embedded_store
    from scd.store import neo4j as neo4j_store

    # the last statement of a circuit's transaction, made to fail
    module, name = (
        (neo4j_store, "CREATE_NODES_AND_EDGES")
        if store_config.kind == "neo4j"
        else (embedded_store, "CREATE_FEEDS")
    )
    good = synthetic_circuit(8)
    with open_store(store_config) as store:
        store.write_circuit(good)
        before = store_snapshot(store)
        monkeypatch.setattr(module, name, "UNWIND $nodes AS r RETURN r[0] / 0 AS boom")
        bad = synthetic_circuit(9)
        with pytest.raises(StoreError, match="rerun"):
            store.write_circuit(bad)
        after = store_snapshot(store)
        if store_config.kind == "neo4j":
            extra = [json.loads(line) for line in after if line not in before]
            assert extra and {f["id"] for f in extra} <= {f.id for f in bad.features}
            assert all("a" not in f for f in extra)  # Feature nodes, no relationship
            after = [line for line in after if line in before]
        assert after == before
        monkeypatch.undo()
        assert store.write_circuit(synthetic_circuit(9))


def test_dangling_edge_is_refused_before_writing(store_config):
    c = synthetic_circuit(10)
    c.edges[0].target = "nowhere@0"
    with open_store(store_config) as store:
        with pytest.raises(InputError, match="names a node the circuit lacks"):
            store.write_circuit(c)
        assert set(store.stats().values()) == {0}


# -- processes ---------------------------------------------------------------------------------------------------
def _writer_cmd(config: StoreConfig, seeds: list[int], **kw) -> list[str]:
    """A child process writing synthetic circuits with the given seeds, printing 'wrote <seed>' after each."""
    target = f"neo4j_uri={config.neo4j_uri!r}" if config.neo4j_uri else f"path={str(config.path)!r}"
    code = (
        "import sys\n"
        "from scd.core.config import StoreConfig\n"
        "from scd.store import open_store\n"
        "from tests.synthetic import synthetic_circuit\n"
        f"store = open_store(StoreConfig({target}))\n"
        f"for seed in {seeds!r}:\n"
        f"    store.write_circuit(synthetic_circuit(seed, **{kw!r}))\n"
        "    print('wrote', seed, flush=True)\n"
        "store.close()\n"
    )
    return [sys.executable, "-c", code]


def _check_complete(store, circuits) -> None:
    """Every circuit in the store has all its nodes and edges; no Feature id twice."""
    df = store.read(
        "MATCH (c:Circuit) OPTIONAL MATCH (c)-[:HAS]->(n:Node) "
        "WITH c, count(n) AS nodes "
        "OPTIONAL MATCH (a:Node)-[r:FEEDS]->(:Node) WHERE a.circuit_id = c.id "
        "RETURN c.id AS id, c.n_nodes AS n_nodes, c.n_edges AS n_edges, nodes, count(r) AS edges"
    )
    for row in df.itertuples(index=False):
        assert (row.nodes, row.edges) == (row.n_nodes, row.n_edges), row
    dup = store.read("MATCH (f:Feature) WITH f.id AS id, count(*) AS n WHERE n > 1 RETURN id")
    assert dup.empty


def test_neo4j_concurrent_folds_count_each_circuit_once(neo4j_config, monkeypatch):
    """Three folds at once, each in many small transactions, over circuits sharing features: every circuit is
    counted exactly once (the fold lock). Each transaction lingers between reading its circuits and writing their
    groups, so without the lock the folds would claim the same circuits."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from scd.store import aggregates

    group_edges = aggregates.group_edges

    def slow_group_edges(*args):
        time.sleep(0.1)
        return group_edges(*args)

    monkeypatch.setattr(aggregates, "group_edges", slow_group_edges)
    circuits = synthetic_circuits(12, seed=60)
    with open_store(neo4j_config) as store:
        for c in circuits:
            store.write_circuit(c)
    stores = [open_store(neo4j_config) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            reports = list(pool.map(lambda s: s.fold(max_edges=300), stores))
    finally:
        for s in stores:
            s.close()
    assert sum(r.circuits for r in reports) == len(circuits)
    with open_store(neo4j_config) as store:
        assert store.pending() == 0
        assert same_aggregates(stored_aggregates(store), expected_aggregates(circuits))


def test_neo4j_slow_path_writes_the_same_graph(neo4j_config, monkeypatch):
    """If collect() ever lost the node order, the write falls back to id lookups and gives the same graph."""
    from scd.store import neo4j as neo4j_store

    c = synthetic_circuit(11)
    with open_store(neo4j_config) as store:
        store.write_circuit(c)
        reference = store_snapshot(store)
        store.clear()
        lost = neo4j_store.CREATE_NODES_AND_EDGES.replace("= $node_ids", "= reverse($node_ids)")
        assert lost != neo4j_store.CREATE_NODES_AND_EDGES
        monkeypatch.setattr(neo4j_store, "CREATE_NODES_AND_EDGES", lost)
        assert store.write_circuit(c)
        assert store_snapshot(store) == reference


def test_neo4j_large_circuit_spills_edges_into_batches(neo4j_config, monkeypatch):
    from scd.store import neo4j as neo4j_store

    monkeypatch.setattr(neo4j_store, "EDGE_CHUNK", 150)
    monkeypatch.setattr(neo4j_store, "BATCH", 40)
    c = synthetic_circuit(12, n_nodes=100, n_edges=400)
    with open_store(neo4j_config) as store:
        assert store.write_circuit(c)
        assert store.stats() == expected_counts([c])


_OPEN_TRANSACTION = {
    # write a whole circuit inside one transaction, say so, and wait (to be killed) before committing
    "neo4j": (
        "from scd.store.neo4j import _write_rows\n"
        "session = store.driver.session(database=store.database)\n"
        "tx = session.begin_transaction()\n"
        "assert _write_rows(tx, rows)\n"
    ),
    "embedded": (
        "writer = store._writer()  # keep a reference: a dropped context manager would release the handle\n"
        "conn = writer.__enter__()\n"
        "conn.execute('BEGIN TRANSACTION')\n"
        "assert store._write_rows(conn, rows)\n"
    ),
}


@pytest.mark.slow
def test_kill_inside_an_open_transaction_leaves_nothing(store_config):
    """Deterministic: the child has written every row of a circuit but not committed when it is killed."""
    target = (
        f"neo4j_uri={store_config.neo4j_uri!r}"
        if store_config.neo4j_uri
        else f"path={str(store_config.path)!r}"
    )
    code = (
        "import time\n"
        "from scd.core.config import StoreConfig\n"
        "from scd.store import open_store\n"
        "from tests.synthetic import synthetic_circuit\n"
        f"store = open_store(StoreConfig({target}))\n"
        "rows = store.prepare(synthetic_circuit(13))\n"
        + _OPEN_TRANSACTION[store_config.kind]
        + "print('in transaction', flush=True)\n"
        "time.sleep(60)\n"
    )
    with open_store(store_config) as store:
        store.write_circuit(synthetic_circuit(14))
        if (
            store_config.kind == "neo4j"
        ):  # write_prepared commits the Features before the circuit's transaction
            from scd.store.neo4j import _merge_features

            with store.driver.session(database=store.database) as s:
                s.execute_write(_merge_features, store.prepare(synthetic_circuit(13)).rows.features)
        before = store_snapshot(store)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "in transaction"
        with open_store(store_config, read_only=True) as store:
            assert store_snapshot(store) == before  # uncommitted rows are invisible to others
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with open_store(store_config, read_only=True) as store:  # a reader first, right after the kill
        assert store_snapshot(store) == before
    with open_store(store_config) as store:
        assert store_snapshot(store) == before
        assert store.write_circuit(synthetic_circuit(13))  # and the circuit can be written afterwards


def test_embedded_store_gains_new_schema_columns(embedded_config):
    """A store made before a column joined the schema gets it on the next open (ALTER TABLE ... ADD)."""
    import ladybug

    from scd.store.schema import LADYBUG_SCHEMA

    folder = Path(embedded_config.path)
    folder.mkdir(parents=True)
    db = ladybug.Database(str(folder / "graph.lbdb"))
    conn = ladybug.Connection(db)
    for stmt in LADYBUG_SCHEMA:
        conn.execute(stmt.replace(", request STRING", "").replace(", label STRING", ""))
    conn.close()
    db.close()
    c = synthetic_circuit(15)
    with open_store(embedded_config) as store:
        assert store.write_circuit(c, request="r-old-store")
        assert store.has_request("r-old-store")
        assert store.stats() == expected_counts([c])


def test_embedded_store_opens_after_a_torn_wal_record(embedded_config, tmp_path):
    """kill -9 while LadybugDB appends to its WAL leaves a torn last record; the store must still open with every
    committed circuit (seen in CI: 'Checksum verification failed, the WAL file is corrupted')."""
    import shutil

    folder, crashed = Path(embedded_config.path), tmp_path / "crashed"
    with open_store(embedded_config) as store:
        for c in synthetic_circuits(2, seed=40):
            store.write_circuit(c)
        shutil.copytree(folder, crashed)  # the files as a process killed now leaves them (handle still open)
    with open_store(embedded_config, read_only=True) as store:
        reference = store_snapshot(store)
    assert len(reference) > 100
    with open(crashed / "graph.lbdb.wal", "ab") as f:
        f.write(os.urandom(4096))  # a torn record after whatever was committed
    with open_store(StoreConfig(path=crashed), read_only=True) as store:
        assert store_snapshot(store) == reference


def test_neo4j_write_starts_over_when_a_feature_vanishes(neo4j_config, monkeypatch):
    """Features are committed before the circuit's transaction (neo4j_store); one deleted in between (a concurrent
    `scd store clear`) makes the node counts disagree: the transaction rolls back and the write starts over."""
    from scd.store import neo4j as neo4j_store

    merge, calls = neo4j_store._merge_features, []

    def merge_then_lose_one(tx, features):
        n = merge(tx, features)
        if not calls:  # the first time only: delete one of them, as a concurrent clear would
            tx.run("MATCH (f:Feature {id: $id}) DETACH DELETE f", id=features[0]["id"]).consume()
        calls.append(n)
        return n

    monkeypatch.setattr(neo4j_store, "_merge_features", merge_then_lose_one)
    c = synthetic_circuit(12)
    with open_store(neo4j_config) as store:
        assert store.write_circuit(c)
        assert len(calls) == 2 and calls[1] == 1  # the second round merged the deleted Feature again
        assert store.stats() == expected_counts([c])


@pytest.mark.neo4j
@pytest.mark.slow
def test_a_fold_too_big_for_the_servers_transaction_memory_is_split_without_retries(
    tmp_path, monkeypatch, caplog
):
    """A fold transaction the server cannot hold (a real Neo4j with a 256 MiB heap: ~180 MiB of transaction
    memory) is rolled back and folded in halves at once -- not retried as it was by the driver (which treats the
    server's MemoryPoolOutOfMemoryError as transient, and spent up to 30 s of back-off on the same transaction) --
    and the layer is the one of a single fold."""
    import logging

    from .neo4j_server import Unavailable, _local_harness, unavailable

    if os.environ.get("SCD_TEST_NEO4J_URI"):
        pytest.skip("needs a server of its own with a small heap (the Maven harness)")
    monkeypatch.setenv("SCD_NEO4J_HEAP", "256m")
    # 30k edges, ~70k aggregate rows: twice too many for one transaction there (measured), fine in three
    circuits = synthetic_circuits(12, seed=90, n_nodes=300, n_edges=2_500)
    with ExitStack() as stack:
        try:
            uri = stack.enter_context(_local_harness())
        except Unavailable as e:
            unavailable(f"NO NEO4J: {e}")
        with open_store(StoreConfig.resolve(neo4j=uri)) as store:
            for c in circuits:
                store.write_circuit(c)
            with caplog.at_level(logging.INFO):
                report = store.fold(max_edges=10**7)  # everything in one transaction, if it fitted
            assert report.circuits == len(circuits) and store.pending() == 0
            assert any("transaction memory exhausted" in r.getMessage() for r in caplog.records), (
                "the fold fitted: make the circuits bigger so this test reaches the limit"
            )
            assert not [r for r in caplog.records if "will be retried" in r.getMessage()]
            assert same_aggregates(stored_aggregates(store), expected_aggregates(circuits))
            assert same_totals(stored_node_totals(store), pandas_node_totals(store))


def test_an_embedded_store_without_the_new_columns_answers_from_the_feeds_edges_until_upgraded(
    embedded_config,
):
    """An embedded store an older scd wrote has tables without this scd's newer columns (the node totals here),
    and reads never alter tables: feeders then answers from the FEEDS edges, with the same rows and line; any
    other query naming such a column says how to upgrade; `scd store fold` (a write) adds and fills them."""
    from scd.queries.runner import query, run_cypher
    from scd.store.base import OutdatedStore
    from scd.store.schema import NODE_TOTALS

    with open_store(embedded_config) as store:
        for c in synthetic_circuits(4, seed=80):
            store.write_circuit(c)
        store.fold()
        want = query("feeders", store, token=")")
        with store._writer() as conn:  # what an older scd's tables look like
            for label in ("Feature", "Token"):
                for column in NODE_TOTALS:
                    conn.execute(f"ALTER TABLE {label} DROP {column}")
            conn.execute("ALTER TABLE Circuit DROP in_totals")
        store._release()
    with open_store(embedded_config, read_only=True) as store:
        got = query("feeders", store, token=")")
        assert list(got.columns) == list(want.columns) and len(got) == len(want) > 0
        for col in got.columns:  # the layer's sums are rounded per circuit: to 1e-9
            x, y = got[col].tolist(), want[col].tolist()
            assert x == (pytest.approx(y, abs=1e-9, nan_ok=True) if isinstance(x[0], float) else y), col
        assert got.attrs["summary"] == want.attrs["summary"]
        with pytest.raises(OutdatedStore, match="scd store fold --store"):
            run_cypher(store, "MATCH (k:Token) RETURN k.in_abs_weight AS w")
        # a column of another table, or of none, is the user's typo: the engine's own message, no upgrade advice
        for typo in ("MATCH (k:Token) RETURN k.label AS w", "MATCH (f:Feature) RETURN f.nosuch AS w"):
            with pytest.raises(QueryError, match="Cannot find property") as e:
                run_cypher(store, typo)
            assert not isinstance(e.value, OutdatedStore)
    with open_store(embedded_config) as store:
        assert store.fold().migrated
        assert same_totals(stored_node_totals(store), pandas_node_totals(store))
