"""`scd features label` and `scd feature ID`: what each latent responds to, stored on its Feature, and its card."""

from __future__ import annotations

import time
from pathlib import Path

import click

from scd.cli.options import FORMAT, model_options, store_options


@click.group()
def features():
    """Feature cards: top-activating contexts, activation statistics, direct logit effect and a label.

    \b
    Example:
      scd features label --model demo
    """


@features.command("label")
@model_options
@click.option(
    "--corpus",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Reference text, one passage per line (default for demo: held-out text from its training generator).",
)
@click.option("--texts", type=click.IntRange(1), default=256, show_default=True, help="Demo passages to use.")
@store_options
def label(model, saes, device, corpus, texts, store_config):
    """Compute every latent's card over a reference corpus and store it on its Feature.

    Every latent of the SAE set gets a card; a Feature no circuit has stored yet is created with the metadata a
    circuit would give it. Labels are data: regenerate them, never edit them by hand.

    \b
    Example:
      scd features label --model demo
      scd features label --model ./gpt2-folder --saes ./saes --corpus text.txt --neo4j bolt://localhost:7687
    """
    from dataclasses import asdict

    from scd.core.errors import InputError
    from scd.discovery.labels import feature_cards, latent_features
    from scd.models.bundle import load_bundle
    from scd.store import open_store
    from scd.store.rows import feature_row

    bundle = load_bundle(model, saes, device=device)
    if corpus is not None:
        lines = [t for t in corpus.read_text(encoding="utf-8").splitlines() if t.strip()]
    elif bundle.name == "demo":
        from scd.demo import corpus as demo_corpus

        lines = demo_corpus.texts(texts, 63, seed=3, held_out=True)
    else:
        raise InputError(
            f"no reference corpus for model {bundle.name!r}", "pass --corpus FILE (one passage per line)"
        )
    if not lines:
        raise InputError(f"the corpus {corpus} has no text", "give a file with one passage per line")
    t0 = time.perf_counter()
    cards = feature_cards(bundle, [t[: bundle.n_ctx - 1] for t in lines])
    features = [feature_row(f) for f in latent_features(bundle)]
    rows = [
        {k: v for k, v in asdict(c).items() if k not in ("hook", "index", "top_promoted", "feature_id")}
        | {"id": c.feature_id}
        for c in cards
    ]
    t1 = time.perf_counter()
    with open_store(store_config) as store:
        n = store.set_feature_cards(rows, features)
    fired = sum(c.frequency > 0 for c in cards)
    click.echo(
        f"labelled {n} latents ({fired} fire on the {len(lines)} reference passages) in "
        f"{store_config.describe()}: cards {t1 - t0:.1f} s, store {time.perf_counter() - t1:.1f} s"
    )


@click.command("feature")
@click.argument("feature_id", metavar="ID")
@FORMAT
@store_options
def feature(feature_id, fmt, store_config):
    """Print one feature's card: label, top contexts, activation statistics, promoted tokens, circuits.

    \b
    Example:
      scd feature demo/demo/blocks.1.hook_mlp_out/64
    """
    from scd.core.errors import QueryError
    from scd.queries.render import render
    from scd.queries.runner import query

    df = query("feature", store_config, id=feature_id)
    if df.empty:
        raise QueryError(f"no feature {feature_id!r} in the store", "`scd query top-features` lists some")
    if fmt != "table":
        click.echo(render(df, fmt))
        return
    r = df.iloc[0]
    click.echo(f"{r.feature}  ({r.kind}, layer {r.layer})")
    click.echo(f"  label:      {r.label or '(none: run `scd features label`)'}")
    if r.frequency is not None and r.frequency == r.frequency:
        click.echo(
            f"  fires on {100 * r.frequency:.2f}% of reference positions, max activation {r.max_activation:.3g}"
        )
    click.echo(f"  promotes:   {list(r.promotes or [])}   suppresses: {list(r.suppresses or [])}")
    click.echo(
        f"  circuits:   {r.circuits} ({r.nodes} nodes, sum |attribution| {r.abs_attribution or 0:.3g})"
    )
    for ctx, act in zip(r.top_contexts or [], r.top_activations or [], strict=False):
        click.echo(f"  {act:8.3f}  {ctx}")


COMMANDS = [features, feature]
