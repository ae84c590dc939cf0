"""`scd export` / `scd import` / `scd serve`: circuits as Neuronpedia / circuit-tracer graph JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scd.cli.options import store_options
from scd.core.errors import InputError


def load_circuit(circuit: str, store_config):
    """CIRCUIT is a circuit JSON file (scd discover --json) or the id of a circuit in the store (shared by the
    commands that take one circuit: export, serve, draw)."""
    from scd.core.circuit import Circuit
    from scd.core.neuronpedia import is_graph_json

    path = Path(circuit)
    if path.is_file():
        doc = _read_json(path, "a circuit JSON file (scd discover --json)")
        if is_graph_json(doc):
            raise InputError(
                f"{path} is a Neuronpedia / circuit-tracer graph JSON, not an scd circuit",
                f"import it first (scd import {path} --store ...), then give the circuit id it prints",
            )
        if not isinstance(doc, dict):
            raise InputError(
                f"{path} is not a circuit JSON file", "give a file written by `scd discover --json`"
            )
        try:
            return Circuit.from_dict(doc)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(
                f"{path} is not a circuit JSON file ({type(e).__name__}: {e})",
                "give a file written by `scd discover --json`",
            ) from e
    if not circuit.startswith("c-"):
        raise InputError(
            f"{circuit!r} does not exist as a file and is not a circuit id",
            "give a file written by `scd discover --json` or an id from `scd query circuits`",
        )
    from scd.store import open_store
    from scd.store.readback import read_circuit

    with open_store(store_config, read_only=True) as s:
        return read_circuit(s, circuit)


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} is not JSON: {e}", f"give {what}") from e


def _write(path: Path, text: str) -> None:
    """``text`` into ``path`` whole (a temporary file renamed over it), or one InputError naming the folder."""
    if not path.parent.is_dir():
        raise InputError(
            f"cannot write {path}: the folder {path.parent} does not exist", "create it, or choose another -o"
        )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {e.strerror or e}", "choose a writable -o path") from e


@click.command("export")
@click.argument("circuit")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["neuronpedia", "json"]),
    default="neuronpedia",
    show_default=True,
    help="neuronpedia: the graph JSON of Neuronpedia and circuit-tracer's viewer; json: scd's circuit JSON.",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write.",
)
@store_options
def export_cmd(circuit, fmt, out, store_config):
    """Write a circuit (a circuit JSON file, or an id in the store) as graph JSON.

    SAE circuits too: their latents are typed "<kind> sae latent" and their error terms
    "<kind> reconstruction error", so the viewer draws them; labels go into "clerp".

    \b
    Example:
      scd export c-0123456789abcdef --format neuronpedia -o graph.json
      scd export copyright.json -o graph.json
    """
    from scd.core.neuronpedia import graph_json_text, to_graph_json

    c = load_circuit(circuit, store_config)
    text = graph_json_text(to_graph_json(c), indent=1) if fmt == "neuronpedia" else c.to_json()
    _write(out, text)
    click.echo(f"wrote {out} ({len(c.nodes)} nodes, {len(c.edges)} links; circuit {c.id})")


@click.command("import")
@click.argument("graph", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--model", default=None, metavar="NAME", help="Model name for a foreign graph (default: its scan)."
)
@click.option(
    "--sae-set", default=None, metavar="NAME", help="Dictionary name for a foreign graph (default: its scan)."
)
@store_options
def import_cmd(graph, model, sae_set, store_config):
    """Store a Neuronpedia / circuit-tracer graph JSON as a circuit, in the schema every named query reads.

    The whole file is checked first; a malformed one is one error and nothing is written. Importing the same
    file twice is a no-op.

    \b
    Example:
      scd import graph.json --store ./scd-store
      scd import gemma-graph.json --model gemma-2-2b --sae-set gemmascope-transcoders
    """
    from scd.core.neuronpedia import from_graph_json
    from scd.store import open_store

    doc = _read_json(graph, "a graph JSON file")
    circuit = from_graph_json(doc, model=model, sae_set=sae_set)
    with open_store(store_config) as s:
        written = s.write_circuit(circuit)
        where = s.describe()
    verb = "stored" if written else "already in the store:"
    click.echo(
        f"{verb} circuit {circuit.id} ({len(circuit.nodes)} nodes, {len(circuit.edges)} edges) in {where}"
    )


@click.command("serve")
@click.argument("circuit")
@click.option("--port", default=8032, show_default=True, help="Port of the local viewer.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the graph files (default: a temporary one).",
)
@store_options
def serve_cmd(circuit, port, data_dir, store_config):
    """Show a circuit in circuit-tracer's local attribution-graph viewer (Ctrl-C stops it).

    \b
    Example:
      scd serve copyright.json --port 8032
    """
    import tempfile
    import time

    from circuit_tracer.frontend.local_server import serve
    from circuit_tracer.frontend.utils import add_graph_metadata

    from scd.core.neuronpedia import graph_json_text, to_graph_json

    c = load_circuit(circuit, store_config)
    # absolute: circuit-tracer's add_graph_metadata asserts its folder is an absolute path
    folder = (data_dir or Path(tempfile.mkdtemp(prefix="scd-serve-"))).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {folder}: {e.strerror or e}", "choose another --data-dir") from e
    doc = to_graph_json(c)
    _write(folder / f"{doc['metadata']['slug']}.json", graph_json_text(doc))
    add_graph_metadata({k: v for k, v in doc["metadata"].items() if k != "scd"}, str(folder))
    server = serve(data_dir=str(folder), port=port)
    click.echo(f"viewer: http://localhost:{port}/index.html  (graph {doc['metadata']['slug']}; Ctrl-C stops)")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        server.stop()


COMMANDS = [export_cmd, import_cmd, serve_cmd]
