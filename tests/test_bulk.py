"""The bulk path (scd.store.bulk): `scd export-csv` and `scd ingest --csv-out` write neo4j-admin import CSVs, and
`neo4j-admin database import full` makes of them a database that answers like the ingested one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.core.config import StoreConfig
from scd.ingest.pipeline import ingest
from scd.ingest.prompts import read_prompts
from scd.store import aggregates, open_store
from scd.store.bulk import FILES, CsvStore, header
from scd.store.schema import LABELS, RELATIONSHIPS, tables

from .neo4j_server import Unavailable, harness_lib, local_server, unavailable
from .synthetic import (
    expected_aggregates,
    raw_aggregates,
    same_aggregates,
    store_snapshot,
    stored_aggregates,
    synthetic_circuits,
    synthetic_discover,
)
from .test_ingest import prompts_file
from .test_queries import _cases, assert_same_result
from .test_shards import SIZES, _everything

# reading whole graphs back (store_snapshot) on a shared 2-core machine can take minutes under load
SNAPSHOT_TIMEOUT_S = 900.0


def _lines(folder: Path) -> dict[str, list[str]]:
    """Each file's header and its sorted rows (the two writers emit rows in different orders)."""
    out = {}
    for path in FILES:
        head, *rows = (folder / path).read_text(encoding="utf-8").split("\n")[:-1]
        out[path] = [head, *sorted(rows)]
    return out


def _csv_out(circuits, out: Path, fold_every: int | None = None) -> CsvStore:
    store = CsvStore(out)
    for i, c in enumerate(circuits):
        assert store.write_circuit(c)
        if fold_every and i % fold_every == fold_every - 1:
            store.fold()
    store.fold()
    return store


def test_headers_are_the_schema_typed_for_neo4j_admin():
    assert header("Feature")[0] == "id:ID(Feature)" and header("Feature")[-1] == ":LABEL"
    assert "layer:long" in header("Feature") and "top_promoted:string[]" in header("Feature")
    assert header("FEEDS") == [":START_ID(Node)", ":END_ID(Node)", "weight:double", "share:double", ":TYPE"]
    assert header("TOKEN_FEEDS")[:2] == [":START_ID(Token)", ":END_ID(Feature)"]
    assert "example_weight_1:double" in header("FEEDS_TOKEN")
    # every property of every table, and no other (derived from the schema, not a list of its own)
    for name in (*LABELS, *RELATIONSHIPS):
        props = [
            h.split(":")[0] for h in header(name) if not h.startswith(":") and "scd_empty_lists" not in h
        ]
        assert props == [p for p, _ in tables()[name][1]]


def test_csv_out_layer_is_the_fold_of_the_circuits(tmp_path):
    circuits = synthetic_circuits(9, n_nodes=60, n_edges=300)
    with _csv_out(circuits, tmp_path / "one") as once, _csv_out(circuits[::-1], tmp_path / "many", 2) as many:
        assert once.pending() == many.pending() == 0
        # an independent aggregation of the circuits' edges
        got = {
            rel: {k: tuple(r[x] for x in ("circuits", "n_edges", "weight_sum", "abs_weight_sum", "example",
                                          "effect_sum", "effect_circuits"))
                  for k, r in once.layer[rel].items()}
            for rel in aggregates.AGGREGATES
        }  # fmt: skip
        assert same_aggregates(got, expected_aggregates(circuits))
        # one fold or many, in any order: the same layer to the last bit, examples included
        assert many.layer == once.layer
    assert (
        _lines(tmp_path / "one")["relationships/FEEDS_TOKEN.csv"]
        == _lines(tmp_path / "many")["relationships/FEEDS_TOKEN.csv"]
    )


def test_export_of_an_embedded_store_equals_csv_out(tmp_path):
    circuits = synthetic_circuits(6, n_nodes=60, n_edges=300)
    config = StoreConfig.resolve(store=tmp_path / "store")
    with open_store(config) as store:
        for c in circuits:
            store.write_circuit(c)
        store.fold()
    result = CliRunner().invoke(main, ["export-csv", str(tmp_path / "export"), "--store", str(config.path)])
    assert result.exit_code == 0, result.output
    with _csv_out(circuits, tmp_path / "direct"):
        pass
    exported, direct = _lines(tmp_path / "export"), _lines(tmp_path / "direct")
    assert exported == direct
    # error terms have no promoted tokens: their empty lists are marked for the import (none of the others)
    features = exported["nodes/Feature.csv"][1:]
    marked = [row for row in features if row.endswith("\x1fScdEmptyLists")]
    empty = {f.id for c in circuits for f in c.features if len(f.top_promoted) == 0}
    assert len(marked) == len(empty) > 0
    assert all(
        '"top_promoted\x1ftop_promoted_logits\x1ftop_suppressed\x1ftop_suppressed_logits"' in r
        for r in marked
    )
    assert len(exported["relationships/FEEDS.csv"]) == 1 + sum(len(c.edges) for c in circuits)


def test_refuses_a_non_empty_dir_and_leaves_it_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["export-csv", str(out), "--store", str(store)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert f"{out} is not empty" in result.output and "--force" in result.output
    p = prompts_file(tmp_path, 2)
    result = CliRunner().invoke(main, ["ingest", str(p), "--csv-out", str(out), "--no-progress"])
    assert result.exit_code == 1 and "is not empty" in result.output
    assert [f.name for f in out.iterdir()] == ["mine.txt"] and not store.exists()
    assert [f.name for f in tmp_path.iterdir() if "partial" in f.name] == []


def test_csv_out_refuses_database_options(tmp_path):
    p = prompts_file(tmp_path, 2)
    result = CliRunner().invoke(
        main, ["ingest", str(p), "--csv-out", str(tmp_path / "o"), "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 2 and "--csv-out writes no database and takes no --store" in result.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_a_failed_csv_out_leaves_no_files(tmp_path):
    store = CsvStore(tmp_path / "out")
    store.write_circuit(synthetic_circuits(1)[0])
    store.abandon()
    assert list(tmp_path.iterdir()) == []


# -- neo4j-admin import into a fresh database ---------------------------------------------------------------------
def _import(folder: Path, db: Path, lib: Path) -> None:
    """``folder/import.sh`` with neo4j-admin from the harness's jars (the same code as the neo4j-admin script),
    into ``db/data`` -- where the harness server then finds the database."""
    home = db / "home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "neo4j.conf").write_text(f"server.directories.data={db / 'data'}\n")
    admin = db / "neo4j-admin"
    admin.write_text(f'#!/bin/sh\nexec java -Xmx512m -cp "{lib}/*" org.neo4j.cli.AdminTool "$@"\n')
    admin.chmod(0o755)
    env = os.environ | {"NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf"), "NEO4J_ADMIN": str(admin)}
    done = subprocess.run(
        [
            str(folder / "import.sh"),
            "--report-file",
            str(db / "import.report"),
            "--max-off-heap-memory=512m",
            "neo4j",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "IMPORT DONE" in done.stdout, (done.stdout + done.stderr)[-3000:]


def _counts(stats: str) -> dict:
    """`scd store stats --format json` without the line naming the server (the import runs on another)."""
    return {k: v for k, v in json.loads(stats).items() if k != "store"}


def _imported(folder: Path, db: Path, lib: Path, circuits):
    """Import ``folder`` into ``db``, serve it, and read what a user sees of it plus the whole graph."""
    _import(folder, db, lib)
    with local_server(db) as uri:
        config = StoreConfig.resolve(neo4j=uri)
        with open_store(config) as store:  # opened for writing once: creates scd's constraints and indexes
            store.read_timeout = SNAPSHOT_TIMEOUT_S
            assert store.pending() == 0
            snapshot = store_snapshot(store)
            assert same_aggregates(stored_aggregates(store), raw_aggregates(store)), (
                "the imported aggregate layer is the aggregation of the imported FEEDS edges"
            )
        stats, rows = _everything(config, circuits)
    return stats, rows, snapshot


@pytest.mark.neo4j
@pytest.mark.slow
def test_import_answers_every_query_like_the_ingested_store(neo4j_config, tmp_path):
    try:
        lib = harness_lib()
    except Unavailable as e:
        unavailable(f"NO NEO4J-ADMIN: {e}")
    p = prompts_file(tmp_path, 10)
    specs = read_prompts(p)
    circuits = [synthetic_discover(s.text, target=s.target, contrast=s.contrast, **SIZES) for s in specs]
    with open_store(neo4j_config) as store:  # the reference: a normal ingest
        ingest(specs, store, discover_fn=synthetic_discover, progress=False, **SIZES)
        store.read_timeout = SNAPSHOT_TIMEOUT_S
        snapshot = store_snapshot(store)
    stats, rows = _everything(neo4j_config, circuits)

    exported = CliRunner().invoke(
        main, ["export-csv", str(tmp_path / "export"), "--neo4j", neo4j_config.neo4j_uri]
    )
    assert exported.exit_code == 0, exported.output
    csv_out = CsvStore(tmp_path / "csv-out")  # `scd ingest --csv-out`: the same prompts, no database
    with csv_out:
        ingest(specs, csv_out, discover_fn=synthetic_discover, progress=False, **SIZES)

    for name in ("export", "csv-out"):
        got_stats, got_rows, got_snapshot = _imported(tmp_path / name, tmp_path / f"db-{name}", lib, circuits)
        assert _counts(got_stats) == _counts(stats), name
        for k, (query, params, order_by) in enumerate(_cases(circuits)):
            try:
                assert_same_result(got_rows[k], rows[k], order_by)
            except AssertionError as e:
                raise AssertionError(f"{name}: {query} {params}: {e}") from e
        assert got_snapshot == snapshot, f"{name}: the imported graph differs from the ingested one"
    assert sum(not df.empty for df in rows.values()) >= len(rows) - 2, "the comparison is not vacuous"
