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


def logit_diff(target_id: int, contrast_id: int) -> Metric:
    """m = logits[0, -1, target] - logits[0, -1, contrast] (Marks et al.'s clean-vs-contrast answer)."""

    def metric(logits: Tensor) -> Tensor:
        last = logits[0, -1]
        return last[target_id] - last[contrast_id]

    metric.__name__ = f"logit_diff[{target_id},{contrast_id}]"
    return metric
