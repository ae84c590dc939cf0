"""`scd browser`: Neo4j Browser itself on loopback, connected to a Neo4j over Bolt, playing the scd guide."""

from __future__ import annotations

import click

from scd.cli.options import PORT


@click.command("browser")
@click.option(
    "--neo4j",
    "neo4j_uri",
    default=None,
    metavar="URI",
    help="Bolt URI Browser connects to (env SCD_NEO4J_URI), e.g. what `scripts/neo4j/neo4j-local start` prints.",
)
@PORT
@click.option("--no-guide", is_flag=True, help="Open Browser without playing the scd guide.")
def browser(neo4j_uri, port, no_guide):
    """Serve Neo4j Browser (and the scd guide and style) on loopback until Ctrl-C.

    For a Neo4j without Docker: scripts/neo4j/neo4j-local runs one with Bolt only (no HTTP, so no Browser of
    its own); this serves Browser's static build from Maven Central (org.neo4j.client:neo4j-browser, fetched
    once with Maven into ~/.cache/scd) and opens it connected over Bolt/WebSocket, with the guide playing.

    \b
    Example:
      export SCD_NEO4J_URI=$(scripts/neo4j/neo4j-local start)
      scd ingest examples/prompts.txt --model demo
      scd browser
    """
    from scd.core.config import StoreConfig
    from scd.core.errors import ScdError, StoreError
    from scd.queries import browser_app

    config = StoreConfig.resolve(neo4j_uri)
    if not config.neo4j_uri:
        raise StoreError(
            "no Neo4j to connect Browser to",
            "pass --neo4j URI or set SCD_NEO4J_URI "
            "(a local one: export SCD_NEO4J_URI=$(scripts/neo4j/neo4j-local start))",
        )
    try:
        app = browser_app.browser_dir(fetch=False)
    except ScdError:  # not fetched yet
        click.echo(f"Fetching Neo4j Browser {browser_app.BROWSER_VERSION} with Maven (once) ...", err=True)
        app = browser_app.browser_dir()
    with browser_app.serve(port, app=app) as base:
        url = browser_app.browser_url(
            base, config.neo4j_uri, play=not no_guide, no_auth=config.neo4j_password is None
        )
        click.echo(
            f"Neo4j Browser {browser_app.BROWSER_VERSION} for {config.neo4j_uri}, "
            f"served on {base} (Ctrl-C stops)."
        )
        click.echo(f"Open:\n  {url}")
        click.echo(f"Style, in Browser: :style {browser_app.style_url(base)}")
        click.echo(
            "Saved queries: scd browser-guide --favorites scd-queries.zip, then drop the zip onto Browser."
        )
        try:
            import threading

            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("Stopped.")


COMMANDS = [browser]
