"""The read-only gate (scd.store.gate): file, network and administration statements are refused on both stores
before they reach the engine, the filesystem and the store stay as they were, and every named query passes.

Controls show that the checks can fail: the same statements through an engine's own read-only path (LadybugDB's
read-only handle, a Neo4j READ transaction) do write the sentinel file or fetch the URL.
"""

# ruff: noqa: F811 - the store fixtures are imported from test_queries

from __future__ import annotations

import http.server
import os
import re
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.core.errors import QueryError
from scd.queries import runner
from scd.store import gate

from .test_queries import circuits, embedded_store, neo4j_store  # noqa: F401 - fixtures

# -- the recogniser alone -----------------------------------------------------------------------------------------

REFUSED = [
    ("COPY (MATCH (n) RETURN n) TO '/tmp/x.csv'", "COPY"),
    ("EXPORT DATABASE '/tmp/x'", "EXPORT DATABASE"),
    ("IMPORT DATABASE '/tmp/x'", "IMPORT DATABASE"),
    ("LOAD FROM '/etc/passwd' RETURN *", "LOAD FROM"),
    ("INSTALL httpfs", "INSTALL"),
    ("LOAD EXTENSION httpfs", "LOAD EXTENSION"),
    ("ATTACH '/tmp/db' AS x (dbtype lbug)", "ATTACH"),
    ("CHECKPOINT", "CHECKPOINT"),
    ("CALL threads=4", "CALL threads"),
    ("LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row", "LOAD CSV"),
    ("MATCH (f:Feature) WITH f LIMIT 1 LOAD CSV FROM 'http://x/' AS r RETURN r", "LOAD CSV"),
    ("SHOW TRANSACTIONS", "SHOW TRANSACTIONS"),
    ("TERMINATE TRANSACTIONS 'neo4j-transaction-1'", "TERMINATE TRANSACTIONS"),
    ("SHOW SETTINGS", "SHOW SETTINGS"),
    ("CALL dbms.listConfig()", "CALL dbms.listConfig"),
    ("CALL apoc.load.json('file:///x') YIELD value RETURN value", "CALL apoc.load.json"),
    ("MATCH (n) RETURN apoc.text.join(['a'], 'b') AS s", "apoc.text.join()"),
    ("USE system SHOW USERS", "USE"),
    ("CALL { USE other MATCH (n) RETURN n } RETURN 1", "USE"),
    ("CREATE USER eve SET PASSWORD 'x'", "CREATE"),
    ("STOP DATABASE neo4j", "STOP"),
    ("MATCH (n) SET n.x = 1", "SET"),
    ("MATCH (n) DETACH DELETE n", "DETACH DELETE"),
    ("MATCH (n) CALL { WITH n CREATE (m) } RETURN n", "CREATE"),
    ("MATCH (n) CALL (n) { MERGE (m {id: 1}) } RETURN 1", "MERGE"),
    ("MATCH (n) FOREACH (x IN [1] | CREATE (m))", "FOREACH"),
    ("RETURN 1 AS x UNION LOAD CSV FROM 'x' AS r RETURN r", "LOAD CSV"),
    ("RETURN 1; RETURN 2", "more than one statement"),
    ("EXPLAIN MATCH (n) RETURN n", "EXPLAIN"),
    ("CYPHER runtime=slotted MATCH (n) RETURN n", "CYPHER"),
    ("MATCH (n) RETURN n FINISH", "FINISH"),
    ("MATCH (n) RETURN n SOMETHING", "SOMETHING"),  # unknown words after an operand are refused, not guessed
    ("MATCH (n) CALL db.createLabel('X')", "CALL db.createLabel"),
    ("MATCH (n) RETURN {a: n} AS m, 'it''s", "unterminated string"),
    ("RETURN 1 /* CREATE (n)", "unterminated comment"),
    ("RETURN `x", "unterminated backticked name"),
    ("", "empty"),
]

ACCEPTED = [
    "MATCH (n) RETURN n",
    "match (n:Feature {id: 'load'}) return n.set AS `create`",  # keywords as names and in strings
    "RETURN 'LOAD CSV FROM \\'file:///x\\'' AS s // CREATE (n)",
    "MATCH (n) /* DELETE n */ RETURN count(n) AS n",
    "CALL db.labels() YIELD label RETURN label",
    "CALL db.relationshipTypes",
    "CALL show_tables() RETURN *",
    "CALL table_info('Feature') RETURN *",
    "MATCH (n) CALL { WITH n RETURN count(*) AS c } RETURN c",
    "MATCH (n) CALL (n) { MATCH (n)-->(m) RETURN m } RETURN m",
    "MATCH (n) WHERE EXISTS { (n)-->() } RETURN n",
    "MATCH (n) WHERE COUNT { MATCH (n)-->() } > 1 RETURN n",
    "RETURN 1 AS x UNION ALL RETURN 2 AS x",
    "UNWIND [1, 2] AS x RETURN x ORDER BY x DESC SKIP 1 LIMIT 1;",
    "OPTIONAL MATCH (n) RETURN n",
    "RETURN point.distance(point({x: 1, y: 1}), point({x: 0, y: 0})) AS d",
    "MATCH (n) WHERE n.x IS NOT NULL AND n.y STARTS WITH 'a' RETURN CASE WHEN n.x > 1 THEN 'a' ELSE 'b' END AS c",
    "MATCH (p:Prompt) WHERE p.text CONTAINS $s RETURN p.text",
    "MATCH (n) RETURN n {.id, .kind}, [x IN [1, 2] WHERE x > 1 | x * 2] AS l",
]


@pytest.mark.parametrize("text, names", REFUSED)
def test_the_gate_refuses_with_one_line_naming_the_clause(text, names):
    with pytest.raises(QueryError) as e:
        gate.check(text)
    assert e.value.problem.startswith("refused:") and names in e.value.problem
    assert "\n" not in e.value.line()


@pytest.mark.parametrize("text", ACCEPTED)
def test_the_gate_accepts_read_queries(text):
    gate.check(text)


def test_every_named_query_text_passes_the_gate():
    texts = 0
    for q in runner.list_queries():
        for text in [q.text, q.ladybug_text, *(t for _, t in q.aggregated)]:
            if text is not None:
                gate.check(text)
                texts += 1
    assert texts > len(runner.list_queries())  # variants and aggregated texts were checked too


def test_verdicts_are_cached_per_text():
    text = "MATCH (n:Feature) RETURN count(n) AS cached_verdict_probe"
    before = gate._verdict.cache_info()
    gate.check(text)
    gate.check(text)
    after = gate._verdict.cache_info()
    assert after.misses == before.misses + 1 and after.hits == before.hits + 1


# -- the stores: nothing reaches the engine --------------------------------------------------------------------


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: (size, mtime_ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file that a LOAD would read; its access time is set two days back, so a read (relatime) moves it."""
    path = tmp_path / "secret.csv"
    path.write_text("name\nthe-secret-value\n", encoding="utf-8")
    old = time.time() - 2 * 86400
    os.utime(path, (old, old))
    return path


class _Server(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - the stdlib's name
        _Server.hits.append(self.path)
        body = b"name\nfetched\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def url():
    """A loopback HTTP server that records every request; yields its base URL."""
    _Server.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _embedded_forms(tmp: Path, secret: Path, url: str) -> list[str]:
    return [
        f"COPY (MATCH (f:Feature) RETURN f.id) TO '{tmp}/copied.csv'",
        f"EXPORT DATABASE '{tmp}/exported'",
        f"IMPORT DATABASE '{tmp}/exported'",
        f"LOAD FROM '{secret}' RETURN *",
        f"LOAD WITH HEADERS (name STRING) FROM '{secret}' RETURN *",
        f"MATCH (f:Feature) WITH f LIMIT 1 LOAD FROM '{secret}' RETURN *",
        "INSTALL httpfs",
        "LOAD EXTENSION httpfs",
        f"LOAD FROM '{url}/remote.csv' RETURN *",
        f"ATTACH '{tmp}/other.lbdb' AS other (dbtype lbug)",
        "DETACH other",
        "CHECKPOINT",
        "CALL threads=1",
        "CREATE (:Feature {id: 'x'})",
        "MATCH (f:Feature) SET f.label = 'x'",
        f"MATCH (f:Feature) RETURN f.id; COPY Feature TO '{tmp}/table.csv'",
    ]


def _neo4j_forms(secret: Path, url: str) -> list[str]:
    return [
        f"LOAD CSV FROM 'file://{secret}' AS row RETURN row",
        f"LOAD CSV WITH HEADERS FROM '{url}/remote.csv' AS row RETURN row",
        f"MATCH (f:Feature) WITH f LIMIT 1 LOAD CSV FROM '{url}/after-match.csv' AS row RETURN row",
        f"CALL {{ LOAD CSV FROM '{url}/in-subquery.csv' AS row RETURN row }} RETURN row",
        "SHOW TRANSACTIONS",
        "TERMINATE TRANSACTIONS 'neo4j-transaction-1'",
        "SHOW SETTINGS",
        "CALL dbms.listConfig()",
        "CALL dbms.setConfigValue('db.logs.query.enabled', 'OFF')",
        f"CALL apoc.load.json('{url}/apoc.json') YIELD value RETURN value",
        "USE system SHOW USERS",
        "SHOW DATABASES",
        "STOP DATABASE neo4j",
        "CREATE USER eve SET PASSWORD 'secret-password'",
        "CREATE INDEX evil FOR (n:Feature) ON (n.label)",
        "CALL db.createLabel('Evil')",
        "MATCH (f:Feature) CALL (f) { SET f.label = 'x' } RETURN count(*)",
    ]


def _assert_refused_everywhere(store, forms, *, cli_args, tmp, secret, url_hits):
    """Each form: QueryError (library), exit 2 with one stderr line (CLI); then files, secret, store unchanged."""
    files, atime, stats = _tree(tmp), secret.stat().st_atime_ns, store.stats()
    for text in forms:
        with pytest.raises(QueryError, match="^refused: "):
            runner.run_cypher(store, text)
        r = CliRunner().invoke(main, ["cypher", text, *cli_args])
        assert r.exit_code == 2, (text, r.output)
        assert r.stdout == "" and r.stderr.startswith("Error: refused: ") and r.stderr.count("\n") == 1, (
            r.stderr
        )
        assert "the-secret-value" not in r.output
    assert _tree(tmp) == files, "a refused statement wrote or changed a file"
    assert secret.stat().st_atime_ns == atime, "a refused statement read the secret file"
    assert url_hits == [], "a refused statement fetched a URL"
    assert store.stats() == stats


def test_embedded_refuses_file_network_and_admin_statements(
    embedded_store, tmp_path, secret, url, monkeypatch
):
    monkeypatch.delenv("SCD_NEO4J_URI", raising=False)
    forms = _embedded_forms(tmp_path, secret, url)
    assert len(forms) >= 12
    store_files = _tree(embedded_store.folder)
    _assert_refused_everywhere(
        embedded_store,
        forms,
        cli_args=["--store", str(embedded_store.folder)],
        tmp=tmp_path,
        secret=secret,
        url_hits=_Server.hits,
    )
    assert _tree(embedded_store.folder) == store_files


@pytest.mark.neo4j
def test_neo4j_refuses_file_network_and_admin_statements(neo4j_store, tmp_path, secret, url):
    forms = _neo4j_forms(secret, url)
    assert len(forms) >= 12
    with neo4j_store.driver.session(database="system") as s:
        users = sorted(r["user"] for r in s.run("SHOW USERS YIELD user"))
    with neo4j_store.driver.session(database=neo4j_store.database) as s:
        indexes = sorted(r["name"] for r in s.run("SHOW INDEXES YIELD name"))
        labels = sorted(r["label"] for r in s.run("CALL db.labels()"))
    _assert_refused_everywhere(
        neo4j_store,
        forms,
        cli_args=["--neo4j", neo4j_store.config.neo4j_uri],
        tmp=tmp_path,
        secret=secret,
        url_hits=_Server.hits,
    )
    with neo4j_store.driver.session(database="system") as s:
        assert sorted(r["user"] for r in s.run("SHOW USERS YIELD user")) == users
    with neo4j_store.driver.session(database=neo4j_store.database) as s:
        assert sorted(r["name"] for r in s.run("SHOW INDEXES YIELD name")) == indexes
        assert sorted(r["label"] for r in s.run("CALL db.labels()")) == labels


def test_read_procedures_and_named_queries_still_run_on_embedded(embedded_store):
    tables = runner.run_cypher(embedded_store, "CALL show_tables() RETURN *")
    assert "Feature" in set(tables["name"])
    assert not runner.run(embedded_store, "feeders", {"token": ")"}).empty


@pytest.mark.neo4j
def test_read_procedures_still_run_on_neo4j(neo4j_store):
    labels = runner.run_cypher(neo4j_store, "CALL db.labels() YIELD label RETURN label")
    assert "Feature" in set(labels["label"])


@pytest.mark.parametrize(
    "dialect, foreign, own",
    [
        ("ladybug", "CALL db.labels()", "CALL show_tables()"),
        ("neo4j", "CALL show_tables()", "CALL db.labels()"),
    ],
)
def test_the_other_engines_procedures_are_refused_with_a_pointer_to_this_ones(dialect, foreign, own):
    with pytest.raises(QueryError) as e:
        gate.check(foreign, dialect)
    assert "not a procedure of" in e.value.problem and own in (e.value.fix or "")
    gate.check(own + " RETURN *" if dialect == "ladybug" else own, dialect)


def test_embedded_names_a_missing_parameter_instead_of_an_engine_placeholder(embedded_store):
    with pytest.raises(QueryError) as e:
        runner.run_cypher(embedded_store, "MATCH (f:Feature) RETURN f.id LIMIT $limit", {})
    assert "$limit" in e.value.problem and "-p limit=" in (e.value.fix or "")
    assert (
        len(runner.run_cypher(embedded_store, "MATCH (f:Feature) RETURN f.id LIMIT $limit", {"limit": 2}))
        == 2
    )


@pytest.mark.neo4j
def test_neo4j_names_a_missing_parameter_before_the_driver(neo4j_store):
    with pytest.raises(QueryError) as e:
        runner.run_cypher(neo4j_store, "MATCH (f:Feature) WHERE f.id = $`odd name` RETURN f.id", {})
    assert "$odd name" in e.value.problem


# -- controls: the engines' own read-only paths do let these through ------------------------------------------


def test_control_ladybug_read_only_handle_runs_copy_and_load(embedded_store, tmp_path, secret):
    """Without the gate, LadybugDB's read-only handle writes a file and reads one (so the checks above can fail)."""
    import ladybug

    atime = secret.stat().st_atime_ns
    db = ladybug.Database(str(embedded_store.db_path), read_only=True)
    conn = ladybug.Connection(db)
    try:
        conn.execute(f"COPY (MATCH (f:Feature) RETURN f.id LIMIT 1) TO '{tmp_path}/copied.csv'")
        rows = conn.execute(f"LOAD FROM '{secret}' (header = true) RETURN *").get_all()
    finally:
        conn.close()
        db.close()
    assert (tmp_path / "copied.csv").exists()
    assert rows == [["the-secret-value"]]
    assert secret.stat().st_atime_ns > atime  # a read moves the access time the refusal test watches


@pytest.mark.neo4j
def test_control_neo4j_read_transaction_fetches_urls(neo4j_store, url):
    """Without the gate, a READ transaction that Neo4j plans as read-only ('r') fetches a URL."""
    import neo4j

    text = f"LOAD CSV FROM '{url}/control.csv' AS row RETURN row"
    with neo4j_store.driver.session(
        database=neo4j_store.database, default_access_mode=neo4j.READ_ACCESS
    ) as s:
        assert s.run("EXPLAIN " + text).consume().query_type == "r"
        rows = s.execute_read(lambda tx: [r["row"] for r in tx.run(text)])
    assert rows == [["name"], ["fetched"]] and _Server.hits == ["/control.csv"]


def _one_line_pointing_at(store, text: str, bad: str) -> str:
    with pytest.raises(QueryError) as e:
        runner.run_cypher(store, text)
    line = e.value.line()
    assert "\n" not in line and "EXPLAIN" not in line
    m = re.search(r"offset:? (\d+)", line)
    assert m is not None and text[int(m.group(1)) :].startswith(bad), line
    return line


def test_embedded_engine_errors_are_one_line_pointing_into_the_users_query(embedded_store):
    _one_line_pointing_at(embedded_store, "MATCH (f:Feature) RETURN f.id ORDER f.id", "f.id")


@pytest.mark.neo4j
def test_neo4j_engine_errors_are_one_line_pointing_into_the_users_query(neo4j_store):
    # the store asks EXPLAIN first; the position must still be the one in the text the user typed
    _one_line_pointing_at(neo4j_store, "MATCH (f:Feature) RETURN f.id ORDER f.id", "f.id")
