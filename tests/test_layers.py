"""The floor plan holds: every import points to the same or a lower layer, and no modules import each other in a
circle. Read from the source with ast (lazy imports inside functions count too: they are still arrows)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import scd

PACKAGE = Path(scd.__file__).parent  # scd/ingest and scd/queries are symlinks to the top-level folders

# Lowest first. A module belongs to the longest prefix listed; an import may point to its own layer or below.
LAYERS: list[tuple[str, ...]] = [
    ("scd.core",),  # errors, Circuit, config, hooks: no torch, no database
    ("scd.models", "scd.demo", "scd.store"),  # loading models/SAEs; the store layer
    ("scd.discovery", "scd.report"),  # the engine; reading circuits
    ("scd.ingest", "scd.queries"),  # stage 2 (write) and stage 3 (read)
    ("scd", "scd.cli", "scd.doctor"),  # the top floor: the Python API (scd/__init__.py) and the CLI
]


def _layer(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def _modules() -> dict[str, Path]:
    out = {}
    paths = [Path(d, f) for d, _, fs in os.walk(PACKAGE, followlinks=True) for f in fs if f.endswith(".py")]
    for path in paths:
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = ["scd", *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """scd modules that ``module`` imports (absolute or relative, at any depth of the file)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            # `from scd.x import y` may import the submodule scd.x.y
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import scd.x.y` where y is an attribute
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def test_the_package_is_read_through_the_symlinks():
    mods = _modules()
    assert {"scd.ingest.pipeline", "scd.queries.runner", "scd.store.base", "scd.core.circuit"} <= set(mods)


def test_every_import_points_down():
    upward = [
        f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
        for m, deps in sorted(_graph().items())
        for d in sorted(deps)
        if _layer(d) > _layer(m)
    ]
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for d in sorted(graph[m]):
            if m.startswith(d + "."):  # a package's own __init__ re-exporting its modules is not a cycle
                continue
            if state.get(d) == "open":
                cycles.append(" -> ".join([*stack[stack.index(d) :], d]))
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_a_planted_upward_import_is_caught(tmp_path):
    """The checks above can fail: a store module that imports the CLI, or a name from the top-level API
    (``from scd import discover``), is reported."""
    fake = tmp_path / "x.py"
    fake.write_text("from scd.cli import main\nfrom scd import discover\n", encoding="utf-8")
    deps = _imports("scd.store.x", fake, set(_modules()))
    assert {"scd.cli", "scd"} <= deps
    assert _layer("scd.cli") > _layer("scd.store.x") and _layer("scd") > _layer("scd.store.x")
