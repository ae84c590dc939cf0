"""The metric m a circuit explains: a scalar function of the model's logits at the last position.

Every metric takes the model's logits ``[batch, pos, vocab]`` and reads batch element 0, last position.
Sign convention: higher m = more of the target, so a positive attribution pushes the model toward the target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Metric = Callable[[Tensor], Tensor]


def log_prob(target_id: int) -> Metric:
    """m = log softmax(logits[0, -1])[target] -- minus the cross-entropy of the target token."""

    def metric(logits: Tensor) -> Tensor:
        return torch.log_softmax(logits[0, -1], dim=-1)[target_id]

    metric.__name__ = f"log_prob[{target_id}]"
    return metric


def logit(target_id: int) -> Metric:
    """m = logits[0, -1, target] - mean(logits[0, -1]): the target's logit against the average token.

    Unlike the log-probability it does not saturate: at p(target) = 0.998 the gradient of log p is ~0.002 and
    mostly about pushing the runners-up down, while this metric still asks what writes the target's logit
    (circuit-tracer explains logits the same way, demeaned).
    """

    def metric(logits: Tensor) -> Tensor:
        last = logits[0, -1]
        return last[target_id] - last.mean()

    metric.__name__ = f"logit[{target_id}]"
    return metric


def logit_diff(target_id: int, contrast_id: int) -> Metric:
    """m = logits[0, -1, target] - logits[0, -1, contrast] (Marks et al.'s clean-vs-contrast answer)."""

    def metric(logits: Tensor) -> Tensor:
        last = logits[0, -1]
        return last[target_id] - last[contrast_id]

    metric.__name__ = f"logit_diff[{target_id},{contrast_id}]"
    return metric


def build(name: str, target_id: int, contrast_id: int | None = None) -> Metric:
    """The metric a circuit's ``params["metric"]`` names (a value of scd.discovery.config.METRICS)."""
    if name == "logit_diff":
        if contrast_id is None:
            raise ValueError("the logit_diff metric needs a contrast token id")
        return logit_diff(target_id, contrast_id)
    return {"log_prob": log_prob, "logit": logit}[name](target_id)


def describe(name: str, target: str, contrast: str | None = None) -> str:
    """How summaries write the metric, e.g. ``log p(')')``."""
    return {
        "log_prob": f"log p({target!r})",
        "logit": f"logit({target!r}) - mean logit",
        "logit_diff": f"logit({target!r}) - logit({contrast!r})",
    }[name]
