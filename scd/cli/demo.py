"""`scd demo-model`: train the bundled demo model and its SAEs, and print their metrics."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.group("demo-model")
def demo_model_group():
    """The bundled offline demo model (--model demo): train it again, or measure it.

    \b
    Example:
      scd demo-model eval
      scd demo-model train --out ./demo-weights --seed 0
    """


@demo_model_group.command("train")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write model/, vocab.json and saes/ into (the layout of scd/demo/weights).",
)
@click.option(
    "--seed", default=0, show_default=True, help="Seed of the corpus, the weights and the shuffles."
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Model training steps (default: the shipped model's).",
)
@click.option(
    "--sae-steps",
    type=click.IntRange(min=1),
    default=None,
    help="SAE training steps, all SAEs in lockstep (default: the shipped SAEs').",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="torch CPU threads (the shipped weights were trained with 2).",
)
def train_cmd(out: Path, seed: int, steps: int | None, sae_steps: int | None, threads: int):
    """Train the demo model and its SAEs from scratch (seeded, CPU).

    \b
    Example:
      scd demo-model train --out ./demo-weights
      scd demo-model eval --weights ./demo-weights
    """
    from scd.demo.train import train

    start = time.time()
    timings = train(
        out,
        seed=seed,
        steps=steps,
        sae_steps=sae_steps,
        threads=threads,
        progress=lambda line: click.echo(line, err=True),
    )
    click.echo(
        f"Wrote {out} in {time.time() - start:.0f} s (model {timings['model']:.0f} s, "
        f"SAEs {timings['saes']:.0f} s). Measure it: scd demo-model eval --weights {out}"
    )


@demo_model_group.command("eval")
@click.option(
    "--weights",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A folder written by `scd demo-model train` (default: the shipped weights).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the held-out text and prompts.")
@click.option("--no-saes", is_flag=True, help="Measure the model only.")
def eval_cmd(weights: Path | None, seed: int, no_saes: bool):
    """Print the demo model's metrics on held-out generated text.

    Closer accuracy (clean, and with every SAE spliced in), and per SAE its fraction of variance unexplained,
    mean L0 and share of dead latents.

    \b
    Example:
      scd demo-model eval
    """
    from scd.demo.evaluate import evaluate, format_table

    click.echo(format_table(evaluate(weights, seed=seed, with_saes=not no_saes)))


COMMANDS = [demo_model_group]
