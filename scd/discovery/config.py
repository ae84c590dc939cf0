"""`DiscoveryConfig`: every option that shapes discovery, in one frozen value, validated once.

The CLI (`scd discover`, `scd ingest`) and the Python API (`scd.discover(prompt, **options)`) build one; it is then
handed down unchanged to discovery (`scd.discovery.discover`), attribution, evaluation and the ingest pipeline, so
no layer re-spells or re-checks the options. No torch here: the CLI imports this module to build its options.

Three views of the same value:

* ``key_options()`` -- what a circuit's identity depends on before it is computed (the ingest pipeline's request
  key): every option that is set, minus those that only trade speed or memory (``NOT_IN_KEY``). It is the dict the
  CLI has always hashed, so stores written by earlier versions resume.
* ``circuit_params(metric, contrast)`` -- the ``params`` recorded in each Circuit (its id hashes them).
* the fields themselves, read by the engine.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from scd.core.errors import OptionError

METHODS = ("atp", "ig")
TARGET_MODES = ("predicted", "last-token")
#: user-facing metric names (CLI spelling) -> the name recorded in a circuit's parameters
METRICS = {"log-prob": "log_prob", "logit": "logit", "logit-diff": "logit_diff"}
#: prompts per forward/backward by default. bench/discovery.py --prompts on a CPU: ~1.2x for the demo model at 8,
#: 0.9x for GPT-2 shapes (each prompt's edges need a forward of their own); README 'Benchmarks'
PROMPT_BATCH = 1
#: options that change speed or memory only, or what is stored beside a circuit: never part of a request key
NOT_IN_KEY = frozenset({"batch_size", "prompt_batch", "scores", "effects"})
#: the SAE sublayer kinds a circuit can be restricted to (``sublayers``), in forward order within a block
SUBLAYERS = ("resid", "attn", "mlp")
#: node selection after attribution (``selection``): top-k alone (None), or cut further by
#: cumulative influence (share of total) or greedy ablation-checked selection (number of nodes)
SELECTIONS = {"influence": 0.8, "greedy": 30}
ABLATIONS = ("zero", "mean")


@dataclass(frozen=True)
class DiscoveryConfig:
    """How to discover a circuit (the prompt, its target and contrast, and the model are given separately).

    ``metric``: log-prob | logit | logit-diff (None: log-prob, or logit-diff when the prompt has a contrast);
    ``target_mode``: predicted (the model's top next token) | last-token (the seed's convention);
    ``method``: atp | ig (``ig_steps`` steps); ``top_k`` / ``node_threshold``: feature nodes kept per sublayer
    (both given: both must hold); ``edge_threshold``: weaker edges are dropped; ``batch_size``: downstream targets
    per backward pass; ``prompt_batch``: prompts per forward/backward when several are discovered
    (`scd.discovery.discover.discover_batch`, `scd ingest`); ``scores``: also measure faithfulness and
    completeness, and with ``effects`` each latent's effect by ablation (`scd.discovery.effects`).
    ``batch_size``, ``prompt_batch``, ``scores`` and ``effects`` never change a circuit (batched prompts: to
    float rounding). ``sublayers``: splice only the SAEs at these sublayer kinds (e.g. ("attn", "mlp"):
    the residual stream runs exact); None = every SAE of the set. ``selection``: None (top-k per sublayer), or
    "influence[:SHARE]" / "greedy[:N]" (`scd.discovery.selection`) applied to the top-k circuit; ``ablation``:
    zero | mean, how greedy selection and the scores ablate (`scd.discovery.evaluate`); ``reference``: with
    mean ablation, a text file (one passage per line) whose positions the means are taken over (default: the demo
    model's held-out generator text; other models then fall back to the prompt's own positions).
    """

    metric: str | None = None
    target_mode: str = "predicted"
    method: str = "atp"
    ig_steps: int = 10
    top_k: int | None = 20
    node_threshold: float | None = None
    edge_threshold: float = 0.0
    batch_size: int = 64
    prompt_batch: int = PROMPT_BATCH
    scores: bool = False
    effects: bool = True
    sublayers: tuple[str, ...] | None = None
    selection: str | None = None
    ablation: str = "zero"
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.sublayers is not None:
            kinds = [self.sublayers] if isinstance(self.sublayers, str) else list(self.sublayers)
            kinds = [k.strip() for part in kinds for k in part.split(",") if k.strip()]
            bad = [k for k in kinds if k not in SUBLAYERS]
            if bad or not kinds:
                raise OptionError(
                    f"unknown sublayers {', '.join(bad) or '(none)'}", f"use some of {','.join(SUBLAYERS)}"
                )
            # forward order, no repeats; every kind = the whole set (None), so request keys stay the same
            ordered = tuple(k for k in SUBLAYERS if k in kinds)
            object.__setattr__(self, "sublayers", None if ordered == SUBLAYERS else ordered)
        if self.selection is not None:
            self.selection_rule()  # validates
            if self.selection == "top-k":
                object.__setattr__(self, "selection", None)
        if self.ablation not in ABLATIONS:
            raise OptionError(f"unknown ablation {self.ablation!r}", f"use one of {', '.join(ABLATIONS)}")
        if self.reference is not None:
            if self.ablation != "mean":
                raise OptionError(
                    "a reference text is only used by mean ablation",
                    "add --ablation mean or drop --reference",
                )
            object.__setattr__(self, "reference", str(self.reference))
        if self.metric is not None:
            # both spellings are accepted (log-prob, log_prob); the CLI's is the one kept (request keys hash it)
            by_internal = {v: k for k, v in METRICS.items()}
            name = self.metric if self.metric in METRICS else by_internal.get(self.metric)
            if name is None:
                raise OptionError(f"unknown metric {self.metric!r}", f"use one of: {', '.join(METRICS)}")
            object.__setattr__(self, "metric", name)
        if self.method not in METHODS:
            raise OptionError(f"unknown method {self.method!r}", f"use one of {', '.join(METHODS)}")
        if self.target_mode not in TARGET_MODES:
            raise OptionError(
                f"unknown target mode {self.target_mode!r}", f"use one of {', '.join(TARGET_MODES)}"
            )
        _int(self, "ig_steps", "--ig-steps 10")
        _int(self, "batch_size", "--batch-size 64")
        _int(self, "prompt_batch", f"--prompt-batch {PROMPT_BATCH}")
        if self.top_k is not None:
            _int(self, "top_k", "--top-k 20")
        if self.top_k is None and self.node_threshold is None:
            raise OptionError(
                "neither top_k nor node_threshold is set: every active feature would be a node",
                "give --top-k N and/or --node-threshold X",
            )
        for name in ("node_threshold", "edge_threshold"):
            value = getattr(self, name)
            if value is None and name == "node_threshold":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise OptionError(f"{name} must be a finite number >= 0, got {value!r}")
            if value < 0:
                raise OptionError(f"{name} must be a finite number >= 0, got {value}")
            # 0 and 0.0 hash differently in a request key: always a float, as the CLI has always passed it
            object.__setattr__(self, name, float(value))
        for name in ("scores", "effects"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def selection_rule(self) -> tuple[str, float] | None:
        """("influence", share) or ("greedy", n_nodes) from ``selection``; None for plain top-k."""
        if self.selection in (None, "top-k"):
            return None
        name, _, arg = str(self.selection).partition(":")
        if name not in SELECTIONS:
            raise OptionError(
                f"unknown selection {self.selection!r}", "use top-k, influence[:SHARE] or greedy[:N]"
            )
        try:
            value = float(arg) if arg else float(SELECTIONS[name])
        except ValueError:
            value = math.nan
        if name == "influence" and not 0.0 < value <= 1.0:
            raise OptionError(
                f"the influence share must be in (0, 1], got {arg!r}", "e.g. --selection influence:0.8"
            )
        if name == "greedy" and (not value.is_integer() or value < 1):
            raise OptionError(
                f"greedy's size must be a whole number >= 1, got {arg!r}", "e.g. --selection greedy:30"
            )
        return name, value

    @classmethod
    def build(cls, config: DiscoveryConfig | None = None, **options: Any) -> DiscoveryConfig:
        """`config` (default: the defaults) with `options` replaced; unknown option names are an OptionError."""
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise OptionError(f"unknown discovery option {', '.join(map(repr, unknown))}", f"use {known}")
        base = config if config is not None else cls()
        return dataclasses.replace(base, **options) if options else base

    def key_options(self) -> dict[str, Any]:
        """The options a circuit's request key hashes (set options that can change the circuit)."""
        key = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in NOT_IN_KEY and getattr(self, f.name) is not None
        }
        if key.get("sublayers") is not None:
            key["sublayers"] = list(key["sublayers"])
        rule = self.selection_rule()
        if rule is None or rule[0] != "greedy":
            del key["ablation"]  # it changes only the scores then, which are not part of the key
            key.pop("reference", None)
        return key

    def circuit_params(self, metric_name: str, contrast: str | None) -> dict[str, Any]:
        """``Circuit.params``: what determines the circuit besides the prompt, model and SAEs.

        ``metric_name`` is the metric actually explained (METRICS value: the default depends on the contrast).
        """
        params: dict[str, Any] = {
            "method": self.method,
            "ig_steps": self.ig_steps if self.method == "ig" else None,
            "top_k": self.top_k,
            "node_threshold": self.node_threshold,
            "edge_threshold": self.edge_threshold,
            "metric": metric_name,
            "target_mode": self.target_mode,
            "contrast": contrast,
        }
        # only when set, so circuits discovered without them keep their ids
        if self.sublayers is not None:
            params["sublayers"] = list(self.sublayers)
        rule = self.selection_rule()
        if rule is not None:
            name, value = rule
            params["selection"] = f"{name}:{value:g}"
            if name == "greedy":
                params["ablation"] = self.ablation  # greedy measures F: how it ablates shapes the circuit
        return params

    def metric_name(self, has_contrast: bool) -> str:
        """The METRICS value explained for a prompt with or without a contrast token (OptionError if they clash)."""
        if self.metric is None:
            return "logit_diff" if has_contrast else "log_prob"
        name = METRICS[self.metric]
        if (name == "logit_diff") != has_contrast:
            raise OptionError(
                "the logit-diff metric needs a contrast token and only it uses one",
                "pass --contrast TOKEN with --metric logit-diff, or drop --contrast",
            )
        return name


def _int(config: DiscoveryConfig, name: str, example: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{name} must be >= 1 (a whole number), got {value!r}", f"use e.g. {example}")
