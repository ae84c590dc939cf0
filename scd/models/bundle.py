"""What the discovery engine runs on: a model, its tokenizer and the SAEs spliced into it.

`load_bundle(model, saes)` is the one function that turns user-facing names into a ModelBundle:

* models: ``demo`` (bundled, offline), ``gpt2-small`` (TransformerLens, from the Hugging Face hub), or the path of
  a local Hugging Face GPT-2 folder (config.json + weights + tokenizer files; loaded offline through
  TransformerLens' own GPT-2 weight conversion, processed exactly as ``from_pretrained`` processes GPT-2).
* SAE sets: a preset name (scd.models.presets: ``res-jb``, ``oai-v5-32k``, ``oai-v5-128k``), ``demo``, or local sae_lens
  SAE folders (``cfg.json`` + ``sae_weights.safetensors``) given as a comma list, a list, or one parent folder
  holding one folder per SAE. ``None`` picks the model's own set (demo -> ``demo``, gpt2-small -> ``res-jb``).

Models are loaded by scd.models.model, SAE sets by scd.models.saes, which also checks that every SAE fits the
model (its hook exists and can be spliced, its d_in equals the hook's width; the error names each SAE that does
not). ``device="auto"`` picks cuda when torch sees a GPU, else cpu (`resolve_device`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformer_lens import HookedTransformer

from scd.core.errors import ModelError
from scd.core.hooks import hook_layer, hook_sort_key, node_kind
from scd.models.lazy import LazySAESet
from scd.models.model import MODEL_NAMES, load_model
from scd.models.saes import check_saes_fit, load_saes, no_neuronpedia
from scd.models.tokens import Tokenizer

__all__ = ["MODEL_NAMES", "ModelBundle", "load_bundle", "resolve_device"]

_DEFAULT_SAES = {"demo": "demo", "gpt2-small": "res-jb"}


@dataclass
class ModelBundle:
    name: str  # "demo", "gpt2-small", or the folder's name; used in Feature ids
    model: HookedTransformer
    tokenizer: Tokenizer
    saes: dict  # TransformerLens hook name -> sae_lens SAE, in forward order
    sae_set: str  # name of the SAE set ("demo", "res-jb", a folder name); used in Feature ids
    sae_ids: dict[str, str] = field(default_factory=dict)  # hook -> SAE identity (release/id or folder)
    neuronpedia: Callable[[str, int], str | None] = no_neuronpedia
    source: str = ""  # where the model came from (bundled weights path, hub name, folder path)

    @property
    def n_layers(self) -> int:
        return self.model.cfg.n_layers

    @property
    def n_ctx(self) -> int:
        return self.model.cfg.n_ctx

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.cfg.device or "cpu")

    def layer(self, hook: str) -> int:
        return hook_layer(hook)

    @property
    def lazy(self) -> bool:
        """True when the SAEs are loaded one at a time per chunk of prompts (scd.models.lazy)."""
        return isinstance(self.saes, LazySAESet)

    def saes_for(self, tokens: torch.Tensor) -> dict:
        """The SAEs to attribute prompt `tokens` [1, pos] with: the loaded set, or a lazy set's slices for it
        (whose latent k is latent ``saes[hook].latents[k]`` of the SAE)."""
        if isinstance(self.saes, LazySAESet):
            return self.saes.slice_for(self.model, tokens)
        return self.saes

    def plan(self, token_lists) -> None:
        """Announce the prompts (token ids) discovery will run next: a lazy set then slices a chunk of them per
        SAE load (scd.models.lazy). Nothing to do for a loaded set."""
        if isinstance(self.saes, LazySAESet):
            self.saes.plan(token_lists)

    def with_sublayers(self, kinds: Sequence[str] | None) -> ModelBundle:
        """The bundle with only the SAEs whose nodes are of `kinds` ("resid", "attn", "mlp") spliced in; the
        others' sublayers run exact (no features, no error term). The SAE set keeps its name: the same latent
        is the same Feature whichever sublayers a circuit splices (circuits record theirs in ``params``)."""
        if kinds is None:
            return self
        if self.lazy:
            raise ModelError(
                "--sublayers needs the SAE set loaded whole, not lazily",
                "drop --sublayers or the lazy loading",
            )
        saes = {h: s for h, s in self.saes.items() if node_kind(h) in kinds}
        if not saes:
            raise ModelError(
                f"the SAE set {self.sae_set!r} has no SAE at the sublayers {', '.join(kinds)}",
                f"choose among {', '.join(sorted({node_kind(h) for h in self.saes}))}",
            )
        return dataclasses.replace(
            self, saes=saes, sae_ids={h: self.sae_ids[h] for h in saes if h in self.sae_ids}
        )

    def describe(self) -> str:
        lazy = ", loaded lazily" if self.lazy else ""
        return f"model {self.name} ({self.n_layers} layers), SAE set {self.sae_set} ({len(self.saes)} SAEs{lazy})"


# -- public entry point -------------------------------------------------------------------------------------------


def load_bundle(
    model: str = "demo",
    saes: str | Sequence[str] | None = None,
    device: str = "cpu",
    lazy_saes: bool | None = None,
) -> ModelBundle:
    """Load a model, its tokenizer and an SAE set, checked to fit together.

    ``lazy_saes``: None (default) loads the SAEs lazily when their weights exceed ``SCD_SAE_MEMORY_GB``
    (default 4 GiB), True always, False never (scd.models.lazy; ``bundle.saes`` is then a LazySAESet).

    >>> bundle = load_bundle("demo")            # doctest: +SKIP
    >>> bundle = load_bundle("path/to/gpt2", saes="path/to/saes")  # doctest: +SKIP
    """
    device = resolve_device(device)
    name, hooked, tokenizer, source = load_model(model, device)
    if saes is None:
        saes = _DEFAULT_SAES.get(model)
        if saes is None:
            raise ModelError(
                f"no SAE set given for model {name!r}",
                "pass --saes res-jb (or another preset) or --saes DIR with local sae_lens SAE folders",
            )
    sae_set, loaded, ids, neuronpedia = load_saes(saes, device, lazy=lazy_saes)
    check_saes_fit(hooked, loaded, ids, model_name=name)
    order = sorted(loaded, key=hook_sort_key)
    items = [(h, loaded[h]) for h in order]
    loaded.clear()  # reordered in place: a LazySAESet stays one
    loaded.update(items)
    return ModelBundle(
        name=name,
        model=hooked,
        tokenizer=tokenizer,
        saes=loaded,
        sae_set=sae_set,
        sae_ids={h: ids[h] for h, _ in items},
        neuronpedia=neuronpedia,
        source=source,
    )


def resolve_device(device: str | None) -> str:
    """``"auto"`` (or None): ``"cuda"`` when torch sees a GPU, else ``"cpu"``; any other name as given."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
