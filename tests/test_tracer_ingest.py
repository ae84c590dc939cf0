"""`scd ingest --saes demo-plt|demo-clt`: transcoder graphs (built by circuit-tracer) go into both stores beside the
SAE circuits of the same prompts, under their own sae_set, scored, resumable, shardable, and every named query
reads them. Expected rows are recomputed from the ingested circuits' JSON, not from the store."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("circuit_tracer")

from scd.cli import main  # noqa: E402
from scd.core.circuit import Circuit  # noqa: E402
from scd.core.config import StoreConfig  # noqa: E402
from scd.discovery import tracer  # noqa: E402
from scd.discovery.config import DiscoveryConfig  # noqa: E402
from scd.ingest.pipeline import ingest  # noqa: E402
from scd.ingest.prompts import read_prompts  # noqa: E402
from scd.queries import runner  # noqa: E402
from scd.store import open_store  # noqa: E402

pytestmark = pytest.mark.slow

PROMPTS = ["Copyright (C", "f(a [b (c"]
NOT_FEATURES = ("token", "logit", "error")


@pytest.fixture(scope="module")
def engines():
    from scd.models.bundle import load_bundle

    torch.set_num_threads(1)
    return load_bundle("demo", "demo"), tracer.load("demo", "demo-clt")


def _prompts(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _circuits(folder: Path) -> list[Circuit]:
    return [Circuit.from_json(p) for p in sorted(folder.glob("*.json"))]


def _cases(sae: list[Circuit], clt: list[Circuit]) -> dict[str, dict]:
    """One call per named query, aimed at the CLT circuits where the query takes a prompt, circuit or feature."""
    c = max(clt, key=lambda x: len(x.edges))
    fed = next(e.target for e in c.edges if c.node(e.target).kind == "transcoder")
    feeding = next(e.source for e in c.edges if c.node(e.source).kind == "transcoder")
    return {
        "circuit": {"prompt": c.id, "limit": 100000},
        "circuits": {},
        "compare": {"a": sae[0].id, "b": next(x for x in clt if x.prompt_id == sae[0].prompt_id).id},
        "compare-group": {"pattern": r".*\(.*"},
        "consumers": {"feature": c.node(feeding).feature_id, "include_errors": True, "limit": 1000},
        "dictionaries": {"prompt": PROMPTS[0]},
        "drivers": {"token": c.prompt.target, "limit": 100000},
        "feature": {"id": c.node(fed).feature_id},
        "features-promoting": {"token": ")", "limit": 1000},
        "feeders": {"feature": c.node(fed).feature_id, "include_errors": True, "limit": 1000},
        "paths-to-logit": {"prompt": c.id},
        "threads": {"min_layers": 2},
        "top-features": {"kind": "transcoder", "limit": 1000},
        "top-proximal-causes": {},
    }


def _neighbours(circuits: list[Circuit], feature: str, upstream: bool) -> set[str]:
    """Feature ids with an edge into (upstream) or out of `feature`, in any of `circuits`."""
    out = set()
    for c in circuits:
        for e in c.edges:
            near, far = (e.target, e.source) if upstream else (e.source, e.target)
            if c.node(near).feature_id == feature:
                out.add(c.node(far).feature_id)
    return out


def test_sae_and_clt_graphs_side_by_side(store_config, engines, tmp_path):
    bundle, clt = engines
    specs = read_prompts(_prompts(tmp_path, PROMPTS))
    with open_store(store_config) as store:
        sae_run = ingest(
            specs,
            store,
            model=bundle,
            config=DiscoveryConfig(metric="logit", scores=True),
            progress=False,
            json_out=tmp_path / "sae",
        )
        clt_run = ingest(
            specs,
            store,
            model=clt,
            saes="demo-clt",
            config=DiscoveryConfig(scores=True),
            progress=False,
            json_out=tmp_path / "clt",
        )
        again = ingest(
            specs, store, model=clt, saes="demo-clt", config=DiscoveryConfig(scores=True), progress=False
        )
        assert (sae_run.written, clt_run.written) == (2, 2) and not clt_run.failed
        assert (again.written, again.skipped, again.discovered) == (0, 2, 0), (
            "resume: done prompts are skipped"
        )
        assert store.pending() == 0, "the ingest folded what it wrote"
        sae, clt_circuits = _circuits(tmp_path / "sae"), _circuits(tmp_path / "clt")
        assert {c.sae_set for c in clt_circuits} == {"demo-clt"}
        assert {c.prompt_id for c in sae} == {c.prompt_id for c in clt_circuits}

        stored = runner.run_cypher(
            store,
            "MATCH (c:Circuit) RETURN c.id AS id, c.sae_set AS sae_set, c.ablation AS ablation, "
            "c.selection AS selection, c.faithfulness AS faithfulness, c.completeness AS completeness",
        ).set_index("id")
        assert len(stored) == 4
        for c in clt_circuits:
            row = stored.loc[c.id]
            assert (row.sae_set, row.ablation, row.selection) == (
                "demo-clt",
                "zero/keep",
                "influence:0.8/0.98",
            )
            assert row.faithfulness == pytest.approx(c.scores["faithfulness"])
            assert row.completeness == pytest.approx(c.scores["completeness"])
        for c in sae:
            assert (stored.loc[c.id].ablation, stored.loc[c.id].selection) == ("zero/circuit", "top-k")

        cases = _cases(sae, clt_circuits)
        assert set(cases) == {q.name for q in runner.list_queries()}, "every named query is called"
        got = {name: runner.run(store, name, params) for name, params in cases.items()}

    big = max(clt_circuits, key=lambda x: len(x.edges))
    clt_ids = {c.id for c in clt_circuits}
    assert len(got["circuit"]) == len(big.edges)
    assert set(got["circuits"].circuit) == clt_ids | {c.id for c in sae}
    assert {"only_a", "only_b"} <= set(got["compare"].status)
    assert clt_ids <= set(got["compare-group"].circuit)
    fed, feeding = cases["feeders"]["feature"], cases["consumers"]["feature"]
    assert set(got["feeders"].feature) == _neighbours(clt_circuits, fed, upstream=True)
    assert set(got["consumers"].feature) == _neighbours(clt_circuits, feeding, upstream=False)
    assert list(got["feature"].feature) == [fed]
    assert "transcoder" in set(got["features-promoting"].kind)
    assert len(got["paths-to-logit"]) > 0
    assert set(got["top-features"].kind) == {"transcoder"}
    assert len(got["top-features"]) == len(
        {n.feature_id for c in clt_circuits for n in c.nodes if n.kind == "transcoder"}
    )
    assert clt_ids <= set(got["top-proximal-causes"].circuit)
    token = cases["drivers"]["token"]
    assert set(got["drivers"].feature) == {
        n.feature_id
        for c in [*sae, *clt_circuits]
        if c.prompt.target == token
        for n in c.nodes
        if n.kind not in ("logit", "error", "token")
    }
    # threads follow resid -> resid edges: transcoder graphs have none (their features read MLP inputs)
    assert clt_ids.isdisjoint(set(got["threads"].get("circuit", [])))
    d = got["dictionaries"].set_index("circuit")
    assert set(d.sae_set) == {"demo", "demo-clt"}
    for c in [*sae, *clt_circuits]:
        if c.prompt.text == PROMPTS[0]:
            assert (d.loc[c.id].nodes, d.loc[c.id].edges) == (len(c.nodes), len(c.edges))
            assert d.loc[c.id].faithfulness == pytest.approx(c.scores["faithfulness"])


def test_shards_and_resume_from_the_cli(engines, tmp_path):
    """Two shards fill the store; the whole file afterwards finds every prompt done."""
    path = _prompts(tmp_path, PROMPTS)
    store = ["--store", str(tmp_path / "store"), "--no-progress"]
    cli = CliRunner()
    for shard in ("0/2", "1/2"):
        r = cli.invoke(main, ["ingest", str(path), "--saes", "demo-plt", "--shard", shard, *store])
        assert r.exit_code == 0, r.output
    r = cli.invoke(main, ["ingest", str(path), "--saes", "demo-plt", *store])
    assert r.exit_code == 0, r.output
    assert "0 circuits written, 2 skipped" in r.output
    config = StoreConfig.resolve(None, tmp_path / "store")
    for prompt in PROMPTS:  # one graph per prompt: each shard wrote its own, the full run none
        assert list(runner.query("dictionaries", config, prompt=prompt).sae_set) == ["demo-plt"]


def test_a_contrast_is_refused_per_prompt(engines, tmp_path):
    """A prompt with a contrast token cannot be a transcoder graph (they explain the demeaned logit): it is reported
    and skipped, the others go on; SAE-only options are refused before anything runs."""
    _, clt = engines
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "f(a [b (c", "target": ")", "contrast": "]"}\n', encoding="utf-8")
    report = ingest(read_prompts(path), None, model=clt, saes="demo-clt", dry_run=True, progress=False)
    assert report.discovered == 0 and "contrast" in report.failed[0].reason
    with pytest.raises(Exception, match="SAE-engine options"):
        ingest(read_prompts(path), None, model=clt, saes="demo-clt", dry_run=True, method="ig")
