"""Write and fold Cypher of the store layer, loaded by name from the ``.cypher`` files in scd/store/cypher/ (the
schema's DDL is generated from the tables in scd.store.schema, the one place each label's properties are listed).

``cypher(name, dialect)`` returns ``cypher/<dialect>/<name>.cypher`` where the two databases need different text,
else ``cypher/<name>.cypher`` (one text both run). Lines starting with ``//`` are comments and are dropped (the
files say why a statement looks the way it does). Statements are plain Cypher with ``$parameters`` -- the same
text pastes into Neo4j Browser -- except the three aggregate relationships, which share one template per
statement: ``__REL__``, ``__FROM__`` and ``__TO__`` stand for the relationship type and its end labels and are
filled from scd.store.schema constants only (``aggregate_cypher``), never from user input; likewise ``__LABEL__``,
a node label (``node_cypher``).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

DIALECTS = ("neo4j", "ladybug")


@cache
def cypher(name: str, dialect: str) -> str:
    """The statement in ``<name>.cypher`` for ``dialect`` (``neo4j`` or ``ladybug``), comments dropped."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown Cypher dialect {dialect!r}")
    root = files("scd.store") / "cypher"
    for path in (root / dialect / f"{name}.cypher", root / f"{name}.cypher"):
        if path.is_file():
            return _read(path)
    raise FileNotFoundError(f"no Cypher statement {name!r} for {dialect} in {root}")


def statements(name: str, dialect: str) -> list[str]:
    """A file of several statements separated by ``;`` (the schema), one string each."""
    return _split(cypher(name, dialect))


def shared_statements(name: str) -> tuple[str, ...]:
    """``shared`` for a file of several statements separated by ``;``, one string each."""
    return tuple(_split(shared(name)))


def _split(text: str) -> list[str]:
    return [s.strip() for s in text.split(";") if s.strip()]


@cache
def aggregate_cypher(name: str, dialect: str, rel: str) -> str:
    """A fold template (see the module docstring) for one aggregate relationship of scd.store.schema."""
    from scd.store.schema import AGGREGATE_ENDS

    start, end = AGGREGATE_ENDS[rel]  # KeyError for anything that is not one of ours
    try:  # a text for this relationship alone (`<name>.<REL>.cypher`), where the general one plans badly
        text = cypher(f"{name}.{rel}", dialect)
    except FileNotFoundError:
        text = cypher(name, dialect)
    return text.replace("__REL__", rel).replace("__FROM__", start).replace("__TO__", end)


@cache
def node_cypher(name: str, dialect: str, label: str) -> str:
    """A statement for one node label of scd.store.schema: ``__LABEL__`` (where the text has it) filled in."""
    from scd.store.schema import LABELS

    if label not in LABELS:
        raise KeyError(label)
    return cypher(name, dialect).replace("__LABEL__", label)


@cache
def shared(name: str) -> str:
    """A statement both databases run as it is (``cypher/<name>.cypher``; no dialect override allowed)."""
    return _read(files("scd.store") / "cypher" / f"{name}.cypher")


def _read(path) -> str:
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("//")]
    return "\n".join(lines).strip()
