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
    "--transcoder-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Transcoder training steps, per transcoder set (default: the shipped transcoders').",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="torch CPU threads (the shipped weights were trained with 2).",
)
def train_cmd(
    out: Path, seed: int, steps: int | None, sae_steps: int | None, transcoder_steps: int | None, threads: int
):
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
        transcoder_steps=transcoder_steps,
        threads=threads,
        progress=lambda line: click.echo(line, err=True),
    )
    click.echo(
        f"Wrote {out} in {time.time() - start:.0f} s (model {timings['model']:.0f} s, "
        f"SAEs {timings['saes']:.0f} s). Measure it: scd demo-model eval --weights {out}"
    )


@demo_model_group.command("train-transcoders")
@click.option(
    "--weights",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A folder written by `scd demo-model train` (default: the shipped weights); writes its transcoders/.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the activation stream and the weights.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimiser steps per transcoder.")
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads."
)
def train_transcoders_cmd(weights: Path | None, seed: int, steps: int | None, threads: int):
    """Train the demo model's transcoders again: a per-layer set (demo-plt) and a cross-layer one (demo-clt).

    `scd demo-model train` runs this too, after the model and its SAEs. Prints FVU and L0 per layer and the
    replacement model's next-token agreement with the real model.

    \b
    Example:
      scd demo-model train-transcoders --weights ./demo-weights
    """
    from dataclasses import replace

    from scd.demo.transcoders import TranscoderSpec, train_for

    spec = replace(TranscoderSpec(), seed=seed, **({"steps": steps} if steps else {}))
    report = train_for(weights, spec, threads=threads, progress=lambda line: click.echo(line, err=True))
    for kind in ("plt", "clt"):
        r = report[kind]
        click.echo(
            f"{kind}: FVU {' '.join(f'{v:.3f}' for v in r['fvu'])}  L0 {' '.join(f'{v:.1f}' for v in r['l0'])}"
            f"  next-token agreement {r['top1_agreement']:.3f}  ({r['seconds']:.0f} s)"
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
