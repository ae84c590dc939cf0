"""Neo4j Browser: the GraSS style covers the graph model, and the guide's queries run on a real Neo4j."""

from __future__ import annotations

import re
import urllib.request
from html.parser import HTMLParser

import pytest

from scd.core.config import StoreConfig
from scd.queries import guide, runner
from scd.store.schema import LABELS, RELATIONSHIPS

from .test_queries import corpus, load


def parse_grass(text: str) -> dict[str, dict[str, str]]:
    """GraSS (Browser's graph style sheet): ``selector { key: value; ... }`` blocks -> {selector: {key: value}}."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    rules: dict[str, dict[str, str]] = {}
    pos = 0
    for m in re.finditer(r'([^{}"]+)\{((?:"[^"]*"|[^{}"])*)\}', text):
        assert not text[pos : m.start()].strip(), f"stray text before {m.group(1).strip()!r}"
        pos = m.end()
        selector = m.group(1).strip()
        assert re.fullmatch(r"(node|relationship)(\.[A-Za-z_][A-Za-z0-9_]*)?", selector), selector
        body = m.group(2)
        decls = re.findall(r'\s*([a-z-]+)\s*:\s*("[^"]*"|[^;"]*?)\s*;', body)
        assert re.sub(r'\s*([a-z-]+)\s*:\s*("[^"]*"|[^;"]*?)\s*;', "", body).strip() == "", (
            f"bad rule {selector}"
        )
        props = {key: value.strip('"') for key, value in decls}
        assert selector not in rules, f"{selector} styled twice"
        rules[selector] = props
    assert not text[pos:].strip(), "stray text at the end"
    return rules


def test_grass_styles_every_label_and_relationship():
    rules = parse_grass(guide.STYLE_FILE.read_text(encoding="utf-8"))
    assert {"node", "relationship"} <= set(rules)
    for label in LABELS:
        assert f"node.{label}" in rules, f"no style for :{label}"
    for rel in RELATIONSHIPS:
        assert f"relationship.{rel}" in rules, f"no style for [:{rel}]"
    colours = [rules[f"node.{label}"]["color"] for label in LABELS]
    assert len(set(colours)) == len(LABELS), "labels must look distinct"
    for label in LABELS:
        assert re.fullmatch(r"#[0-9A-Fa-f]{6}", rules[f"node.{label}"]["color"])
    assert "{weight}" in rules["relationship.FEEDS"]["caption"], "FEEDS edges must show their weight"


class _Blocks(HTMLParser):
    """The text of every ``pre.runnable`` block, in order."""

    def __init__(self):
        super().__init__()
        self.blocks: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        if tag == "pre" and "runnable" in (dict(attrs).get("class") or "").split():
            self._in = True
            self.blocks.append("")

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in = False

    def handle_data(self, data):
        if self._in:
            self.blocks[-1] += data


def runnable_blocks(html_text: str) -> list[str]:
    parser = _Blocks()
    parser.feed(html_text)
    return parser.blocks


def test_guide_file_is_current():
    assert guide.GUIDE_FILE.read_text(encoding="utf-8") == guide.build_guide(), (
        "queries/browser/scd.html is stale: run `python -m scd.queries.guide`"
    )


def test_guide_structure_and_queries_come_from_the_library():
    text = guide.GUIDE_FILE.read_text(encoding="utf-8")
    assert '<article class="guide">' in text and '<carousel class="deck container-fluid">' in text
    assert text.count('<slide class="row-fluid">') == len(guide.SLIDES)
    blocks = runnable_blocks(text)
    assert len(blocks) == 2 * len(guide.guide_blocks())
    bodies = {q.body for q in runner.list_queries()}
    variants = {text for _base, text in guide.VARIANTS.values()}
    shown = set()
    for params, query in zip(blocks[::2], blocks[1::2], strict=True):
        assert params.startswith(":param [{"), params
        assert query in bodies or query in variants, f"not a library query:\n{query}"
        shown.add(query)
    assert {runner.get_query(n).body for n in ("feeders", "circuit", "paths-to-logit", "compare")} <= shown


def test_variants_use_their_base_query_parameters():
    for name, (base, text) in guide.VARIANTS.items():
        used = set(re.findall(r"\$([A-Za-z_]\w*)", text))
        assert used <= {p.name for p in runner.get_query(base).params}, name


def test_example_params_come_from_the_example_line():
    assert guide.example_params(runner.get_query("feeders")) == {
        "feature": None,
        "token": ")",
        "top_n": 1,
        "min_weight": 0.0,
        "min_faithfulness": None,
        "order_by": "weight",
        "include_errors": False,
        "limit": 50,
    }
    cmd = guide.params_command({"a": None, "b": 'say "hi"', "n": 3, "x": 0.5})
    assert cmd == ':param [{a, b, n, x}] => { RETURN null AS a, "say \\"hi\\"" AS b, 3 AS n, 0.5 AS x }'


def test_serve_gives_the_guide_with_cors():
    with guide.serve(0) as url:
        with urllib.request.urlopen(url + "scd.html", timeout=10) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert r.read().decode("utf-8") == guide.GUIDE_FILE.read_text(encoding="utf-8")
        with urllib.request.urlopen(url + "scd.grass", timeout=10) as r:
            assert b"node.Feature" in r.read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url, timeout=10)  # no directory listing
    assert url.startswith("http://127.0.0.1:")


_PARAM = re.compile(r"^:param \[\{(?P<keys>[^}]*)\}\] => \{ (?P<query>.*) \}$", re.S)


@pytest.mark.neo4j
def test_every_guide_query_runs_on_neo4j(neo4j_uri):
    """What Browser does: evaluate each :param block's query on the server and destructure its record, then run
    the query block with those parameters. Every block must run, and the library ones must find rows."""
    from neo4j import GraphDatabase

    config = StoreConfig(neo4j_uri=neo4j_uri)
    load(config, corpus())
    blocks = runnable_blocks(guide.GUIDE_FILE.read_text(encoding="utf-8"))
    with GraphDatabase.driver(neo4j_uri) as driver:
        for params_block, query in zip(blocks[::2], blocks[1::2], strict=True):
            m = _PARAM.match(params_block)
            assert m, params_block
            record = driver.execute_query(m["query"], database_="neo4j").records[0]
            keys = [k.strip() for k in m["keys"].split(",")]
            params = {k: record[k] for k in keys}
            assert isinstance(params.get("limit", 0), int), "limits must reach the server as integers"
            records = driver.execute_query(query, params, database_="neo4j").records
            assert records, f"no rows for guide query with {params}:\n{query}"


def test_app_server_serves_browser_at_root_and_the_guide_under_scd(tmp_path):
    from scd.queries import browser_app

    (tmp_path / "index.html").write_text("<html>browser</html>", encoding="utf-8")
    with browser_app.serve(0, app=tmp_path) as base:
        assert base.startswith("http://localhost:")  # the host Browser's default allow-list names
        with urllib.request.urlopen(base, timeout=10) as r:
            assert r.read() == b"<html>browser</html>"
        with urllib.request.urlopen(browser_app.guide_url(base), timeout=10) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert r.read().decode("utf-8") == guide.GUIDE_FILE.read_text(encoding="utf-8")
        with urllib.request.urlopen(browser_app.style_url(base), timeout=10) as r:
            assert r.read().decode("utf-8") == guide.STYLE_FILE.read_text(encoding="utf-8")
        for missing in ("scd/", "scd/../index.html.bak", "nope.js"):
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(base + missing, timeout=10)


def test_browser_url_connects_and_plays_the_guide():
    from urllib.parse import parse_qs, urlsplit

    from scd.queries import browser_app

    url = browser_app.browser_url("http://localhost:9/", "bolt://127.0.0.1:7687")
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "dbms": ["bolt://127.0.0.1:7687"],
        "preselectAuthMethod": ["NO_AUTH"],
        "cmd": ["play"],
        "arg": ["http://localhost:9/scd/scd.html"],
    }
    plain = browser_app.browser_url("http://h:1/", "neo4j://x:1", play=False, no_auth=False)
    plain = parse_qs(urlsplit(plain).query)
    assert plain == {"dbms": ["neo4j://x:1"]}


def test_favorites_zip_holds_every_library_query(tmp_path):
    import zipfile

    from scd.queries import browser_app

    names = browser_app.favorites_zip(tmp_path / "f.zip")
    with zipfile.ZipFile(tmp_path / "f.zip") as z:
        files = {n: z.read(n).decode("utf-8") for n in z.namelist()}
    assert set(files) == {f"scd/{q.name}.cypher" for q in runner.list_queries()}
    assert set(files) == {f"scd/{n}.cypher" for n in names}
    for q in runner.list_queries():
        first, rest = files[f"scd/{q.name}.cypher"].split("\n", 1)
        assert first == f"// {q.name}: {q.description}" and rest == q.text


def test_scd_browser_without_a_neo4j_says_how_to_start_one(monkeypatch):
    from click.testing import CliRunner

    from scd.cli import main

    monkeypatch.delenv("SCD_NEO4J_URI", raising=False)
    result = CliRunner().invoke(main, ["browser"])
    assert result.exit_code != 0
    assert "no Neo4j to connect Browser to" in result.output and "neo4j-local start" in result.output
