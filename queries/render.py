"""One renderer for every tabular output of the CLI: ``--format table|csv|json``.

``render(df, fmt)`` turns a DataFrame into text. Tables are aligned plain text (floats to 4 significant digits,
lists and maps as JSON, long cells cut with "…" so a row fits a terminal); CSV and JSON keep full precision
(lists become JSON arrays inside a CSV cell, missing values are empty / null). ``render_sections`` renders
several named frames (and a few summary values) as one document, for commands that answer with more than one
table, e.g. ``scd compare``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

FORMATS = ("table", "csv", "json")
MAX_CELL = 60  # characters per table cell


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT
    except TypeError:
        return False


def _plain(v: Any) -> Any:
    """A JSON-ready Python value (numpy scalars and arrays, NaN -> None)."""
    if _missing(v):
        return None
    if hasattr(v, "tolist") and not isinstance(v, str):
        v = v.tolist()
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _cell(v: Any) -> str:
    v = _plain(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | dict):  # JSON, so list items that are themselves "," or "]" stay readable
        text = json.dumps(v, ensure_ascii=False, default=str)
    else:
        text = str(v).replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "(no rows)"
    cols = [str(c) for c in df.columns]
    cells = [[_cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
    numeric = [
        pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns
    ]
    widths = [max([len(cols[i])] + [len(r[i]) for r in cells]) for i in range(len(cols))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(cols), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _csv_value(v: Any) -> Any:
    v = _plain(v)
    if isinstance(v, list | dict):
        return json.dumps(v, ensure_ascii=False)
    return v


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts."""
    return [
        {str(k): _plain(v) for k, v in zip(df.columns, row, strict=True)}
        for row in df.itertuples(index=False, name=None)
    ]


def render(df: pd.DataFrame, fmt: str = "table") -> str:
    """The DataFrame as text in one of FORMATS (no trailing newline)."""
    if fmt == "table":
        return _table(df)
    if fmt == "csv":
        buf = io.StringIO()
        df.map(_csv_value).to_csv(buf, index=False, lineterminator="\n")
        return buf.getvalue().rstrip("\n")
    if fmt == "json":
        return json.dumps(records(df), ensure_ascii=False, indent=1)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def render_sections(
    sections: Mapping[str, pd.DataFrame], fmt: str = "table", summary: Mapping[str, Any] | None = None
) -> str:
    """Several named frames as one document: titled tables, CSV blocks under ``# title`` lines, or one JSON
    object ``{summary..., title: [rows]}``."""
    summary = dict(summary or {})
    if fmt == "json":
        doc = {k: _plain(v) for k, v in summary.items()}
        doc |= {title: records(df) for title, df in sections.items()}
        return json.dumps(doc, ensure_ascii=False, indent=1)
    parts = []
    if summary:
        head = [f"{k}: {_cell(v)}" for k, v in summary.items()]
        parts.append("\n".join(("# " + h) if fmt == "csv" else h for h in head))
    for title, df in sections.items():
        parts.append((f"# {title}\n" if fmt == "csv" else f"{title}\n") + render(df, fmt))
    return "\n\n".join(parts)
