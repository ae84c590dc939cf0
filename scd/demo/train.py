"""Train the demo model and its SAEs from scratch: ``scd demo-model train --out DIR``.

Phases (the log lines use the same names):

1. **model** -- a character-level HookedTransformer trained with a plain, seeded torch loop on text from
   :mod:`scd.demo.corpus` (next-character cross-entropy at every position).
2. **saes** -- one TopK SAE per hooked sublayer (every layer's ``hook_resid_pre``, ``hook_attn_out``,
   ``hook_mlp_out`` and the last ``hook_resid_post``), trained in lockstep by sae_lens' own ``MultiSAETrainer`` on
   activations streamed from the frozen model over fresh corpus text (an in-memory data provider; no HF dataset).
3. **save** -- ``model/config.json`` + ``model/model.safetensors``, ``vocab.json``, and per hook
   ``saes/<hook>/`` written by sae_lens' ``save_inference_model`` (``cfg.json`` + ``sae_weights.safetensors``).

Then the transcoders (a per-layer set and a cross-layer transcoder) are trained on the saved model by
:mod:`scd.demo.transcoders` into ``transcoders/{plt,clt}/``.

Everything is seeded (Python's ``random`` for the corpus, ``torch.manual_seed`` for weights and shuffles), so the
same seed and step counts reproduce the same weights on the same torch build and thread count, up to float
reduction order (about 1e-6 after 600 steps; the metrics came out identical).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from scd.demo import corpus
from scd.demo.tokenizer import CharTokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    n_ctx: int = 128
    act_fn: str = "gelu"
    normalization_type: str = "LN"


@dataclass(frozen=True)
class TrainSpec:
    seed: int = 0
    steps: int = 600  # model optimiser steps
    batch_size: int = 32  # sequences of n_ctx tokens (BOS + n_ctx - 1 characters)
    lr: float = 2e-3
    warmup: int = 50
    weight_decay: float = 0.01
    closer_weight: float = 4.0  # extra loss weight where the next character is a closing bracket
    sae_steps: int = 1600  # SAE optimiser steps (all SAEs in lockstep)
    sae_batch_tokens: int = 512
    sae_d_sae: int = 256
    sae_k: int = 16
    sae_lr: float = 3e-3
    sae_dead_window: int = 100  # steps without firing before TopK's auxiliary loss revives a latent


def hook_names(n_layers: int) -> list[str]:
    """The hooked sublayers in forward order: resid_pre, attn_out, mlp_out per layer, then the last resid_post."""
    hooks = []
    for layer in range(n_layers):
        hooks += [
            f"blocks.{layer}.hook_resid_pre",
            f"blocks.{layer}.hook_attn_out",
            f"blocks.{layer}.hook_mlp_out",
        ]
    return hooks + [f"blocks.{n_layers - 1}.hook_resid_post"]


def model_config(spec: ModelSpec, d_vocab: int, seed: int) -> dict:
    """The HookedTransformerConfig of the demo model, as the JSON-able dict saved in ``model/config.json``."""
    return {
        **asdict(spec),
        "d_vocab": d_vocab,
        "d_vocab_out": d_vocab,
        "positional_embedding_type": "standard",
        "default_prepend_bos": True,
        "model_name": "scd-demo",
        "seed": seed,
    }


# ---------------------------------------------------------------------------------------------------------------
# Phase 1: the model
# ---------------------------------------------------------------------------------------------------------------


def train_model(
    spec: ModelSpec, train: TrainSpec, tok: CharTokenizer, progress: Callable[[str], None]
) -> HookedTransformer:
    torch.manual_seed(train.seed)
    cfg = HookedTransformerConfig(**model_config(spec, tok.vocab_size, train.seed))
    model = HookedTransformer(cfg)
    rng = random.Random(train.seed)
    opt = torch.optim.AdamW(
        model.parameters(), lr=train.lr, betas=(0.9, 0.98), weight_decay=train.weight_decay
    )

    def lr_at(step: int) -> float:
        if step < train.warmup:
            return (step + 1) / train.warmup
        return 0.05 + 0.95 * 0.5 * (
            1 + math.cos(math.pi * (step - train.warmup) / max(1, train.steps - train.warmup))
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    closer_ids = torch.tensor([tok.single_token_id(c) for c in corpus.CLOSERS])
    model.train()
    t0 = time.time()
    for step in range(train.steps):
        tokens = corpus.batch_tokens(tok, rng, train.batch_size, spec.n_ctx)
        logits = model(tokens)[:, :-1]
        target = tokens[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
        )
        weight = 1.0 + train.closer_weight * torch.isin(target, closer_ids).reshape(-1).float()
        loss = (nll * weight).sum() / weight.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == train.steps - 1:
            progress(
                f"model: step {step + 1}/{train.steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)"
            )
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------------------------
# Phase 2: the SAEs (sae_lens' MultiSAETrainer on an in-memory activation stream)
# ---------------------------------------------------------------------------------------------------------------


def activation_stream(
    model: HookedTransformer,
    tok: CharTokenizer,
    hooks: list[str],
    seed: int,
    batch: int,
    seqs_per_refill: int = 256,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches of `batch` activation rows per hook, shuffled across a refill of fresh corpus text.

    Every position is included (BOS too): the SAEs are spliced in at every position later.
    """
    rng = random.Random(seed + 7)
    gen = torch.Generator().manual_seed(seed + 7)
    n_ctx = model.cfg.n_ctx
    while True:
        tokens = corpus.batch_tokens(tok, rng, seqs_per_refill, n_ctx)
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=hooks)
        acts = {h: cache[h].reshape(-1, cache[h].shape[-1]) for h in hooks}
        perm = torch.randperm(tokens.numel(), generator=gen)
        for start in range(0, len(perm) - batch + 1, batch):
            idx = perm[start : start + batch]
            yield {h: a[idx] for h, a in acts.items()}


def train_saes(
    model: HookedTransformer, train: TrainSpec, tok: CharTokenizer, progress: Callable[[str], None]
) -> dict:
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.training.multi_sae_trainer import MultiSAETrainer

    hooks = hook_names(model.cfg.n_layers)
    torch.manual_seed(train.seed + 1)
    saes = {}
    for h in hooks:
        cfg = TopKTrainingSAEConfig(
            d_in=model.cfg.d_model,
            d_sae=train.sae_d_sae,
            k=train.sae_k,
            normalize_activations="none",
            apply_b_dec_to_input=True,
            metadata=SAEMetadata(
                model_name="scd-demo",
                hook_name=h,
                context_size=model.cfg.n_ctx,
                prepend_bos=True,
                dataset_path="scd.demo.corpus",
            ),
        )
        saes[h] = TopKTrainingSAE(cfg)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=train.sae_steps * train.sae_batch_tokens,
        train_batch_size_samples=train.sae_batch_tokens,
        lr=train.sae_lr,
        lr_end=train.sae_lr / 10,
        lr_scheduler_name="cosineannealing",
        lr_warm_up_steps=50,
        lr_decay_steps=0,
        device="cpu",
        dead_feature_window=train.sae_dead_window,
        feature_sampling_window=max(1, train.sae_steps // 3),
        logger=LoggingConfig(log_to_wandb=False),
    )
    stream = activation_stream(model, tok, hooks, train.seed, train.sae_batch_tokens)
    trainer = MultiSAETrainer(
        cfg=trainer_cfg, saes=saes, hook_names={h: h for h in hooks}, data_provider=stream
    )
    t0 = time.time()
    # MultiSAETrainer.fit logs through tqdm; we add our own coarse progress lines around it
    progress(
        f"saes: {len(hooks)} TopK SAEs (d_sae={train.sae_d_sae}, k={train.sae_k}), {train.sae_steps} steps"
    )
    trained = trainer.fit()
    progress(f"saes: done ({time.time() - t0:.0f} s)")
    for sae in trained.values():
        sae.eval()
    return trained


# ---------------------------------------------------------------------------------------------------------------
# Phase 3: save, and the whole run
# ---------------------------------------------------------------------------------------------------------------


def save(
    out: Path,
    model: HookedTransformer,
    tok: CharTokenizer,
    saes: dict,
    spec: ModelSpec,
    train: TrainSpec,
    timings: dict[str, float],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "model").mkdir(exist_ok=True)
    (out / "model" / "config.json").write_text(
        json.dumps(model_config(spec, tok.vocab_size, train.seed), indent=1) + "\n"
    )
    save_file(
        {k: v.detach().contiguous() for k, v in model.state_dict().items()},
        out / "model" / "model.safetensors",
    )
    tok.save(out / "vocab.json")
    for hook, sae in saes.items():
        sae.save_inference_model(out / "saes" / hook)
    (out / "training.json").write_text(
        json.dumps(
            {
                "model": asdict(spec),
                "train": asdict(train),
                "seconds": timings,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            },
            indent=1,
        )
        + "\n"
    )


def train(
    out: str | Path,
    *,
    seed: int = 0,
    steps: int | None = None,
    sae_steps: int | None = None,
    transcoder_steps: int | None = None,
    threads: int | None = 2,
    progress: Callable[[str], None] = log.info,
) -> dict[str, float]:
    """Train the demo model and its SAEs into `out`; returns the seconds each phase took."""
    out = Path(out)
    if threads:
        torch.set_num_threads(threads)
    spec = ModelSpec()
    defaults = TrainSpec()
    tspec = TrainSpec(seed=seed, steps=steps or defaults.steps, sae_steps=sae_steps or defaults.sae_steps)
    tok = CharTokenizer()
    timings: dict[str, float] = {}
    t0 = time.time()
    model = train_model(spec, tspec, tok, progress)
    for p in model.parameters():
        p.requires_grad_(False)
    timings["model"] = round(time.time() - t0, 1)
    t1 = time.time()
    saes = train_saes(model, tspec, tok, progress)
    timings["saes"] = round(time.time() - t1, 1)
    save(out, model, tok, saes, spec, tspec, timings)
    t2 = time.time()
    from dataclasses import replace

    from scd.demo.transcoders import TranscoderSpec, train_for  # phase 2b: the PLT and the CLT

    tc_spec = replace(
        TranscoderSpec(), seed=seed, **({"steps": transcoder_steps} if transcoder_steps else {})
    )
    train_for(out, tc_spec, threads=None, progress=progress)
    timings["transcoders"] = round(time.time() - t2, 1)
    timings["total"] = round(time.time() - t0, 1)
    (out / "training.json").write_text(
        json.dumps({**json.loads((out / "training.json").read_text()), "seconds": timings}, indent=1) + "\n"
    )
    progress(f"save: wrote {out} (model {timings['model']} s, saes {timings['saes']} s)")
    return timings
