"""Softmax cross-entropy for dense labels with ignored pixels.

    CE = -(1 / sum_i w_{y_i}) sum_i w_{y_i} log softmax(z_i)_{y_i}     (i over non-ignored pixels)

with w = ``weight`` (per class) or 1; this is ``torch.nn.functional.cross_entropy``'s weighted
mean. Our addition: a batch where every pixel is ignored gives 0 (with a zero gradient)
instead of NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_seg_inputs

REDUCTIONS = ("mean", "sum", "none")


def class_weights(
    weight: torch.Tensor | Sequence[float] | None, num_classes: int, like: torch.Tensor, name: str
) -> torch.Tensor | None:
    """Per-class weights as a (C,) tensor on ``like``'s device/dtype, or None."""
    if weight is None:
        return None
    w = torch.as_tensor(weight, dtype=like.dtype, device=like.device).flatten()
    if w.numel() != num_classes:
        raise ValueError(f"{name}: expected {num_classes} per-class values, got {w.numel()}")
    return w


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight: torch.Tensor | Sequence[float] | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of logits (B,C,H,W) against labels (B,H,W) with ``ignore_index``."""
    check_seg_inputs(logits, labels, ignore_index)
    check_reduction(reduction)
    w = class_weights(weight, logits.shape[1], logits, "weight")
    labels = labels.long()
    if reduction != "none" and not bool((labels != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, weight=w, ignore_index=ignore_index, reduction=reduction)


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy`: ``forward(logits, labels)``."""

    def __init__(
        self,
        weight: torch.Tensor | Sequence[float] | None = None,
        ignore_index: int = 255,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        self.ignore_index, self.reduction = int(ignore_index), reduction

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy(
            logits,
            labels,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
