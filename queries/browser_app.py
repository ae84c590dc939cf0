"""Neo4j Browser itself for users without Docker: fetched from Maven Central, served on loopback with the guide.

Neo4j Browser is a static single-page app (``org.neo4j.client:neo4j-browser``, a jar holding ``browser/``) that
talks to Neo4j over Bolt on a WebSocket, which the Bolt port accepts as well as plain Bolt. So a local Neo4j
started by ``scripts/neo4j/neo4j-local`` (Bolt only, no HTTP connector) plus any static HTTP server is a whole
Browser. ``serve()`` serves the app at ``/`` and the scd guide and style at ``/scd/`` from one loopback port;
``browser_url()`` is the address that connects to a Bolt URI and plays the guide on start.

Method (``browser_dir``):
1. Look for ``$SCD_CACHE/neo4j-browser-VERSION/index.html`` (``SCD_CACHE`` defaults to ``~/.cache/scd``, where
   ``neo4j-local`` keeps the server jars); done if present.
2. Otherwise fetch the jar with Maven (``mvn dependency:copy``: the client, local repository and mirror
   settings ``neo4j-local fetch`` uses) into a temporary folder, unpack its ``browser/`` folder next to the
   final one and rename it into place, so an interrupted fetch never leaves a half-unpacked Browser behind.

``favorites_zip()`` writes the named query library as a zip of ``.cypher`` files in one folder: dropped onto
Browser 5 (one ``.zip`` file), it becomes a "scd" folder of favorites.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path

from scd.core.errors import ScdError
from scd.queries.guide import GUIDE_DIR, CorsHandler, serve_handler
from scd.queries.runner import list_queries

#: the newest Neo4j Browser on Maven Central (the 5.26 server line ships Browser 5.x); connects to 4.4 to 2025.x
BROWSER_VERSION = "5.24.0"
ARTIFACT = f"org.neo4j.client:neo4j-browser:{BROWSER_VERSION}"
#: where the guide and style are served next to the app: one port and one allow-listed host serve both
GUIDE_PATH = "scd/"
FAVORITES_FOLDER = "scd"


def cache_dir() -> Path:
    return Path(os.environ.get("SCD_CACHE") or Path.home() / ".cache" / "scd")


def browser_dir(fetch: bool = True) -> Path:
    """The unpacked Neo4j Browser (a folder holding index.html), fetched with Maven when missing."""
    target = cache_dir() / f"neo4j-browser-{BROWSER_VERSION}"
    if (target / "index.html").is_file():
        return target
    if not fetch:
        raise ScdError(
            f"Neo4j Browser {BROWSER_VERSION} is not in {target}", "run `scd browser` once to fetch it"
        )
    if shutil.which("mvn") is None:
        raise ScdError(
            f"cannot fetch Neo4j Browser ({ARTIFACT}): mvn not found",
            "install Maven (apt-get install maven), as for scripts/neo4j/neo4j-local",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".neo4j-browser-") as tmp:
        run = subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={tmp}"],
            capture_output=True,
            text=True,
        )
        jar = Path(tmp) / f"neo4j-browser-{BROWSER_VERSION}.jar"
        if run.returncode != 0 or not jar.is_file():
            last = (run.stdout + run.stderr).strip().splitlines()[-1:] or ["no output"]
            raise ScdError(
                f"Maven could not fetch {ARTIFACT}: {last[0][:300]}",
                "check that Maven Central is reachable (or mirrored in ~/.m2/settings.xml)",
            )
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(jar) as z:
            for member in z.namelist():
                # only the app's own folder; names are checked so a crafted jar cannot write elsewhere
                if member.startswith("browser/") and ".." not in Path(member).parts:
                    z.extract(member, unpacked)
        if not (unpacked / "browser" / "index.html").is_file():
            raise ScdError(
                f"{jar.name} holds no browser/index.html", "report this Browser version as unusable"
            )
        with contextlib.suppress(FileExistsError, OSError):
            # a concurrent fetch may have won the race; its copy is as good as ours
            (unpacked / "browser").rename(target)
    if not (target / "index.html").is_file():
        raise ScdError(f"could not unpack Neo4j Browser into {target}", "check that the folder is writable")
    return target


class _AppHandler(CorsHandler):
    """Browser's files at /, the guide folder at /scd/ (both with CORS, no listings: see CorsHandler)."""

    def __init__(self, *args, app: Path, guide: Path, **kwargs):
        self.app, self.guide = app, guide
        super().__init__(*args, directory=str(app), **kwargs)

    def translate_path(self, path: str) -> str:
        prefix = "/" + GUIDE_PATH
        if urllib.parse.urlsplit(path).path.startswith(prefix):
            self.directory, path = str(self.guide), "/" + path[len(prefix) :]
        else:
            self.directory = str(self.app)
        return super().translate_path(path)


@contextlib.contextmanager
def serve(port: int = 0, app: Path | None = None, guide: Path = GUIDE_DIR) -> Iterator[str]:
    """Serve Neo4j Browser at / and the guide folder at /scd/ on 127.0.0.1:port; yields the base URL.

    The URL names ``localhost``: Browser fetches guides and styles only from hosts in the server's
    ``browser.remote_content_hostname_whitelist``, whose default (``guides.neo4j.com,localhost``) has it.
    """
    handler = functools.partial(_AppHandler, app=app or browser_dir(), guide=guide)
    with serve_handler(handler, port, host="localhost") as url:
        yield url


def browser_url(base: str, bolt_uri: str, play: bool = True, no_auth: bool = True) -> str:
    """The address that opens Browser on ``base``, connected to ``bolt_uri``, playing the scd guide.

    Browser reads ``dbms`` (the connection), ``preselectAuthMethod`` and ``cmd``/``arg`` (a command to run on
    start) from its query string.
    """
    query = {"dbms": bolt_uri}
    if no_auth:
        query["preselectAuthMethod"] = "NO_AUTH"
    if play:
        query |= {"cmd": "play", "arg": guide_url(base)}
    return base + "?" + urllib.parse.urlencode(query, safe=":/")


def guide_url(base: str) -> str:
    return f"{base}{GUIDE_PATH}scd.html"


def style_url(base: str) -> str:
    return f"{base}{GUIDE_PATH}scd.grass"


def favorites_zip(path: Path) -> list[str]:
    """Write the named query library as a Browser favorites import (a zip of ``scd/NAME.cypher``); the names.

    Each favorite is the library file verbatim under a first line naming it (Browser titles a favorite with its
    first line): set the parameters it lists with ``:param`` (or run the guide's parameter block) first.
    """
    names = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for q in list_queries():
            z.writestr(f"{FAVORITES_FOLDER}/{q.name}.cypher", f"// {q.name}: {q.description}\n{q.text}")
            names.append(q.name)
    return names
