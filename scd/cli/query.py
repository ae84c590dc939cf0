"""`scd queries | query | compare | cypher | browser-guide`: ask questions across the stored circuits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scd.cli.options import FORMAT, LIMIT, PORT, store_options


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    from scd.core.errors import QueryError

    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise QueryError(
                f"cannot read -p {item!r}", 'write parameters as -p KEY=VALUE, e.g. -p token=")"'
            )
        out[key.strip()] = value
    return out


def _json_or_text(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value


@click.command("queries")
@click.argument("name", required=False)
@FORMAT
def queries(name, fmt):
    """List the named queries: name, parameters and what each answers; with NAME, that query's parameters
    explained one by one.

    \b
    Example:
      scd queries
      scd queries feeders
      scd queries --format json
    """
    import pandas as pd

    from scd.queries.render import render
    from scd.queries.runner import get_query, list_queries

    if name is not None:
        q = get_query(name)
        allowed = dict(q.choices)
        click.echo(f"{q.name}: {q.description}\n")
        for p in q.params:
            values = f"  [{' | '.join(allowed[p.name])}]" if p.name in allowed else ""
            click.echo(f"  {p.signature()}{values}\n      {p.help}")
        for example in q.examples:
            click.echo(f"\n  e.g. {example}")
        if q.notes:
            click.echo("\n" + "\n".join(f"  {line}" for line in q.notes.splitlines()))
        return
    rows = [
        {
            "name": q.name,
            "parameters": ", ".join(_signature(p, dict(q.choices)) for p in q.params),
            "description": q.description,
            "example": q.examples[0] if q.examples else "",
        }
        for q in list_queries()
    ]
    df = pd.DataFrame(rows)
    if fmt == "table":  # descriptions are long: one block per query reads better than a wide table
        for r in rows:
            click.echo(f"{r['name']}  ({r['parameters']})\n    {r['description']}\n    e.g. {r['example']}\n")
        return
    click.echo(render(df, fmt))


def _signature(param, allowed: dict) -> str:
    values = f" [{'|'.join(allowed[param.name])}]" if param.name in allowed else ""
    return param.signature() + values


@click.command("query")
@click.argument("name")
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A query parameter (repeatable)."
)
@FORMAT
@LIMIT
@store_options
def query(name, params, fmt, limit, store_config):
    """Run a named query from the library (`scd queries` lists them).

    \b
    Example:
      scd query feeders -p token=")"
      scd query top-features -p layer=2 --format csv --limit 10
    """
    from scd.queries.render import render
    from scd.queries.runner import get_query
    from scd.queries.runner import query as run_query

    values = _pairs(params)
    q = get_query(name)
    if limit is not None and any(p.name == "limit" for p in q.params):
        values["limit"] = limit
    df = run_query(name, store_config, **values)
    note = df.attrs.get("summary")
    if limit is not None:
        df = df.head(limit)
    click.echo(render(df, fmt))
    if note:  # under the table; on stderr for csv / json, which must stay machine-readable
        click.echo(note, err=fmt != "table")


@click.command("compare")
@click.argument("prompts", nargs=-1, metavar="[PROMPT_A PROMPT_B]")
@click.option(
    "--pattern",
    default=None,
    metavar="REGEX",
    help="Compare every circuit whose whole prompt text matches this regular expression.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="With --pattern: also draw the similarity matrix as a heatmap (.png, .svg or .pdf).",
)
@FORMAT
@LIMIT
@store_options
def compare(prompts, pattern, plot, fmt, limit, store_config):
    """Compare two circuits (prompt text, prompt id or circuit id), or a group of prompts.

    Two circuits: shared features with both attributions, features only in A or only in B, and the Jaccard
    similarity of their feature sets. A group (--pattern): how often each feature appears, and the pairwise
    Jaccard similarity matrix.

    \b
    Example:
      scd compare "ab (cd [e {fg" "x = [1, 2, [3, 4"
      scd compare --pattern ".*\\(.*" --plot similarity.png
    """
    from scd.queries.compare import GroupComparison
    from scd.queries.compare import compare as run_compare
    from scd.queries.render import render_sections
    from scd.store import open_store

    with open_store(store_config, read_only=True) as store:
        result = run_compare(store, prompts, pattern)
    click.echo(render_sections(result.sections(limit), fmt, summary=result.summary()))
    if plot is not None and isinstance(result, GroupComparison):
        from scd.report.draw import draw_similarity

        title = f"Jaccard similarity of feature sets: {pattern}"
        click.echo(f"wrote {draw_similarity(result.similarity_by_prompt(), plot, title=title)}", err=True)


@click.command("cypher")
@click.argument("text")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter: VALUE is read as JSON if it parses (3, 0.5, true, null, [..]), else as text.",
)
@FORMAT
@LIMIT
@store_options
def cypher(text, params, fmt, limit, store_config):
    """Run an ad-hoc read-only Cypher query; the store itself refuses writes.

    TEXT "-" reads the query from standard input.

    \b
    Example:
      scd cypher "MATCH (f:Feature) RETURN f.kind AS kind, count(*) AS n ORDER BY n DESC"
      scd cypher "MATCH (p:Prompt) WHERE p.text CONTAINS \\$s RETURN p.text" -p s="("
    """
    from scd.queries.render import render
    from scd.queries.runner import run_cypher
    from scd.store import open_store

    if text == "-":
        text = sys.stdin.read()
    values = {k: _json_or_text(v) for k, v in _pairs(params).items()}
    with open_store(store_config, read_only=True) as store:
        df = run_cypher(store, text, values)
    if limit is not None:
        df = df.head(limit)
    click.echo(render(df, fmt))


@click.command("browser-guide")
@PORT
@click.option(
    "--print-path", is_flag=True, help="Print where the static guide and style files are, and exit."
)
@click.option(
    "--favorites",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="ZIP",
    help="Write the named query library as a Browser favorites import (drop the .zip onto Browser), and exit.",
)
def browser_guide(port, print_path, favorites):
    """Serve the Neo4j Browser guide (and the GraSS style) on loopback until Ctrl-C.

    Paste the printed `:play` line into Neo4j Browser; drag scd.grass onto it for the style.

    \b
    Example:
      scd browser-guide
      scd browser-guide --print-path
      scd browser-guide --favorites scd-queries.zip
    """
    from scd.queries.guide import GUIDE_DIR, serve

    if favorites is not None:
        from scd.queries.browser_app import FAVORITES_FOLDER, favorites_zip

        names = favorites_zip(favorites)
        click.echo(f"wrote {favorites}: {len(names)} queries in a '{FAVORITES_FOLDER}' folder of favorites")
        click.echo("Drop it onto the Neo4j Browser window (Favorites > scd); set each query's :param first.")
        return
    if print_path:
        click.echo(GUIDE_DIR / "scd.html")
        click.echo(GUIDE_DIR / "scd.grass")
        return
    with serve(port) as url:
        host_url = url.replace("127.0.0.1", "localhost")
        click.echo(f"Serving {GUIDE_DIR} on {url} (Ctrl-C stops).")
        click.echo("In Neo4j Browser run:")
        click.echo(f"  :play {host_url}scd.html")
        click.echo(
            f"  (or :play {url}scd.html once 127.0.0.1 is in browser.remote_content_hostname_whitelist)"
        )
        click.echo(
            f"Style: drag {GUIDE_DIR / 'scd.grass'} onto the Browser window, or :style {host_url}scd.grass"
        )
        try:
            import threading

            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("Stopped.")


COMMANDS = [queries, query, compare, cypher, browser_guide]
