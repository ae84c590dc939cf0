"""`scd ingest --shard I/N`: N workers, each a fixed 1/N of the prompts, fill one store exactly as one process does."""

import json
import random
import subprocess

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.core.errors import InputError
from scd.ingest.pipeline import ingest
from scd.ingest.prompts import PromptSpec, parse_shard, read_prompts, select_shard, shard_of
from scd.queries import runner
from scd.store import open_store

from .conftest import _clear_neo4j
from .synthetic import synthetic_discover
from .test_ingest import REPO, _child, prompts_file
from .test_queries import BIG, _cases, assert_same_result

SIZES = {"n_nodes": 120, "n_edges": 500}


def test_shards_partition_the_prompts_whatever_their_order():
    specs = [PromptSpec(f"prompt {i} (", target=")" if i % 3 == 0 else None) for i in range(200)]
    shards = [select_shard(specs, i, 4) for i in range(4)]
    assert sorted(s.key for shard in shards for s in shard) == sorted(s.key for s in specs), (
        "each prompt once"
    )
    assert all(30 <= len(shard) <= 70 for shard in shards), [len(s) for s in shards]  # roughly 1/4 each
    shuffled = specs[:]
    random.Random(0).shuffle(shuffled)
    for i in range(4):
        assert {s.key for s in select_shard(shuffled, i, 4)} == {s.key for s in shards[i]}
    # a prompt's shard depends on what it asks, not on its line
    assert shard_of(PromptSpec("x (", line=3), 7) == shard_of(PromptSpec("x (", line=90), 7)
    assert select_shard(specs, 0, 1) == specs


@pytest.mark.parametrize("value", ["4/4", "1", "a/b", "-1/3", "0/0", ""])
def test_bad_shard_is_one_clear_line(value):
    with pytest.raises(InputError, match="is not I/N with 0 <= I < N"):
        parse_shard(value)
    assert parse_shard(" 3/ 8") == (3, 8)


def test_cli_rejects_a_bad_shard_before_touching_the_store(tmp_path):
    store = tmp_path / "store"
    p = prompts_file(tmp_path, 3)
    result = CliRunner().invoke(main, ["ingest", str(p), "--store", str(store), "--shard", "5/4"])
    assert result.exit_code == 2 and "--shard '5/4' is not I/N" in result.output
    assert not store.exists()


def _everything(store_config, circuits):
    """What a user sees of a store: `scd store stats` and every named query's rows (the differential cases)."""
    stats = CliRunner().invoke(
        main, ["store", "stats", "--neo4j", store_config.neo4j_uri, "--format", "json"]
    )
    assert stats.exit_code == 0, stats.output
    with open_store(store_config) as store:
        assert store.pending() == 0
        rows = {}
        for k, (name, params, _) in enumerate(_cases(circuits)):
            if "limit" in [p.name for p in runner.get_query(name).params]:
                params = {"limit": BIG} | params
            rows[k] = runner.run(store, name, params)
    return stats.stdout, rows


@pytest.mark.neo4j
@pytest.mark.slow
@pytest.mark.parametrize("fold", ["once at the end", "concurrently"])
def test_four_concurrent_shards_make_the_store_of_one_process(neo4j_config, tmp_path, fold):
    p = prompts_file(tmp_path, 24)
    specs = read_prompts(p)
    circuits = [synthetic_discover(s.text, target=s.target, contrast=s.contrast, **SIZES) for s in specs]

    with open_store(neo4j_config) as store:  # the reference: one process, every prompt
        ingest(specs, store, discover_fn=synthetic_discover, progress=False, **SIZES)
    stats, rows = _everything(neo4j_config, circuits)
    _clear_neo4j(neo4j_config)

    extra = ["--nodes", "120", "--edges", "500"] + (["--no-fold"] if fold == "once at the end" else [])
    procs = [
        subprocess.Popen(
            _child(p, neo4j_config, *extra, "--shard", f"{i}/4"),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [o[1][-2000:] for o in outs]
    reports = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert sum(r["total"] for r in reports) == sum(r["written"] for r in reports) == 24, (
        "the shards split the prompts: each written by exactly one worker, none skipped as another's"
    )
    if fold == "once at the end":
        with open_store(neo4j_config) as store:
            assert store.pending() == 24, "--no-fold left every circuit for the one fold"
        folded = CliRunner().invoke(main, ["store", "fold", "--neo4j", neo4j_config.neo4j_uri])
        assert folded.exit_code == 0, folded.output

    sharded_stats, sharded_rows = _everything(neo4j_config, circuits)
    assert sharded_stats == stats
    for k, (name, params, order_by) in enumerate(_cases(circuits)):
        try:
            assert_same_result(sharded_rows[k], rows[k], order_by)
        except AssertionError as e:
            raise AssertionError(f"{name} {params}: {e}") from e
    assert sum(not df.empty for df in rows.values()) >= len(rows) - 2, "the comparison is not vacuous"


def test_cli_shard_ingests_its_share_of_the_file(tmp_path):
    p = tmp_path / "prompts.txt"
    p.write_text("".join(f"f(a{'[' * (i % 3)} (b{i % 10}\n" for i in range(12)), encoding="utf-8")
    specs = read_prompts(p)
    done = []
    for i in range(3):
        args = ["ingest", str(p), "--model", "demo", "--dry-run", "--shard", f"{i}/3", "--top-k", "3"]
        result = CliRunner().invoke(main, [*args, "--json-out", str(tmp_path / "json"), "--format", "json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["total"] == report["discovered"] == len(select_shard(specs, i, 3))
        done.append(report["total"])
    assert sum(done) == len(specs) == len(list((tmp_path / "json").glob("*.json")))
