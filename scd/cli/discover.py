"""`scd discover`: one prompt's circuit, printed as a readable summary (and saved as JSON with --json)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("prompt")
@click.option(
    "--model",
    default="demo",
    show_default=True,
    metavar="NAME|PATH",
    help="demo (bundled), gpt2-small (Hugging Face hub), or a local Hugging Face GPT-2 folder.",
)
@click.option(
    "--saes",
    default=None,
    metavar="SET",
    help="SAE preset (res-jb, oai-v5-32k, oai-v5-128k), demo, or sae_lens SAE folders: DIR[,DIR...] "
    "or one folder of such folders. Default: the model's own set (demo; res-jb for gpt2-small).",
)
@click.option(
    "--target",
    default=None,
    metavar="TOKEN",
    help="Explain this next token (exactly one token) instead of the model's top prediction.",
)
@click.option(
    "--contrast",
    default=None,
    metavar="TOKEN",
    help="Explain logit(target) - logit(TOKEN) instead of log p(target).",
)
@click.option(
    "--metric",
    type=click.Choice(["log-prob", "logit", "logit-diff"]),
    default=None,
    help="What to explain: log p(target) (default), the target's demeaned logit (does not saturate when "
    "the model is sure), or logit(target) - logit(contrast) (default with --contrast).",
)
@click.option(
    "--last-token-target",
    is_flag=True,
    help="The seed's convention: the prompt's last token is the target, predicted from the rest.",
)
@click.option(
    "--method",
    type=click.Choice(["atp", "ig"]),
    default="atp",
    show_default=True,
    help="Node attributions: attribution patching or integrated gradients.",
)
@click.option(
    "--ig-steps",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Integrated-gradients steps (with --method ig).",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Keep the top N features per sublayer by |attribution|.",
)
@click.option(
    "--node-threshold",
    type=click.FloatRange(min=0),
    default=None,
    metavar="X",
    help="Keep only features with |attribution| >= X (with --top-k: both must hold).",
)
@click.option(
    "--edge-threshold",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="X",
    help="Drop edges with |weight| < X.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Downstream targets per backward pass (memory cap; results do not change).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Also write the circuit as JSON to FILE.",
)
@click.option("--scores", is_flag=True, help="Also compute faithfulness and completeness (ablation runs).")
@click.option("--device", default="cpu", show_default=True, help="Torch device, e.g. cuda.")
def discover(
    prompt,
    model,
    saes,
    target,
    contrast,
    metric,
    last_token_target,
    method,
    ig_steps,
    top_k,
    node_threshold,
    edge_threshold,
    batch_size,
    json_path,
    scores,
    device,
):
    """Discover the SAE feature circuit behind a model's next token and print a summary.

    \b
    Example:
      scd discover "Copyright (C" --model demo --json copyright.json
      scd discover "f(a [b (c" --target ")" --contrast "]" --scores
    """
    from scd.discovery import discover as run
    from scd.summary import summarize

    circuit = run(
        prompt,
        model=model,
        saes=saes,
        target=target,
        contrast=contrast,
        metric=metric,
        target_mode="last-token" if last_token_target else "predicted",
        method=method,
        ig_steps=ig_steps,
        top_k=top_k,
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        batch_size=batch_size,
        scores=scores,
        device=device,
    )
    click.echo(summarize(circuit))
    if json_path is not None:
        circuit.to_json(json_path)
        click.echo(f"\nwrote {json_path} (circuit {circuit.id})")


COMMANDS = [discover]
