"""`scd fetch`: download GPT-2-small and an SAE preset into the Hugging Face cache, for later offline runs."""

from __future__ import annotations

import click

from scd.models.fetch import fetch as fetch_preset
from scd.models.presets import PRESETS


@click.command()
@click.argument("model", type=click.Choice(["gpt2-small"]))
@click.option(
    "--saes",
    type=click.Choice(list(PRESETS)),
    default="res-jb",
    show_default=True,
    help="The SAE preset to download with the model.",
)
def fetch(model, saes):
    """Download MODEL and an SAE preset into the standard Hugging Face cache (needs internet, once).

    Later runs find them there, also with HF_HUB_OFFLINE=1; prints each repository's cache folder and size.
    `scd doctor` says which presets are cached.

    \b
    Example:
      scd fetch gpt2-small --saes res-jb
      HF_HUB_OFFLINE=1 scd ingest examples/seed-prompts.txt --model gpt2-small --saes res-jb
    """
    stored = fetch_preset(saes, progress=lambda line: click.echo(f"fetching {line}", err=True))
    for s in stored:
        click.echo(f"stored {s.line()}")


COMMANDS = [fetch]
