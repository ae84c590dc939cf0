"""`scd queries | query | compare | cypher | browser-guide`: output and one-line errors, through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.core.config import StoreConfig

from .test_queries import corpus, load


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "store"
    load(StoreConfig(path=path), corpus())
    return path


@pytest.fixture
def scd(store_path, monkeypatch):
    """Run `scd ...` on the embedded test store; returns the click Result."""
    monkeypatch.delenv("SCD_NEO4J_URI", raising=False)
    monkeypatch.setenv("SCD_STORE", str(store_path))

    def invoke(*args, input=None):
        return CliRunner().invoke(main, list(args), input=input)

    return invoke


def test_queries_lists_every_named_query(scd):
    from scd.queries.runner import list_queries

    r = scd("queries")
    assert r.exit_code == 0, r.output
    for q in list_queries():
        assert q.name in r.output and q.description in r.output
    assert "token: string = null" in r.output
    rows = json.loads(scd("queries", "--format", "json").output)
    assert {row["name"] for row in rows} == {q.name for q in list_queries()}


def test_query_feeders_in_three_formats(scd):
    r = scd("query", "feeders", "-p", "token=)")
    assert r.exit_code == 0, r.output
    header = r.output.splitlines()[0].split()
    assert header[:2] == ["feature", "kind"] and "examples" in header
    assert r.output.splitlines()[-1].startswith("unexplained by features: ")

    js = scd("query", "feeders", "-p", "token=)", "--format", "json")
    rows = json.loads(js.stdout)  # the summary line goes to stderr, so the JSON stays machine-readable
    assert "unexplained by features" in js.stderr
    assert rows and rows[0]["abs_weight"] >= rows[-1]["abs_weight"] and isinstance(rows[0]["promotes"], list)

    out = scd("query", "feeders", "-p", "token=)", "--format", "csv", "--limit", "3").stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 3 and table[0]["feature"] == rows[0]["feature"]
    assert json.loads(table[0]["promotes"]) == rows[0]["promotes"]


def test_limit_overrides_the_limit_parameter(scd):
    rows = json.loads(
        scd("query", "top-features", "-p", "limit=10", "--limit", "2", "--format", "json").output
    )
    assert len(rows) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["query", "feedrs", "-p", "token=)"], "Error: no query named 'feedrs' -- did you mean feeders?"),
        (["query", "feeders"], "Error: query feeders needs one of the parameters feature, token"),
        (
            ["query", "feeders", "-p", "token=)", "-p", "top_n=two"],
            "Error: parameter top_n of query feeders must be an int (got 'two')",
        ),
        (["query", "circuit"], "Error: query circuit needs parameter prompt (string)"),
        (["query", "feeders", "-p", "token"], "Error: cannot read -p 'token'"),
        (["query", "feeders", "-p", "colour=red"], "Error: query feeders has no parameter 'colour'"),
        (["cypher", "CREATE (:Feature {id: 'x'})"], "Error: refused: CREATE is not a read-only clause"),
        (["cypher", "MATCH (n) RETURN n.nope.nope"], "Error: LadybugDB rejected the query"),
        (["compare", "f(a [b (c"], "Error: give two prompts, or --pattern REGEX"),
        (["compare", "nope", "f(a [b (c"], "Error: no circuit for 'nope'"),
    ],
)
def test_errors_are_one_line_and_nonzero(scd, args, message):
    r = scd(*args)
    assert r.exit_code != 0
    assert message in r.output, r.output
    assert "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("Error:")]) == 1


def test_query_on_an_empty_store(tmp_path, monkeypatch):
    from scd.store import open_store

    with open_store(StoreConfig(path=tmp_path / "empty")) as store:
        store.ensure_schema()  # a store with its schema and no data (opening alone creates nothing)
    monkeypatch.delenv("SCD_NEO4J_URI", raising=False)
    r = CliRunner().invoke(main, ["query", "feeders", "-p", "token=)", "--store", str(tmp_path / "empty")])
    assert r.exit_code == 2
    assert "the store is empty" in r.output and "scd ingest" in r.output


def test_query_on_a_missing_store(tmp_path, monkeypatch):
    monkeypatch.delenv("SCD_NEO4J_URI", raising=False)
    r = CliRunner().invoke(main, ["query", "top-features", "--store", str(tmp_path / "nowhere")])
    assert r.exit_code != 0 and "no embedded store at" in r.output
    assert not (tmp_path / "nowhere").exists(), "a query must not create a store"


def test_cypher_with_parameters_and_stdin(scd):
    r = scd(
        "cypher",
        "MATCH (p:Prompt) WHERE p.text = $t RETURN p.text AS text, $n + 1 AS m",
        "-p",
        "t=ab (cd [e {fg",
        "-p",
        "n=41",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == [{"text": "ab (cd [e {fg", "m": 42}]
    r = scd("cypher", "-", "--format", "csv", input="MATCH (c:Circuit) RETURN count(c) AS n")
    assert r.output.splitlines() == ["n", str(len(corpus()))]


def test_compare_two_prompts(scd):
    r = scd("compare", "f(a [b (c", "ab (cd [e {fg")
    assert r.exit_code == 0, r.output
    assert "jaccard:" in r.output and "shared:" in r.output and "only_a" in r.output
    doc = json.loads(scd("compare", "f(a [b (c", "ab (cd [e {fg", "--format", "json").output)
    union = doc["shared"] + doc["only_a"] + doc["only_b"]
    assert doc["jaccard"] == pytest.approx(doc["shared"] / union, abs=1e-4)
    assert len(doc["features"]) == union


def test_compare_a_group(scd):
    doc = json.loads(scd("compare", "--pattern", r".*\(.*", "--format", "json").output)
    n = doc["circuits"]
    assert n == len(doc["prompts"]) >= 5 and all("(" in row["prompt"] for row in doc["prompts"])
    matrix = doc["jaccard similarity"]
    assert len(matrix) == n and all(row[row["#"]] == 1.0 for row in matrix)
    assert doc["feature frequency"][0]["circuits"] >= doc["feature frequency"][-1]["circuits"]
    table = scd("compare", "--pattern", r".*\(.*").output
    assert "jaccard similarity" in table and "feature frequency" in table


def test_compare_a_group_draws_its_similarity_matrix(scd, tmp_path):
    from PIL import Image

    r = scd("compare", "--pattern", r".*\(.*", "--plot", str(tmp_path / "sim.png"))
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "sim.png") as im:
        assert im.size[0] > 300 and im.size[1] > 300


def test_browser_guide_print_path(scd):
    r = scd("browser-guide", "--print-path")
    assert r.exit_code == 0
    paths = r.output.split()
    assert paths[0].endswith("scd.html") and paths[1].endswith("scd.grass")


@pytest.mark.neo4j
def test_query_and_cypher_on_neo4j(neo4j_config):
    from scd.store import open_store

    with open_store(neo4j_config) as store:
        for c in corpus()[:6]:
            store.write_circuit(c)
    runner = CliRunner()
    r = runner.invoke(
        main, ["query", "feeders", "-p", "token=)", "--format", "json", "--neo4j", neo4j_config.neo4j_uri]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)
    r = runner.invoke(
        main, ["cypher", "MATCH (f:Feature) DETACH DELETE f", "--neo4j", neo4j_config.neo4j_uri]
    )
    assert r.exit_code == 2 and "refused: DETACH DELETE is not a read-only clause" in r.output


def test_queries_name_explains_one_query():
    """`scd queries NAME`: every parameter with its help and allowed values, the examples, and the notes that say
    what the columns mean (read from the .cypher file's header comments)."""
    from scd.queries.runner import get_query

    result = CliRunner().invoke(main, ["queries", "feeders"])
    assert result.exit_code == 0, result.output
    q = get_query("feeders")
    for p in q.params:
        assert p.signature() in result.output and p.help in result.output
    assert "[weight | circuits | mean | measured]" in result.output
    assert "`measured` -- summed over the circuits where it feeds the target" in result.output
    assert "// name:" not in result.output and "MATCH" not in result.output
    listing = CliRunner().invoke(main, ["queries"])
    assert "order_by: string = 'measured' [measured|estimated|circuits]" in listing.output
    bad = CliRunner().invoke(main, ["queries", "feeder"])
    assert bad.exit_code != 0 and "did you mean feeders" in bad.output
