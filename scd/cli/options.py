"""Options shared by several commands, declared once so they never drift apart: the model and discovery
options of `scd discover` / `scd ingest`, and the one --format / --limit of every tabular output."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from scd.core.config import DEFAULT_STORE, StoreConfig
from scd.discovery.config import ABLATIONS, METHODS, METRICS, DiscoveryConfig

#: the defaults of every discovery option come from DiscoveryConfig, so the CLI and the API cannot drift apart;
#: the one deliberate difference is --scores, on by default on the command line (an ingest's circuits carry
#: their faithfulness), opt-in from Python (scd.discover(..., scores=True))
_DEFAULT = DiscoveryConfig()

_MODEL_OPTIONS = [
    click.option(
        "--model",
        default="demo",
        show_default=True,
        metavar="NAME|PATH",
        help="demo (bundled), gpt2-small (Hugging Face hub), or a local Hugging Face GPT-2 folder.",
    ),
    click.option(
        "--saes",
        default=None,
        metavar="SET",
        help="SAE preset (res-jb, oai-v5-32k, oai-v5-128k), demo, or sae_lens SAE folders: DIR[,DIR...] "
        "or one folder of such folders. Default: the model's own set (demo; res-jb for gpt2-small). "
        "Transcoders (graphs built by circuit-tracer): demo-plt, demo-clt, or a folder in circuit-tracer's "
        "layout (config.yaml + safetensors).",
    ),
    click.option(
        "--device",
        default="auto",
        show_default=True,
        help="Torch device: auto (cuda when torch sees a GPU, else cpu), cpu, cuda, cuda:1, ...",
    ),
]

_DISCOVERY_OPTIONS = [
    click.option(
        "--metric",
        type=click.Choice(list(METRICS)),
        default=None,
        help="What to explain: log p(target) (default), the target's demeaned logit (does not saturate when "
        "the model is sure), or logit(target) - logit(contrast) (the default when a contrast is given).",
    ),
    click.option(
        "--last-token-target",
        is_flag=True,
        help="The seed's convention: the prompt's last token is the target, predicted from the rest.",
    ),
    click.option(
        "--method",
        type=click.Choice(list(METHODS)),
        default=_DEFAULT.method,
        show_default=True,
        help="Node attributions: attribution patching or integrated gradients.",
    ),
    click.option(
        "--ig-steps",
        type=int,
        default=_DEFAULT.ig_steps,
        show_default=True,
        help="Integrated-gradients steps (with --method ig).",
    ),
    click.option(
        "--top-k",
        type=int,
        default=_DEFAULT.top_k,
        show_default=True,
        help="Keep the top N features per sublayer by |attribution|.",
    ),
    click.option(
        "--node-threshold",
        type=float,
        default=None,
        metavar="X",
        help="Keep only features with |attribution| >= X (with --top-k: both must hold).",
    ),
    click.option(
        "--edge-threshold",
        type=float,
        default=_DEFAULT.edge_threshold,
        show_default=True,
        metavar="X",
        help="Drop edges with |weight| < X.",
    ),
    click.option(
        "--batch-size",
        type=int,
        default=_DEFAULT.batch_size,
        show_default=True,
        help="Downstream targets per backward pass (memory cap; results do not change).",
    ),
    click.option(
        "--prompt-batch",
        type=int,
        default=_DEFAULT.prompt_batch,
        show_default=True,
        metavar="N",
        help="Prompts per forward/backward (scd ingest): right-padded into one batch; circuits equal one-by-one "
        "to float rounding. Memory grows with N.",
    ),
    click.option(
        "--scores/--no-scores",
        default=True,
        show_default=True,
        help="Compute faithfulness and completeness by ablation (one batched forward pass per circuit), and "
        "with --effects each latent's measured effect.",
    ),
    click.option(
        "--effects/--no-effects",
        default=_DEFAULT.effects,
        show_default=True,
        help="With --scores, also measure each latent's effect by ablating it (stored on its nodes; `drivers` and "
        "feeders' `measured` rank by it): a forward pass per latent from its block on -- cheap on the demo, "
        "1-3x the discovery time for GPT-2 on a CPU.",
    ),
    click.option(
        "--sublayers",
        default=None,
        metavar="KINDS",
        help="Splice only the SAEs at these sublayers, e.g. attn,mlp (the residual stream then runs exact); "
        "default: every SAE of the set.",
    ),
    click.option(
        "--selection",
        default="top-k",
        show_default=True,
        metavar="RULE",
        help="Cut the top-k circuit further: influence[:SHARE] (cumulative influence on the logit, default "
        "0.8) or greedy[:N] (add the node that most raises measured faithfulness, N nodes, default 30).",
    ),
    click.option(
        "--ablation",
        type=click.Choice(list(ABLATIONS)),
        default=_DEFAULT.ablation,
        show_default=True,
        help="How --scores and greedy selection ablate what a circuit leaves out (mean: reference means).",
    ),
    click.option(
        "--reference",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        metavar="FILE",
        help="With --ablation mean: the text (one passage per line) whose positions the means are taken over "
        "(default: the demo model's held-out text; other models: the prompt's own positions).",
    ),
]


#: the one output switch of every command that prints rows (rendered by scd.queries.render)
FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
LIMIT = click.option("--limit", type=click.IntRange(0), default=None, help="At most this many rows.")
#: the loopback port of the commands that serve pages (browser, browser-guide)
PORT = click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)


def _apply(options, f):
    for option in reversed(options):
        f = option(f)
    return f


def model_options(f):
    """--model, --saes and --device, passed through as keyword arguments of the same names."""
    return _apply(_MODEL_OPTIONS, f)


def discovery_options(f):
    """The discovery parameters, passed as one validated DiscoveryConfig ``discovery`` (ranges are checked by
    DiscoveryConfig alone, so the CLI and the Python API refuse the same values with the same message)."""

    @functools.wraps(f)
    def wrapper(
        *args,
        metric,
        last_token_target,
        method,
        ig_steps,
        top_k,
        node_threshold,
        edge_threshold,
        batch_size,
        prompt_batch,
        scores,
        effects,
        sublayers,
        selection,
        ablation,
        reference,
        **kwargs,
    ):
        discovery = DiscoveryConfig(
            metric=metric,
            target_mode="last-token" if last_token_target else "predicted",
            method=method,
            ig_steps=ig_steps,
            top_k=top_k,
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
            batch_size=batch_size,
            prompt_batch=prompt_batch,
            scores=scores,
            effects=effects,
            sublayers=sublayers,
            selection=selection,
            ablation=ablation,
            reference=reference,
        )
        return f(*args, discovery=discovery, **kwargs)

    return _apply(_DISCOVERY_OPTIONS, wrapper)


def store_options(f):
    """Adds ``--neo4j`` and ``--store`` to a command and passes it a resolved ``store_config``."""

    @functools.wraps(f)
    def wrapper(*args, neo4j_uri=None, store_path=None, **kwargs):
        return f(*args, store_config=StoreConfig.resolve(neo4j_uri, store_path), **kwargs)

    wrapper = click.option(
        "--store",
        "store_path",
        type=click.Path(path_type=Path),
        default=None,
        help=f"Embedded store folder (default ./{DEFAULT_STORE}; env SCD_STORE). Ignored with --neo4j.",
    )(wrapper)
    wrapper = click.option(
        "--neo4j",
        "neo4j_uri",
        default=None,
        metavar="URI",
        help="Neo4j Bolt URI, e.g. neo4j://localhost:7687 (env SCD_NEO4J_URI; credentials from "
        "SCD_NEO4J_USER / SCD_NEO4J_PASSWORD, database from SCD_NEO4J_DATABASE).",
    )(wrapper)
    return wrapper
