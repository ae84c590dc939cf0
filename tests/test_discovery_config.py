"""DiscoveryConfig: validated once with clear messages, the same request keys as before it existed, and the
import floor plan it made possible (the CLI's options module loads no torch; cycles: test_layers.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from scd.core.errors import InputError, OptionError
from scd.discovery.config import DiscoveryConfig
from scd.ingest.pipeline import request_key
from scd.ingest.prompts import PromptSpec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "xyz"}, "unknown method 'xyz' -- use one of atp, ig"),
        ({"target_mode": "first"}, "unknown target mode 'first'"),
        ({"metric": "kl"}, "unknown metric 'kl' -- use one of: log-prob, logit, logit-diff"),
        ({"top_k": 0}, "top_k must be >= 1"),
        ({"top_k": 2.5}, "top_k must be >= 1 (a whole number), got 2.5"),
        ({"ig_steps": 0}, "ig_steps must be >= 1"),
        ({"batch_size": -3}, "batch_size must be >= 1"),
        ({"prompt_batch": 0}, "prompt_batch must be >= 1"),
        ({"top_k": None}, "neither top_k nor node_threshold is set"),
        ({"node_threshold": -1.0}, "node_threshold must be a finite number >= 0"),
        ({"edge_threshold": float("nan")}, "edge_threshold must be a finite number >= 0"),
        ({"scores": "yes"}, "scores must be True or False"),
        ({"top_kk": 3}, "unknown discovery option 'top_kk'"),
    ],
)
def test_bad_options_are_one_clear_input_error(options, message):
    with pytest.raises(InputError) as err:
        DiscoveryConfig.build(**options)
    assert message in err.value.line() and "\n" not in err.value.line()
    assert isinstance(err.value, ValueError), "Python callers passing a bad value get a ValueError too"


def test_config_is_frozen_and_normalised():
    c = DiscoveryConfig(metric="log_prob", edge_threshold=0, node_threshold=1)
    assert c.metric == "log-prob", "the CLI spelling is kept, whichever was given"
    assert isinstance(c.edge_threshold, float) and isinstance(c.node_threshold, float)
    with pytest.raises(AttributeError):
        c.top_k = 3  # type: ignore[misc]
    assert DiscoveryConfig.build(c, top_k=3).top_k == 3 and c.top_k == 20


def test_request_key_is_what_the_cli_always_hashed():
    """Stores written before DiscoveryConfig must resume: the key options equal the dict the old CLI passed
    (its non-None discovery options minus batch_size and scores), written out here by hand."""
    spec = PromptSpec("f(x", target=")")
    old_default = {
        "target_mode": "predicted",
        "method": "atp",
        "ig_steps": 10,
        "top_k": 20,
        "edge_threshold": 0.0,
    }
    assert DiscoveryConfig().key_options() == old_default
    assert request_key(
        "demo", "demo", spec, DiscoveryConfig(batch_size=7, prompt_batch=5, scores=True).key_options()
    ) == (request_key("demo", "demo", spec, old_default))
    old_custom = {
        "metric": "logit",
        "target_mode": "last-token",
        "method": "ig",
        "ig_steps": 3,
        "top_k": 5,
        "node_threshold": 0.5,
        "edge_threshold": 0.01,
    }
    new = DiscoveryConfig(
        metric="logit",
        target_mode="last-token",
        method="ig",
        ig_steps=3,
        top_k=5,
        node_threshold=0.5,
        edge_threshold=0.01,
        batch_size=4,
    )
    assert new.key_options() == old_custom


def test_options_and_hooks_modules_load_no_torch():
    code = (
        "import sys, scd.cli.options, scd.discovery.config, scd.core.hooks; "
        "print([m for m in ('torch', 'transformer_lens', 'sae_lens') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_selection_sublayers_and_ablation_options():
    from scd.discovery.config import DiscoveryConfig

    base = DiscoveryConfig()
    assert "ablation" not in base.key_options() and "selection" not in base.key_options()
    assert "sublayers" not in base.circuit_params("log_prob", None)
    c = DiscoveryConfig(sublayers="mlp, attn", selection="greedy:12", ablation="mean")
    assert c.sublayers == ("attn", "mlp")
    assert c.selection_rule() == ("greedy", 12.0)
    params = c.circuit_params("log_prob", None)
    assert params["sublayers"] == ["attn", "mlp"] and params["selection"] == "greedy:12"
    assert params["ablation"] == "mean" and c.key_options()["ablation"] == "mean"
    assert DiscoveryConfig(selection="influence").selection_rule() == ("influence", 0.8)
    assert DiscoveryConfig(selection="top-k").selection is None
    assert DiscoveryConfig(sublayers=("resid", "attn", "mlp")).sublayers is None
    assert "ablation" not in DiscoveryConfig(ablation="mean").key_options(), (
        "top-k circuits do not depend on it"
    )
    for bad, match in [
        ({"selection": "best"}, "unknown selection"),
        ({"selection": "influence:1.5"}, "influence share"),
        ({"selection": "greedy:2.5"}, "greedy's size"),
        ({"selection": "greedy:x"}, "greedy's size"),
        ({"sublayers": "attn,embed"}, "unknown sublayers"),
        ({"ablation": "resample"}, "unknown ablation"),
    ]:
        with pytest.raises(OptionError, match=match):
            DiscoveryConfig(**bad)


def test_the_cli_defaults_are_the_configs_defaults():
    """A command with the shared discovery options and no flags builds DiscoveryConfig's own defaults, except
    --scores (on by default on the command line, documented in scd/cli/options.py)."""
    import click
    from click.testing import CliRunner

    from scd.cli.options import discovery_options

    seen = []

    @click.command()
    @discovery_options
    def probe(discovery):
        seen.append(discovery)

    result = CliRunner().invoke(probe, [])
    assert result.exit_code == 0, result.output
    assert seen == [DiscoveryConfig(scores=True)]
