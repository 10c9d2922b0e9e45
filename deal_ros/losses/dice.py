"""Dice losses: BoxInst's dice and the reliable-mask dice of depth-aware self-distillation.

Dice (BoxInst / CondInst form, squared terms in the denominator), per instance n:

    Dice(x, t) = 1 - 2 sum_i x_i t_i / (sum_i x_i^2 + sum_i t_i^2 + eps),   eps = 1e-5

Reliable dice (Yu, Yan et al., Eq. 10), student masks P^S, matched teacher masks P~ with
matching scores P~_score:

    L_m_dice = gamma * sum_n 1[P~_score,n > tau_m] Dice(P~_n, P^S_n) / max(1, #reliable)

tau_m = 0.8, gamma = 4 (the paper's best coefficient). Dividing by the number of reliable
masks (the paper writes a plain sum) is our choice, so the term has the scale of the
per-instance projection loss it is weighed against.
"""

from __future__ import annotations

import torch

from ._checks import check_same


def dice_loss(
    probs: torch.Tensor, target: torch.Tensor, eps: float = 1e-5, reduction: str = "mean"
) -> torch.Tensor:
    """Dice loss per instance (N, ...) -> scalar ("mean"/"sum") or (N,) ("none")."""
    check_same("probs", probs.shape, "target", target.shape, "shapes")
    x = probs.reshape(probs.shape[0], -1)
    t = target.reshape(target.shape[0], -1).to(x.dtype)
    loss = 1.0 - 2.0 * (x * t).sum(1) / (x.pow(2).sum(1) + t.pow(2).sum(1) + eps)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() else probs.sum() * 0.0
    raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")


def reliable_dice_loss(
    student_probs: torch.Tensor,
    teacher_masks: torch.Tensor,
    scores: torch.Tensor,
    threshold: float = 0.8,
    weight: float = 4.0,
) -> torch.Tensor:
    """gamma * mean Dice over the masks whose matching score exceeds ``threshold``.

    student_probs, teacher_masks: (N,H,W) (or (N,1,H,W)); scores: (N,). No reliable mask -> 0.
    """
    if scores.dim() != 1 or scores.shape[0] != student_probs.shape[0]:
        raise ValueError(
            f"scores: expected ({student_probs.shape[0]},), one per mask, got {tuple(scores.shape)}"
        )
    reliable = (scores > threshold).to(student_probs.dtype)
    per = dice_loss(student_probs, teacher_masks.detach(), reduction="none")
    return weight * (per * reliable).sum() / reliable.sum().clamp_min(1.0)
