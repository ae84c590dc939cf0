"""`scd ingest` end to end, on both stores: counts, re-ingest, resume after kill -9, concurrent runs, bad input.

Most tests use synthetic discovery (tests/synthetic.py: fast, no model); the ``demo`` tests run the real engine on
the bundled demo model and skip when its weights are missing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.core.circuit import Circuit
from scd.core.config import StoreConfig
from scd.core.errors import InputError, ModelError, StoreError
from scd.ingest.pipeline import ingest, request_key
from scd.ingest.prompts import PromptSpec, read_prompts
from scd.store import open_store
from scd.store.schema import AGGREGATES

from .neo4j_server import unavailable
from .synthetic import (
    UNKNOWN_CHAR,
    aggregate_counts,
    raw_aggregates,
    same_aggregates,
    store_snapshot,
    stored_aggregates,
    synthetic_discover,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "prompts.txt"


def prompts_file(tmp_path: Path, n: int, start: int = 0, name: str = "prompts.txt", extra: str = "") -> Path:
    lines = [f"prompt number {i} (of [many" for i in range(start, start + n)]
    p = tmp_path / name
    p.write_text("# synthetic prompts\n" + "\n".join(lines) + "\n" + extra, encoding="utf-8")
    return p


def store_args(config: StoreConfig) -> list[str]:
    return ["--neo4j", config.neo4j_uri] if config.neo4j_uri else ["--store", str(config.path)]


def counts_from_json(folder: Path) -> dict[str, int]:
    circuits = [Circuit.from_json(p) for p in sorted(folder.glob("*.json"))]
    nodes = sum(len(c.nodes) for c in circuits)
    return {
        "Feature": len({f.id for c in circuits for f in c.features}),
        "Prompt": len({c.prompt_id for c in circuits}),
        "Circuit": len(circuits),
        "Node": nodes,
        "EXPLAINS": len(circuits),
        "HAS": nodes,
        "OF": nodes,
        "FEEDS": sum(len(c.edges) for c in circuits),
    } | aggregate_counts(circuits)


def stats_or_none(config: StoreConfig):
    """The store's counts, or None when the embedded store was never created."""
    if config.kind == "embedded" and not (Path(config.path) / "graph.lbdb").exists():
        return None
    with open_store(config, read_only=True) as s:
        return s.stats()


# -- the pipeline, with synthetic discovery ----------------------------------------------------------------------
def test_ingest_counts_match_json_and_reingest_adds_nothing(store_config, tmp_path):
    specs = read_prompts(prompts_file(tmp_path, 24))
    with open_store(store_config) as store:
        report = ingest(
            specs, store, discover_fn=synthetic_discover, json_out=tmp_path / "json", progress=False
        )
        assert (report.written, report.skipped, report.failed) == (24, 0, [])
        expected = counts_from_json(tmp_path / "json")
        assert store.stats() == expected
        assert (report.nodes, report.edges) == (expected["Node"], expected["FEEDS"])
        before = store_snapshot(store)

        calls = []

        def counting(text, **kw):
            calls.append(text)
            return synthetic_discover(text, **kw)

        again = ingest(specs, store, discover_fn=counting, progress=False)
        assert (again.written, again.skipped) == (0, 24)
        assert calls == []  # finished prompts are not even recomputed
        assert store_snapshot(store) == before


def test_other_parameters_make_new_circuits(store_config, tmp_path):
    specs = read_prompts(prompts_file(tmp_path, 3))
    with open_store(store_config) as store:
        ingest(specs, store, discover_fn=synthetic_discover, progress=False, top_k=20)
        report = ingest(specs, store, discover_fn=synthetic_discover, progress=False, top_k=5)
        assert report.written == 3
        s = store.stats()
        assert (s["Prompt"], s["Circuit"]) == (3, 6)


def test_bad_prompt_is_reported_and_skipped(store_config, tmp_path):
    p = prompts_file(tmp_path, 4, extra=f"a bad {UNKNOWN_CHAR} prompt\n")
    with open_store(store_config) as store:
        report = ingest(read_prompts(p), store, discover_fn=synthetic_discover, progress=False)
        assert report.written == 4
        assert [(f.line, f.prompt) for f in report.failed] == [(6, f"a bad {UNKNOWN_CHAR} prompt")]
        assert "vocabulary lacks" in report.failed[0].reason
        assert any("failed line 6" in line for line in report.lines())


def test_fail_fast_stops_at_the_bad_prompt(store_config, tmp_path):
    p = tmp_path / "p.txt"
    p.write_text(f"first (a\nbad {UNKNOWN_CHAR}\nthird (c\n", encoding="utf-8")
    with open_store(store_config) as store:
        with pytest.raises(InputError, match="line 2: .*vocabulary lacks"):
            ingest(read_prompts(p), store, discover_fn=synthetic_discover, progress=False, fail_fast=True)
        assert store.stats()["Circuit"] == 1  # the first prompt was already complete; the third never started


@pytest.mark.parametrize("writers", [1, 2])
def test_a_write_error_stops_the_run_and_leaves_whole_circuits(store_config, tmp_path, monkeypatch, writers):
    """Circuits are written on writer threads: an error must reach the caller, nothing may hang, and what was
    written is complete; the rerun writes the rest and folds everything."""
    specs = read_prompts(prompts_file(tmp_path, 6))
    with open_store(store_config) as store:
        real, calls, lock = store.write_prepared, [], threading.Lock()

        def failing(prepared):
            with lock:
                calls.append(1)
                fail = len(calls) == 3
            if fail:
                raise StoreError("the database went away")
            return real(prepared)

        monkeypatch.setattr(store, "write_prepared", failing)
        with pytest.raises(StoreError, match="went away"):
            ingest(specs, store, discover_fn=synthetic_discover, progress=False, writers=writers)
        # no circuit starts after the error; with two writers, the other one's circuit in flight may finish
        assert 3 <= len(calls) <= 2 + writers
        written = store.stats()["Circuit"]
        assert written == len(calls) - 1
        monkeypatch.setattr(store, "write_prepared", real)
        report = ingest(specs, store, discover_fn=synthetic_discover, progress=False, writers=writers)
        assert (report.written, report.skipped) == (6 - written, written)
        assert store.pending() == 0
        assert same_aggregates(stored_aggregates(store), raw_aggregates(store))


def test_dry_run_writes_nothing(store_config, tmp_path):
    with open_store(store_config) as store:
        before = store.stats()
    report = ingest(
        read_prompts(prompts_file(tmp_path, 3)),
        None,
        dry_run=True,
        discover_fn=synthetic_discover,
        progress=False,
    )
    assert (report.discovered, report.written) == (3, 0) and report.edges > 0
    assert stats_or_none(store_config) in (before, None)
    assert "dry run" in report.lines()[0]


def test_request_key_depends_on_what_determines_the_circuit():
    base = request_key("demo", "demo", PromptSpec("f(x"), {"top_k": 20})
    assert base == request_key("demo", "demo", PromptSpec("f(x", line=7), {"top_k": 20})
    assert base != request_key("demo", "demo", PromptSpec("f(x", target=")"), {"top_k": 20})
    assert base != request_key("demo", "demo", PromptSpec("f(x"), {"top_k": 10})
    assert base != request_key("gpt2-small", "demo", PromptSpec("f(x"), {"top_k": 20})


# -- processes: kill -9 and concurrent runs ----------------------------------------------------------------------
def _child(prompts: Path, config: StoreConfig, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tests.synthetic", str(prompts), *store_args(config), *extra]


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_store(store_config, tmp_path):
    p = prompts_file(tmp_path, 10)
    sizes = ["--nodes", "200", "--edges", "1000", "--delay", "0.03"]
    with open_store(store_config) as store:  # the uninterrupted run, in this process: what the child does
        options = {"n_nodes": 200, "n_edges": 1000, "delay": 0.03}
        ingest(read_prompts(p), store, discover_fn=synthetic_discover, progress=False, **options)
        reference = store_snapshot(store)
        store.clear()

    started = time.monotonic()
    proc = subprocess.Popen(_child(p, store_config, *sizes), cwd=REPO, stdout=subprocess.PIPE, text=True)
    # wait until the store holds at least one circuit, then kill at a random moment of the rest of the run
    with open_store(store_config) as store:
        while store.stats()["Circuit"] == 0 and proc.poll() is None and time.monotonic() - started < 60:
            time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    rerun = subprocess.run(
        _child(p, store_config, *sizes), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert report["written"] + report["skipped"] == 10
    with open_store(store_config) as store:
        assert store_snapshot(store) == reference


@pytest.mark.slow
def test_concurrent_ingests_of_overlapping_files(store_config, tmp_path):
    a = prompts_file(tmp_path, 16, start=0, name="a.txt")
    b = prompts_file(tmp_path, 16, start=8, name="b.txt")
    sizes = ["--nodes", "120", "--edges", "500"]
    open_store(store_config).close()  # schema first: both children then only write
    procs = [
        subprocess.Popen(
            _child(f, store_config, *sizes),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in (a, b)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    reports = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert sum(r["written"] for r in reports) == 24  # each of the 24 distinct prompts written exactly once

    specs = read_prompts(prompts_file(tmp_path, 24, name="all.txt"))
    with open_store(store_config) as store:
        dup = store.read("MATCH (f:Feature) WITH f.id AS id, count(*) AS n WHERE n > 1 RETURN id")
        assert dup.empty
        # both runs folded (concurrently, at their ends): every circuit is in the aggregate layer exactly once
        assert store.pending() == 0
        assert same_aggregates(stored_aggregates(store), raw_aggregates(store))
        ingest(
            specs,
            None,
            dry_run=True,
            json_out=tmp_path / "json",
            discover_fn=synthetic_discover,
            progress=False,
            n_nodes=120,
            n_edges=500,
        )
        assert store.stats() == counts_from_json(tmp_path / "json")


# -- the CLI: bad input names the problem and the fix, exits non-zero and leaves the store unchanged --------------
def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


@pytest.mark.parametrize(
    "content, code, message",
    [
        (None, 2, "does not exist"),
        (b"", 2, "has no prompts (it is empty)"),
        (b"# nothing\n", 2, "has no prompts (only blank or # lines)"),
        (b"ok\n\xff\xfe bad\n", 2, "is not UTF-8 (byte 0xff on line 2)"),
    ],
)
def test_cli_bad_prompts_file(store_config, tmp_path, content, code, message):
    p = tmp_path / "prompts.txt"
    if content is not None:
        p.write_bytes(content)
    before = stats_or_none(store_config)
    result = invoke("ingest", str(p), *store_args(store_config))
    assert result.exit_code == code, result.output
    assert message in result.output and " -- " in result.output  # problem -- fix
    assert "Traceback" not in result.output
    assert stats_or_none(store_config) == before


def test_cli_unreachable_neo4j(tmp_path):
    result = invoke("ingest", str(prompts_file(tmp_path, 2)), "--neo4j", "bolt://127.0.0.1:1")
    assert result.exit_code == 1
    assert "cannot reach Neo4j at bolt://127.0.0.1:1" in result.output
    assert "neo4j-local start" in result.output


def test_cli_not_a_bolt_uri(tmp_path):
    result = invoke("store", "stats", "--neo4j", "http://localhost:7474")
    assert result.exit_code == 1 and "is not a Neo4j Bolt URI" in result.output


def test_wrong_credentials_name_the_fix(monkeypatch):
    """The mapping alone (no server): the driver's AuthError where the driver raises it."""
    import neo4j
    from neo4j.exceptions import AuthError

    class Refusing:
        def verify_connectivity(self):
            raise AuthError("The client is unauthorized due to authentication failure.")

        def close(self):
            pass

    monkeypatch.setattr(neo4j.GraphDatabase, "driver", staticmethod(lambda *a, **kw: Refusing()))
    monkeypatch.setenv("SCD_NEO4J_PASSWORD", "wrong")
    result = invoke("store", "stats", "--neo4j", "bolt://127.0.0.1:7687")
    assert result.exit_code == 1
    assert "refused the credentials of user 'neo4j'" in result.output
    assert "SCD_NEO4J_USER and SCD_NEO4J_PASSWORD" in result.output


@pytest.fixture(scope="module")
def auth_neo4j_uri(tmp_path_factory):
    """A second, throwaway Neo4j with authentication on (user neo4j, initial password neo4j, not yet changed):
    the launcher of scripts/neo4j with --auth."""
    fetch = subprocess.run(
        [str(REPO / "scripts" / "neo4j" / "neo4j-local"), "fetch"], capture_output=True, text=True
    )
    if fetch.returncode != 0:
        unavailable(f"no Neo4j harness jars: {fetch.stderr.strip()[-300:]}")
    lib = fetch.stdout.strip().splitlines()[-1]
    folder = tmp_path_factory.mktemp("neo4j-auth")
    launcher = REPO / "scripts" / "neo4j" / "Launcher.java"
    cmd = ["java", "-Xmx512m", "-XX:+UseSerialGC", "-cp", f"{lib}/*", str(launcher)]
    proc = subprocess.Popen(
        [*cmd, str(folder / "db"), "0", "--stdin", "--auth"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    uri = None
    for line in proc.stdout:
        if line.startswith("NEO4J_URI="):
            uri = line.split("=", 1)[1].strip()
            break
    if uri is None:
        proc.kill()
        unavailable("the auth-enabled Neo4j did not start")
    try:
        yield uri
    finally:
        proc.kill()  # a throwaway database: no need for the ~10 s clean shutdown
        proc.wait()
        proc.stdin.close()


@pytest.mark.slow
@pytest.mark.neo4j
@pytest.mark.parametrize(
    "password, message, fix",
    [
        ("wrong", "refused the credentials of user 'neo4j'", "SCD_NEO4J_USER and SCD_NEO4J_PASSWORD"),
        (None, "requires a login and no password was given", "set SCD_NEO4J_PASSWORD"),
        ("neo4j", "requires a new password before use", "ALTER CURRENT USER SET PASSWORD"),
    ],
)
def test_wrong_credentials_on_a_real_server(auth_neo4j_uri, tmp_path, monkeypatch, password, message, fix):
    if password is None:
        monkeypatch.delenv("SCD_NEO4J_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("SCD_NEO4J_PASSWORD", password)
    result = invoke("ingest", str(prompts_file(tmp_path, 2)), "--neo4j", auth_neo4j_uri)
    assert result.exit_code == 1, result.output
    assert message in result.output and fix in result.output and "Traceback" not in result.output


def test_cli_store_path_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for path, message in ((blocker, "is a file, not a folder"), (blocker / "store", "is not writable")):
        result = invoke("ingest", str(prompts_file(tmp_path, 2)), "--store", str(path))
        assert result.exit_code == 1, result.output
        assert message in result.output and "--store PATH" in result.output
    assert blocker.read_text() == "x"


def test_cli_unknown_model(store_config, tmp_path):
    result = invoke(
        "ingest", str(prompts_file(tmp_path, 2)), "--model", "no-such-model", *store_args(store_config)
    )
    assert result.exit_code == 1, result.output
    assert "no-such-model" in result.output and " -- " in result.output and "Traceback" not in result.output
    after = stats_or_none(store_config)
    assert after is None or not any(after.values())


def test_store_stats_and_clear(store_config, tmp_path):
    with open_store(store_config) as store:
        ingest(read_prompts(prompts_file(tmp_path, 2)), store, discover_fn=synthetic_discover, progress=False)
        counts = store.stats()
    result = invoke("store", "stats", "--format", "json", *store_args(store_config))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {r["name"]: r["count"] for r in doc["counts"]} == counts and doc["pending_fold"] == 0
    result = invoke("store", "stats", "--format", "csv", *store_args(store_config))
    lines = result.output.splitlines()
    assert lines[0].startswith("# store: ") and "kind,name,count" in lines
    assert f"label,Circuit,{counts['Circuit']}" in lines
    result = invoke("store", "stats", *store_args(store_config))
    assert "Circuit" in result.output and "FEEDS" in result.output

    result = invoke("store", "clear", *store_args(store_config))
    assert result.exit_code == 2 and "without --yes" in result.output
    with open_store(store_config, read_only=True) as store:
        assert store.stats() == counts
    result = invoke("store", "clear", "--yes", *store_args(store_config))
    assert result.exit_code == 0 and "Cleared" in result.output
    with open_store(store_config, read_only=True) as store:
        assert set(store.stats().values()) == {0}


def test_store_stats_on_a_missing_embedded_store(tmp_path):
    result = invoke("store", "stats", "--store", str(tmp_path / "nothing-here"))
    assert result.exit_code == 1 and "no embedded store at" in result.output
    assert not (tmp_path / "nothing-here").exists()


# -- the real engine on the demo model ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def demo_available():
    from scd.models.bundle import load_bundle

    try:
        load_bundle("demo")
    except ModelError as e:
        pytest.skip(f"demo model not available: {e}")


def demo_prompts(tmp_path: Path, n: int = 20) -> Path:
    lines = [ln for ln in EXAMPLES.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    assert len(lines) >= n
    p = tmp_path / "demo.txt"
    p.write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    return p


@pytest.mark.slow
def test_cli_demo_ingest(demo_available, store_config, tmp_path):
    p = demo_prompts(tmp_path, 20)
    args = [
        "ingest",
        str(p),
        "--top-k",
        "4",
        "--no-progress",
        "--json-out",
        str(tmp_path / "json"),
        *store_args(store_config),
    ]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "20 circuits written, 0 skipped (already stored), 0 failed -- of 20 prompts" in result.output
    with open_store(store_config, read_only=True) as store:
        assert store.stats() == counts_from_json(tmp_path / "json")
        before = store_snapshot(store)
    result = invoke(*args[:-2], "--format", "json", *args[-2:])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # stdout holds the JSON alone
    assert (summary["written"], summary["skipped"], summary["discovered"]) == (0, 20, 0)
    with open_store(store_config, read_only=True) as store:
        assert store_snapshot(store) == before


@pytest.mark.parametrize(
    "line, message",
    [
        ("f(" + "a" * 2000, "tokens; model demo reads at most"),
        ("caf\u00e9 (x", "vocabulary"),
        ("f(x\t))", "target '))'"),
    ],
)
def test_cli_demo_bad_prompts(demo_available, store_config, tmp_path, line, message):
    p = tmp_path / "p.txt"
    p.write_text(f"f(x\n{line}\n", encoding="utf-8")
    result = invoke("ingest", str(p), "--top-k", "3", "--no-progress", *store_args(store_config))
    assert result.exit_code == 3, result.output  # the good prompt went on; the run says some failed
    assert "1 circuit written" in result.stdout and "1 failed" in result.stdout
    assert "failed line 2" in result.stderr and message in result.stderr  # errors on stderr
    assert "failed line 2" not in result.stdout
    result = invoke(
        "ingest", str(p), "--top-k", "3", "--no-progress", "--allow-failures", *store_args(store_config)
    )
    assert result.exit_code == 0, result.output
    assert "0 circuits written, 1 skipped" in result.stdout and "failed line 2" in result.stderr
    before = stats_or_none(store_config)
    result = invoke(
        "ingest", str(p), "--top-k", "3", "--no-progress", "--fail-fast", *store_args(store_config)
    )
    assert result.exit_code == 2 and "line 2" in result.output and message in result.output
    assert stats_or_none(store_config) == before


def test_cli_demo_unknown_or_misfit_saes(demo_available, store_config, tmp_path):
    from scd.models.bundle import load_bundle

    from .tiny_hf import save_sae

    d_model = load_bundle("demo").model.cfg.d_model
    wide = save_sae(tmp_path / "too-wide", "blocks.0.hook_resid_pre", d_in=d_model + 3)
    p = demo_prompts(tmp_path, 2)
    for saes, message in (("no-such-preset", "neither an SAE preset"), (str(wide), "does not fit model")):
        result = invoke("ingest", str(p), "--saes", saes, *store_args(store_config))
        assert result.exit_code == 1, result.output
        assert message in result.output and " -- " in result.output and "Traceback" not in result.output
        after = stats_or_none(store_config)
        assert after is None or not any(after.values())


def test_cli_demo_zero_gradient(demo_available, store_config, tmp_path, monkeypatch):
    """A prompt whose metric has zero gradient (forced here as in test_discovery) is reported, nothing written."""
    import torch

    import scd.discovery.attribution as attribution

    real = attribution.attribute_batch

    def flat(*args, **kwargs):
        graphs = real(*args, **kwargs)
        for graph in graphs:
            logit = torch.tensor([n.kind == "logit" for n in graph.nodes])
            graph.attributions = torch.where(logit, graph.attributions, 0.0)
        return graphs

    monkeypatch.setattr(attribution, "attribute_batch", flat)
    before = stats_or_none(store_config)
    result = invoke(
        "ingest", str(demo_prompts(tmp_path, 2)), "--top-k", "3", "--no-progress", *store_args(store_config)
    )
    assert result.exit_code == 3, result.output  # prompts failed
    assert "0 circuits written" in result.output and "2 failed" in result.output
    assert "gradient is zero" in result.output and "Traceback" not in result.output
    after = stats_or_none(store_config)
    assert after == before or not any(after.values())


def test_cli_prompts_path_is_a_folder(tmp_path):
    result = invoke("ingest", str(tmp_path), "--store", str(tmp_path / "store"))
    assert result.exit_code == 2 and "is a folder" in result.output
    assert not (tmp_path / "store").exists()


def test_no_fold_leaves_circuits_pending_for_a_later_fold(store_config, tmp_path):
    """``fold=False`` (scd ingest --no-fold): nothing in the aggregate layer yet, the summary says how to fold,
    and a later fold gives the same layer as folding right away."""
    specs = read_prompts(prompts_file(tmp_path, 5))
    with open_store(store_config) as store:
        report = ingest(specs, store, discover_fn=synthetic_discover, progress=False, fold=False)
        assert report.written == 5 and report.fold.circuits == 0
        assert report.pending == store.pending() == 5
        assert any("scd store fold" in line for line in report.lines())
        assert all(store.stats()[rel] == 0 for rel in AGGREGATES)
        store.fold()
        assert store.pending() == 0
        assert same_aggregates(stored_aggregates(store), raw_aggregates(store))
