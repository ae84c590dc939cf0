"""What the discovery engine runs on: a model, its tokenizer and the SAEs spliced into it.

`load_bundle(model, saes)` is the one function that turns user-facing names (``demo``, ``gpt2-small``, a local
Hugging Face folder; SAE presets or local sae_lens folders) into a ModelBundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from transformer_lens import HookedTransformer

from scd.tokens import Tokenizer


@dataclass
class ModelBundle:
    name: str  # "demo", "gpt2-small", or the folder's name; used in Feature ids
    model: HookedTransformer
    tokenizer: Tokenizer
    saes: dict  # TransformerLens hook name -> sae_lens SAE, in forward order
    sae_set: str  # name of the SAE set ("demo", "res-jb", a folder name); used in Feature ids
    sae_ids: dict[str, str] = field(default_factory=dict)  # hook -> SAE identity (release/id or folder)
    neuronpedia: Callable[[str, int], str | None] = lambda hook, index: None
