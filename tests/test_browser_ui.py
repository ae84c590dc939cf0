"""Neo4j Browser for real: headless Chromium drives Neo4j Browser (served by scd.queries.browser_app) connected
over Bolt/WebSocket to the test Neo4j holding demo-model circuits.

What a user does in the first ten minutes, checked against independent answers: connect; ``:play`` the guide;
click the feeders parameter and query blocks and run them -- the table must hold the rows ``scd query feeders``
prints (which answers from the aggregate layer, a different computation); load scd.grass with ``:style`` and open
a circuit as a graph -- every drawn node must have its label's GraSS colour and caption (labels and properties
read back from Neo4j by id), every FEEDS edge its weight; drop the favorites zip and find the library in it.

Waits are explicit DOM conditions (WebDriverWait), never sleeps. Without chromium/chromedriver or the Browser
build the tests skip, naming what is missing -- and fail under CI=true, like the Neo4j fixture.
The graph screenshot is written to ``$SCD_TEST_ARTIFACTS`` (default ``test-artifacts/``) for CI to keep.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest
from click.testing import CliRunner

from scd.core.config import StoreConfig
from scd.core.errors import ScdError
from scd.queries import browser_app, guide
from scd.queries.runner import list_queries

from .neo4j_server import unavailable
from .test_browser import parse_grass

pytestmark = [pytest.mark.browser, pytest.mark.neo4j, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("SCD_TEST_ARTIFACTS") or REPO / "test-artifacts")
# the prompts the guide's examples name (circuit, paths-to-logit, compare), plus one more bracket
DEMO_PROMPTS = ["f(a [b (c", "ab (cd [e {fg", "x = [1, 2, [3, 4", "Copyright (C"]
WAIT_S = 120  # a loaded 2-core machine renders slowly; a quiet one needs a few seconds


def _unavailable(reason: str) -> NoReturn:
    unavailable(f"NO BROWSER: {reason} -- Neo4j Browser tests cannot run")


@pytest.fixture(scope="module")
def driver():
    """Headless Debian chromium through its chromedriver (no Selenium Manager download)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    chromedriver = shutil.which("chromedriver")
    if not chrome or not chromedriver:
        _unavailable("chromium or chromedriver not found (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture(scope="module")
def app_dir():
    try:
        return browser_app.browser_dir()
    except ScdError as e:
        _unavailable(str(e))


@pytest.fixture(scope="module")
def demo_neo4j(neo4j_uri) -> StoreConfig:
    """The session Neo4j emptied and filled with demo-model circuits of the guide's example prompts."""
    from scd.ingest.pipeline import ingest
    from scd.ingest.prompts import parse_prompts
    from scd.store import open_store

    config = StoreConfig.resolve(
        neo4j=neo4j_uri
    )  # credentials from the environment, as the fixture left them
    with open_store(config) as store:
        store.clear()
        report = ingest(
            parse_prompts("\n".join(DEMO_PROMPTS)),
            store,
            model="demo",
            metric="logit",
            top_k=8,
            progress=False,
        )
    assert report.written == len(DEMO_PROMPTS), report
    return config


class Page:
    """One Neo4j Browser tab: the editor, the frame stream, the guide's blocks."""

    def __init__(self, d, base: str):
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.base = d, base
        self.wait = WebDriverWait(d, WAIT_S)

    def until(self, condition, what: str):
        """Wait for a DOM condition; on timeout keep a screenshot in the artefacts and say what was awaited."""
        from selenium.common.exceptions import TimeoutException

        try:
            return self.wait.until(condition)
        except TimeoutException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / f"timeout-{_slug(what)}.png"
            self.d.save_screenshot(str(shot))
            raise AssertionError(
                f"timed out after {WAIT_S} s waiting for {what} (screenshot: {shot})"
            ) from None

    def find(self, css, root=None):
        from selenium.webdriver.common.by import By

        return (root or self.d).find_elements(By.CSS_SELECTOR, css)

    def run(self, command: str | None = None):
        """Type ``command`` (or keep what a guide block put in the editor), run it; the new frame."""
        before = len(self.find("[data-testid=frame]"))
        self._submit(command)
        self.until(lambda d: len(self.find("[data-testid=frame]")) > before, "a new frame")
        return self.find("[data-testid=frame]")[0]  # newest first

    def _submit(self, command: str | None) -> None:
        if command is not None:
            self.find("[data-testid=activeEditor] textarea")[0].send_keys(command)
            self.until(lambda d: self._editor_holds(command), f"the editor to hold {command!r}")
        self.find("[data-testid=editor-Run]")[0].click()

    def click(self, element) -> None:
        """A user's click, after scrolling the element clear of the sticky editor bar; while Browser is still
        reflowing the stream over it (the click lands on something else), wait and click again."""
        from selenium.common.exceptions import ElementClickInterceptedException

        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)

        def clicked(_d) -> bool:
            try:
                element.click()
                return True
            except ElementClickInterceptedException:
                return False

        self.until(clicked, "a click that reaches its element")

    def script_click(self, element) -> None:
        """Browser's own controls (slide arrows, fullscreen): clicked by script, as the stream may still be
        reflowing around them; the guide's blocks get a real click."""
        self.d.execute_script("arguments[0].click()", element)

    def clear(self):
        """``:clear``: an empty stream, so each test reads only its own frames."""
        self._submit(":clear")
        self.until(lambda d: not self.find("[data-testid=frame]"), "an empty stream")

    def play_guide(self, name: str):
        """``:play`` the guide, go to the slide holding query ``name``; its parameter and query blocks."""
        slide = next(k for k, (*_, items) in enumerate(guide.SLIDES) if name in [i[0] for i in items])
        _name, params, query = next(b for b in guide.guide_blocks() if b[0] == name)
        frame = self.run(":play " + browser_app.guide_url(self.base))
        self.until(lambda d: self.find("pre.runnable", frame), "the guide")
        arrow = "button.next-slide:not(.rounded)"  # the arrow under the slides
        carousel = "[data-testid=carousel]"
        for shown in range(2, slide + 2):  # one slide at a time: a click during the slide animation is lost
            self.script_click(self.find(arrow, frame)[0])
            self.until(lambda d, n=shown: f"{n} / " in self.find(carousel, frame)[0].text, "a slide")

        def block(text):  # the carousel renders the slides near the current one only
            want = _squash(text)
            return next((b for b in self.find("pre.runnable", frame) if _squash(b.text) == want), None)

        self.until(lambda d: all(b and b.is_displayed() for b in (block(params), block(query))), name)
        return block(params), block(query)

    def run_block(self, block):
        """Click a guide block (Browser copies it into the editor), then run it."""
        text = block.text
        self.click(block)
        self.until(lambda d: self._editor_holds(text), "the editor to hold the block")
        return self.run()

    def _editor_holds(self, text: str) -> bool:
        lines = self.find("[data-testid=activeEditor] .view-lines")
        shown, want = _squash(_text(lines)), _squash(text)
        # the editor draws only the lines in view: a long block shows as a prefix
        return want.startswith(shown) and len(shown) >= min(len(want), 60)

    def params(self, frame) -> dict:
        """The parameters a :param frame shows, as Browser holds them."""
        self.until(lambda d: "\n{\n" in frame.text, "the parameters")  # the command line holds braces too
        text = frame.text
        return json.loads(text[text.index("\n{\n") : text.index("\n}", text.index("\n{\n")) + 2])

    def table(self, frame) -> tuple[list[str], list[list[str]]]:
        """Header and rows of a result frame's table view, cells as the text Browser shows."""
        self.until(lambda d: "records" in _text(self.find("[data-testid=frameStatusbar]", frame)), "a result")
        header = [th.text for th in self.find("thead th", frame) if th.text]
        rows = []
        for tr in self.find("tbody tr", frame):
            cells = self.find("td[role=cell]", tr)
            rows.append([td.text for td in cells])
        return header, rows


def _text(elements) -> str:
    return elements[0].text if elements else ""


def _shown(value) -> str:
    """A value as Browser's table shows it: strings quoted but not escaped, lists bracketed."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def _auth(config: StoreConfig):
    return (config.neo4j_user, config.neo4j_password) if config.neo4j_password else None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)[:60]


def _js_number(x: float) -> str:
    """JavaScript's Number#toString for a double: the shortest round-trip digits, as Python's repr."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def page(driver, app_dir, demo_neo4j):
    with browser_app.serve(0, app=app_dir) as base:
        no_auth = demo_neo4j.neo4j_password is None
        driver.get(browser_app.browser_url(base, demo_neo4j.neo4j_uri, play=False, no_auth=no_auth))
        p = Page(driver, base)
        if not no_auth:  # testcontainers' server has a password: the connect form, as a user fills it in
            p.until(lambda d: p.find("[data-testid=password]"), "the connect form")
            p.find("[data-testid=username]")[0].send_keys(demo_neo4j.neo4j_user)
            p.find("[data-testid=password]")[0].send_keys(demo_neo4j.neo4j_password)
            p.find("[data-testid=connect]")[0].click()
        p.until(lambda d: "Connected to Neo4j" in _text(p.find("[data-testid=stream]")), "a connection")
        yield p


def test_connects_over_bolt_websocket(page, demo_neo4j):
    """A query answered in Browser: Bolt over a WebSocket works, to the server the fixture started."""
    from neo4j import GraphDatabase

    with GraphDatabase.driver(demo_neo4j.neo4j_uri, auth=_auth(demo_neo4j)) as db:
        version = db.get_server_info().agent.split("/")[1]
    page.clear()
    header, rows = page.table(page.run("CALL dbms.components()"))
    assert header == ["name", "versions", "edition"]
    assert rows == [['"Neo4j Kernel"', f'["{version}"]', '"community"']]


def test_scd_browser_url_opens_connected_with_the_guide_playing(driver, page, demo_neo4j):
    """The address `scd browser` prints: connected, and the guide's first slide showing."""
    driver.get(
        browser_app.browser_url(page.base, demo_neo4j.neo4j_uri, no_auth=demo_neo4j.neo4j_password is None)
    )
    page.until(lambda d: "Sparse feature circuits" in _text(page.find("[data-testid=stream]")), "the guide")
    page.until(lambda d: "Connected to Neo4j" in _text(page.find("[data-testid=stream]")), "a connection")


def test_guide_feeders_block_gives_the_rows_scd_query_prints(page, demo_neo4j):
    from scd.cli import main

    page.clear()
    blocks = page.play_guide("feeders")
    assert "$token" in blocks[1].text and blocks[0].text.startswith(":param")
    params = page.params(page.run_block(blocks[0]))
    header, rows = page.table(page.run_block(blocks[1]))

    args = ["query", "feeders", "--format", "json", "--neo4j", demo_neo4j.neo4j_uri]
    for key, value in params.items():
        if value is not None:
            args += ["-p", f"{key}={value}"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    expected = json.loads(result.stdout)  # the "unexplained by features" summary goes to stderr

    assert expected, "the demo circuits must have feeders of ')'"
    assert header == list(expected[0])
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        for got, (column, value) in zip(row, want.items(), strict=True):
            if isinstance(value, float):
                # scd query answers from the aggregate layer: sums agree to ~1e-11
                assert float(got) == pytest.approx(value, rel=1e-9, abs=1e-9), column
            else:
                assert got == _shown(value), column


def _node_styles(page, frame) -> list[dict]:
    """Every drawn node: its Neo4j id (from aria-label), circle fill and stroke, caption text."""
    return page.d.execute_script(
        """return Array.from(arguments[0].querySelectorAll('svg g.node')).map(g => ({
             id: Number(g.getAttribute('aria-label').replace('graph-node', '')),
             fill: g.querySelector('circle.b-outline').getAttribute('fill'),
             stroke: g.querySelector('circle.b-outline').getAttribute('stroke'),
             caption: Array.from(g.querySelectorAll('text.caption')).map(t => t.textContent).join(' ')}))""",
        frame,
    )


def _relationship_styles(page, frame) -> list[dict]:
    return page.d.execute_script(
        """return Array.from(arguments[0].querySelectorAll('svg g.relationship')).map(g => ({
             fill: g.querySelector('path.b-outline').getAttribute('fill'),
             caption: Array.from(g.querySelectorAll('text')).map(t => t.textContent).join('')}))""",
        frame,
    )


def test_circuit_graph_is_drawn_in_the_grass_style(page, demo_neo4j):
    from neo4j import GraphDatabase

    rules = parse_grass(browser_app.GUIDE_DIR.joinpath("scd.grass").read_text(encoding="utf-8"))
    page.clear()
    style = page.run(":style " + browser_app.style_url(page.base))
    page.until(lambda d: "node.Feature" in style.text, "the style")

    blocks = page.play_guide("circuit-graph")
    assert "RETURN c, x, p" in blocks[1].text
    params = page.params(page.run_block(blocks[0]))
    frame = page.run_block(blocks[1])
    # drawn when the overview's count and the SVG agree, and the layout has stopped moving
    page.until(lambda d: "Displaying" in frame.text, "a graph")
    page.until(
        lambda d: f"Displaying {len(page.find('svg g.node', frame))} nodes" in frame.text, "every node"
    )
    last: list = [None]

    def settled(_d):
        now = (
            [n["id"] for n in _node_styles(page, frame)],
            page.d.execute_script(
                "return Array.from(arguments[0].querySelectorAll('svg g.node'))"
                ".map(g => g.getAttribute('transform'))",
                frame,
            ),
        )
        same, last[0] = now == last[0], now
        return same

    page.until(settled, "the layout to settle")

    nodes = _node_styles(page, frame)
    ids = [n["id"] for n in nodes]
    with GraphDatabase.driver(
        demo_neo4j.neo4j_uri, auth=_auth(demo_neo4j), notifications_min_severity="OFF"
    ) as db:
        stored = {
            r["id"]: (r["labels"], r["props"])
            for r in db.execute_query(
                "MATCH (n) WHERE id(n) IN $ids "
                "RETURN id(n) AS id, labels(n) AS labels, properties(n) AS props",
                {"ids": ids},
                database_="neo4j",
            ).records
        }
        weights = {
            r["w"]
            for r in db.execute_query(
                "MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt {text: $prompt}) "
                "MATCH (c)-[:HAS]->(:Node)-[e:FEEDS]->(:Node) RETURN e.weight AS w",
                {"prompt": params["prompt"]},
                database_="neo4j",
            ).records
        }
    assert set(stored) == set(ids), "every drawn node is a stored node"
    seen = set()
    for node in nodes:
        labels, props = stored[node["id"]]
        (label,) = labels
        rule = rules[f"node.{label}"]
        assert node["fill"].upper() == rule["color"].upper(), (label, node)
        assert node["stroke"].upper() == rule["border-color"].upper(), (label, node)
        key = rule["caption"].strip("{}")
        assert _squash(node["caption"]) == _squash(str(props[key])), (label, key, node)
        seen.add(label)
    assert {"Prompt", "Circuit", "Node", "Feature"} <= seen

    feeds = [
        r
        for r in _relationship_styles(page, frame)
        if r["fill"].upper() == rules["relationship.FEEDS"]["color"]
    ]
    assert feeds, "FEEDS edges are drawn in their colour"
    shown = {_js_number(w) for w in weights}
    for r in feeds:
        # the caption is the edge's stored weight, cut short with an ellipsis where the edge is short
        caption = r["caption"]
        assert caption in shown or (
            caption.endswith("…") and any(s.startswith(caption[:-1]) for s in shown)
        ), r

    # the picture: the frame full-window, once the layout has settled at that size
    page.script_click(page.find("button[title=Fullscreen]", frame)[0])
    page.until(lambda d: page.find("button[title='Close fullscreen']", frame), "full screen")
    page.script_click(page.find("[aria-label=zoom-to-fit]", frame)[0])
    last[0] = None
    page.until(settled, "the layout to settle")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "neo4j-browser-circuit.png"
    frame.screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    page.script_click(page.find("button[title='Close fullscreen']", frame)[0])


def test_favorites_zip_imports_the_query_library(page, tmp_path):
    names = browser_app.favorites_zip(tmp_path / "scd-queries.zip")
    assert sorted(names) == sorted(q.name for q in list_queries())
    data = base64.b64encode((tmp_path / "scd-queries.zip").read_bytes()).decode()
    page.clear()
    # what dragging the file onto the window does: one drop event carrying one .zip file
    page.d.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[1]), c => c.charCodeAt(0));
           const dt = new DataTransfer();
           dt.items.add(new File([bytes], 'scd-queries.zip', {type: 'application/zip'}));
           for (const type of ['dragenter', 'dragover', 'drop'])
             arguments[0].dispatchEvent(
                 new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));""",
        page.find("[data-testid=stream]")[0],
        data,
    )
    page.click(
        page.until(lambda d: page.find("[data-testid=navigationFavorites]"), "the favorites button")[0]
    )
    page.until(lambda d: page.find("[data-testid=savedScriptsFolder-scd]"), "the scd favorites folder")
    folder = page.find("[data-testid=savedScriptsFolder-scd]")[0]
    page.click(page.find("[data-testid=expandFolder-scd]", folder)[0])
    page.until(
        lambda d: len(page.find("[data-testid=savedScriptListItem]", folder)) == len(names), "every query"
    )
    items = {
        item.text.strip().split(":")[0]: item
        for item in page.find("[data-testid=savedScriptListItem]", folder)
    }
    assert set(items) == set(names)  # each titled "NAME: description", its first line
    # a favorite clicked fills the editor with the library's text
    feeders = next(q for q in list_queries() if q.name == "feeders")
    page.click(items["feeders"])
    page.until(
        lambda d: page._editor_holds(f"// feeders: {feeders.description}\n{feeders.text}"), "the favorite"
    )
