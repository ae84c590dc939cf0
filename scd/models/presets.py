"""SAE presets: short names for the GPT-2-small SAE sets published through sae_lens.

A preset names one or more sae_lens *releases*; every SAE of those releases is loaded, one per hook.
Presets are resolved offline against the ``pretrained_saes.yaml`` that sae_lens ships (read with sae_lens'
own loader), so a typo or a release sae_lens no longer knows fails before any download starts.

* ``res-jb``      -- ``gpt2-small-res-jb``: Joseph Bloom's residual-stream SAEs (resid_pre of blocks 0-11 and
                     resid_post of block 11, 24576 features each); the "old residual autoencoders" of the seed.
* ``oai-v5-32k``  -- OpenAI's v5 TopK SAEs, 32k features, at resid_post, attn_out and mlp_out of every block.
* ``oai-v5-128k`` -- the same with 128k features (the set the seed's repository used).

Neuronpedia ids come from the same yaml (``gpt2-small/{L}-res-jb`` for res-jb, where resid_post of block 11 is
``12-res-jb``), so feature URLs are never guessed from hook names.
"""

from __future__ import annotations

from dataclasses import dataclass

from scd.core.errors import ModelError
from scd.core.hooks import hook_sort_key, split_hook

PRESETS: dict[str, tuple[str, ...]] = {
    "res-jb": ("gpt2-small-res-jb",),
    "oai-v5-32k": (
        "gpt2-small-resid-post-v5-32k",
        "gpt2-small-attn-out-v5-32k",
        "gpt2-small-mlp-out-v5-32k",
    ),
    "oai-v5-128k": (
        "gpt2-small-resid-post-v5-128k",
        "gpt2-small-attn-out-v5-128k",
        "gpt2-small-mlp-out-v5-128k",
    ),
}

#: the model every preset was trained on, as sae_lens names it in its yaml
PRESET_MODEL = "gpt2-small"


@dataclass(frozen=True)
class PresetSAE:
    release: str  # sae_lens release, e.g. gpt2-small-res-jb
    sae_id: str  # id inside the release, e.g. blocks.3.hook_resid_pre
    hook: str  # TransformerLens hook the SAE reads and writes
    neuronpedia_id: str | None  # e.g. gpt2-small/3-res-jb, from the yaml

    @property
    def identity(self) -> str:
        return f"{self.release}/{self.sae_id}"

    def neuronpedia_url(self, index: int) -> str | None:
        if not self.neuronpedia_id:
            return None
        return f"https://www.neuronpedia.org/{self.neuronpedia_id}/{index}"


def resolve_preset(name: str) -> list[PresetSAE]:
    """The SAEs of preset `name`, in forward order, checked against sae_lens' shipped release list.

    Raises ModelError for an unknown preset or a release sae_lens does not list.
    """
    if name not in PRESETS:
        raise ModelError(
            f"unknown SAE preset {name!r}",
            f"use one of {', '.join(PRESETS)}, or pass folders of sae_lens SAEs (--saes DIR[,DIR...])",
        )
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    out: list[PresetSAE] = []
    for release in PRESETS[name]:
        lookup = directory.get(release)
        if lookup is None:
            raise ModelError(
                f"SAE preset {name!r} needs release {release!r}, which this sae_lens does not list",
                "install the sae-lens version pinned in pyproject.toml",
            )
        if lookup.model != PRESET_MODEL:
            raise ModelError(f"release {release!r} is for model {lookup.model!r}, not {PRESET_MODEL!r}")
        for sae_id in lookup.saes_map:
            # In these releases the SAE id is the hook name; refuse anything else rather than guess.
            if split_hook(sae_id) is None:
                raise ModelError(f"release {release!r} has SAE id {sae_id!r}, which is not a hook name")
            out.append(PresetSAE(release, sae_id, sae_id, lookup.neuronpedia_id.get(sae_id)))
    out.sort(key=lambda s: hook_sort_key(s.hook))
    return out
