"""A CLI that starts fast: the query and store commands never import the model stack or matplotlib.

Checked in a fresh interpreter (this test process has torch loaded already, by conftest). Timings are the
benchmark's business; this checks what is imported, which is what makes `scd query` slow or fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scd.core.config import StoreConfig

from .test_queries import corpus, load

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformer_lens", "sae_lens", "transformers", "matplotlib")

PROBE = """
import json, sys
{body}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))))
"""

RUN_CLI = """
from scd.cli import main
try:
    main({args!r}, standalone_mode=False)
except SystemExit as e:
    assert not e.code, e.code
"""


def _heavy_imported(body: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("startup") / "store"
    load(StoreConfig(path=path), corpus()[:3])
    return str(path)


def test_importing_the_query_runner_and_the_cli_imports_no_model_stack():
    assert _heavy_imported("import scd.queries.runner, scd.queries.render, scd.store, scd.cli") == []


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["query", "feeders", "-p", "token=)", "--format", "json"],
        ["cypher", "MATCH (f:Feature) RETURN count(f) AS n"],
        ["queries"],
        ["store", "stats"],
        ["compare", "f(a [b (c", "the cost (in dollars"],
    ],
)
def test_query_and_store_commands_import_no_model_stack(store_path, args):
    if args[0] not in ("--help", "queries"):
        args = [*args, "--store", store_path]
    assert _heavy_imported(RUN_CLI.format(args=args)) == []


def test_control_the_probe_sees_a_heavy_import():
    assert _heavy_imported("import scd.report.draw") == ["matplotlib"]
