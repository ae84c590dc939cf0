"""SAE sets too large for memory: loaded one SAE at a time and kept as the few latents the prompts use.

oai-v5-128k is 36 TopK SAEs of 131072 latents: float32 W_enc + W_dec are 0.8 GB each, 29 GB together, while a
prompt fires a few hundred latents per SAE. A `LazySAESet` stands where the dict of loaded SAEs would
(``ModelBundle.saes``): it holds every SAE's config and a loader, never all the weights at once.
`scd.models.saes.load_saes` makes one when the set's weights exceed ``SCD_SAE_MEMORY_GB`` (default 4) or when
asked (``lazy=True``; ``scd ingest --lazy-saes``).

How the engine uses it (`LazySAESet.slice_for`, called by scd.discovery.discover once per prompt):

1. **clean forward** -- run the model on a *chunk* of prompts (the one asked for plus the next ones announced
   with `LazySAESet.plan`, up to ``chunk_positions`` token positions), caching every SAE hook's input x. The
   spliced forward of attribution computes the same activations (its leaves carry the clean values).
2. **slice** -- per SAE, in forward order: load it (sae_lens' own loader), encode each cached x and decode the
   result (f and x̂ = dec(f) recorded per prompt: what the full SAE gives), keep the latents active in any
   prompt of the chunk as a copy of the SAE of the same sae_lens class restricted to them (`restrict_sae`:
   W_enc columns, W_dec rows, b_enc and every other per-latent parameter; TopK keeps k = all of them), then
   free the full SAE. Peak memory: the model, one full SAE, the chunk's slices. One load serves the chunk.
3. **per prompt** -- restrict the chunk's slices to the latents this prompt activates (`SlicedSAE`). On the
   prompt's clean input ``encode`` returns the recorded f and ``decode`` of that f the recorded x̂, so features
   and error terms (ε = x - x̂) are the full SAE's; gradients go through the restricted copy (∂f_j/∂x and
   ∂x̂/∂f_j involve latent j's own weights only; inactive latents have f = 0: no node, no attribution). The
   copy is exactly the one the engine's edge computation builds from a full SAE (scd.discovery.edges.SAEView),
   so circuits equal the eager path's. Latent k of a slice is latent ``latents[k]`` of the SAE; discover maps
   node indices back.

Anything else that reads the set's SAEs (ablation scores, labels) gets the full SAE through attribute access on
a `LazySAE`, loaded on demand, one at a time (correct, slow: each forward loads every SAE).
"""

from __future__ import annotations

import copy
import gc
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from scd.core.hooks import ordered_hooks

#: the SAE weights (GiB) above which a set is loaded lazily unless told otherwise
DEFAULT_BUDGET_GIB = 4.0
BUDGET_ENV = "SCD_SAE_MEMORY_GB"
#: token positions per chunk: bounds the chunk's slices (<= positions x k latents per SAE for TopK)
CHUNK_POSITIONS = 256


def memory_budget() -> float:
    """Bytes of SAE weights a set may hold in memory before it is loaded lazily (``SCD_SAE_MEMORY_GB``)."""
    raw = os.environ.get(BUDGET_ENV, "")
    try:
        gib = float(raw) if raw.strip() else DEFAULT_BUDGET_GIB
    except ValueError:
        gib = DEFAULT_BUDGET_GIB
    return gib * 2**30


def weight_bytes(cfg: Any) -> int:
    """Bytes of W_enc + W_dec of an SAE with sae_lens config `cfg` (what dominates its memory)."""
    itemsize = torch.empty(0, dtype=getattr(torch, str(cfg.dtype).removeprefix("torch."))).element_size()
    return 2 * int(cfg.d_in) * int(cfg.d_sae) * itemsize


# -- restricted copies ---------------------------------------------------------------------------------------------


def restrict_sae(sae, latents: Tensor):
    """A copy of `sae` (same sae_lens class) holding only `latents` (sorted indices): W_enc columns, W_dec rows
    and every other parameter with a d_sae-long axis. TopK keeps k = every latent (which fired is read from f).
    Raises whatever sae_lens raises for a class this cannot copy."""
    d_sae, n = int(sae.cfg.d_sae), len(latents)
    cfg = copy.deepcopy(sae.cfg)
    cfg.d_sae = n
    if hasattr(cfg, "k"):
        cfg.k = n
    # as sae_lens' own loader: no allocation until weights are assigned
    device, cfg.device = cfg.device, "meta"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub = type(sae)(cfg)
    sub.cfg.device = device
    state = {}
    for name, t in sae.state_dict().items():
        if name == "W_enc":
            t = t.index_select(1, latents)
        elif t.ndim >= 1 and t.shape[0] == d_sae:
            t = t.index_select(0, latents)
        elif t.ndim >= 1 and t.shape[-1] == d_sae:
            t = t.index_select(t.ndim - 1, latents)
        else:  # a copy: the full SAE's tensors may be views of its memory-mapped weight file, kept alive by any
            t = t.clone()  # one of them (a 128k set's pages then stay resident, 0.8 GB per SAE)
        state[name] = t
    sub.load_state_dict(state, assign=True)
    return sub.to(device=latents.device, dtype=sae.dtype).eval()


def reproduces(sub, latents: Tensor, x: Tensor, f: Tensor, x_hat: Tensor) -> bool:
    """Whether restricted copy `sub` gives the full SAE's active values f[:, latents] on x and, decoding them,
    the full reconstruction x_hat (up to float rounding)."""
    with torch.no_grad():
        f_sub = sub.encode(x)
        f_ref = f[:, latents]
        on = f_ref != 0
        x_sub = sub.decode(f_ref.to(sub.dtype))
    rtol, atol = (1e-4, 1e-5) if sub.dtype != torch.float64 else (1e-9, 1e-10)
    scale_f = f_ref.abs().max().clamp_min(1.0) if f_ref.numel() else torch.tensor(1.0)
    scale_x = x_hat.abs().max().clamp_min(1.0)
    same_f = torch.allclose(f_sub[on] / scale_f, f_ref[on] / scale_f, rtol=rtol, atol=atol)
    same_x = torch.allclose(x_sub / scale_x, x_hat.detach().to(x_sub.dtype) / scale_x, rtol=rtol, atol=atol)
    return bool(same_f and same_x)


def sub_sae(sae, latents: Tensor, x: Tensor, f: Tensor, x_hat: Tensor):
    """`restrict_sae` checked with `reproduces` on x; None if it cannot be copied or does not reproduce it."""
    if len(latents) == 0 or len(latents) == f.shape[-1]:
        return None
    try:
        sub = restrict_sae(sae, latents)
        return sub if reproduces(sub, latents, x, f, x_hat) else None
    except Exception:  # an SAE class this copy cannot reproduce: the caller uses the whole SAE
        return None


# -- one prompt's slice ----------------------------------------------------------------------------------------------


@dataclass
class Record:
    """What the full SAE gave on one prompt's clean input: x [pos, d_in], f [pos, n] (slice's latents), x̂."""

    x: Tensor
    f: Tensor
    x_hat: Tensor


def _same(t: Tensor, ref: Tensor) -> bool:
    if t.numel() != ref.numel():
        return False
    t = t.detach().reshape(ref.shape)
    return t.dtype == ref.dtype and t.device == ref.device and bool(torch.equal(t, ref))


class SlicedSAE(torch.nn.Module):
    """An SAE restricted to the latents one prompt activates (see the module docstring, phase 3).

    ``sub``: the restricted sae_lens copy; ``latents``: their indices in the full SAE (sorted);
    ``record``: the full SAE's f and x̂ on the prompt's clean input, returned (with the copy's gradients)
    when encode / decode see exactly that input."""

    def __init__(self, sub, latents: Tensor, record: Record, hook: str):
        super().__init__()
        self.sub = sub
        self.latents = latents
        self.record = record
        self.hook = hook

    @property
    def cfg(self):
        return self.sub.cfg

    @property
    def dtype(self) -> torch.dtype:
        return self.sub.dtype

    @property
    def device(self) -> torch.device:
        return self.sub.device

    @property
    def W_dec(self) -> Tensor:
        return self.sub.W_dec

    @property
    def W_enc(self) -> Tensor:
        return self.sub.W_enc

    @property
    def b_dec(self) -> Tensor:
        return self.sub.b_dec

    def encode(self, x: Tensor) -> Tensor:
        f = self.sub.encode(x)  # also sets any input-normalisation state decode reads
        if _same(x, self.record.x):  # the value is the full SAE's; the gradient the copy's
            return self.record.f.reshape(f.shape) + (f - f.detach())
        return f

    def decode(self, f: Tensor) -> Tensor:
        x_hat = self.sub.decode(f)
        if _same(f, self.record.f):
            return self.record.x_hat.reshape(x_hat.shape) + (x_hat - x_hat.detach())
        return x_hat

    def global_index(self, local: int) -> int:
        return int(self.latents[local])


# -- the lazy set --------------------------------------------------------------------------------------------------


class LazySAE:
    """One SAE of a `LazySAESet`: its sae_lens config (``cfg``), its identity, and -- on any other attribute --
    the full SAE, loaded on demand (the set holds at most one loaded at a time)."""

    def __init__(self, owner: LazySAESet, hook: str, cfg: Any, load: Callable[[], Any], identity: str):
        self._owner, self.hook, self.cfg, self._load, self.identity = owner, hook, cfg, load, identity

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._owner.full(self.hook), name)

    def decoder_rows(self, indices: Tensor) -> Tensor:
        """W_dec rows of latents `indices`: from the current chunk's slice when it holds them, else loaded."""
        return self._owner.decoder_rows(self.hook, indices)


@dataclass
class _Chunk:
    keys: list[tuple[int, ...]]
    union: dict[str, tuple[Any, Tensor]]  # hook -> (restricted copy or full SAE, its latents)
    records: dict[tuple[int, ...], dict[str, Record]]  # prompt -> hook -> record over the union's latents


class LazySAESet(dict):
    """hook -> `LazySAE`, in forward order, with the per-prompt slicing of the module docstring."""

    lazy = True

    def __init__(self, chunk_positions: int = CHUNK_POSITIONS):
        super().__init__()
        self.chunk_positions = chunk_positions
        self._plan: list[tuple[int, ...]] = []
        self._chunk: _Chunk | None = None
        self._full: tuple[str, Any] | None = None
        self.loads = 0  # full SAEs loaded so far (benchmarks report it)

    def add(self, hook: str, cfg: Any, load: Callable[[], Any], identity: str) -> None:
        self[hook] = LazySAE(self, hook, cfg, load, identity)

    # -- full SAEs, one at a time
    def full(self, hook: str):
        if self._full is not None and self._full[0] == hook:
            return self._full[1]
        self._full = None
        gc.collect()
        sae = self._load_one(hook)
        self._full = (hook, sae)
        return sae

    def _load_one(self, hook: str):
        self.loads += 1
        return self[hook]._load()

    def release(self) -> None:
        """Free the loaded full SAE and the current chunk's slices."""
        self._full, self._chunk = None, None
        gc.collect()

    # -- chunks
    def plan(self, token_lists: Iterable[Iterable[int]]) -> None:
        """Announce the prompts (token ids, as discover will run them) coming next: chunks then slice several
        prompts per SAE load. Prompts never announced still work, one chunk each."""
        self._plan = [tuple(int(t) for t in ids) for ids in token_lists]

    def slice_for(self, model, tokens: Tensor) -> dict[str, SlicedSAE]:
        """hook -> SlicedSAE of the prompt `tokens` [1, pos] (phases 1-3 of the module docstring)."""
        key = tuple(int(t) for t in tokens[0].tolist())
        if self._chunk is None or key not in self._chunk.records:
            self._chunk = None
            self._chunk = self._build_chunk(model, self._chunk_keys(key))
        chunk = self._chunk
        out: dict[str, SlicedSAE] = {}
        for hook in self:
            sae, latents = chunk.union[hook]
            rec = chunk.records[key][hook]
            local = (rec.f != 0).any(0).nonzero().squeeze(1)
            if len(local) == 0:  # nothing fires here: one silent latent keeps shapes non-empty
                local = torch.zeros(1, dtype=torch.long, device=latents.device)
            if len(local) == len(latents):
                sub = sae
            else:
                sub = restrict_sae(sae, local)
            out[hook] = SlicedSAE(sub, latents[local], Record(rec.x, rec.f[:, local], rec.x_hat), hook)
        return out

    def _chunk_keys(self, key: tuple[int, ...]) -> list[tuple[int, ...]]:
        keys, total = [key], len(key)
        if key in self._plan:
            for nxt in self._plan[self._plan.index(key) + 1 :]:
                if total + len(nxt) > self.chunk_positions:
                    break
                if nxt not in keys:
                    keys.append(nxt)
                    total += len(nxt)
        return keys

    @torch.no_grad()
    def _build_chunk(self, model, keys: list[tuple[int, ...]]) -> _Chunk:
        self._full = None
        gc.collect()
        hooks = ordered_hooks(self)
        device = torch.device(model.cfg.device or "cpu")
        xs: dict[tuple[int, ...], dict[str, Tensor]] = {}
        for key in keys:  # 1. clean forward, one prompt at a time (as attribution runs them)
            _, cache = model.run_with_cache(
                torch.tensor([key], dtype=torch.long, device=device), names_filter=lambda n: n in self
            )
            xs[key] = {h: cache[h][0].detach().clone() for h in hooks}
            del cache
        union: dict[str, tuple[Any, Tensor]] = {}
        records: dict[tuple[int, ...], dict[str, Record]] = {k: {} for k in keys}
        for hook in hooks:  # 2. slice, one full SAE at a time
            sae = self._load_one(hook)
            fs, x_hats = {}, {}
            for key in keys:
                f = sae.encode(xs[key][hook])
                fs[key], x_hats[key] = f, sae.decode(f)
            active = torch.stack([(f != 0).any(0) for f in fs.values()]).any(0)
            latents = active.nonzero().squeeze(1)
            if len(latents) == 0:
                latents = torch.zeros(1, dtype=torch.long, device=active.device)
            sub = None
            if len(latents) < int(sae.cfg.d_sae):
                try:
                    sub = restrict_sae(sae, latents)
                except Exception:  # a class this copy cannot restrict: keep the whole SAE (correct, large)
                    sub = None
                if sub is not None and not all(
                    reproduces(sub, latents, xs[k][hook], fs[k], x_hats[k]) for k in keys
                ):
                    sub = None
            if sub is None:
                sub, latents = sae, torch.arange(int(sae.cfg.d_sae), device=active.device)
            union[hook] = (sub, latents)
            for key in keys:
                records[key][hook] = Record(xs[key][hook], fs[key][:, latents].clone(), x_hats[key])
            del sae, fs, x_hats
            gc.collect()
        return _Chunk(keys, union, records)

    def decoder_rows(self, hook: str, indices: Tensor) -> Tensor:
        if self._chunk is not None:
            sae, latents = self._chunk.union[hook]
            pos = torch.searchsorted(latents, indices.to(latents.device))
            pos = pos.clamp_max(len(latents) - 1)
            if bool((latents[pos] == indices.to(latents.device)).all()):
                return sae.W_dec[pos]
        return self.full(hook).W_dec[indices]


def decoder_rows(sae, indices: Tensor) -> Tensor:
    """W_dec rows of latents `indices` of a loaded SAE or a `LazySAE` (which avoids loading the full SAE)."""
    if isinstance(sae, LazySAE):
        return sae.decoder_rows(indices)
    return sae.W_dec[indices]


def is_lazy(saes: Any) -> bool:
    return isinstance(saes, LazySAESet)
