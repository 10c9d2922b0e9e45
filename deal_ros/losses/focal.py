"""Softmax (multi-class) focal loss (Lin et al., 2017) for dense labels.

    FL_i = -alpha_{y_i} (1 - p_{i,y_i})^gamma log p_{i,y_i},   p_i = softmax(z_i)

over the non-ignored pixels i; alpha = 1 when ``alpha`` is None. torchvision's and
segmentation_models_pytorch's focal losses are sigmoid / one-vs-rest; this one is the softmax
form used for multi-class segmentation. Our choices: ``reduction="mean"`` divides by the number
of non-ignored pixels (not by the sum of the alphas), so gamma = 0 and alpha = None is exactly
the plain cross-entropy; an all-ignored batch gives 0 with a zero gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_seg_inputs
from .cross_entropy import check_reduction, class_weights


def focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: torch.Tensor | Sequence[float] | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """Focal loss of logits (B,C,H,W) against labels (B,H,W); alpha: per-class (C,) or None."""
    check_seg_inputs(logits, labels, ignore_index)
    check_reduction(reduction)
    if gamma < 0:
        raise ValueError(f"gamma: expected >= 0, got {gamma}")
    a = class_weights(alpha, logits.shape[1], logits, "alpha")
    valid = labels != ignore_index
    target = torch.where(valid, labels, torch.zeros_like(labels)).long()
    logp = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -logp
    if gamma > 0:
        loss = loss * (-torch.expm1(logp)).clamp_min(1e-12).pow(gamma)
    if a is not None:
        loss = loss * a[target]
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum().clamp_min(1).to(loss.dtype)


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`: ``forward(logits, labels)``."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: torch.Tensor | Sequence[float] | None = None,
        ignore_index: int = 255,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        if gamma < 0:
            raise ValueError(f"gamma: expected >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        self.ignore_index, self.reduction = int(ignore_index), reduction

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return focal_loss(
            logits,
            labels,
            gamma=self.gamma,
            alpha=self.alpha,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
