"""Transcoders for the demo model: a per-layer transcoder set (PLT) and a cross-layer transcoder (CLT).

Both replace the model's MLPs with sparse features (the replacement model of circuit-tracer and of Anthropic's
"Circuit Tracing" paper):

* **PLT** -- one transcoder per layer l: features f_l = ReLU(W_enc_l x_l + b_enc_l) read the MLP's input
  x_l (``blocks.l.mlp.hook_in``, i.e. ``ln2(resid_mid)``) and reconstruct that MLP's output y_l
  (``blocks.l.mlp.hook_out`` = ``hook_mlp_out``): y_l ~ W_dec_l f_l + b_dec_l.
* **CLT** -- layer s's features read the (normalised) residual stream before MLP s, the same x_s, and write to
  every MLP output at or after s: y_l ~ sum_{s <= l} W_dec_{s->l} f_s + b_dec_l.

Phases of :func:`train_transcoders` (log lines use the names):

1. **stream** -- activation pairs (x_l, y_l) for every layer from the frozen model over fresh corpus text, BOS
   positions left out (circuit-tracer never gives BOS features: its graphs zero them and keep BOS's MLP output
   as an error node), shuffled across a refill.
2. **fit** -- Adam on normalised MSE (per layer, divided by the variance of y_l, so the loss is the FVU) plus an
   L1 penalty on f * |decoder norm| (a feature's norm over all the layers it writes to, for the CLT), the penalty
   ramped up over the first quarter of the steps. ReLU activations: circuit-tracer loads ReLU (and JumpReLU)
   transcoders.
3. **save** -- circuit-tracer's own writers (``SingleLayerTranscoder.to_safetensors``,
   ``CrossLayerTranscoder.to_safetensors``) plus a ``config.yaml`` in the layout of circuit-tracer's transcoder
   configs (``model_kind``, ``feature_input_hook``, ``feature_output_hook``, ``scan``, ``transcoders``), so
   :func:`load_plt` / :func:`load_clt` go through circuit-tracer's loaders.

Why a hand-written loop: sae_lens 6.54 ships transcoder classes for inference only (no training SAE for them),
circuit-tracer has no trainer, and the one CLT trainer on PyPI (decode-clt 0.0.1) generates activations through
nnsight from Hugging Face datasets and squats the top-level ``clt`` package. The loop is ~40 lines.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from scd.core.hooks import TRANSCODER_IN, TRANSCODER_OUT
from scd.demo import corpus

log = logging.getLogger(__name__)

#: where the features read and write, as circuit-tracer names hooks inside a block (its Gemma configs use these)
INPUT_HOOK = "mlp.hook_in"
OUTPUT_HOOK = "mlp.hook_out"
#: TransformerLens hooks of the plain HookedTransformer that carry the same values (scd.core.hooks)
TL_INPUT = "blocks.{layer}." + TRANSCODER_IN
TL_OUTPUT = "blocks.{layer}." + TRANSCODER_OUT
KINDS = ("plt", "clt")


@dataclass(frozen=True)
class TranscoderSpec:
    seed: int = 0
    steps: int = 1500
    batch_tokens: int = 512
    d_transcoder: int = 512  # features per layer (the MLPs have 512 neurons)
    lr: float = 3e-3
    l1: float = 0.015  # sparsity coefficient (after the ramp)
    seqs_per_refill: int = 128


# ---------------------------------------------------------------------------------------------------------------
# Phase 1: the activation stream
# ---------------------------------------------------------------------------------------------------------------


def pair_stream(
    model, tok, seed: int, batch: int, seqs_per_refill: int
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless (x, y) batches: x, y of shape (batch, n_layers, d_model), MLP inputs and outputs, BOS left out."""
    from scd.demo.corpus import batch_tokens

    rng = random.Random(seed + 11)
    gen = torch.Generator().manual_seed(seed + 11)
    n_layers = model.cfg.n_layers
    ins = [TL_INPUT.format(layer=i) for i in range(n_layers)]
    outs = [TL_OUTPUT.format(layer=i) for i in range(n_layers)]
    while True:
        tokens = batch_tokens(tok, rng, seqs_per_refill, model.cfg.n_ctx)
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=ins + outs)
        x = torch.stack([cache[h][:, 1:] for h in ins], dim=2).reshape(-1, n_layers, model.cfg.d_model)
        y = torch.stack([cache[h][:, 1:] for h in outs], dim=2).reshape(-1, n_layers, model.cfg.d_model)
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(perm) - batch + 1, batch):
            idx = perm[start : start + batch]
            yield x[idx], y[idx]


# ---------------------------------------------------------------------------------------------------------------
# Phase 2: the fit (both kinds share one parameterisation: W_dec[s] of shape (d_t, n_out(s), d_model))
# ---------------------------------------------------------------------------------------------------------------


class _Fit(torch.nn.Module):
    """Trainable PLT (each layer writes to itself only) or CLT (layer s writes to s..L-1)."""

    def __init__(self, kind: str, n_layers: int, d_model: int, d_t: int, y_mean: torch.Tensor):
        super().__init__()
        self.kind, self.n_layers = kind, n_layers
        dec = []
        for s in range(n_layers):
            n_out = 1 if kind == "plt" else n_layers - s
            w = torch.randn(d_t, n_out, d_model)
            dec.append(torch.nn.Parameter(0.1 * w / w.norm(dim=-1, keepdim=True)))
        self.W_dec = torch.nn.ParameterList(dec)
        self.W_enc = torch.nn.Parameter(torch.stack([d[:, 0].detach().clone() for d in dec]))  # (L, d_t, d)
        self.b_enc = torch.nn.Parameter(torch.zeros(n_layers, d_t))
        self.b_dec = torch.nn.Parameter(y_mean.clone())  # (L, d_model)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # x (B, L, d) -> f (B, L, d_t)
        return torch.relu(torch.einsum("bld,ltd->blt", x, self.W_enc) + self.b_enc)

    def decode(self, f: torch.Tensor) -> torch.Tensor:  # f (B, L, d_t) -> y_hat (B, L, d)
        y = self.b_dec.expand(f.shape[0], -1, -1).clone()
        for s in range(self.n_layers):
            out = torch.einsum("bt,tod->bod", f[:, s], self.W_dec[s])
            if self.kind == "plt":
                y[:, s] = y[:, s] + out[:, 0]
            else:
                y[:, s:] = y[:, s:] + out
        return y

    def dec_norms(self) -> torch.Tensor:  # (L, d_t): a feature's decoder norm over all layers it writes to
        return torch.stack([d.pow(2).sum(dim=(1, 2)).sqrt() for d in self.W_dec])


def fit(kind: str, model, tok, spec: TranscoderSpec, progress: Callable[[str], None] = log.info) -> _Fit:
    """Train one PLT or CLT on the frozen `model` (phases 1-2)."""
    torch.manual_seed(spec.seed + (21 if kind == "plt" else 22))
    stream = pair_stream(model, tok, spec.seed, spec.batch_tokens, spec.seqs_per_refill)
    x0, y0 = next(stream)
    var = (y0 - y0.mean(0)).pow(2).sum(-1).mean(0)  # (L,) variance of each MLP's output, the FVU denominator
    net = _Fit(kind, model.cfg.n_layers, model.cfg.d_model, spec.d_transcoder, y0.mean(0))
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    t0 = time.time()
    for step in range(spec.steps):
        x, y = next(stream)
        f = net.encode(x)
        fvu = (net.decode(f) - y).pow(2).sum(-1).mean(0) / var  # (L,)
        sparsity = (f * net.dec_norms()).sum(-1).mean(0)  # (L,)
        ramp = min(1.0, step / max(1, spec.steps // 4))
        loss = fvu.sum() + spec.l1 * ramp * sparsity.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for group in opt.param_groups:  # cosine decay to 10% over the run
            group["lr"] = spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / spec.steps)))
        if step % 500 == 0 or step == spec.steps - 1:
            l0 = (f > 0).float().sum(-1).mean(0)
            progress(
                f"transcoders: {kind} step {step + 1}/{spec.steps} FVU "
                f"{' '.join(f'{v:.3f}' for v in fvu.tolist())} L0 {' '.join(f'{v:.0f}' for v in l0.tolist())}"
                f" ({time.time() - t0:.0f} s)"
            )
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# ---------------------------------------------------------------------------------------------------------------
# Phase 3: save and load in circuit-tracer's formats
# ---------------------------------------------------------------------------------------------------------------


def _write_config(folder: Path, kind: str, n_layers: int, scan: str) -> None:
    import yaml

    cfg: dict[str, Any] = {
        "model_kind": "transcoder_set" if kind == "plt" else "cross_layer_transcoder",
        "feature_input_hook": INPUT_HOOK,
        "feature_output_hook": OUTPUT_HOOK,
        "scan": scan,
    }
    if kind == "plt":
        cfg["transcoders"] = [f"layer_{i}.safetensors" for i in range(n_layers)]
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def save(net: _Fit, folder: str | Path, scan: str) -> None:
    """Write `net` with circuit-tracer's own serialisers, plus config.yaml."""
    from circuit_tracer.transcoder.cross_layer_transcoder import CrossLayerTranscoder
    from circuit_tracer.transcoder.single_layer_transcoder import SingleLayerTranscoder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_layers, d_t, d_model = net.W_enc.shape
    if net.kind == "plt":
        for layer in range(n_layers):
            t = SingleLayerTranscoder(
                d_model, d_t, torch.relu, layer, device=torch.device("cpu"), dtype=torch.float32
            )
            t.W_enc.data.copy_(net.W_enc[layer])
            t.W_dec.data.copy_(net.W_dec[layer][:, 0])
            t.b_enc.data.copy_(net.b_enc[layer])
            t.b_dec.data.copy_(net.b_dec[layer])
            t.to_safetensors(str(folder / f"layer_{layer}.safetensors"))
    else:
        clt = CrossLayerTranscoder(
            n_layers, d_t, d_model, lazy_decoder=False, device=torch.device("cpu"), dtype=torch.float32
        )
        clt.W_enc.data.copy_(net.W_enc)
        clt.b_enc.data.copy_(net.b_enc)
        clt.b_dec.data.copy_(net.b_dec)
        for s in range(n_layers):
            clt.W_dec[s].data.copy_(net.W_dec[s])
        clt.to_safetensors(str(folder))
    _write_config(folder, net.kind, n_layers, scan)


def read_config(folder: str | Path) -> dict:
    """config.yaml of a transcoder folder (circuit-tracer's layout); InputError naming what is missing."""
    import yaml

    from scd.core.errors import InputError

    path = Path(folder) / "config.yaml"
    fix = "a transcoder folder holds config.yaml (model_kind, feature_input_hook, feature_output_hook) and weights"
    if not path.is_file():
        raise InputError(f"{folder} has no config.yaml", fix)
    cfg = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in ("model_kind", "feature_input_hook", "feature_output_hook") if k not in cfg]
    if missing or cfg["model_kind"] not in ("transcoder_set", "cross_layer_transcoder"):
        raise InputError(f"{path}: missing {missing} or unknown model_kind {cfg.get('model_kind')!r}", fix)
    return cfg


def load(folder: str | Path, device: str = "cpu"):
    """A circuit-tracer TranscoderSet or CrossLayerTranscoder from `folder`, through circuit-tracer's loaders."""
    from circuit_tracer.transcoder.cross_layer_transcoder import load_clt
    from circuit_tracer.transcoder.single_layer_transcoder import load_transcoder_set

    folder = Path(folder)
    cfg = read_config(folder)
    scan = cfg.get("scan") or folder.name
    if cfg["model_kind"] == "transcoder_set":
        paths = {
            i: str((folder / p) if not Path(p).is_absolute() else Path(p))
            for i, p in enumerate(cfg["transcoders"])
        }
        return load_transcoder_set(
            paths,
            scan=scan,
            feature_input_hook=cfg["feature_input_hook"],
            feature_output_hook=cfg["feature_output_hook"],
            device=torch.device(device),
            dtype=torch.float32,
            lazy_encoder=False,
            lazy_decoder=False,
        )
    return load_clt(
        str(folder),
        feature_input_hook=cfg["feature_input_hook"],
        feature_output_hook=cfg["feature_output_hook"],
        scan=scan,
        device=torch.device(device),
        dtype=torch.float32,
        lazy_decoder=False,
        lazy_encoder=False,
    )


# ---------------------------------------------------------------------------------------------------------------
# Measurement: FVU per layer and the replacement model's agreement with the real model
# ---------------------------------------------------------------------------------------------------------------


def _outputs(transcoders, x: torch.Tensor) -> torch.Tensor:
    """MLP outputs predicted from MLP inputs x (rows, L, d) by a circuit-tracer PLT or CLT."""
    from circuit_tracer.transcoder.cross_layer_transcoder import CrossLayerTranscoder

    if isinstance(transcoders, CrossLayerTranscoder):
        f = transcoders.encode(x.transpose(0, 1))  # (L, rows, d_t)
        y = transcoders.b_dec[:, None].expand(-1, x.shape[0], -1).clone()
        for s in range(transcoders.n_layers):
            y[s:] += torch.einsum("rt,tod->ord", f[s], transcoders.W_dec[s])
        return y.transpose(0, 1)
    return torch.stack([t(x[:, i]) for i, t in enumerate(transcoders)], dim=1)


def replacement_hooks(transcoders, n_layers: int) -> list[tuple[str, Callable]]:
    """Forward hooks that replace every MLP's output by the transcoders' output computed from the replacement
    model's own MLP inputs (no error terms), except at BOS (position 0), where the real output stays."""
    xs: dict[int, torch.Tensor] = {}

    def read(x, hook, layer):
        xs[layer] = x

    def write(y, hook, layer):
        x = torch.stack([xs[i] if i <= layer else xs[layer] for i in range(n_layers)], dim=2)
        b, p = x.shape[:2]
        out = _outputs(transcoders, x.reshape(b * p, n_layers, -1))[:, layer].reshape(b, p, -1)
        out[:, 0] = y[:, 0]
        return out

    hooks = []
    for layer in range(n_layers):
        hooks.append((TL_INPUT.format(layer=layer), lambda x, hook, layer=layer: read(x, hook, layer)))
        hooks.append((TL_OUTPUT.format(layer=layer), lambda y, hook, layer=layer: write(y, hook, layer)))
    return hooks


@torch.no_grad()
def measure(transcoders, model, tok, seed: int = 0, n_texts: int = 128) -> dict:
    """FVU and L0 per layer on held-out text (BOS left out), and the replacement model's next-token top-1
    agreement with the real model over every non-BOS position of that text."""
    texts = corpus.texts(n_texts, model.cfg.n_ctx - 1, seed, held_out=True)
    tokens = torch.tensor([tok.encode(t) for t in texts])
    n_layers = model.cfg.n_layers
    names = [TL_INPUT.format(layer=i) for i in range(n_layers)] + [
        TL_OUTPUT.format(layer=i) for i in range(n_layers)
    ]
    logits, cache = model.run_with_cache(tokens, names_filter=names)
    x = torch.stack([cache[names[i]][:, 1:] for i in range(n_layers)], 2).reshape(
        -1, n_layers, model.cfg.d_model
    )
    y = torch.stack([cache[names[n_layers + i]][:, 1:] for i in range(n_layers)], 2).reshape(x.shape)
    y_hat = _outputs(transcoders, x)
    fvu = ((y - y_hat).pow(2).sum((0, 2)) / (y - y.mean(0)).pow(2).sum((0, 2))).tolist()
    if hasattr(transcoders, "n_layers") and not hasattr(transcoders, "transcoders"):
        f = transcoders.encode(x.transpose(0, 1))  # CLT: (L, rows, d_t)
    else:
        f = torch.stack([t.encode(x[:, i]) for i, t in enumerate(transcoders)])
    l0 = (f > 0).float().sum(-1).mean(-1).tolist()
    replaced = model.run_with_hooks(tokens, fwd_hooks=replacement_hooks(transcoders, n_layers))
    agree = (replaced[:, 1:].argmax(-1) == logits[:, 1:].argmax(-1)).float().mean().item()
    return {"fvu": fvu, "l0": l0, "top1_agreement": agree}


def train_transcoders(
    model,
    tok,
    out: str | Path,
    spec: TranscoderSpec | None = None,
    progress: Callable[[str], None] = log.info,
) -> dict:
    """Train and save the PLT and the CLT of `model` into ``out/transcoders/{plt,clt}``; returns their
    measurements (and seconds) per kind."""
    spec = spec or TranscoderSpec()
    report = {}
    for kind in KINDS:
        t0 = time.time()
        net = fit(kind, model, tok, spec, progress)
        folder = Path(out) / "transcoders" / kind
        save(net, folder, scan=f"scd-demo/{kind}")
        seconds = round(time.time() - t0, 1)
        report[kind] = {**measure(load(folder), model, tok, spec.seed), "seconds": seconds}
        progress(f"transcoders: {kind} saved to {folder} ({seconds} s): {report[kind]}")
    report["spec"] = asdict(spec)
    return report


def train_for(
    weights: str | Path | None = None,
    spec: TranscoderSpec | None = None,
    threads: int | None = 1,
    progress: Callable[[str], None] = log.info,
) -> dict:
    """Train the transcoders of the demo model at `weights` (default: the shipped one) into
    ``weights/transcoders/``, and record settings, measurements and seconds in ``transcoders/training.json``."""
    import json

    import scd.demo as demo

    if threads:
        torch.set_num_threads(threads)
    path = Path(weights) if weights else demo.WEIGHTS
    model, tok = demo.load_model(path), demo.load_tokenizer(path)
    report = train_transcoders(model, tok, path, spec, progress)
    report["torch"], report["threads"] = torch.__version__, torch.get_num_threads()
    (path / "transcoders" / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
