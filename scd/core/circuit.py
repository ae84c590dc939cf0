"""The Circuit: the one type between discovery (scd/) and storage (ingest/).

Layout
------
A circuit explains one metric m on one prompt (by default the cross-entropy of the target token at the last
position; or a logit difference against a contrast token):

* ``prompt``   -- a PromptRecord: text, tokens (BOS included), the target and how the model scored it.
* ``nodes``    -- one Node per kept (sublayer, feature, position), per kept SAE error term (``kind="error"``,
                  ``index=-1``), per input token (``kind="token"``, the embedding) and one for the target logit
                  (``kind="logit"``). ``attribution`` is the node's estimated effect on m (f * dm/df for features);
                  ``effect`` (scored circuits) the measured drop of m when its latent is ablated on the prompt.
* ``edges``    -- direct effects ``source -> target`` between nodes (upstream -> downstream); ``weight`` is the
                  share of the downstream node's attribution that flows directly from the upstream node.
* ``features`` -- global metadata for every Feature a node points at: the SAE latent's identity, its direct
                  logit effect, a Neuronpedia URL where one exists.

Identifiers
-----------
* Feature ids are global and readable, keyed on (model, SAE set, hook, index), never on display ids:
  ``{model}/{sae_set}/{hook}/{index}``; an SAE error term is ``{model}/{sae_set}/{hook}/error``; input tokens are
  ``{model}/token/{token_id}`` and logits ``{model}/logit/{token_id}``.
* Node ids are unique within a circuit: ``{hook}/{index}@{pos}``, ``{hook}/error@{pos}``, ``token/{id}@{pos}``,
  ``logit/{id}@{pos}``. Stores prefix them with the circuit id.
* ``Circuit.id`` is a hash of everything that determines the circuit (prompt, model, SAE set, parameters), so
  re-ingesting the same thing is recognisably the same circuit and different parameters give a new one.

JSON on disk is versioned (``schema_version``); ``from_json`` refuses versions it does not know.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from scd.core.hooks import NODE_KINDS  # noqa: F401 - Node.kind is one of these (their home: scd.core.hooks)

SCHEMA_VERSION = 1


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


def feature_id(model: str, sae_set: str, hook: str, index: int) -> str:
    """Global id of one SAE latent (index >= 0) or of an SAE's error term (index == -1)."""
    return f"{model}/{sae_set}/{hook}/{'error' if index < 0 else index}"


def token_feature_id(model: str, token_id: int) -> str:
    return f"{model}/token/{token_id}"


def logit_feature_id(model: str, token_id: int) -> str:
    return f"{model}/logit/{token_id}"


def prompt_id(model: str, text: str, target: str) -> str:
    """A prompt record is determined by the model, the text and the target it explains."""
    return "p-" + _digest(model, text, target)


@dataclass
class PromptRecord:
    text: str
    tokens: list[str]  # readable token strings, BOS included
    token_ids: list[int]
    target: str  # the token the metric explains
    target_id: int
    target_prob: float  # model's probability of the target at the last position
    loss: float  # cross-entropy of the target at the last position
    top_completions: list[tuple[str, float]]  # model's top-5 next tokens with probabilities
    target_source: str = "predicted"  # predicted | explicit | last-token
    contrast: str | None = None  # for the logit-difference metric

    def id(self, model: str) -> str:
        return prompt_id(model, self.text, self.target)


@dataclass
class Node:
    id: str
    kind: str  # one of NODE_KINDS
    layer: int  # block index; tokens -1; final resid_post and logits n_layers
    hook: str  # TransformerLens hook name; "hook_embed" for tokens, "unembed" for logits
    index: int  # SAE latent index; -1 for error nodes; token id for token and logit nodes
    pos: int
    token: str  # the prompt token at `pos`
    activation: float
    attribution: float
    feature_id: str
    # exact m(clean) - m(this node's latent ablated at every position), SAE latents of scored circuits only
    # (scd.discovery.effects); None where not measured
    effect: float | None = None


@dataclass
class Edge:
    source: str  # upstream node id
    target: str  # downstream node id
    weight: float


@dataclass
class Feature:
    id: str
    model: str
    sae: str  # SAE identity (release/id or folder name); "" for token and logit features
    hook: str
    layer: int
    kind: str
    index: int
    top_promoted: list[str] = field(default_factory=list)
    top_promoted_logits: list[float] = field(default_factory=list)
    top_suppressed: list[str] = field(default_factory=list)
    top_suppressed_logits: list[float] = field(default_factory=list)
    neuronpedia_url: str | None = None
    label: str | None = None


@dataclass
class Circuit:
    prompt: PromptRecord
    model: str
    sae_set: str
    saes: dict[str, str]  # hook -> SAE identity, in forward order
    params: dict[str, Any]  # method, ig_steps, top_k, node_threshold, edge_threshold, metric, ...
    nodes: list[Node]
    edges: list[Edge]
    features: list[Feature]
    metric_value: float
    # faithfulness, completeness, ... where computed; "ablation" names how (e.g. "zero/circuit")
    scores: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    # -- identity ---------------------------------------------------------------------------------------------
    @property
    def prompt_id(self) -> str:
        return self.prompt.id(self.model)

    @property
    def id(self) -> str:
        return "c-" + _digest(self.prompt_id, self.sae_set, self.saes, self.params)

    # -- JSON -------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["id"] = self.id
        d["prompt"]["id"] = self.prompt_id
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Circuit:
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            from scd.core.errors import InputError

            raise InputError(
                f"circuit JSON has schema_version {version!r}; this scd reads {SCHEMA_VERSION}",
                "re-run `scd discover` with this version of scd to regenerate it",
            )
        prompt = dict(d["prompt"])
        prompt.pop("id", None)
        prompt["top_completions"] = [tuple(x) for x in prompt["top_completions"]]
        return cls(
            prompt=PromptRecord(**prompt),
            model=d["model"],
            sae_set=d["sae_set"],
            saes=dict(d["saes"]),
            params=dict(d["params"]),
            nodes=[Node(**n) for n in d["nodes"]],
            edges=[Edge(**e) for e in d["edges"]],
            features=[Feature(**f) for f in d["features"]],
            metric_value=d["metric_value"],
            scores=dict(d.get("scores", {})),
            created_at=d["created_at"],
            schema_version=version,
        )

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Circuit:
        if isinstance(text_or_path, Path) or not str(text_or_path).lstrip().startswith("{"):
            text_or_path = Path(text_or_path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text_or_path))

    # -- pandas -----------------------------------------------------------------------------------------------
    def nodes_df(self) -> pd.DataFrame:
        import pandas as pd  # only here: `scd` commands that never build a frame don't pay for pandas

        return pd.DataFrame(
            [dataclasses.asdict(n) for n in self.nodes], columns=[f.name for f in dataclasses.fields(Node)]
        )

    def edges_df(self) -> pd.DataFrame:
        import pandas as pd  # only here: `scd` commands that never build a frame don't pay for pandas

        return pd.DataFrame(
            [dataclasses.asdict(e) for e in self.edges], columns=[f.name for f in dataclasses.fields(Edge)]
        )

    def features_df(self) -> pd.DataFrame:
        import pandas as pd  # only here: `scd` commands that never build a frame don't pay for pandas

        return pd.DataFrame(
            [dataclasses.asdict(f) for f in self.features],
            columns=[f.name for f in dataclasses.fields(Feature)],
        )

    # -- navigation -------------------------------------------------------------------------------------------
    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)
