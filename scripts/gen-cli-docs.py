#!/usr/bin/env python3
"""Write docs/cli.md from the commands' own --help, so the CLI reference cannot go stale.

    python scripts/gen-cli-docs.py          # rewrite docs/cli.md
    python scripts/gen-cli-docs.py --check  # exit 1 if docs/cli.md differs (tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scd.cli import main

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def walk(cmd: click.Command, path: list[str]):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from walk(cmd.commands[name], path + [name])


def render() -> str:
    parts = ["# scd command reference", "", "Generated from `--help` by `scripts/gen-cli-docs.py`; do not edit by hand.", ""]
    for path, cmd in walk(main, ["scd"]):
        ctx = click.Context(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100)
        parts += [f"## `{' '.join(path)}`", "", "```text", cmd.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
