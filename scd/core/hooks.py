"""What scd knows about TransformerLens hook names, sublayer order and node kinds -- its one home.

A hook name is ``blocks.L.<name>`` (``blocks.3.hook_mlp_out``, ``blocks.3.ln2.hook_normalized``). Inside one block
the forward pass meets the hooks in ``BLOCK_ORDER``; the engine splices SAEs at ``SPLICE_SUBLAYERS`` only (the
residual stream and the attention / MLP outputs). Block L's ``hook_resid_post`` *is* block L+1's
``hook_resid_pre`` (the same residual stream), so its node layer is L+1 and pictures draw them on one row.

Used by the engine (splice), the SAE loaders and presets (forward order), and the reports (draw, summary).
No torch here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: every kind a circuit node has (scd.core.circuit.Node.kind)
NODE_KINDS = ("token", "resid", "attn", "mlp", "transcoder", "error", "logit")
#: the kinds that are dictionary features (one latent of an SAE or transcoder)
FEATURE_KINDS = ("resid", "attn", "mlp", "transcoder")

#: TransformerLens hooks inside one block, in the order the forward pass meets them
BLOCK_ORDER = (
    "hook_resid_pre",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "ln2.hook_normalized",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
)
#: the sublayers the engine splices SAEs into, in forward order
SPLICE_SUBLAYERS = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")

#: where a (per-layer or cross-layer) transcoder's features read -- their MLP's input, after ln2 -- and where
#: they write, the MLP's output (its error node sits there too), as TransformerLens names them inside a block
TRANSCODER_IN = "ln2.hook_normalized"
TRANSCODER_OUT = "hook_mlp_out"

EMBED_HOOK = "blocks.0.hook_resid_pre"  # where the token leaf (embedding + positional embedding) sits
TOKEN_HOOK = "hook_embed"  # the hook recorded on token nodes
LOGIT_HOOK = "unembed"  # the hook recorded on the logit node

_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")
_KIND = {"hook_attn_out": "attn", "hook_mlp_out": "mlp"}  # every other splice sublayer is "resid"


def block_hook(layer: int, name: str) -> str:
    """``(3, "hook_mlp_out")`` -> ``"blocks.3.hook_mlp_out"``."""
    return f"blocks.{layer}.{name}"


def transcoder_hooks(layer: int) -> tuple[str, str]:
    """(where layer ``layer``'s transcoder features read, where they write and its error node sits)."""
    return block_hook(layer, TRANSCODER_IN), block_hook(layer, TRANSCODER_OUT)


def split_hook(hook: str) -> tuple[int, str] | None:
    """``"blocks.3.ln2.hook_normalized"`` -> ``(3, "ln2.hook_normalized")``; None for hooks outside the blocks."""
    m = _HOOK_RE.match(hook)
    return (int(m.group(1)), m.group(2)) if m else None


def parse_hook(hook: str) -> tuple[int, str]:
    """``"blocks.3.hook_mlp_out"`` -> ``(3, "hook_mlp_out")``; ValueError unless an SAE can be spliced there."""
    parts = split_hook(hook)
    if parts is None or parts[1] not in SPLICE_SUBLAYERS:
        raise ValueError(
            f"unsupported SAE hook {hook!r}: expected blocks.L.{{{', '.join(SPLICE_SUBLAYERS)}}}"
        )
    return parts


def is_splice_hook(hook: str) -> bool:
    parts = split_hook(hook)
    return parts is not None and parts[1] in SPLICE_SUBLAYERS


def hook_layer(hook: str) -> int:
    """Block index of a hook name (``blocks.3.hook_attn_out`` -> 3); -1 if it has none."""
    parts = split_hook(hook)
    return parts[0] if parts else -1


def hook_sort_key(hook: str) -> tuple[int, int, str]:
    """Sort key that puts any hook names in forward order (block, then place inside the block; hooks outside
    the blocks last, hooks this table does not know after the known ones of their block)."""
    parts = split_hook(hook)
    if parts is None:
        return (10**6, 0, hook)
    block, name = parts
    return (block, BLOCK_ORDER.index(name) if name in BLOCK_ORDER else len(BLOCK_ORDER), name)


def ordered_hooks(hooks: Iterable[str]) -> list[str]:
    """Hook names in forward order."""
    return sorted(hooks, key=hook_sort_key)


def node_kind(hook: str) -> str:
    """Kind of the feature nodes of an SAE at `hook`: "attn" (attn_out), "mlp" (mlp_out), else "resid"."""
    return _KIND.get(parse_hook(hook)[1], "resid")


def node_layer(hook: str) -> int:
    """Block index; resid_post of block L counts as layer L+1 (it is the next block's resid_pre)."""
    block, name = parse_hook(hook)
    return block + 1 if name == "hook_resid_post" else block


def stream_position(hook: str) -> float | None:
    """Where a hook sits along the forward pass: block L spans [L, L+1] and its resid_post is at L+1, exactly
    block L+1's resid_pre. In-block hooks this module does not know sit with hook_mlp_out (transcoder outputs
    and the like); None for hooks outside the blocks."""
    parts = split_hook(hook)
    if parts is None:
        return None
    block, name = parts
    # an unknown name may carry a known sublayer as its last part (e.g. "transcoder.hook_mlp_out")
    tail = name if name in BLOCK_ORDER else name.rsplit(".", 1)[-1]
    rank = BLOCK_ORDER.index(tail) if tail in BLOCK_ORDER else BLOCK_ORDER.index("hook_mlp_out")
    return block + rank / (len(BLOCK_ORDER) - 1)


def hook_label(hook: str) -> str:
    """Short name of a hook: ``blocks.3.hook_attn_out`` -> ``attn_out3``; other hooks are returned unchanged."""
    parts = split_hook(hook)
    if parts is None or not parts[1].startswith("hook_") or "." in parts[1]:
        return hook
    return f"{parts[1][len('hook_') :]}{parts[0]}"
