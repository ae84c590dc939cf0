"""The read-only gate: which Cypher texts a query may run, decided from the text itself before any store sees it.

A read-only *transaction* is not a read-only *capability*: Neo4j plans ``LOAD CSV FROM 'file:///…'``, ``SHOW
TRANSACTIONS`` and most procedures as reads, and LadybugDB's read-only handle still runs ``COPY … TO``,
``EXPORT DATABASE``, ``LOAD FROM``, ``INSTALL``, ``ATTACH`` and ``CHECKPOINT``. So every ad-hoc and named query
passes this allow-list first (``check``), and the engines' own verdicts (Neo4j: EXPLAIN + READ transaction;
LadybugDB: a read-only database handle) stay behind it as a second wall.

Method (a small recogniser, not a full Cypher grammar -- neither engine ships a parser we could call without a
round trip, and the question is narrower than "is this valid Cypher"):

1. Tokenise: strings ('…', "…", backslash escapes), comments (``//``, ``/* */``), backticked names, parameters,
   numbers, words, punctuation. An unterminated string, comment or name is refused (the engines would read the
   rest differently). A ``;`` may only end the text: one statement at a time.
2. Words that are *names* -- after ``.`` (a property), after ``:`` (a label or relationship type), before ``:``
   (a map key, a variable taking a label), or backticked -- are never keywords. Every other word is classified:
   a. a known write, file, network or administration keyword (DENIED) is refused wherever it appears;
   b. where a clause must begin -- the start of the text, after UNION [ALL], inside a subquery's ``{`` -- only
      MATCH, OPTIONAL, WITH, UNWIND, RETURN, CALL are accepted;
   c. right after a complete operand (a name, literal, parameter, or closing bracket) a word begins a clause or
      is an operator, so it must be one of the read clause keywords or operator keywords (FOLLOWERS): an
      unknown clause can never slip in as "an identifier";
   d. ``CALL`` must open a subquery (``CALL {``, ``CALL (x) {``) or name an allow-listed read procedure
      (READ_PROCEDURES, e.g. ``db.labels``); a dotted function call must be in an allowed namespace
      (``point.distance``, ``datetime.fromepoch``; never ``apoc.*``).
3. The verdict is cached per text, so a repeated query costs a dictionary lookup.

``check_params`` does the same for parameter values: nothing reaches a driver that it would choke on.

A refusal is one QueryError naming the refused clause. False refusals are possible for odd but valid reads (a
variable named like a clause keyword, e.g. ``(load)``): backtick the name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from scd.core.errors import QueryError

# Clause keywords a read query may use (rule b: the ones that may start a clause).
CLAUSE_STARTS = frozenset({"match", "optional", "with", "unwind", "return", "call"})
# Words allowed right after a complete operand (rule c): read clauses and operator keywords.
FOLLOWERS = CLAUSE_STARTS | frozenset({
    "where", "order", "by", "skip", "offset", "limit", "union", "all", "yield", "as", "and", "or", "xor",
    "not", "in", "is", "contains", "starts", "ends", "asc", "desc", "ascending", "descending", "when", "then",
    "else", "end", "distinct", "shortest", "groups", "paths", "path", "null",
})  # fmt: skip
# Keywords that write, touch files or the network, or administer a server, in either dialect (rule a).
DENIED = frozenset({
    "create", "merge", "set", "delete", "detach", "remove", "foreach", "load", "copy", "export", "import",
    "install", "attach", "use", "show", "terminate", "alter", "drop", "grant", "deny", "revoke", "checkpoint",
    "begin", "commit", "rollback", "finish", "insert", "rename", "explain", "profile", "cypher", "enable",
    "transactions", "periodic",
})  # fmt: skip
# Procedures that only read the schema's names, per dialect; lower case. Neo4j's db.* and LadybugDB's catalogue
# functions: each engine has only its own, so naming the other's is refused here with a pointer to the right one.
DIALECT_PROCEDURES = {
    "neo4j": frozenset({
        "db.labels", "db.relationshiptypes", "db.propertykeys", "db.schema.visualization",
        "db.schema.nodetypeproperties", "db.schema.reltypeproperties",
    }),
    "ladybug": frozenset({"show_tables", "table_info"}),
}  # fmt: skip
READ_PROCEDURES = DIALECT_PROCEDURES["neo4j"] | DIALECT_PROCEDURES["ladybug"]
_STORE_NAMES = {"neo4j": "Neo4j", "ladybug": "the embedded store (LadybugDB)"}
_LIST_LABELS = {
    "neo4j": "on Neo4j list labels with CALL db.labels()",
    "ladybug": "the embedded store lists its tables with CALL show_tables() RETURN *",
}
# Namespaces of built-in functions with dotted names (Neo4j); every other dotted function is a plugin's.
FUNCTION_NAMESPACES = frozenset(
    {"point", "date", "datetime", "localdatetime", "localtime", "time", "duration", "vector"}
)
SUBQUERY_OPENERS = frozenset({"call", "exists", "count", "collect"})
FIX = (
    "scd runs read-only queries: MATCH, OPTIONAL MATCH, WITH, UNWIND, WHERE, RETURN, ORDER BY, SKIP, LIMIT, "
    "UNION, CALL { subquery } and the read procedures db.labels() / db.relationshipTypes() / show_tables(); "
    "write with `scd ingest` or `scd store clear`"
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>`(?:[^`]|``)*`)
  | (?P<param>\$(?:\w+|`(?:[^`]|``)*`))
  | (?P<number>0[xX][0-9a-fA-F]+|0[oO][0-7]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<word>[^\W\d]\w*)
  | (?P<op>\.\.|::|->|<-|<=|>=|<>|!=|=~|\+=|.)
    """,
    re.X | re.S,
)
_TWO_WORDS = {"load", "export", "import", "show", "terminate", "detach", "alter", "drop", "start", "stop", "install",
              "begin", "enable"}  # fmt: skip
_OPERAND_END = {"string", "name", "param", "number"}


class _Tok:
    """One token: its kind (a group name of _TOKEN), its text, and the text in lower case."""

    __slots__ = ("kind", "text", "low")

    def __init__(self, kind: str, text: str):
        self.kind, self.text, self.low = kind, text, text.lower()


def tokenize(text: str) -> list[_Tok]:
    """Significant tokens of ``text`` (no spaces, no comments); QueryError on anything left open."""
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None  # the last alternative matches any character
        kind = m.lastgroup or "op"
        tok = m.group()
        if kind == "op" and tok in ("'", '"', "`") or (kind == "op" and text.startswith("/*", pos)):
            what = {"'": "string", '"': "string", "`": "backticked name"}.get(tok, "comment")
            raise QueryError(f"refused: an unterminated {what} in the query", "close it")
        if kind == "op" and tok == "$":
            raise QueryError("refused: a '$' that names no parameter", "write parameters as $name")
        if kind not in ("space", "comment"):
            out.append(_Tok(kind, tok))
        pos = m.end()
    return out


def _refused(words: list[_Tok], i: int) -> QueryError:
    """A refusal naming the clause at ``words[i]`` (with its second word, as in LOAD CSV or SHOW SETTINGS)."""
    name = words[i].text.upper()
    if words[i].low in _TWO_WORDS and i + 1 < len(words) and words[i + 1].kind == "word":
        name += " " + words[i + 1].text.upper()
    if words[i].low not in DENIED and words[i].low not in CLAUSE_STARTS | FOLLOWERS:
        return QueryError(f"refused: {name} is not a read-only clause or operator (a typo?)", FIX)
    return QueryError(f"refused: {name} is not a read-only clause", FIX)


def _dotted(toks: list[_Tok], i: int) -> tuple[str, int]:
    """The dotted name starting at ``toks[i]`` (a.b.c, as written) and the index after it."""
    parts = [toks[i].text]
    j = i + 1
    while j + 1 < len(toks) and toks[j].text == "." and toks[j + 1].kind == "word":
        parts.append(toks[j + 1].text)
        j += 2
    return ".".join(parts), j


INT64 = (-(2**63), 2**63 - 1)  # what both stores' integers hold


def check_params(params: Mapping[str, Any]) -> None:
    """Refuse (QueryError) a parameter value that neither driver takes as it is: an integer outside 64 bits
    (Neo4j's driver raises OverflowError, LadybugDB a cast error blaming the Cypher), or a type with no Cypher
    counterpart. Checked before any driver sees the values, so the message names the parameter."""
    for name, value in params.items():
        _check_value(name, value)


def _check_value(name: str, value: Any) -> None:
    if value is None or isinstance(value, bool | float | str):
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise QueryError(
                f"parameter {name} = {value} is outside the 64-bit integer range the stores hold",
                f"use a value from {INT64[0]} to {INT64[1]}",
            )
        return
    if isinstance(value, list | tuple):
        for v in value:
            _check_value(name, v)
        return
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        for v in value.values():
            _check_value(name, v)
        return
    raise QueryError(
        f"parameter {name} is a {type(value).__name__}, which Cypher has no type for",
        "pass null, a boolean, number or string, or a list or map of those",
    )


@lru_cache(maxsize=4096)
def _verdict(text: str, dialect: str | None = None) -> tuple[str, str] | None:
    """None if ``text`` may run, else (problem, fix). Cached: the same text always gets the same verdict."""
    try:
        _check(text, dialect)
    except QueryError as e:
        return e.problem, e.fix or ""
    return None


def check(text: str, dialect: str | None = None) -> None:
    """Refuse (QueryError, exit code 2) any text that is not a single read-only query; see the module doc.
    ``dialect`` ("neo4j" | "ladybug") narrows the read procedures to the ones that engine has."""
    verdict = _verdict(text, dialect)
    if verdict is not None:
        raise QueryError(*verdict)


@lru_cache(maxsize=4096)
def parameters(text: str) -> frozenset[str]:
    """The ``$names`` a query text uses (backticked ones unquoted)."""
    return frozenset(t.text[1:].strip("`").replace("``", "`") for t in tokenize(text) if t.kind == "param")


def check_supplied(text: str, params: Mapping[str, Any]) -> None:
    """Refuse a query that uses a parameter no value was given for: the engines would report it as an
    internal placeholder (LadybugDB: "Cannot evaluate $_2_") or a driver error."""
    missing = sorted(parameters(text) - set(params))
    if missing:
        names = ", ".join(f"${m}" for m in missing)
        example = " ".join(f"-p {m}=VALUE" for m in missing)
        raise QueryError(
            f"the query uses {names} but no value was given",
            f"pass it: {example} on the command line, or params={{...}} from Python",
        )


def _check(text: str, dialect: str | None = None) -> None:
    toks = tokenize(text)
    if toks and toks[-1].text == ";":
        toks.pop()
    if not toks:
        raise QueryError("refused: the query is empty", "write a MATCH … RETURN query")
    if any(t.text == ";" for t in toks):
        raise QueryError("refused: more than one statement", "run one query at a time")
    expect_clause = True  # rule b applies to the next word
    brackets: list[str] = []  # open ( [ {
    subquery_brace = -1  # index of the '{' that CALL opens
    i = 0
    while i < len(toks):
        t = toks[i]
        prev = toks[i - 1] if i else None
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if t.kind != "word":
            if t.text in "([{":
                brackets.append(t.text)
            elif t.text in ")]}" and brackets:
                brackets.pop()
            expect_clause = t.text == "{" and (
                i == subquery_brace
                or (prev is not None and prev.kind == "word" and prev.low in SUBQUERY_OPENERS - {"call"})
            )
            if expect_clause and nxt is not None and nxt.text == "(":
                expect_clause = False  # EXISTS { (a)-->(b) }: a bare pattern
            i += 1
            continue
        if _is_name(prev, nxt, brackets):
            expect_clause = False
            i += 1
            continue
        w = t.low
        union_all = w == "all" and prev is not None and prev.low == "union"
        if w in DENIED or (expect_clause and w not in CLAUSE_STARTS and not union_all):
            raise _refused(toks, i)
        if prev is not None and _operand_end(prev) and w not in FOLLOWERS:
            raise _refused(toks, i)
        if w == "optional" and (nxt is None or nxt.low not in ("match", "call")):
            raise _refused(toks, i)
        if w == "call":
            i = _check_call(toks, i, dialect)
            subquery_brace = i if i < len(toks) and toks[i].text == "{" else -1
            expect_clause = False
            continue
        if nxt is not None and nxt.text == ".":
            name, j = _dotted(toks, i)
            if (
                j < len(toks)
                and toks[j].text == "("
                and name.split(".")[0].lower() not in FUNCTION_NAMESPACES
            ):
                raise QueryError(f"refused: {name}() is not a built-in read function", FIX)
        expect_clause = w == "union" or union_all
        i += 1


def _is_name(prev: _Tok | None, nxt: _Tok | None, brackets: list[str]) -> bool:
    """A word that names something (property, label, type, map key) rather than being a keyword."""
    if prev is not None and prev.text == ".":
        return True  # n.property
    if nxt is not None and nxt.text == ":":
        return True  # {key: …}, (n:Label): no clause keyword is ever followed by ':'
    if prev is not None and prev.text == "::":
        return True  # x IS :: INTEGER
    # (n:Label), [:TYPE], WHERE n:Label -- but not a map value {k: v}, which is an expression
    return prev is not None and prev.text == ":" and (not brackets or brackets[-1] != "{")


def _operand_end(t: _Tok) -> bool:
    """True if ``t`` completes an operand, so that the next word must be a keyword (rule c)."""
    if t.kind in _OPERAND_END:
        return True
    if t.kind == "word":
        keyword = FOLLOWERS | CLAUSE_STARTS | SUBQUERY_OPENERS | {"case", "any", "none", "single"}
        return t.low not in keyword or t.low in ("null", "end")
    return t.text in (")", "]", "}")


def _check_call(toks: list[_Tok], i: int, dialect: str | None = None) -> int:
    """Rule d at ``toks[i]`` = CALL; returns the index of its subquery's '{', or of the token after the
    procedure call."""
    j = i + 1
    t = toks[j] if j < len(toks) else None
    if t is not None and t.text == "{":
        return j
    if t is not None and t.text == "(":  # CALL (a, b) { … }: a subquery's variable scope
        k = j + 1
        while k < len(toks) and (toks[k].kind == "word" or toks[k].text in (",", "*")):
            if toks[k].kind == "word" and toks[k].low in DENIED:
                raise _refused(toks, k)
            k += 1
        if k + 1 >= len(toks) or toks[k].text != ")" or toks[k + 1].text != "{":
            raise QueryError("refused: CALL ( … ) may only list variables and open a subquery { … }", FIX)
        return k + 1
    if t is not None and t.kind == "word":
        name, k = _dotted(toks, j)
        allowed = DIALECT_PROCEDURES.get(dialect or "", READ_PROCEDURES)
        if name.lower() in READ_PROCEDURES - allowed and dialect is not None:
            raise QueryError(
                f"refused: CALL {name} is not a procedure of {_STORE_NAMES[dialect]}", _LIST_LABELS[dialect]
            )
        if name.lower() not in allowed:
            raise QueryError(f"refused: CALL {name} is not an allowed read procedure", FIX)
        return k
    raise _refused(toks, i)
