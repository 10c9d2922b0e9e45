"""Lovász-Softmax loss (Berman, Rannen Triki, Blaschko, CVPR 2018).

For class c, over the non-ignored pixels i: fg_i = [y_i = c], errors m_i = |fg_i - p_{i,c}|.
With pi the permutation sorting m in decreasing order, the Lovász extension of the Jaccard
loss Delta_J(M) = |M| / |{y = c} ∪ M| is

    loss_c = sum_k m_{pi_k} g_k,   g_k = J_k - J_{k-1},
    J_k    = 1 - (gts - cumsum(fg_pi)_k) / (gts + cumsum(1 - fg_pi)_k),   gts = sum_i fg_i

and the loss is the mean of loss_c over ``classes``: "present" (classes that occur in the
labels, the default), "all", or an explicit list of class ids. For hard 0/1 predictions it
equals 1 - IoU_c. ``per_image=True`` computes it per image and averages over the images.

Our choices: images with no valid pixel (per_image) and an input with no class to average
over give 0 with a zero gradient, and are left out of the mean (Berman's reference counts an
empty image as a 0 term). Vectorised: one sort over all classes (and images) at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_seg_inputs


def lovasz_grad(gt_sorted: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Gradient of the Lovász extension w.r.t. sorted errors, along ``dim`` (Berman, Alg. 1)."""
    gts = gt_sorted.sum(dim, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim)
    union = gts + (1.0 - gt_sorted).cumsum(dim)
    jaccard = 1.0 - intersection / union.clamp_min(1e-12)
    first = jaccard.narrow(dim, 0, 1)
    return torch.cat([first, jaccard.diff(dim=dim)], dim=dim)


def _class_mask(classes: str | Sequence[int], num_classes: int, fg_count: torch.Tensor):
    """Which classes are averaged, (..., C) bool, from ``classes`` and per-class counts."""
    if isinstance(classes, str):
        if classes == "present":
            return fg_count > 0
        if classes == "all":
            return torch.ones_like(fg_count, dtype=torch.bool)
        raise ValueError(f"classes: expected 'present', 'all' or a list of ids, got {classes!r}")
    ids = [int(c) for c in classes]
    bad = [c for c in ids if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"classes: ids {bad} outside [0, {num_classes})")
    mask = torch.zeros(num_classes, dtype=torch.bool, device=fg_count.device)
    mask[ids] = True
    return mask.expand_as(fg_count)


def _lovasz_rows(probas: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, classes):
    """Per-row (image or whole batch) Lovász loss: probas (R,P,C), labels/valid (R,P).

    Returns (loss per row (R,), row counts (R,) bool: whether the row has something to average).
    """
    num_classes = probas.shape[-1]
    fg = F.one_hot(torch.where(valid, labels, 0).long(), num_classes).to(probas.dtype)
    fg = fg * valid.unsqueeze(-1).to(probas.dtype)
    errors = (fg - probas).abs()
    # ignored pixels sort last (error -1) and then contribute neither error nor counts
    errors = torch.where(valid.unsqueeze(-1), errors, torch.full_like(errors, -1.0))
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    fg_sorted = fg.gather(1, perm)
    valid_sorted = valid.unsqueeze(-1).expand_as(errors).gather(1, perm)
    grad = lovasz_grad(fg_sorted, dim=1) * valid_sorted.to(probas.dtype)
    per_class = (errors_sorted.clamp_min(0.0) * grad).sum(1)  # (R, C)
    use = _class_mask(classes, num_classes, fg.sum(1)) & valid.any(1, keepdim=True)
    n_use = use.sum(1)
    loss = (per_class * use.to(per_class.dtype)).sum(1) / n_use.clamp_min(1).to(per_class.dtype)
    return loss, n_use > 0


def lovasz_softmax(
    probas: torch.Tensor,
    labels: torch.Tensor,
    *,
    classes: str | Sequence[int] = "present",
    per_image: bool = False,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Lovász-Softmax of class probabilities (B,C,H,W) (softmax outputs) vs labels (B,H,W)."""
    check_seg_inputs(probas, labels, ignore_index)
    b, c = probas.shape[:2]
    p = probas.reshape(b, c, -1).transpose(1, 2)  # (B, P, C)
    lab = labels.reshape(b, -1)
    valid = lab != ignore_index
    if not per_image:
        p, lab, valid = p.reshape(1, -1, c), lab.reshape(1, -1), valid.reshape(1, -1)
    loss, counted = _lovasz_rows(p, lab, valid, classes)
    total = (loss * counted.to(loss.dtype)).sum()
    return total / counted.sum().clamp_min(1).to(loss.dtype) + probas.sum() * 0.0


class LovaszSoftmaxLoss(nn.Module):
    """Module form of :func:`lovasz_softmax`: ``forward(logits, labels)``.

    ``from_logits=True`` (default) applies the softmax first, so the module takes the same
    logits as the other segmentation losses (as in segmentation_models_pytorch).
    """

    def __init__(
        self,
        classes: str | Sequence[int] = "present",
        per_image: bool = False,
        ignore_index: int = 255,
        from_logits: bool = True,
    ) -> None:
        super().__init__()
        self.classes, self.per_image = classes, bool(per_image)
        self.ignore_index, self.from_logits = int(ignore_index), bool(from_logits)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probas = logits.softmax(dim=1) if self.from_logits else logits
        return lovasz_softmax(
            probas,
            labels,
            classes=self.classes,
            per_image=self.per_image,
            ignore_index=self.ignore_index,
        )
