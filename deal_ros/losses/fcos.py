"""FCOS detection losses (Tian et al., ICCV 2019), as CondInst / BoxInst train them.

Sigmoid focal loss (Lin et al., 2017) over the K one-vs-rest class logits of every location,
t in {0, 1} the one-hot target (all zeros for background), p = sigmoid(z):

    FL = -alpha t (1 - p)^gamma log p - (1 - alpha) (1 - t) p^gamma log(1 - p)
    L_cls = sum FL / max(1, #positives)                        alpha = 0.25, gamma = 2

GIoU loss of the box regression (l, t, r, b: distances from the location to the four sides),
prediction p and target g at the same location:

    I   = (min(l_p, l_g) + min(r_p, r_g)) (min(t_p, t_g) + min(b_p, b_g))
    U   = (l_p + r_p)(t_p + b_p) + (l_g + r_g)(t_g + b_g) - I
    C   = (max(l_p, l_g) + max(r_p, r_g)) (max(t_p, t_g) + max(b_p, b_g))
    GIoU = I / U - (C - U) / C,         L_box = sum w (1 - GIoU) / sum w

weighted by the centerness targets w (FCOS). Centerness target and loss:

    c* = sqrt( min(l, r) / max(l, r) * min(t, b) / max(t, b) )
    L_ctr = mean over positives of BCE(sigmoid(z_ctr), c*)

Our choices: ``eps`` = 1e-7 in the ratios (FCOS adds 1 to I and U; we do not); the focal
loss is summed and divided by the caller's normaliser (the number of positives), as FCOS.
``deal_ros.losses.focal_loss`` is the softmax form for dense segmentation; this is the sigmoid
one-vs-rest form that detection heads use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_same


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """FL of logits (..., K) against one-hot targets (..., K) in {0, 1}; "sum" | "none"."""
    check_same("logits", logits.shape, "targets", targets.shape, "shapes")
    if gamma < 0 or not 0 <= alpha <= 1:
        raise ValueError(f"focal: expected gamma >= 0 and alpha in [0, 1], got {gamma}, {alpha}")
    t = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t).pow(gamma) * (alpha * t + (1 - alpha) * (1 - t))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction: expected 'sum' or 'none', got {reduction!r}")


def _check_ltrb(name: str, x: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape[1] != 4:
        raise ValueError(f"{name}: expected (N,4) distances l,t,r,b, got {tuple(x.shape)}")


def giou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Weighted mean of 1 - GIoU for (N,4) l,t,r,b predictions and targets (N = 0 -> 0)."""
    _check_ltrb("pred", pred)
    _check_ltrb("target", target)
    check_same("pred", pred.shape, "target", target.shape, "shapes")
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    pl, pt, pr, pb = pred.unbind(1)
    gl, gt, gr, gb = target.unbind(1)
    area_p = (pl + pr) * (pt + pb)
    area_g = (gl + gr) * (gt + gb)
    inter = (torch.minimum(pl, gl) + torch.minimum(pr, gr)) * (
        torch.minimum(pt, gt) + torch.minimum(pb, gb)
    )
    union = area_p + area_g - inter
    enclose = (torch.maximum(pl, gl) + torch.maximum(pr, gr)) * (
        torch.maximum(pt, gt) + torch.maximum(pb, gb)
    )
    giou = inter / (union + eps) - (enclose - union) / (enclose + eps)
    loss = 1.0 - giou
    if weight is None:
        return loss.mean()
    w = weight.to(loss.dtype)
    return (loss * w).sum() / w.sum().clamp_min(eps)


def centerness_target(ltrb: torch.Tensor) -> torch.Tensor:
    """c* = sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) for (N,4) targets -> (N,)."""
    _check_ltrb("ltrb", ltrb)
    lr, tb = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
    ratio = (lr.amin(1) / lr.amax(1).clamp_min(1e-12)) * (tb.amin(1) / tb.amax(1).clamp_min(1e-12))
    return ratio.clamp_min(0).sqrt()


def centerness_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE of centerness logits (N,) against c* (N,) (N = 0 -> 0)."""
    check_same("logits", logits.shape, "target", target.shape, "shapes")
    if logits.numel() == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
