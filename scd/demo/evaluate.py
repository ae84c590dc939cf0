"""Measure the demo model and its SAEs on held-out generated text: ``scd demo-model eval``.

* **closer accuracy** -- over held-out prompts whose next character is a closer (depth 1-4, the same number per
  depth): the share where the right closer beats the other two closers (``closer_acc``), and the share where it is
  the model's top prediction over the whole vocabulary (``closer_top1``, stricter: the model must also know the
  group ends here).
* **per SAE** on held-out text (BOS positions left out): fraction of variance unexplained
  ``FVU = sum |x - x_hat|^2 / sum |x - mean(x)|^2``, mean L0 (active latents per position), and the share of
  dead latents (never active on the held-out text).
* **splicing** -- closer accuracy with every SAE spliced in at once and its error term dropped (the model runs on
  reconstructions only), and the largest logit difference from the clean model with error terms kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from scd.demo import corpus

#: held-out text used for the SAE metrics (texts x characters)
N_TEXTS, TEXT_LEN = 256, 127


@dataclass
class SaeMetrics:
    fvu: float
    l0: float
    dead: float  # fraction of latents never active


@dataclass
class Metrics:
    closer_acc: float
    closer_top1: float
    closer_acc_by_depth: dict[int, float]
    copyright_top: str  # the model's top prediction after "Copyright (C"
    saes: dict[str, SaeMetrics] = field(default_factory=dict)
    spliced_closer_acc: float | None = None  # all SAEs spliced, error terms dropped
    spliced_with_error_max_logit_diff: float | None = None


def splice_hooks(saes: dict, keep_error: bool = False) -> list[tuple[str, object]]:
    """TransformerLens forward hooks that replace each hooked activation x by the SAE's reconstruction
    sae.decode(sae.encode(x)) -- plus the error term x - x_hat when `keep_error`, which leaves the value unchanged."""

    def make(sae):
        def hook(x, hook):
            x_hat = sae.decode(sae.encode(x))
            return x_hat + (x - x_hat) if keep_error else x_hat

        return hook

    return [(name, make(sae)) for name, sae in saes.items()]


def _pad(tok, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tok.encode(p) for p in prompts]
    width = max(len(i) for i in ids)
    tokens = torch.full((len(ids), width), tok.bos_id, dtype=torch.long)
    for row, i in enumerate(ids):
        tokens[row, : len(i)] = torch.tensor(i)
    last = torch.tensor([len(i) - 1 for i in ids])
    return tokens, last


@torch.no_grad()
def next_logits(model, tok, prompts: list[str], fwd_hooks=(), batch: int = 256) -> torch.Tensor:
    """The logits for the character after each prompt (right-padded batches; the model is causal)."""
    out = []
    for start in range(0, len(prompts), batch):
        tokens, last = _pad(tok, prompts[start : start + batch])
        logits = model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks)) if fwd_hooks else model(tokens)
        out.append(logits[torch.arange(len(last)), last])
    return torch.cat(out)


def closer_scores(model, tok, cases: list[corpus.EvalCase], fwd_hooks=()) -> dict:
    """Closer accuracy (among the three closers), top-1 accuracy, and accuracy per depth."""
    logits = next_logits(model, tok, [c.prompt for c in cases], fwd_hooks)
    closer_ids = torch.tensor([tok.single_token_id(c) for c in corpus.CLOSERS])
    want = torch.tensor([corpus.CLOSERS.index(c.closer) for c in cases])
    among = logits[:, closer_ids].argmax(-1) == want
    top1 = logits.argmax(-1) == closer_ids[want]
    depth = torch.tensor([c.depth for c in cases])
    by_depth = {int(d): among[depth == d].float().mean().item() for d in depth.unique()}
    return {"acc": among.float().mean().item(), "top1": top1.float().mean().item(), "by_depth": by_depth}


@torch.no_grad()
def sae_scores(model, tok, saes: dict, texts: list[str]) -> dict[str, SaeMetrics]:
    tokens = torch.tensor([tok.encode(t) for t in texts])
    _, cache = model.run_with_cache(tokens, names_filter=list(saes))
    out = {}
    for hook, sae in saes.items():
        x = cache[hook][:, 1:].reshape(-1, cache[hook].shape[-1])  # BOS positions left out
        f = sae.encode(x)
        x_hat = sae.decode(f)
        fvu = ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
        active = f > 0
        out[hook] = SaeMetrics(
            fvu=fvu, l0=active.sum(-1).float().mean().item(), dead=(~active.any(0)).float().mean().item()
        )
    return out


def evaluate(
    path: str | Path | None = None, seed: int = 0, n_per_depth: int = 250, with_saes: bool = True
) -> Metrics:
    """All metrics of the demo model at `path` (default: the shipped weights) on held-out text of `seed`."""
    import scd.demo as demo

    path = Path(path) if path else demo.WEIGHTS
    model, tok = demo.load_model(path), demo.load_tokenizer(path)
    cases = corpus.eval_cases(n_per_depth=n_per_depth, max_len=min(63, model.cfg.n_ctx - 1), seed=seed)
    clean = closer_scores(model, tok, cases)
    top = tok.token_str(int(next_logits(model, tok, ["Copyright (C"])[0].argmax()))
    m = Metrics(clean["acc"], clean["top1"], clean["by_depth"], top)
    if with_saes:
        saes = demo.load_saes(path)
        m.saes = sae_scores(
            model, tok, saes, corpus.texts(N_TEXTS, min(TEXT_LEN, model.cfg.n_ctx - 1), seed, held_out=True)
        )
        m.spliced_closer_acc = closer_scores(model, tok, cases, splice_hooks(saes))["acc"]
        prompts = [c.prompt for c in cases[:: max(1, len(cases) // 200)]]
        diff = next_logits(model, tok, prompts, splice_hooks(saes, keep_error=True)) - next_logits(
            model, tok, prompts
        )
        m.spliced_with_error_max_logit_diff = diff.abs().max().item()
    return m


def format_table(m: Metrics) -> str:
    lines = [
        f"closer accuracy (among ) ] }}, depth 1-4)   {m.closer_acc:.4f}",
        *(
            f"  depth {d}                               {a:.4f}"
            for d, a in sorted(m.closer_acc_by_depth.items())
        ),
        f"closer is the top-1 prediction            {m.closer_top1:.4f}",
        f"top prediction after 'Copyright (C'       {m.copyright_top!r}",
    ]
    if m.saes:
        lines += ["", f"{'SAE (TopK)':34} {'FVU':>7} {'L0':>6} {'dead':>6}"]
        lines += [f"{h:34} {s.fvu:7.4f} {s.l0:6.1f} {s.dead:6.1%}" for h, s in m.saes.items()]
        lines += [
            "",
            f"closer accuracy, all SAEs spliced (no error terms)   {m.spliced_closer_acc:.4f}",
            f"max |logit diff|, all SAEs spliced with error terms  {m.spliced_with_error_max_logit_diff:.2e}",
        ]
    return "\n".join(lines)
