"""The named query library: ``queries/*.cypher`` loaded by name, bound to parameters, run on either store.

A library file is plain Cypher (the text a user pastes into Neo4j Browser) under a header of ``//`` comments::

    // name: feeders
    // description: one line
    // param: token: string = null — what it means      (types: string, int, float, bool; no default = required)
    // requires: feature | token                         (at least one of these must be set)
    // choices: order_by = weight | circuits | mean        (a string parameter's allowed values)
    // example: scd query feeders -p token=")"
    // empty: no row passes min_weight={min_weight}     (what an empty answer means; {param}: its bound value)

Where LadybugDB's dialect differs, ``queries/ladybug/NAME.cypher`` holds a variant with the same parameters and
the same result columns; the header is read from the Neo4j file only.

``queries/aggregated/NAME.feature.cypher`` / ``NAME.token.cypher`` (feeders, consumers) answer the same query from
the pre-aggregated FEEDS_FEATURE / FEEDS_TOKEN / TOKEN_FEEDS relationships (see scd.store.schema), on both
engines. ``run`` uses one only when its rows are the same as the library text's (`aggregated_case`): exactly one of
feature / token set, min_weight <= 0 (every edge counts), no min_faithfulness (the layer sums every circuit,
whatever its score), and top_n = 1 for a token (top_n = 1 means "top_token is the token"); and only while no circuit is waiting to be folded into that layer (``Store.read_folded``, see
scd.store.aggregates), so an answer never misses a stored circuit. Otherwise the library text runs over the
Node-level FEEDS edges.

``queries/summary/NAME.cypher`` (and ``NAME.feature.cypher`` / ``NAME.token.cypher`` over the aggregate layer,
chosen the same way) gives a query one summary line (``summary``): feeders / consumers report the share of |weight|
that SAE error terms and input tokens carry, which their ranked rows leave out by default. From the aggregate layer
the sums are the target node's totals, which the aggregated texts also return with the rows (``scd_*`` columns,
taken off the table by ``take_totals``).

Parameters are always bound by the database driver, never spliced into the text. Values are checked and coerced
here first (``"3"`` -> 3 for an int parameter), so both engines see the same types. Two rules keep one text
valid on both engines: an optional parameter is compared to a property *before* it is tested for null
(``f.layer = $layer OR $layer IS NULL``: LadybugDB types a parameter from its first use), and list slices start
at 0 (``list[0..$n]`` means the first n elements on both engines).
"""

from __future__ import annotations

import difflib
import math
import re
import threading
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from scd.core.errors import QueryError
from scd.store.gate import INT64

if TYPE_CHECKING:
    from scd.core.config import StoreConfig
    from scd.store.base import Store

LIBRARY = Path(__file__).resolve().parent
TYPES = ("string", "int", "float", "bool")
_HEADER = re.compile(r"^//\s*([a-z][a-z-]*)\s*:\s*(.*?)\s*$")
HEADER_FIELDS = ("name", "description", "param", "requires", "choices", "example", "empty")
_PARAM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([a-z]+)\s*(?:=\s*(.*?))?\s*(?:[—–]\s*(.*))?$")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # one of TYPES
    default: Any  # None where the default is null or there is none
    required: bool
    help: str

    def signature(self) -> str:
        if self.required:
            return f"{self.name}: {self.type}"
        return f"{self.name}: {self.type} = {_literal(self.default)}"

    def coerce(self, value: Any, query: str) -> Any:
        """The value as this parameter's type, or QueryError naming the parameter and its type."""
        if value is None:
            return None
        t = self.type
        try:
            if t == "string":
                if isinstance(value, str):
                    return value
                if isinstance(value, bool | int | float):
                    return str(value)
            elif t == "bool":
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                    return value.strip().lower() in _TRUE
            elif t == "int":
                if isinstance(value, bool):
                    pass
                elif isinstance(value, int):
                    return self._in_range(int(value), query)
                elif isinstance(value, float) and value.is_integer():
                    return self._in_range(int(value), query)
                elif isinstance(value, str):
                    return self._in_range(int(value.strip()), query)
            elif t == "float":
                if isinstance(value, bool):
                    pass
                elif isinstance(value, int | float):
                    x = float(value)
                    if math.isfinite(x):
                        return x
                elif isinstance(value, str):
                    x = float(value.strip())
                    if math.isfinite(x):
                        return x
        except ValueError:
            pass
        raise QueryError(
            f"parameter {self.name} of query {query} must be {_article(t)} {t} (got {value!r})",
            f"pass e.g. -p {self.name}={_literal(_EXAMPLE[t])}",
        )

    def _in_range(self, value: int, query: str) -> int:
        """Both stores hold 64-bit integers; a larger value would fail inside a driver, blaming the Cypher."""
        if not INT64[0] <= value <= INT64[1]:
            raise QueryError(
                f"parameter {self.name} of query {query} must be an int from {INT64[0]} to {INT64[1]} "
                f"(got {value})",
                f"pass e.g. -p {self.name}={_literal(_EXAMPLE[self.type])}",
            )
        return value


_EXAMPLE = {"string": "text", "int": 3, "float": 0.5, "bool": True}


def _article(t: str) -> str:
    return "an" if t[0] in "aeiou" else "a"


def _literal(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, str) else str(v)


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    params: tuple[Param, ...]
    requires_any: tuple[str, ...]  # at least one of these must be non-null ("requires: a | b")
    examples: tuple[str, ...]
    text: str  # Neo4j Cypher, header included (pasteable as is)
    ladybug_text: str | None  # the LadybugDB variant, where the dialect differs
    path: Path
    aggregated: tuple[tuple[str, str], ...] = ()  # ("feature" | "token", text over the pre-aggregated layer)
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (parameter, its allowed values)
    summary: tuple[tuple[str, str], ...] = ()  # ("edges" | "feature" | "token", summary text)
    empty: str | None = None  # what an empty answer from a store with circuits means ({param}: its value)

    @property
    def notes(self) -> str:
        """The comment block under the header fields (what the columns mean, how the query reads the store)."""
        out = []
        for line in self.text.splitlines():
            if not line.startswith("//"):
                break
            m = _HEADER.match(line)
            if m and m.group(1) in HEADER_FIELDS:
                continue
            out.append(line[2:].removeprefix(" "))
        return "\n".join(out).strip()

    def aggregated_case(self, bound: Mapping[str, Any]) -> str | None:
        """Returns "feature" or "token" where the pre-aggregated text gives exactly this query's rows, else None."""
        if not self.aggregated or (bound.get("min_weight") or 0.0) > 0:
            return None
        if bound.get("min_faithfulness") is not None:  # the layer sums every circuit: filter the FEEDS edges
            return None
        feature, token = bound.get("feature"), bound.get("token")
        if feature is not None and token is None:
            return "feature"
        if token is not None and feature is None and bound.get("top_n") == 1:
            return "token"
        return None

    def text_for(
        self, store_kind: str, bound: Mapping[str, Any] | None = None, *, aggregates_current: bool = True
    ) -> str:
        """The Cypher to run on a store of this kind ("neo4j" or "embedded") with these bound parameters;
        ``aggregates_current``: the store has no circuit pending for the aggregate layer."""
        case = self.aggregated_case(bound) if bound is not None and aggregates_current else None
        if case is not None:
            return dict(self.aggregated)[case]
        return self.ladybug_text if store_kind == "embedded" and self.ladybug_text else self.text

    @property
    def body(self) -> str:
        """The Neo4j text without its header comments."""
        return _strip_comments(self.text)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def bind(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every declared parameter, checked and coerced; defaults fill what ``values`` leaves out."""
        values = dict(values or {})
        names = [p.name for p in self.params]
        for key in values:
            if key not in names:
                near = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean {near[0]}? " if near else ""
                raise QueryError(
                    f"query {self.name} has no parameter {key!r}",
                    f"{hint}its parameters: {', '.join(p.signature() for p in self.params) or 'none'}",
                )
        bound: dict[str, Any] = {}
        for p in self.params:
            if p.name in values:
                bound[p.name] = p.coerce(values[p.name], self.name)
            elif p.required:
                raise QueryError(
                    f"query {self.name} needs parameter {p.name} ({p.type}): {p.help}",
                    f"pass it, e.g. scd query {self.name} -p {p.name}={_literal(_EXAMPLE[p.type])}",
                )
            else:
                bound[p.name] = p.default
            if p.required and bound[p.name] is None:
                raise QueryError(
                    f"parameter {p.name} of query {self.name} cannot be null", f"give it a {p.type} value"
                )
        if self.requires_any and all(bound.get(n) is None for n in self.requires_any):
            raise QueryError(
                f"query {self.name} needs one of the parameters {', '.join(self.requires_any)}",
                f"e.g. {self.examples[0]}" if self.examples else f"pass -p {self.requires_any[0]}=...",
            )
        for pname, allowed in self.choices:
            if bound.get(pname) is not None and bound[pname] not in allowed:
                raise QueryError(
                    f"parameter {pname} of query {self.name} must be one of {', '.join(allowed)} "
                    f"(got {bound[pname]!r})",
                    f"pass e.g. -p {pname}={allowed[0]}",
                )
        if (bound.get("limit") or 0) < 0:
            raise QueryError(f"parameter limit of query {self.name} must be >= 0 (got {bound['limit']})")
        return bound


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//")).strip()


def parse(
    text: str,
    path: Path,
    ladybug_text: str | None = None,
    aggregated: tuple[tuple[str, str], ...] = (),
    summary: tuple[tuple[str, str], ...] = (),
) -> NamedQuery:
    """Parse a library file's header; QueryError if it is malformed (a bug in the library, caught by tests)."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        m = _HEADER.match(line)
        if m:
            fields.setdefault(m.group(1), []).append(m.group(2))
    where = path.name
    if "name" not in fields or "description" not in fields:
        raise QueryError(f"{where}: header lacks '// name:' or '// description:'")
    name = fields["name"][0]
    if name != path.stem:
        raise QueryError(f"{where}: header names the query {name!r}; the file must be {name}.cypher")
    params = []
    for spec in fields.get("param", []):
        m = _PARAM.match(spec)
        if not m or m.group(2) not in TYPES:
            raise QueryError(
                f"{where}: cannot read parameter line {spec!r} (want 'name: type = default — help')"
            )
        pname, ptype, default, help_ = m.groups()
        required = default is None
        value = (
            None
            if required or default == "null"
            else Param(pname, ptype, None, False, "").coerce(
                default.strip("\"'") if ptype == "string" else default, name
            )
        )
        params.append(Param(pname, ptype, value, required, (help_ or "").strip()))
    declared = {p.name for p in params}
    used = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", _strip_comments(text)))
    if ladybug_text is not None:
        used |= set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", _strip_comments(ladybug_text)))
    if used != declared:
        raise QueryError(
            f"{where}: parameters used {sorted(used)} differ from those declared {sorted(declared)}"
        )
    for case, agg in aggregated:
        extra = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", _strip_comments(agg))) - declared
        if extra:
            raise QueryError(
                f"{where}: aggregated/{name}.{case}.cypher uses undeclared parameters {sorted(extra)}"
            )
    for case, text_ in summary:
        extra = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", _strip_comments(text_))) - declared
        if extra:
            raise QueryError(f"{where}: summary/{name} ({case}) uses undeclared parameters {sorted(extra)}")
    choices = []
    for spec in fields.get("choices", []):
        pname, sep, values = spec.partition("=")
        allowed = tuple(v.strip() for v in values.split("|") if v.strip())
        if not sep or pname.strip() not in declared or not allowed:
            raise QueryError(f"{where}: cannot read choices line {spec!r} (want 'param = a | b | c')")
        choices.append((pname.strip(), allowed))
    requires = tuple(s.strip() for s in fields.get("requires", [""])[0].split("|") if s.strip())
    if not set(requires) <= declared:
        raise QueryError(
            f"{where}: 'requires' names undeclared parameters {sorted(set(requires) - declared)}"
        )
    empty = fields.get("empty", [None])[0]
    if empty is not None and not set(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", empty)) <= declared:
        raise QueryError(f"{where}: 'empty' names undeclared parameters")
    return NamedQuery(
        name=name,
        description=fields["description"][0],
        params=tuple(params),
        requires_any=requires,
        examples=tuple(fields.get("example", [])),
        text=text.strip() + "\n",
        ladybug_text=ladybug_text,
        path=path,
        aggregated=aggregated,
        choices=tuple(choices),
        summary=summary,
        empty=empty,
    )


@cache
def _library(folder: Path = LIBRARY) -> dict[str, NamedQuery]:
    queries = {}
    for path in sorted(folder.glob("*.cypher")):
        variant = folder / "ladybug" / path.name
        aggregated = tuple(
            (case, agg.read_text(encoding="utf-8"))
            for case in ("feature", "token")
            if (agg := folder / "aggregated" / f"{path.stem}.{case}.cypher").exists()
        )
        summary = tuple(
            (case, f.read_text(encoding="utf-8"))
            for case, suffix in (("edges", ""), ("feature", ".feature"), ("token", ".token"))
            if (f := folder / "summary" / f"{path.stem}{suffix}.cypher").exists()
        )
        queries[path.stem] = parse(
            path.read_text(encoding="utf-8"),
            path,
            variant.read_text(encoding="utf-8") if variant.exists() else None,
            aggregated,
            summary,
        )
    return queries


def list_queries() -> list[NamedQuery]:
    """Every named query in the library, by name."""
    return list(_library().values())


def get_query(name: str) -> NamedQuery:
    """The named query; QueryError with the nearest names if there is none."""
    library = _library()
    if name in library:
        return library[name]
    near = difflib.get_close_matches(name, list(library), n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(near)}?" if near else "`scd queries` lists them"
    raise QueryError(f"no query named {name!r}", hint)


def run(store: Store, name: str | NamedQuery, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run a named query on an open store; an empty answer from an empty store is an error that says so.

    Phases: 1. bind the parameters; 2. where the query has a summary line read from the FEEDS edges (its case has
    no aggregate-layer text) and the store takes concurrent reads (Neo4j), start the summary on a second thread
    (it costs the server ~70% of the rows' work for a token: run after the rows it adds that to the wait, beside
    them it overlaps where a core is free); 3. the rows, from the aggregate layer while no circuit is pending (the
    pending check rides in the same statement, ``Store.read_folded``), else from the FEEDS edges; 4. the summary
    line from the same layer as the rows: from the aggregate layer the target node's totals, which came back with
    the rows (``take_totals``; a second statement for them cost +3 ms beside the rows and +5 ms after them, on a
    10k-circuit Neo4j), or read alone where there were no rows."""
    q = name if isinstance(name, NamedQuery) else get_query(name)
    bound = q.bind(params)
    slow_summary = q.summary and q.aggregated_case(bound) is None
    ahead = _beside(store, summary, store, q, bound) if slow_summary else None
    try:
        df, current, totals = _rows(store, q, bound)
    except BaseException as e:
        if ahead is not None:
            ahead.cancel()
            if isinstance(e, Exception):  # the caller may close the store next: let the line's read end first
                futures.wait([ahead])  # (not on Ctrl-C, which must not wait for a long summary)
        raise
    if q.summary:
        if ahead is not None:
            df.attrs["summary"] = ahead.result()
        elif totals is not None:  # the target's totals came with the rows: no second statement
            df.attrs["summary"] = _summary_line(q, totals)
        else:  # from the layer the rows came from: a node's totals, or the FEEDS edges while a circuit is pending
            df.attrs["summary"] = summary(store, q, bound, aggregates_current=current)
    if df.empty and q.empty:  # (an empty store was an error above): say which filters nothing passed
        df.attrs["summary"] = q.empty.format(**bound)
    if "measured" in df.columns and len(df) and df["measured"].isna().all():
        # ranked by measured, but nothing was measured: say so rather than show an empty column silently
        note = (
            "no measured effects in these circuits (ingested with --no-scores or --no-effects, or not SAE "
            "latents): ranked by the estimate instead"
        )
        df.attrs["summary"] = "; ".join(x for x in (df.attrs.get("summary"), note) if x)
    return df


def _rows(
    store: Store, q: NamedQuery, bound: dict[str, Any]
) -> tuple[pd.DataFrame, bool, dict[str, float] | None]:
    """The query's rows, whether the aggregate layer answered (True also where it was not asked), and the summary
    line's sums by kind where they came with the rows (``take_totals``)."""
    plain = q.text_for(store.kind, bound, aggregates_current=False)
    folded = q.text_for(store.kind, bound)
    if folded == plain:
        return run_cypher(store, plain, bound), True, None
    raw = store.read_folded(folded, plain, dict(bound))  # the pending check rides along
    totals = take_totals(raw)
    return _finish(store, raw), bool(raw.attrs.get("folded", True)), totals


#: columns an aggregate-layer text (queries/aggregated/) adds for the summary line: the target node's totals
#: (``scd_total`` and the kinds the line names, e.g. ``scd_error``), so the line needs no second statement
TOTALS_PREFIX = "scd_"


def take_totals(df: pd.DataFrame) -> dict[str, float] | None:
    """Drops the ``TOTALS_PREFIX`` columns from ``df`` (in place) and returns their sums by kind, the kinds the
    line does not name summed as "features"; None where there are none: no such columns, no rows, or totals unset
    (a layer folded by an older scd)."""
    columns = [c for c in df.columns if c.startswith(TOTALS_PREFIX)]
    if not columns:
        return None
    first = df[columns].iloc[0] if len(df) else None
    for c in columns:
        del df[c]
    if first is None or first.isna().any():
        return None
    total = float(first[TOTALS_PREFIX + "total"])
    parts = {c.removeprefix(TOTALS_PREFIX): float(first[c]) for c in columns if c != TOTALS_PREFIX + "total"}
    return parts | {"features": total - sum(parts.values())}


_POOL: futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _beside(store: Store, fn: Callable[..., str], *args: Any) -> futures.Future[str] | None:
    """``fn(*args)`` started on a worker thread where ``store.concurrent_reads``, else None (run it later)."""
    global _POOL
    if not store.concurrent_reads:
        return None
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="scd-summary")
    return _POOL.submit(fn, *args)


#: pseudo-features: what the SAEs leave unexplained (error terms) and the input itself (tokens)
NOT_FEATURES = {"error": "SAE error terms", "token": "input tokens"}


def summary(store: Store, q: NamedQuery, bound: Mapping[str, Any], *, aggregates_current: bool = True) -> str:
    """One line: the share of the query's |weight| that SAE error terms and input tokens carry (feeders:
    into the targets; consumers: out of the sources, and the share straight into the target logit), which the
    ranked rows leave out unless include_errors.

    Phases: 1. the summary text for the same case the rows took (aggregate layer or FEEDS edges); 2. the sum of
    |weight| by the other end's kind; 3. the non-feature kinds' shares of the total."""
    case = q.aggregated_case(bound) if aggregates_current else None
    texts = dict(q.summary)
    text = texts.get(case or "edges", texts.get("edges"))
    if text is None:
        return ""
    rows = store.read(text, dict(bound))
    if case and (rows.empty or rows["abs_weight"].isna().any()):
        # the node's totals are unset: a layer folded by an older scd (the next fold computes them), or a target
        # no aggregate relationship reaches -- the FEEDS edges answer both
        rows = store.read(texts["edges"], dict(bound))
    return _summary_line(q, {k: float(w or 0.0) for k, w in rows.itertuples(index=False)})


def _summary_line(q: NamedQuery, by_kind: Mapping[str, float]) -> str:
    """The line from the sums of |weight| by the other end's kind."""
    total = sum(by_kind.values())
    if total <= 0:
        return "no edges: nothing to explain"
    into = "into the target" if q.name == "feeders" else "out of the source"
    parts = [f"{name} {100 * by_kind[k] / total:.1f}%" for k, name in NOT_FEATURES.items() if by_kind.get(k)]
    share = sum(by_kind.get(k, 0.0) for k in NOT_FEATURES) / total
    line = f"unexplained by features: {100 * share:.1f}% of |weight| {into}" + (
        f" ({', '.join(parts)})" if parts else ""
    )
    if q.name == "consumers" and by_kind.get("logit"):  # not a feature either, but no gap in the explanation
        line += f"; straight into the target logit {100 * by_kind['logit'] / total:.1f}%"
    return line


def run_cypher(store: Store, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run Cypher read-only on an open store (the store refuses writes); an empty store is an error."""
    return _finish(store, store.read(text, dict(params or {})))


def _finish(store: Store, df: pd.DataFrame) -> pd.DataFrame:
    if df.empty and is_empty(store):
        raise empty_store_error(store)
    return _tidy(df)


def is_empty(store: Store) -> bool:
    return store.is_empty()


def empty_store_error(store: Store) -> QueryError:
    return QueryError(
        f"the store is empty ({store.describe()})",
        "run `scd ingest PROMPTS.txt --model demo` (or `scd ingest ...`) first",
    )


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Same shape from both engines: NaN -> None in object columns, a fresh 0..n-1 index."""
    df = df.reset_index(drop=True)
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = [None if isinstance(v, float) and math.isnan(v) else _plain(v) for v in df[col]]
    return df


def _plain(v: Any) -> Any:
    if hasattr(v, "tolist") and not isinstance(v, str):  # numpy arrays from LadybugDB
        return v.tolist()
    return v


def query(name: str, store: Store | StoreConfig | None = None, **params: Any) -> pd.DataFrame:
    """Run a named query and return its rows as a DataFrame.

    ``store`` is an open Store, a StoreConfig, or None for the configured default (``SCD_NEO4J_URI`` if set,
    else the embedded store at ``SCD_STORE`` / ``./scd-store``). Stores opened here are closed here.

        >>> scd.query("feeders", token=")")                                       # doctest: +SKIP
    """
    from scd.core.config import StoreConfig
    from scd.store import open_store
    from scd.store.base import Store

    q = get_query(name)
    q.bind(params)  # fail on bad parameters before opening anything
    if isinstance(store, Store):
        return run(store, q, params)
    config = store if isinstance(store, StoreConfig) else StoreConfig.resolve()
    with open_store(config, read_only=True) as opened:
        return run(opened, q, params)
