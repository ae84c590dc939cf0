"""The named query library: headers, parameter binding, and a differential test between two real engines.

Every named query runs on Neo4j and on the embedded LadybugDB store over the same circuits, and must return the
same rows (as a multiset, floats to a relative 1e-9) in the same order of its ORDER BY keys.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
import pytest

from scd.core.config import StoreConfig
from scd.core.errors import QueryError
from scd.queries import runner
from scd.queries.compare import compare_circuits, compare_group, jaccard_matrix

from .synthetic import synthetic_circuit, synthetic_circuits

# Prompts the guide and the query examples use, so their examples find rows; the rest are random text.
NAMED_PROMPTS = ["f(a [b (c", "the cost (in dollars", "ab (cd [e {fg", "x = [1, 2, [3, 4", "Copyright (C"]


def corpus():
    """The circuits both engines get: named bracket prompts, then seeded random ones (shared Features)."""
    circuits = [synthetic_circuit(100 + i, text=t) for i, t in enumerate(NAMED_PROMPTS)]
    circuits += [synthetic_circuit(i) for i in range(15)]
    circuits.append(synthetic_circuit(500, n_nodes=90, n_edges=400, n_layers=6, text="((a)"))
    return circuits


def load(config: StoreConfig, circuits) -> None:
    from scd.store import open_store

    with open_store(config) as store:
        store.clear()
        for c in circuits:
            assert store.write_circuit(c)
        store.fold()


@pytest.fixture(scope="module")
def circuits():
    return corpus()


@pytest.fixture(scope="module")
def embedded_store(circuits, tmp_path_factory):
    from scd.store import open_store

    config = StoreConfig(path=tmp_path_factory.mktemp("queries") / "store")
    load(config, circuits)
    with open_store(config, read_only=True) as store:
        yield store


@pytest.fixture(scope="module")
def neo4j_store(circuits, neo4j_uri):
    from scd.store import open_store

    config = StoreConfig(neo4j_uri=neo4j_uri)
    load(config, circuits)
    with open_store(config, read_only=True) as store:
        yield store


# -- the library itself ---------------------------------------------------------------------------------------

EXPECTED = {
    "feeders",
    "consumers",
    "features-promoting",
    "circuit",
    "paths-to-logit",
    "top-features",
    "threads",
    "compare",
    "compare-group",
    "circuits",
    "top-proximal-causes",
    "feature",
    "drivers",
}


def test_library_has_the_issue_queries_with_headers():
    queries = {q.name: q for q in runner.list_queries()}
    assert EXPECTED <= set(queries)
    for q in queries.values():
        assert q.description and q.examples, q.name
        assert q.examples[0].startswith(f"scd query {q.name}"), q.name
        assert q.text.startswith(f"// name: {q.name}\n")
        assert "$" in q.body or not q.params
        for p in q.params:
            assert p.help, f"{q.name}.{p.name} has no description"


def test_ladybug_variants_match_a_library_query():
    names = {q.name for q in runner.list_queries()}
    variants = {p.stem for p in (runner.LIBRARY / "ladybug").glob("*.cypher")}
    assert variants <= names
    assert variants, "expected dialect variants for the queries that need them"


def test_header_parse_errors_name_the_file(tmp_path):
    bad = tmp_path / "oops.cypher"
    with pytest.raises(QueryError, match="oops.cypher"):
        runner.parse("// name: other\n// description: x\nRETURN 1", bad)
    with pytest.raises(QueryError, match=r"differ from those declared"):
        runner.parse("// name: oops\n// description: x\n// param: a: int = 1 — a\nRETURN $b", bad)
    q = runner.parse(
        "// name: oops\n// description: d\n// param: a: int = 1 — the a\n// param: s: string — the s\n"
        "// param: f: float = null — the f\nRETURN $a, $s, $f",
        bad,
    )
    assert [(p.name, p.type, p.default, p.required) for p in q.params] == [
        ("a", "int", 1, False),
        ("s", "string", None, True),
        ("f", "float", None, False),
    ]


# -- binding ---------------------------------------------------------------------------------------------------


def test_bind_fills_defaults_and_coerces():
    q = runner.get_query("feeders")
    b = q.bind({"token": ")", "top_n": "3", "min_weight": "0.5"})
    assert b == {
        "feature": None,
        "token": ")",
        "top_n": 3,
        "min_weight": 0.5,
        "min_faithfulness": None,
        "order_by": "weight",
        "include_errors": False,
        "limit": 50,
    }
    assert q.bind({"feature": "x", "top_n": 2.0, "min_weight": 1})["min_weight"] == 1.0
    assert runner.get_query("top-features").bind({"layer": "2"})["layer"] == 2


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("feeders", {}, r"needs one of the parameters feature, token"),
        (
            "feeders",
            {"token": ")", "top_n": "three"},
            r"parameter top_n of query feeders must be an int \(got 'three'\)",
        ),
        ("feeders", {"token": ")", "top_n": True}, r"top_n .* must be an int"),
        ("feeders", {"token": ")", "min_weight": "nan"}, r"min_weight .* must be a float"),
        ("feeders", {"tokn": ")"}, r"has no parameter 'tokn' -- did you mean token\?"),
        ("circuit", {}, r"needs parameter prompt \(string\)"),
        ("circuit", {"prompt": None}, r"prompt of query circuit cannot be null"),
        ("top-features", {"limit": -1}, r"limit .* must be >= 0"),
        (
            "feeders",
            {"token": ")", "order_by": "size"},
            r"order_by of query feeders must be one of weight, circuits",
        ),
    ],
)
def test_bind_errors_name_the_parameter(name, params, message):
    with pytest.raises(QueryError, match=message):
        runner.get_query(name).bind(params)


def test_unknown_query_suggests_the_nearest():
    with pytest.raises(QueryError, match=r"no query named 'feeder' -- did you mean feeders"):
        runner.get_query("feeder")
    with pytest.raises(QueryError, match=r"`scd queries` lists them"):
        runner.get_query("zzzzzz")


def test_query_on_an_empty_store_says_so(store_config):
    """On Neo4j the summary line is in flight on a second thread when the rows fail: the error is the rows'."""
    from scd.store import open_store

    with open_store(store_config) as store:
        store.ensure_schema()  # the store with its schema, no data (opening alone creates nothing)
        assert store.is_empty() and not any(store.stats().values())
    with pytest.raises(QueryError, match=r"the store is empty .* run `scd ingest"):
        runner.query("feeders", store=store_config, token=")")
    with open_store(store_config) as store:
        store.write_circuit(synthetic_circuit(1))
        assert not store.is_empty()
        assert runner.run(store, "feeders", {"token": "no such token"}).empty  # an empty answer, no error


def test_python_api_opens_the_configured_store(embedded_store, monkeypatch):
    import scd

    monkeypatch.delenv("SCD_NEO4J_URI", raising=False)
    monkeypatch.setenv("SCD_STORE", str(embedded_store.config.path))
    df = scd.query("feeders", token=")")
    assert len(df) > 0 and list(df.columns)[:2] == ["feature", "kind"]
    assert df.equals(scd.query("feeders", store=embedded_store.config, token=")"))


# -- the differential test: Neo4j vs LadybugDB ------------------------------------------------------------------

BIG = 1_000_000


def _cases(circuits):
    c0, c1 = circuits[0], circuits[2]
    big = max(circuits, key=lambda c: len(c.edges))
    latents = [n for n in big.nodes if n.kind not in ("token", "logit", "error")]
    feature = next((n.feature_id for n in latents if n.kind == "resid"), latents[0].feature_id)
    target = next(e.target for e in big.edges if big.node(e.target).kind not in ("token", "logit", "error"))
    target_feature = big.node(target).feature_id
    return [
        # (query, params, ORDER BY columns in order)
        ("feeders", {"token": ")"}, ["abs_weight"]),
        ("feeders", {"token": ")", "top_n": 3, "min_weight": 0.3}, ["abs_weight"]),
        ("feeders", {"feature": target_feature}, ["abs_weight"]),
        ("feeders", {"token": ")", "limit": 5}, ["abs_weight"]),
        (
            "feeders",
            {"token": ")", "order_by": "circuits", "include_errors": True},
            ["circuits", "abs_weight"],
        ),
        ("feeders", {"feature": target_feature, "order_by": "mean"}, ["mean_abs_weight"]),
        ("feeders", {"token": ")", "min_faithfulness": 0.7}, ["abs_weight"]),
        ("consumers", {"feature": feature, "min_faithfulness": 0.5}, ["abs_weight"]),
        ("consumers", {"token": "("}, ["abs_weight"]),
        (
            "consumers",
            {"token": "(", "include_errors": True, "order_by": "circuits"},
            ["circuits", "abs_weight"],
        ),
        ("consumers", {"feature": feature, "token": "]"}, ["abs_weight"]),
        ("feature", {"id": feature}, []),
        ("feature", {"id": target_feature}, []),
        ("features-promoting", {"token": ")"}, ["rank", "abs_attribution", "logit"]),
        ("features-promoting", {"token": "a", "top_n": 1}, ["rank", "abs_attribution", "logit"]),
        ("top-features", {}, ["abs_attribution"]),
        ("drivers", {"token": "]"}, ["measured"]),
        (
            "drivers",
            {"token": "]", "include_errors": True, "order_by": "circuits"},
            ["circuits", "estimated"],
        ),
        ("drivers", {"token": "]", "order_by": "estimated"}, ["estimated"]),
        ("drivers", {"token": "]", "min_faithfulness": 0.5}, ["measured"]),
        ("feeders", {"token": ")", "order_by": "measured"}, ["measured"]),
        ("feeders", {"feature": target_feature, "order_by": "measured"}, ["measured"]),
        (
            "top-features",
            {"layer": 1, "kind": "attn", "order_by": "circuits"},
            ["circuits", "abs_attribution"],
        ),
        ("top-features", {"kind": "error", "order_by": "mean"}, []),
        ("top-features", {"min_faithfulness": 0.7}, ["abs_attribution"]),
        ("top-features", {"kind": "token", "limit": 3}, ["abs_attribution"]),
        ("circuits", {}, ["prompt", "circuit"]),
        ("circuits", {"pattern": r".*\(.*"}, ["prompt", "circuit"]),
        ("circuits", {"prompt": c0.id}, ["prompt", "circuit"]),
        ("circuits", {"min_faithfulness": 0.7}, ["prompt", "circuit"]),
        ("circuit", {"prompt": c0.prompt.text}, ["weight"]),
        ("circuit", {"prompt": big.id, "min_weight": 0.4}, ["weight"]),
        ("paths-to-logit", {"prompt": c0.prompt.text}, ["strength", "hops"]),
        ("paths-to-logit", {"prompt": big.prompt_id, "min_weight": 0.2}, ["strength", "hops"]),
        ("threads", {}, ["layers", "strength"]),
        ("threads", {"min_weight": 0.05, "top_n": 5, "min_layers": 3}, ["layers", "strength"]),
        ("threads", {"prompt": big.prompt.text, "top_n": 5, "min_layers": 2}, ["layers", "strength"]),
        ("threads", {"min_share": 0.0, "top_n": 3}, ["layers", "strength"]),
        ("compare", {"a": c0.prompt.text, "b": c1.prompt.text}, ["status"]),
        ("compare", {"a": big.id, "b": big.id}, ["status"]),
        ("compare-group", {"pattern": r".*\(.*"}, ["prompt", "circuit", "feature"]),
        ("top-proximal-causes", {}, ["prompt", "circuit", "feature", "pos"]),
        ("top-proximal-causes", {"prompt": c0.prompt.text}, ["prompt", "circuit", "feature", "pos"]),
        ("dictionaries", {"prompt": c0.prompt.text}, ["sae_set", "circuit"]),
        ("dictionaries", {"prompt": big.prompt_id}, ["sae_set", "circuit"]),
    ]


def _norm(v, digits: int):
    """Hashable, with floats to `digits` significant digits (NaN -> None)."""
    if isinstance(v, float):
        return None if math.isnan(v) else float(f"{v:.{digits}g}")
    if isinstance(v, list | tuple):
        return tuple(_norm(x, digits) for x in v)
    return v


def _rows(df: pd.DataFrame, digits: int = 6) -> list[tuple]:
    return [tuple(_norm(v, digits) for v in row) for row in df.itertuples(index=False, name=None)]


def _close(x: list[tuple], y: list[tuple]) -> bool:
    """Row lists equal, floats to a relative 1e-9."""
    return len(x) == len(y) and all(
        a == pytest.approx(b, rel=1e-9, abs=1e-12) if isinstance(a, float) else a == b
        for rx, ry in zip(x, y, strict=True)
        for a, b in zip(rx, ry, strict=True)
    )


def _canonical(df: pd.DataFrame) -> list[tuple]:
    """Rows sorted by their non-float values first (so float noise cannot reorder them), then by floats."""
    rows = _rows(df, 17)

    def key(row):
        return (repr(tuple(None if isinstance(v, float) else v for v in row)), repr(_norm(row, 6)))

    return sorted(rows, key=key)


def assert_same_result(a: pd.DataFrame, b: pd.DataFrame, order_by: list[str]) -> None:
    """Same columns, the same multiset of rows, and the same sequence of ORDER BY values (floats to 1e-9)."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b), f"{len(a)} rows vs {len(b)}"
    assert _close(_canonical(a), _canonical(b)), "different rows"
    assert _close(_rows(a[order_by], 17), _rows(b[order_by], 17)), "different order"


@pytest.mark.neo4j
def test_every_query_gives_the_same_result_on_both_engines(circuits, neo4j_store, embedded_store):
    cases = _cases(circuits)
    assert {name for name, _, _ in cases} == {q.name for q in runner.list_queries()}, "a query lacks a case"
    for name, params, order_by in cases:
        params = (
            {"limit": BIG} | params if "limit" in [p.name for p in runner.get_query(name).params] else params
        )
        a = runner.run(neo4j_store, name, params)
        b = runner.run(embedded_store, name, params)
        try:
            assert_same_result(a, b, order_by)
        except AssertionError as e:
            raise AssertionError(f"{name} {params}: {e}\nneo4j:\n{a}\nembedded:\n{b}") from e


@pytest.mark.neo4j
def test_differential_cases_are_not_vacuous(circuits, neo4j_store):
    """Most cases return rows, so agreeing on them means something."""
    empty = [(n, p) for n, p, _ in _cases(circuits) if runner.run(neo4j_store, n, p).empty]
    assert len(empty) <= 2, empty


def _edge_frame(circuits) -> pd.DataFrame:
    """Every FEEDS edge of the circuits with both ends' features and the circuit's faithfulness, in pandas."""
    rows = []
    for c in circuits:
        top = {f.id: (f.top_promoted[:1] or [None])[0] for f in c.features}
        kind = {f.id: f.kind for f in c.features}
        for e in c.edges:
            u, d = c.node(e.source), c.node(e.target)
            rows.append(
                {
                    "cid": c.id,
                    "faith": c.scores.get("faithfulness", math.nan),
                    "up": u.feature_id,
                    "up_kind": kind[u.feature_id],
                    "up_top": top[u.feature_id],
                    "down": d.feature_id,
                    "down_kind": kind[d.feature_id],
                    "down_top": top[d.feature_id],
                    "w": e.weight,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.slow  # ~13 s on the embedded store
@pytest.mark.parametrize("which", ["embedded_store", pytest.param("neo4j_store", marks=pytest.mark.neo4j)])
def test_min_faithfulness_keeps_only_faithful_circuits(which, circuits, request):
    """feeders / consumers / top-features with min_faithfulness: only circuits scored at least that faithful
    contribute, recomputed with pandas from the Circuit objects (the aggregate layer sums every circuit, so these
    read the FEEDS edges)."""
    store = request.getfixturevalue(which)
    edges = _edge_frame(circuits)
    cut = float(edges.drop_duplicates("cid")["faith"].median())
    kept = edges[edges["faith"] >= cut]
    assert 0 < kept["cid"].nunique() < edges["cid"].nunique()
    assert (
        runner.get_query("feeders").aggregated_case({"token": ")", "top_n": 1, "min_faithfulness": cut})
        is None
    )

    def expect(frame: pd.DataFrame, key: str, kind: str) -> dict:
        frame = frame[~frame[kind].isin(["error", "token", "logit"])]  # not features: not ranked rows
        g = frame.groupby(key)
        return {
            f: (int(g["cid"].nunique()[f]), int(g.size()[f]), float(g["w"].apply(lambda w: w.abs().sum())[f]))
            for f in g.groups
        }

    for name, side, params in (
        ("feeders", "down_top", {"token": ")"}),
        ("feeders", "down", {"feature": edges["down"].mode()[0]}),
        ("consumers", "up_top", {"token": "("}),
    ):
        col = "down" if side.startswith("down") else "up"
        other = "up" if col == "down" else "down"
        match = params.get("token") if "token" in params else params["feature"]
        want = expect(kept[kept[side] == match], other, f"{other}_kind")
        df = runner.run(store, name, params | {"min_faithfulness": cut, "limit": BIG})
        got = {r.feature: (r.circuits, r.edges, r.abs_weight) for r in df.itertuples()}
        assert set(got) == set(want) and want, (name, params)
        for f, (n_c, n_e, aw) in want.items():
            assert got[f][:2] == (n_c, n_e) and got[f][2] == pytest.approx(aw, rel=1e-9), (name, f)
        every = runner.run(store, name, params | {"limit": BIG})
        assert every["edges"].sum() > df["edges"].sum()  # the filter removed something
    nodes = pd.DataFrame(
        [
            {
                "cid": c.id,
                "faith": c.scores.get("faithfulness", math.nan),
                "f": n.feature_id,
                "a": n.attribution,
            }
            for c in circuits
            for n in c.nodes
            if n.kind not in ("token", "logit", "error")
        ]
    )
    nodes = nodes[nodes["faith"] >= cut]
    df = runner.run(store, "top-features", {"min_faithfulness": cut, "limit": BIG})
    g = nodes.groupby("f")
    assert set(df["feature"]) == set(g.groups)
    for r in df.itertuples():
        assert (r.circuits, r.nodes) == (g["cid"].nunique()[r.feature], g.size()[r.feature])
        assert r.abs_attribution == pytest.approx(g["a"].apply(lambda a: a.abs().sum())[r.feature], rel=1e-9)
        assert r.mean_attribution == pytest.approx(g["a"].mean()[r.feature], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("which", ["embedded_store", pytest.param("neo4j_store", marks=pytest.mark.neo4j)])
def test_drivers_rank_measured_effects_over_the_circuits_predicting_the_token(which, circuits, request):
    """drivers, recomputed from the Circuit objects: over the circuits whose target is the token, each feature's
    measured effect (one per circuit: its latent's, stored on each of its nodes) summed and divided by the number of
    scored such circuits (measured), its node attributions summed over the number of such circuits (estimated), the
    weights of its edges into the logit (direct, per circuit), its example prompts by its effect there, strongest
    first; ranked by measured."""
    store = request.getfixturevalue(which)
    token = "]"
    chosen = [c for c in circuits if c.prompt.target == token]
    scored = [c for c in chosen if "ablation" in c.scores]
    assert len(chosen) >= 2 and scored
    want: dict[str, dict] = {}
    for c in chosen:
        logit = next(n.id for n in c.nodes if n.kind == "logit")
        into = {e.source: e.weight for e in c.edges if e.target == logit}
        for n in c.nodes:
            if n.kind in ("error", "token", "logit"):
                continue
            r = want.setdefault(n.feature_id, {"per": {}, "effect": {}, "direct": 0.0})
            r["per"][c.prompt.text] = r["per"].get(c.prompt.text, 0.0) + n.attribution
            if n.effect is not None:
                assert r["effect"].get(c.prompt.text, n.effect) == n.effect  # one value per latent and prompt
                r["effect"][c.prompt.text] = n.effect
            r["direct"] += into.get(n.id, 0.0)
    df = runner.run(store, "drivers", {"token": token, "limit": BIG})
    assert set(df["feature"]) == set(want)
    for row in df.itertuples():
        r = want[row.feature]
        assert row.circuits == len(r["per"])
        assert row.measured == pytest.approx(sum(r["effect"].values()) / len(scored), rel=1e-9, abs=1e-12)
        assert row.estimated == pytest.approx(sum(r["per"].values()) / len(chosen), rel=1e-9, abs=1e-12)
        assert row.direct == pytest.approx(r["direct"] / len(chosen), rel=1e-9, abs=1e-12)
        by = r["effect"] or r["per"]
        assert [by[t] for t in row.examples] == sorted(by.values(), reverse=True)[:3]
    assert df["measured"].is_monotonic_decreasing


# -- semantics, checked against the circuits in Python ------------------------------------------------------------


def test_feeders_counts_match_the_circuits(circuits, embedded_store):
    """feeders by token, recomputed from the Circuit objects: circuits, edges, total weight and the measured effects
    (one per circuit where it feeds the target) per feature."""
    expected: dict[str, dict] = {}
    for c in circuits:
        feats = {f.id: f for f in c.features}
        for e in c.edges:
            d, u = c.node(e.target), c.node(e.source)
            if feats[d.feature_id].top_promoted[:1] == [")"]:
                r = expected.setdefault(
                    u.feature_id,
                    {"circuits": {}, "edges": 0, "pos": 0.0, "neg": 0.0, "kind": u.kind, "effects": {}},
                )
                r["circuits"][c.prompt.text] = r["circuits"].get(c.prompt.text, 0.0) + abs(e.weight)
                if u.effect is not None:
                    r["effects"][c.prompt.text] = u.effect
                r["edges"] += 1
                r["pos" if e.weight > 0 else "neg"] += e.weight
    df = runner.run(embedded_store, "feeders", {"token": ")", "limit": BIG, "include_errors": True})
    assert set(df["feature"]) == set(expected)
    for row in df.itertuples():
        r = expected[row.feature]
        assert row.circuits == len(r["circuits"]) and row.edges == r["edges"]
        assert row.pos_weight == pytest.approx(r["pos"], abs=1e-9)
        assert row.neg_weight == pytest.approx(r["neg"], abs=1e-9)
        assert row.abs_weight == pytest.approx(r["pos"] - r["neg"], abs=1e-9)
        assert row.mean_abs_weight == pytest.approx((r["pos"] - r["neg"]) / r["edges"], abs=1e-9)
        strongest = sorted(r["circuits"].items(), key=lambda kv: -kv[1])[:3]
        assert [w for _, w in strongest] == pytest.approx(
            [r["circuits"][t] for t in row.examples], abs=1e-9
        ), "examples: the strongest circuits first"
        if r["effects"]:
            assert row.measured == pytest.approx(sum(r["effects"].values()), abs=1e-9)
        else:
            assert math.isnan(row.measured)
    assert df["abs_weight"].is_monotonic_decreasing
    assert (
        df["measured"].notna().any() and df["measured"].isna().any()
    )  # latents measured; errors, tokens not
    plain = runner.run(embedded_store, "feeders", {"token": ")", "limit": BIG})
    assert set(plain["feature"]) == {f for f, r in expected.items() if r["kind"] not in ("error", "token")}


def _ranking_circuits():
    """Six hand-made circuits into one ")" feature where circuit count and |weight| disagree: A feeds it in every
    circuit with a tiny weight, B once with a large one, C in three with mixed signs; an SAE error term and the
    input token feed it too."""
    from scd.core.circuit import Circuit, Edge, Feature, Node, PromptRecord

    hook = "blocks.1.hook_resid_pre"
    target = Feature(f"demo/demo/{hook}/1", "demo", "demo/x", hook, 1, "resid", 1, top_promoted=[")"])
    a = Feature(f"demo/demo/{hook}/2", "demo", "demo/x", hook, 0, "resid", 2, top_promoted=["a"])
    b = Feature(f"demo/demo/{hook}/3", "demo", "demo/x", hook, 0, "resid", 3, top_promoted=["b"])
    cc = Feature(f"demo/demo/{hook}/4", "demo", "demo/x", hook, 0, "resid", 4, top_promoted=["c"])
    err = Feature(f"demo/demo/{hook}/error", "demo", "demo/x", hook, 0, "error", -1)
    tok = Feature("demo/token/7", "demo", "", "hook_embed", -1, "token", 7)
    feats = {f.id: f for f in (a, b, cc, err, tok)}
    weights = {  # per circuit: feature id -> weight of its edge into the target
        0: {a.id: 0.01, b.id: 5.0, cc.id: 2.0, err.id: 0.4, tok.id: 0.1},
        1: {a.id: -0.02, cc.id: -1.5, err.id: 0.3},
        2: {a.id: 0.01, cc.id: 0.75, err.id: -0.2},
        3: {a.id: 0.01, err.id: 0.1},
        4: {a.id: 0.03},
        5: {a.id: -0.01, err.id: 0.5, tok.id: -0.2},
    }
    out = []
    for i, ws in weights.items():
        text = f"p{i} (x"
        nodes = [Node("t@3", "resid", 1, hook, 1, 3, "x", 1.0, 1.0, target.id)]
        edges = []
        for fid, w in ws.items():
            f = feats[fid]
            nodes.append(Node(f"{f.id}@2", f.kind, f.layer, f.hook, f.index, 2, "(", 1.0, w, f.id))
            edges.append(Edge(f"{f.id}@2", "t@3", w))
        prompt = PromptRecord(text, ["<bos>", *text], [0, 1, 2, 3, 4, 5], ")", 9, 0.5, 0.69, [(")", 0.5)])
        out.append(
            Circuit(
                prompt=prompt,
                model="demo",
                sae_set="demo",
                saes={},
                params={"method": "atp", "top_k": 20},
                nodes=nodes,
                edges=edges,
                features=[target, *(feats[f] for f in ws)],
                metric_value=0.0,
                created_at="2025-01-01T00:00:00+00:00",
            )
        )
    return out, weights, (a, b, cc, err, tok)


@pytest.mark.parametrize("which", ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
@pytest.mark.parametrize("aggregated", [True, False])
def test_feeders_rank_by_weight_not_circuit_count(which, aggregated, request, tmp_path):
    """Ranking by the sum of |weight| (default), by circuits, by mean |weight|; error and token rows only on
    request, their share in the summary line; both on the aggregate layer and the FEEDS edges."""
    from scd.store import open_store

    circuits, weights, (a, b, cc, err, tok) = _ranking_circuits()
    config = (
        StoreConfig(neo4j_uri=request.getfixturevalue("neo4j_uri"))
        if which == "neo4j"
        else StoreConfig(path=tmp_path / "s")
    )
    with open_store(config) as store:
        store.clear()
        for c in circuits:
            store.write_circuit(c)
        if aggregated:
            store.fold()
        assert store.pending() == (0 if aggregated else len(circuits))
        q = runner.get_query("feeders")

        def ids(**params):
            return list(
                runner.run(store, q, {"feature": circuits[0].nodes[0].feature_id} | params)["feature"]
            )

        abs_sum = {f.id: sum(abs(ws.get(f.id, 0.0)) for ws in weights.values()) for f in (a, b, cc, err, tok)}
        assert abs_sum[b.id] > abs_sum[cc.id] > abs_sum[a.id]  # the synthetic store's premise
        assert ids() == [b.id, cc.id, a.id]
        assert ids(order_by="circuits") == [a.id, cc.id, b.id]
        assert ids(order_by="mean") == [b.id, cc.id, a.id]
        every = ids(include_errors=True)
        assert set(every) == {a.id, b.id, cc.id, err.id, tok.id}
        assert every == sorted(every, key=lambda f: -abs_sum[f])
        df = runner.run(store, q, {"feature": circuits[0].nodes[0].feature_id})
        row = df.set_index("feature").loc[cc.id]
        assert (row.pos_weight, row.neg_weight, row.abs_weight) == pytest.approx((2.75, -1.5, 4.25))
        assert row.examples == ["p0 (x", "p1 (x", "p2 (x"]  # |2.0| > |-1.5| > |0.75|
        assert df.set_index("feature").loc[a.id].examples[0] == "p4 (x"  # its strongest edge, 0.03
        share = (abs_sum[err.id] + abs_sum[tok.id]) / sum(abs_sum.values())
        assert df.attrs["summary"].startswith(f"unexplained by features: {100 * share:.1f}% of |weight| into")
        by_token = runner.run(store, q, {"token": ")"})
        assert list(by_token["feature"]) == [b.id, cc.id, a.id]
        assert by_token.attrs["summary"] == df.attrs["summary"]


def test_circuits_filter_on_faithfulness(circuits, embedded_store):
    df = runner.run(embedded_store, "circuits", {"min_faithfulness": 0.7, "limit": BIG})
    want = {c.id for c in circuits if c.scores.get("faithfulness", -1) >= 0.7}
    assert 0 < len(want) < len(circuits) and set(df["circuit"]) == want
    assert (df["faithfulness"] >= 0.7).all() and df["selection"].eq("top-k").all()


def test_threads_are_consecutive_resid_chains_sharing_a_token(circuits, embedded_store):
    df = runner.run(embedded_store, "threads", {"top_n": 5, "limit": BIG})
    assert not df.empty
    by_id = {c.id: c for c in circuits}
    for row in df.itertuples():
        c = by_id[row.circuit]
        nodes = [c.node(nid) for nid in row.thread.split(" -> ")]
        assert [n.kind for n in nodes] == ["resid"] * len(nodes)
        assert [n.layer for n in nodes] == list(range(row.first_layer, row.last_layer + 1))
        assert len(nodes) == row.layers >= 3
        feats = {f.id: f for f in c.features}
        common = set.intersection(*(set(feats[n.feature_id].top_promoted[:5]) for n in nodes))
        assert set(row.shared) == common and common and row.matches == len(common)
        assert row.chance == pytest.approx(expected_chance(circuits, 5, row.first_layer, row.last_layer))
        assert row.matches > row.chance and row.min_share >= 0.1


def expected_proximal_causes(circuits) -> list[tuple]:
    """The top proximal cause of each circuit, from the Circuit objects: (prompt, feature, pos, weight, url)."""
    rows = []
    for c in circuits:
        feats = {f.id: f for f in c.features}
        logit = next(n.id for n in c.nodes if n.kind == "logit")
        into = [(e.weight, c.node(e.source)) for e in c.edges if e.target == logit]
        into = [(w, n) for w, n in into if n.kind not in ("token", "error", "logit")]
        if not into:
            continue
        best = max(w for w, _ in into)
        for w, n in into:
            if w == best:
                f = feats[n.feature_id]
                rows.append((c.prompt.text, f.id, n.pos, w, f.top_promoted, f.neuronpedia_url))
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def test_top_proximal_causes_match_the_circuits(circuits, embedded_store):
    df = runner.run(embedded_store, "top-proximal-causes", {"limit": BIG})
    expected = expected_proximal_causes(circuits)
    assert (
        len(expected) >= len(circuits) - 2
    )  # nearly every synthetic circuit has a feature feeding its logit
    got = [
        (r.prompt, r.feature, r.pos, r.weight, list(r.promotes), r.neuronpedia_url)
        for r in df.itertuples(index=False)
    ]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g[3] == pytest.approx(e[3], rel=1e-12) and g[4] == list(e[4]) and g[5] == e[5]
    one = runner.run(embedded_store, "top-proximal-causes", {"prompt": circuits[0].prompt.text})
    assert set(one["prompt"]) == {circuits[0].prompt.text}


def test_compare_and_jaccard(circuits, embedded_store):
    a, b = circuits[0], circuits[2]
    cmp = compare_circuits(embedded_store, a.prompt.text, b.id)

    def latents(c):
        return {n.feature_id for n in c.nodes if n.kind not in ("token", "logit", "error")}

    fa, fb = latents(a), latents(b)
    assert (cmp.shared, cmp.only_a, cmp.only_b) == (len(fa & fb), len(fa - fb), len(fb - fa))
    assert cmp.jaccard == pytest.approx(len(fa & fb) / len(fa | fb))
    shared = cmp.features[cmp.features["status"] == "shared"]
    assert shared["attribution_a"].notna().all() and shared["attribution_b"].notna().all()
    assert cmp.features[cmp.features["status"] == "only_a"]["attribution_b"].isna().all()
    same = compare_circuits(embedded_store, a.id, a.prompt_id)
    assert same.jaccard == 1.0 and same.only_a == same.only_b == 0


def test_compare_group_frequency_and_matrix(circuits, embedded_store):
    g = compare_group(embedded_store, r".*\(.*")
    chosen = [c for c in circuits if "(" in c.prompt.text]
    assert set(g.circuits["circuit"]) == {c.id for c in chosen}
    sets = {
        c.id: {n.feature_id for n in c.nodes if n.kind not in ("token", "logit", "error")} for c in chosen
    }
    expected = jaccard_matrix(sets)
    got = g.similarity.loc[expected.index, expected.columns]
    assert got.to_numpy() == pytest.approx(expected.to_numpy())
    top = g.frequency.iloc[0]
    assert top["circuits"] == max(Counter(f for s in sets.values() for f in s).values())
    assert top["share"] == pytest.approx(top["circuits"] / len(chosen))


def test_compare_errors(embedded_store):
    with pytest.raises(QueryError, match="no circuit for 'nope'"):
        compare_circuits(embedded_store, "nope", "ab (cd [e {fg")
    with pytest.raises(QueryError, match="no circuit's prompt matches"):
        compare_group(embedded_store, "zzz")


@pytest.mark.parametrize("which", ["embedded_store", pytest.param("neo4j_store", marks=pytest.mark.neo4j)])
def test_writes_are_refused_on_both_engines(which, request):
    store = request.getfixturevalue(which)
    with pytest.raises(QueryError, match="refused"):
        runner.run_cypher(store, "CREATE (:Feature {id: 'x'})")
    with pytest.raises(QueryError, match="refused"):
        runner.run_cypher(store, "MATCH (f:Feature) SET f.label = 'x'")
    assert runner.run_cypher(store, "MATCH (f:Feature {id: 'x'}) RETURN count(f) AS n")["n"][0] == 0


# -- the demo model: real circuits ----------------------------------------------------------------------------------

DEMO_PROMPTS = 12  # bracket prompts from examples/prompts.txt


@pytest.fixture(scope="module")
def demo_circuits():
    from scd import demo

    if not demo.is_present():
        pytest.skip("the demo model's weights are not built (scd/demo/weights)")
    from scd.discovery.discover import discover
    from scd.ingest.prompts import read_prompts
    from scd.models.bundle import load_bundle

    specs = [s for s in read_prompts(runner.LIBRARY.parent / "examples" / "prompts.txt") if "(" in s.text]
    assert len(specs) >= DEMO_PROMPTS
    bundle = load_bundle("demo")
    return [discover(s.text, model=bundle, target=s.target) for s in specs[:DEMO_PROMPTS]]


@pytest.mark.slow
def test_demo_feeders_of_the_closing_paren(demo_circuits, tmp_path):
    """The issue's question on real circuits: which upstream features feed the ")" features, across prompts."""
    config = StoreConfig(path=tmp_path / "demo")
    load(config, demo_circuits)
    df = runner.query("feeders", store=config, token=")", limit=1000)
    assert not df.empty and {
        "circuits",
        "edges",
        "abs_weight",
        "pos_weight",
        "neg_weight",
        "examples",
    } <= set(df.columns)
    hits = runner.query("circuits", store=config, pattern=r".*\(.*", limit=1000)
    assert len(hits) >= 10
    assert df["circuits"].max() >= 2, "some feeder should recur across prompts"
    assert {t for ex in df["examples"] for t in ex} <= {c.prompt.text for c in demo_circuits}
    assert "unexplained by features" in df.attrs["summary"]
    assert not set(df["kind"]) & {"error", "token"}


@pytest.mark.neo4j
def test_demo_circuits_same_on_both_engines(demo_circuits, neo4j_uri, tmp_path):
    """The issue's done-when: every named query, both stores, the same ingested demo circuits."""
    from scd.store import open_store

    emb, neo = StoreConfig(path=tmp_path / "demo"), StoreConfig(neo4j_uri=neo4j_uri)
    load(emb, demo_circuits)
    load(neo, demo_circuits)
    with open_store(emb, read_only=True) as a, open_store(neo, read_only=True) as b:
        for name, params, order_by in _cases(demo_circuits):
            if "limit" in [p.name for p in runner.get_query(name).params]:
                params = {"limit": BIG} | params
            x, y = runner.run(b, name, params), runner.run(a, name, params)
            try:
                assert_same_result(x, y, order_by)
            except AssertionError as e:
                raise AssertionError(f"{name} {params}: {e}") from e


def _unexplained_into(circuits, token: str) -> str:
    """feeders' summary line for ``token`` (top_n = 1) computed from the Circuit objects: the share of |weight|
    into features whose top promoted token it is that comes from SAE error terms and input tokens."""
    by_kind: dict[str, float] = {}
    for c in circuits:
        features = {f.id: f for f in c.features}
        for e in c.edges:
            target = features[c.node(e.target).feature_id]
            if target.top_promoted[:1] == [token]:
                kind = features[c.node(e.source).feature_id].kind
                by_kind[kind] = by_kind.get(kind, 0.0) + abs(e.weight)
    share = (by_kind.get("error", 0.0) + by_kind.get("token", 0.0)) / sum(by_kind.values())
    return f"unexplained by features: {100 * share:.1f}% of |weight| into"


def test_pending_circuits_route_to_the_feeds_edges(store_config):
    """While a circuit is not yet folded into the aggregate layer, feeders / consumers read the FEEDS edges, so
    the answer still counts it; after the fold they read the layer again, with the same rows. The summary line
    follows the rows (on Neo4j it is computed beside them, guessing the layer: a wrong guess must not show)."""
    from scd.store import open_store

    circuits = [synthetic_circuit(100 + i, text=t) for i, t in enumerate(NAMED_PROMPTS)]
    last = circuits[-1]
    features = {f.id: f for f in last.features}
    token = next(  # the top token of a feature the pending circuit feeds
        features[last.node(e.target).feature_id].top_promoted[0]
        for e in last.edges
        if features[last.node(e.target).feature_id].top_promoted
    )
    q = runner.get_query("feeders")
    bound = q.bind({"token": token, "limit": BIG})
    with open_store(store_config) as store:
        for c in circuits[:-1]:
            store.write_circuit(c)
        store.fold()
        store.write_circuit(circuits[-1])  # pending
        assert store.pending() == 1
        routed = runner.run(store, q, bound)
        edges = runner.run_cypher(store, q.text_for(store.kind), bound)
        stale = runner.run_cypher(store, q.text_for(store.kind, bound), bound)  # the layer, one circuit short
        assert_same_result(routed, edges, [])  # the very same text ran
        assert routed["edges"].sum() > stale["edges"].sum()
        want = _unexplained_into(circuits, token)
        assert _unexplained_into(circuits[:-1], token) != want  # the layer's line would differ
        assert routed.attrs["summary"].startswith(want)
        store.fold()
        folded = runner.run(store, q, bound)  # the layer again: sums to 1e-9 (it rounds each circuit's sums)
        assert folded.attrs["summary"].startswith(want)
        assert list(folded.columns) == list(edges.columns) and len(folded) == len(edges)
        for col in folded.columns:
            x, y = folded.sort_values("feature")[col].tolist(), edges.sort_values("feature")[col].tolist()
            assert x == (pytest.approx(y, abs=1e-9, nan_ok=True) if isinstance(x[0], float) else y), col


@pytest.mark.slow
def test_aggregated_path_gives_the_node_level_rows(circuits, embedded_store):
    """feeders / consumers answered from the pre-aggregated layer = the library text over the FEEDS edges (sums to
    1e-9: the layer rounds each circuit's sums), for every feature and token of some circuits; and the differential
    cases above take both paths."""
    cases = _cases(circuits)
    routed = [
        runner.get_query(n).aggregated_case(runner.get_query(n).bind(p))
        for n, p, _ in cases
        if n in ("feeders", "consumers")
    ]
    assert "feature" in routed and "token" in routed and None in routed
    for name in ("feeders", "consumers"):
        q = runner.get_query(name)
        for c in circuits[:4]:
            for n in c.nodes[::5]:
                for params in ({"feature": n.feature_id}, {"token": n.token}, {"token": ")"}):
                    bound = q.bind({"limit": BIG} | params)
                    assert q.aggregated_case(bound) in ("feature", "token")
                    a = runner.run_cypher(embedded_store, q.text, bound)
                    b = runner.run_cypher(embedded_store, q.text_for("embedded", bound), bound)
                    runner.take_totals(b)  # the summary line's sums ride along as extra columns
                    assert list(a.columns) == list(b.columns) and len(a) == len(b), (name, params)
                    for x, y in zip(a.itertuples(index=False), b.itertuples(index=False), strict=True):
                        for u, v in zip(x, y, strict=True):
                            assert (
                                u == pytest.approx(v, abs=1e-9, nan_ok=True)
                                if isinstance(u, float)
                                else u == v
                            )
    q = runner.get_query("feeders")
    for params in (
        {"token": ")", "top_n": 2},
        {"token": ")", "min_weight": 0.1},
        {"feature": "x", "token": ")"},
    ):
        assert q.aggregated_case(q.bind(params)) is None


def test_dictionaries_matches_the_circuits(circuits, embedded_store):
    """dictionaries, recomputed from the Circuit objects: sizes, error share of the input nodes' |attribution|,
    and the feature of the strongest edge into the logit."""
    for c in circuits[:4]:
        df = runner.run(embedded_store, "dictionaries", {"prompt": c.prompt_id})
        row = df[df.circuit == c.id].iloc[0]
        err = sum(abs(n.attribution) for n in c.nodes if n.kind == "error")
        inputs = sum(abs(n.attribution) for n in c.nodes if n.kind in ("error", "token"))
        logit = next(n.id for n in c.nodes if n.kind == "logit")
        into = [e for e in c.edges if e.target == logit]
        best = max(abs(e.weight) for e in into)
        top = min(c.node(e.source).feature_id for e in into if abs(e.weight) == best)
        feat = next(f for f in c.features if f.id == top)
        assert (row.nodes, row.edges, row.sae_set) == (len(c.nodes), len(c.edges), c.sae_set)
        assert row.features == sum(n.kind not in ("token", "logit", "error") for n in c.nodes)
        assert row.error_share == pytest.approx(err / inputs)
        assert (row.top_kind, row.top_layer) == (feat.kind, feat.layer)
        assert abs(row.top_weight) == pytest.approx(best)


def _planted_thread_circuits():
    """Four hand-made circuits of resid chains over layers 0-1-2, with the features' promoted tokens chosen so that
    one thread shares a rare token (above chance), one shares only ')' -- which every feature of every layer
    promotes, so one shared token is at chance -- and one shares a rare token over a weak edge (below the default
    minimum share). Plus filler features that make the per-layer token rates non-trivial."""
    from scd.core.circuit import Circuit, Edge, Feature, Node, PromptRecord

    def feat(layer: int, idx: int, promoted: list[str]) -> Feature:
        hook = f"blocks.{layer}.hook_resid_pre"
        return Feature(f"demo/demo/{hook}/{idx}", "demo", "demo/x", hook, layer, "resid", idx, promoted)

    # per layer: 6 features; every list holds ')' (p = 1), 'q' only in thread A's, 'z' only in thread C's
    a = [feat(0, 1, [")", "q", "a"]), feat(1, 1, [")", "q", "b"]), feat(2, 1, [")", "q", "c"])]
    b = [feat(0, 2, [")", "d", "e"]), feat(1, 2, [")", "f", "g"]), feat(2, 2, [")", "h", "i"])]
    c = [feat(0, 3, [")", "z", "j"]), feat(1, 3, [")", "z", "k"]), feat(2, 3, [")", "z", "l"])]
    filler = [feat(layer, 10 + i, [")", "m", "n"][: 1 + i % 3]) for layer in range(3) for i in range(3)]
    chains = {"A": (a, [1.0, 0.8]), "B": (b, [1.0, 0.9]), "C": (c, [1.0, 0.05])}  # C: 0.05 < 0.1 share
    out = []
    for name, (fs, ws) in chains.items():
        text = f"t{name} (x"
        nodes = [
            Node(f"n{f.layer}", "resid", f.layer, f.hook, f.index, 1 + f.layer, "x", 1.0, 1.0, f.id)
            for f in fs
        ]
        edges = [Edge("n0", "n1", ws[0]), Edge("n1", "n2", ws[1])]
        prompt = PromptRecord(text, ["<bos>", *text], list(range(len(text) + 1)), ")", 9, 0.5, 0.69, [])
        out.append(
            Circuit(
                prompt,
                "demo",
                "demo",
                {},
                {"method": "atp", "top_k": 20},
                nodes,
                edges,
                fs,
                0.0,
                created_at="2025-01-01T00:00:00+00:00",
            )
        )
    text = "fill (x"  # the filler features, one node each, no edges: they only take part in the population
    nodes = [
        Node(f"f{f.layer}-{f.index}", "resid", f.layer, f.hook, f.index, 1, "x", 1.0, 0.5, f.id)
        for f in filler
    ]
    prompt = PromptRecord(text, ["<bos>", *text], list(range(len(text) + 1)), ")", 9, 0.5, 0.69, [])
    out.append(
        Circuit(
            prompt,
            "demo",
            "demo",
            {},
            {"method": "atp", "top_k": 20},
            nodes,
            [],
            filler,
            0.0,
            created_at="2025-01-01T00:00:00+00:00",
        )
    )
    return out


def expected_chance(circuits, top_n: int, lo: int, hi: int) -> float:
    """The chance baseline, computed independently: draw one resid feature per layer uniformly from the circuits'
    resid features of that layer, and count the tokens common to their top_n lists -- by enumeration of every
    combination where the feature sets are small (else linearity of expectation, per token)."""
    import itertools

    by_layer: dict[int, dict[str, list[str]]] = {}
    for c in circuits:
        for n in c.nodes:
            if n.kind == "resid":
                f = next(f for f in c.features if f.id == n.feature_id)
                by_layer.setdefault(n.layer, {})[f.id] = f.top_promoted[:top_n]
    pools = [list(by_layer[layer].values()) for layer in range(lo, hi + 1)]
    if math.prod(len(p) for p in pools) > 200_000:  # too many draws to enumerate: linearity of expectation
        tokens = set().union(*(set(x) for pool in pools for x in pool))
        return sum(math.prod(sum(t in x for x in pool) / len(pool) for pool in pools) for t in tokens)
    combos = list(itertools.product(*pools))
    return sum(len(set.intersection(*(set(x) for x in combo))) for combo in combos) / len(combos)


@pytest.mark.parametrize("which", ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_threads_keep_only_strong_threads_above_chance(which, request, tmp_path):
    """Planted threads: A (a rare shared token, strong edges) is listed; B (only ')' shared, which every feature
    promotes) is at chance and dropped; C (a rare token over a weak edge) needs min_share lowered. The chance column
    equals an enumeration over every draw of one feature per layer."""
    from scd.store import open_store

    circuits = _planted_thread_circuits()
    config = (
        StoreConfig(neo4j_uri=request.getfixturevalue("neo4j_uri"))
        if which == "neo4j"
        else StoreConfig(path=tmp_path / "s")
    )
    with open_store(config) as store:
        store.clear()
        for c in circuits:
            store.write_circuit(c)
        store.fold()
        chance = expected_chance(circuits, 3, 0, 2)
        assert 1.0 < chance < 2.0  # ')' everywhere (1), plus the other tokens' small chance of meeting

        def threads(**params):
            df = runner.run(store, "threads", {"top_n": 3, "limit": BIG} | params)
            return {r.prompt: (list(r.shared), r.matches, r.chance) for r in df.itertuples()}

        got = threads()
        assert set(got) == {"tA (x"}
        assert got["tA (x"][:2] == ([")", "q"], 2) and got["tA (x"][2] == pytest.approx(chance, rel=1e-12)
        assert set(threads(min_share=0.0)) == {"tA (x", "tC (x"}  # C's weak edge (share 0.05) now counts
        # B shares one token where chance expects more than one: dropped at every strength
        assert "tB (x" not in threads(min_share=0.0)
        # with top_n = 1 every list is [')']: chance is exactly 1 and no thread beats it
        assert expected_chance(circuits, 1, 0, 2) == 1.0 and threads(top_n=1, min_share=0.0) == {}


@pytest.mark.slow
@pytest.mark.parametrize("which", ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_features_without_circuits_change_no_query(which, circuits, request, tmp_path):
    """`scd features label` creates a Feature for every latent, most in no circuit. Such Features -- here ones that
    promote ')' and '(' first, at every layer and kind -- must not change any named query's rows (apart from a
    `feature` card asked for by their id)."""
    from dataclasses import replace

    from scd.store import open_store
    from scd.store.rows import feature_row

    config = (
        StoreConfig(neo4j_uri=request.getfixturevalue("neo4j_uri"))
        if which == "neo4j"
        else StoreConfig(path=tmp_path / "s")
    )
    load(config, circuits)
    template = {f.kind: f for c in circuits for f in c.features}
    extra = [
        replace(
            template[kind], id=f"demo/demo/{kind}-{layer}/{i}", layer=layer, index=i, top_promoted=[tok, "x"]
        )
        for kind in ("resid", "attn", "mlp")
        for layer in range(6)
        for i, tok in enumerate([")", "(", ")", "]"])
    ]
    card = {"label": "l", "frequency": 0.1, "max_activation": 1.0, "top_contexts": [], "top_activations": []}
    cases = [
        (n, {"limit": BIG} | p if "limit" in [x.name for x in runner.get_query(n).params] else p, o)
        for n, p, o in _cases(circuits)
    ]
    with open_store(config) as store:
        before = [runner.run(store, n, p) for n, p, _ in cases]
        assert store.set_feature_cards(
            [card | {"id": f.id} for f in extra], [feature_row(f) for f in extra]
        ) == len(extra)
        after = [runner.run(store, n, p) for n, p, _ in cases]
    for (name, params, order_by), a, b in zip(cases, before, after, strict=True):
        try:
            assert_same_result(a, b, order_by)
        except AssertionError as e:
            raise AssertionError(f"{name} {params}: {e}") from e


def test_consumers_keep_the_logit_out_of_the_ranked_rows(circuits, embedded_store):
    """The target logit is no feature: consumers list it only with include_errors=true, and the summary line gives
    the share of |weight| that goes straight into it, recomputed from the Circuit objects."""
    source = next(
        c.node(e.source).feature_id
        for c in circuits
        for e in c.edges
        if c.node(e.target).kind == "logit" and c.node(e.source).kind not in ("error", "token")
    )
    by_kind: dict[str, float] = {}
    for c in circuits:
        for e in c.edges:
            if c.node(e.source).feature_id == source:
                kind = c.node(e.target).kind
                by_kind[kind] = by_kind.get(kind, 0.0) + abs(e.weight)
    assert by_kind.get("logit")
    df = runner.run(embedded_store, "consumers", {"feature": source, "limit": BIG})
    assert "logit" not in set(df["kind"])
    every = runner.run(embedded_store, "consumers", {"feature": source, "limit": BIG, "include_errors": True})
    assert "logit" in set(every["kind"])
    share = by_kind["logit"] / sum(by_kind.values())
    assert df.attrs["summary"].endswith(f"; straight into the target logit {100 * share:.1f}%")


def test_rankings_by_measured_say_when_nothing_was_measured(tmp_path):
    """Circuits ingested without scores carry no measured effects: drivers and feeders then rank by the estimate
    and the summary line says why the measured column is empty."""
    from scd.store import open_store

    circuits = synthetic_circuits(6, seed=300, with_scores=False)
    config = StoreConfig(path=tmp_path / "s")
    load(config, circuits)
    token = circuits[0].prompt.target
    with open_store(config) as store:
        drivers = runner.run(store, "drivers", {"token": token, "limit": BIG})
        feeders = runner.run(store, "feeders", {"token": ")", "order_by": "measured", "limit": BIG})
    for df in (drivers, feeders):
        assert len(df) and df["measured"].isna().all()
        assert "no measured effects in these circuits" in df.attrs["summary"]
    assert drivers["estimated"].is_monotonic_decreasing


def test_threads_say_why_there_are_none(embedded_store):
    """A store with circuits but no thread passing the filters: no rows, and a line naming the filters."""
    df = runner.run(embedded_store, "threads", {"min_share": 1.5})
    assert df.empty
    assert df.attrs["summary"].startswith("no thread of >= 3 layers has every edge >= min_share=1.5")
    assert "lower -p min_share" in df.attrs["summary"]
