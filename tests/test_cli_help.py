"""Every command documents itself: a summary line, an example, and a current entry in docs/cli.md."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from scd.cli import main

REPO = Path(__file__).resolve().parents[1]


def _commands(group=main, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`scd {' '.join(path)} --help` shows no example"


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "scd, version" in result.output


def test_cli_reference_is_current():
    check = subprocess.run([sys.executable, str(REPO / "scripts" / "gen-cli-docs.py"), "--check"])
    assert check.returncode == 0, "docs/cli.md is stale: run `python scripts/gen-cli-docs.py`"
