"""Neuronpedia / circuit-tracer graph JSON: export -> import -> export round trip, a foreign (scd-free) file, and
malformed files refused in one line with the store left as it was."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.core.errors import InputError
from scd.core.neuronpedia import cumulative_influence, from_graph_json, to_graph_json, total_effects
from tests.synthetic import synthetic_circuit


@pytest.fixture
def circuit():
    return synthetic_circuit(3, n_nodes=40, n_edges=120)


def test_round_trip_preserves_everything(circuit):
    doc = to_graph_json(circuit)
    back = from_graph_json(json.loads(json.dumps(doc)))
    assert back.to_dict() == circuit.to_dict()
    assert to_graph_json(back) == doc
    # the viewer's own fields: one node per scd node, one link per edge, weights unchanged
    assert len(doc["nodes"]) == len(circuit.nodes) and len({n["node_id"] for n in doc["nodes"]}) == len(
        doc["nodes"]
    )
    assert sorted(lk["weight"] for lk in doc["links"]) == sorted(e.weight for e in circuit.edges)
    types = {n["feature_type"] for n in doc["nodes"]}
    assert {"embedding", "logit"} <= types and any(t.endswith("sae latent") for t in types)


def _foreign(doc):
    """The same document as a non-scd tool would write it: no scd fields."""
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("scd")
    for n in doc["nodes"]:
        n.pop("scd")
    return doc


def test_foreign_graph_imports_nodes_links_weights(circuit):
    doc = _foreign(to_graph_json(circuit))
    c = from_graph_json(doc, model="m", sae_set="s")
    assert len(c.nodes) == len(doc["nodes"]) and len(c.edges) == len(doc["links"])
    again = to_graph_json(c)
    # export -> import -> export keeps node ids, types, positions, activations, links and weights
    assert sorted((lk["source"], lk["target"], lk["weight"]) for lk in again["links"]) == sorted(
        (lk["source"], lk["target"], lk["weight"]) for lk in doc["links"]
    )

    def nodes(d):
        return sorted((n["node_id"], n["layer"], n["ctx_idx"], n["activation"]) for n in d["nodes"])

    assert nodes(again) == nodes(doc)
    assert sum(n.kind == "logit" for n in c.nodes) == 1 and c.prompt.target_id == circuit.prompt.target_id


def test_total_effects_and_influence_against_matrix_powers():
    """Path sums along links against an explicit (I - A)^-1, computed with numpy."""
    np = pytest.importorskip("numpy")
    ids = ["e", "f", "g", "l"]
    links = [
        ("e", "f", 2.0),
        ("e", "g", -1.0),
        ("f", "g", 0.5),
        ("f", "l", 3.0),
        ("g", "l", -2.0),
        ("e", "l", 1),
    ]
    a = np.zeros((4, 4))
    for s, t, w in links:
        a[ids.index(t), ids.index(s)] = w
    total = np.linalg.solve(np.eye(4) - a.T, a[3])  # e_l (A + A^2 + ...)
    got = total_effects(ids, links, "l")
    assert [got[i] for i in ids] == pytest.approx(list(total))
    norm = np.abs(a) / np.maximum(np.abs(a).sum(1, keepdims=True), 1e-10)
    infl = np.linalg.solve(np.eye(4) - norm.T, norm[3])
    order = np.argsort(-infl)
    cum = np.cumsum(infl[order]) / infl.sum()
    want = {ids[k]: cum[r] for r, k in enumerate(order)}
    assert cumulative_influence(ids, links, {"l": 1.0}) == pytest.approx(want)


# -- malformed files: one clear error each, nothing written ------------------------------------------------------


def _malformed(doc):
    d = _foreign(doc)
    cases = {}
    x = copy.deepcopy(d)
    del x["links"]
    cases["missing links"] = (x, r"\$\.links: missing")
    x = copy.deepcopy(d)
    del x["nodes"][2]["ctx_idx"]
    cases["missing field"] = (x, r"\$\.nodes\[2\]\.ctx_idx: missing")
    x = copy.deepcopy(d)
    x["nodes"][1]["ctx_idx"] = "3"
    cases["wrong type"] = (x, r"\$\.nodes\[1\]\.ctx_idx: expected int, got str")
    x = copy.deepcopy(d)
    x["links"][0]["weight"] = "big"
    cases["wrong weight type"] = (x, r"\$\.links\[0\]\.weight: expected int/float")
    x = copy.deepcopy(d)
    x["nodes"][3]["node_id"] = x["nodes"][0]["node_id"]
    cases["duplicate id"] = (x, r"duplicate node id")
    x = copy.deepcopy(d)
    x["links"][1]["target"] = "99_99_99"
    cases["unknown node"] = (x, r"links to unknown node '99_99_99'")
    cases["not an object"] = ([1, 2], r"expected an object")
    # a file scd wrote whose scd fields were damaged: still one line at the field's path
    x = copy.deepcopy(doc)
    x["nodes"][3]["scd"]["attribution"] = "big"
    cases["scd attribution"] = (x, r"\$\.nodes\[3\]\.scd\.attribution: expected int/float, got str")
    x = copy.deepcopy(doc)
    x["metadata"]["scd"]["features"] = [{"id": 1}]
    cases["scd features"] = (x, r"\$\.metadata\.scd\.features\[0\]\.id: expected str, got int")
    x = copy.deepcopy(doc)
    x["nodes"][4]["activation"] = None
    cases["null activation"] = (x, r"\$\.nodes\[4\]\.activation: null")
    return cases


def test_malformed_files_raise_one_input_error(circuit):
    for name, (doc, pattern) in _malformed(to_graph_json(circuit)).items():
        with pytest.raises(InputError, match=pattern):
            from_graph_json(doc)
        assert name


@pytest.mark.parametrize(
    "case",
    [
        "missing links",
        "missing field",
        "wrong type",
        "duplicate id",
        "unknown node",
        "not an object",
        "scd attribution",
        "scd features",
        "null activation",
    ],
)
def test_import_cli_refuses_malformed_and_leaves_store_unchanged(circuit, tmp_path, embedded_config, case):
    runner = CliRunner()
    store = str(embedded_config.path)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(to_graph_json(circuit)))
    assert runner.invoke(main, ["import", str(good), "--store", store]).exit_code == 0
    before = runner.invoke(main, ["store", "stats", "--format", "json", "--store", store]).output
    doc, _ = _malformed(to_graph_json(circuit))[case]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    result = runner.invoke(main, ["import", str(bad), "--store", store])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: malformed graph JSON"), result.output
    assert runner.invoke(main, ["store", "stats", "--format", "json", "--store", store]).output == before


def test_cli_export_import_export_round_trip(circuit, tmp_path, embedded_config):
    """Through the store: import a file, export the stored circuit by id, and the graph is the same."""
    runner = CliRunner()
    store = str(embedded_config.path)
    src = tmp_path / "c.json"
    circuit.to_json(src)
    first = tmp_path / "first.json"
    r = runner.invoke(main, ["export", str(src), "--format", "neuronpedia", "-o", str(first)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["import", str(first), "--store", store])
    assert r.exit_code == 0, r.output
    second = tmp_path / "second.json"
    r = runner.invoke(main, ["export", circuit.id, "-o", str(second), "--store", store])
    assert r.exit_code == 0, r.output
    a, b = json.loads(first.read_text()), json.loads(second.read_text())

    def links(doc):
        return sorted((lk["source"], lk["target"], lk["weight"]) for lk in doc["links"])

    def nodes(doc):
        return sorted(
            (n["node_id"], n["feature_type"], n["layer"], n["ctx_idx"], n["activation"]) for n in doc["nodes"]
        )

    assert links(a) == links(b)
    assert nodes(a) == nodes(b)


# -- through a store (both backends): the circuit comes back whole, and the exported file is strict JSON ----------


def _store_args(config):
    return ["--neo4j", config.neo4j_uri] if config.neo4j_uri else ["--store", str(config.path)]


def _stored_circuit():
    """A circuit with everything a discovered one carries: SAE map, labelled and unlabelled features, every score
    with the ablation that made them, an explicit target and a contrast."""
    c = synthetic_circuit(
        5, n_nodes=40, n_edges=120, target="q", params={"contrast": "z", "metric": "logit_diff"}
    )
    c.prompt.contrast = "z"
    latents = [f for f in c.features if f.kind not in ("token", "logit", "error")]
    for k, f in enumerate(latents[::2]):
        f.label = f"opens a bracket #{k}"
    c.scores = {
        "faithfulness": 0.61,
        "completeness": 0.25,
        "m_model": -0.7,
        "m_empty": -3.2,
        "m_circuit": -1.675,
        "m_complement": -1.075,
        "ablation": "mean/circuit",
        "reference": "demo held-out text",
    }
    return c


def _sorted_dict(c):
    d = c.to_dict()
    for k in ("nodes", "edges", "features"):
        d[k] = sorted(d[k], key=lambda x: json.dumps(x, sort_keys=True))
    return d


def _strict(text):
    """json.loads that refuses NaN / Infinity, as the viewer's JSON.parse does."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_store_read_back_is_the_written_circuit(store_config):
    """Every field of Circuit.to_dict comes back from the store, so the id (a hash of prompt, SAE map and params)
    is the same; unset labels come back None, not pandas' NaN."""
    from scd.store import open_store
    from scd.store.readback import read_circuit

    c = _stored_circuit()
    with open_store(store_config) as s:
        assert s.write_circuit(c)
    with open_store(store_config, read_only=True) as s:
        back = read_circuit(s, c.id)
    labels = [f.label for f in back.features]
    assert None in labels and all(x is None or isinstance(x, str) for x in labels)
    assert back.id == c.id
    assert _sorted_dict(back) == _sorted_dict(c)


def test_store_export_import_is_idempotent_and_strict_json(store_config, tmp_path, embedded_config):
    """store -> export -> import into the same store (skipped: same id) and into a fresh one (same circuit) ->
    export again: the same file. The file is strict JSON (no NaN: the viewer's JSON.parse and scd import read it),
    with "" as the clerp of unlabelled nodes."""
    from scd.store import open_store
    from scd.store.readback import read_circuit

    runner = CliRunner()
    c = _stored_circuit()
    with open_store(store_config) as s:
        assert s.write_circuit(c)
    args = _store_args(store_config)
    first = tmp_path / "first.json"
    r = runner.invoke(main, ["export", c.id, "-o", str(first), *args])
    assert r.exit_code == 0, r.output
    doc = _strict(first.read_text())
    assert f"circuit {c.id}" in r.output
    assert doc["metadata"]["scd"]["id"] == c.id
    clerps = {n["clerp"] for n in doc["nodes"] if n["feature_type"].endswith("sae latent")}
    assert "" in clerps and any(x.startswith("opens a bracket") for x in clerps)
    before = runner.invoke(main, ["store", "stats", "--format", "json", *args]).output
    r = runner.invoke(main, ["import", str(first), *args])
    assert r.exit_code == 0 and r.output.startswith(f"already in the store: circuit {c.id}"), r.output
    assert runner.invoke(main, ["store", "stats", "--format", "json", *args]).output == before
    if store_config.neo4j_uri:  # and into the other backend
        fresh = embedded_config
        r = runner.invoke(main, ["import", str(first), "--store", str(fresh.path)])
        assert r.exit_code == 0 and f"stored circuit {c.id}" in r.output, r.output
        with open_store(fresh, read_only=True) as s:
            assert _sorted_dict(read_circuit(s, c.id)) == _sorted_dict(c)
    second = tmp_path / "second.json"
    r = runner.invoke(main, ["export", c.id, "-o", str(second), *args])
    assert r.exit_code == 0, r.output
    assert _strict(second.read_text()) == doc
    back = from_graph_json(doc)
    assert back.id == c.id and back.params == c.params and back.scores == c.scores and back.saes == c.saes


def test_export_to_a_missing_folder_is_one_line(circuit, tmp_path):
    src = tmp_path / "c.json"
    circuit.to_json(src)
    r = CliRunner().invoke(main, ["export", str(src), "-o", str(tmp_path / "no" / "such" / "x.json")])
    assert r.exit_code != 0 and isinstance(r.exception, SystemExit), r.exception
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write") and "does not exist" in lines[0]


def test_export_of_a_graph_json_says_import_it_first(circuit, tmp_path):
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps(to_graph_json(circuit)))
    r = CliRunner().invoke(main, ["export", str(graph), "-o", str(tmp_path / "x.json")])
    assert r.exit_code != 0 and isinstance(r.exception, SystemExit), r.exception
    assert "graph JSON, not an scd circuit" in r.output and "scd import" in r.output
    assert "schema_version" not in r.output and not (tmp_path / "x.json").exists()


def test_serve_with_a_relative_data_dir(circuit, tmp_path):
    """`scd serve` with a relative --data-dir (circuit-tracer's add_graph_metadata asserts an absolute one): the
    real server starts and serves the graph as strict JSON."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("circuit_tracer")
    src = tmp_path / "c.json"
    circuit.to_json(src)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = "import sys; from scd.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "serve", "c.json", "--data-dir", "srv", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        graph = tmp_path / "srv" / f"{circuit.id}.json"
        deadline = time.monotonic() + 60
        text = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/graph_data/{circuit.id}.json") as r:
                    text = r.read().decode("utf-8")
                break
            except OSError:
                time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert text is not None and graph.is_file()
        assert _strict(text)["metadata"]["slug"] == circuit.id
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_foreign_import_is_tagged_imported_and_summary_names_its_ablation(circuit, embedded_config):
    """A foreign graph was chosen by its maker (e.g. circuit-tracer's pruning): its Circuit's selection is
    "imported", not "top-k". And the summary names the ablation the scores were measured with."""
    from scd.report.summary import summarize
    from scd.store import open_store

    c = from_graph_json(_foreign(to_graph_json(circuit)), model="m", sae_set="s")
    with open_store(embedded_config) as s:
        assert s.write_circuit(c)
    with open_store(embedded_config, read_only=True) as s:
        df = s.read("MATCH (c:Circuit {id: $id}) RETURN c.selection AS selection", {"id": c.id})
    assert list(df["selection"]) == ["imported"]
    circuit.params["metric"] = "log_prob"  # a metric scd knows (the synthetic circuit's "ce" is a stand-in)
    circuit.scores = {"faithfulness": 0.5, "completeness": 0.4, "ablation": "mean/keep"}
    text = summarize(circuit)
    assert "mean ablation, error terms kept at their clean values" in text
    assert "circuit members" not in text


def test_read_back_from_an_embedded_store_made_before_the_extra_columns(embedded_config):
    """A store last written by an older scd has no saes / scores / token_ids columns: read-only export still
    works, with what the older store kept (same nodes and edges; scores from their columns)."""
    import ladybug

    from scd.store import open_store
    from scd.store.readback import read_circuit

    c = _stored_circuit()
    with open_store(embedded_config) as s:
        assert s.write_circuit(c)
        path = s.db_path
    db = ladybug.Database(str(path))
    conn = ladybug.Connection(db)
    for table, column in [("Circuit", "saes"), ("Circuit", "scores"), ("Circuit", "target_source"),
                          ("Prompt", "token_ids"), ("Prompt", "target_id")]:  # fmt: skip
        conn.execute(f"ALTER TABLE {table} DROP {column}")
    conn.close()
    db.close()
    with open_store(embedded_config, read_only=True) as s:
        back = read_circuit(s, c.id)
    assert _sorted_dict(back)["nodes"] == _sorted_dict(c)["nodes"]
    assert _sorted_dict(back)["edges"] == _sorted_dict(c)["edges"]
    assert back.scores == {"faithfulness": 0.61, "completeness": 0.25, "ablation": "mean/circuit"}
