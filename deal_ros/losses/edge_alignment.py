"""The DEAL agreement term on edge maps already in (0, 1): the paper's formula
(Schmidt, Belagiannis, Nalpantidis, arXiv 2509.17702), on its own so that the loss
(``deal.DEALLoss``) and its variants (``deal_variants``) share it without a cycle.

    a'_k,ij = tanh(mu + log(a_k,ij / (1 - a_k,ij))),   d'_ij = tanh(mu + log(d_ij / (1 - d_ij)))
    L_edge  = -(1 / HW) sum_ij (1 / sum_k y_k) sum_k y_k a'_k,ij d'_ij,     mu = 2.5

Our choices where the paper is silent (clamping, the batch reduction over contributing
images, ``valid`` as a weighted mean): see ``deal_ros.losses.deal``.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_ndim, check_same

__all__ = ["edge_activation", "edge_alignment_loss"]


def edge_activation(e: torch.Tensor, mu: float = 2.5, eps: float = 1e-6) -> torch.Tensor:
    """eta(e) = tanh(mu + log(e / (1 - e))) with e clamped to [eps, 1 - eps].

    Evaluated in the equal rational form (c e^2 - (1-e)^2) / (c e^2 + (1-e)^2), c = exp(2 mu),
    which needs no transcendental function per pixel.
    """
    e = e.clamp(eps, 1.0 - eps)
    num, rest = math.exp(2.0 * mu) * e * e, (1.0 - e) * (1.0 - e)
    return (num - rest) / (num + rest)


def _check_alignment_inputs(a, d, y, valid) -> None:
    check_ndim("a (CAM edges)", a, 4, "(B,K,H,W)")
    check_ndim("d (depth edges)", d, 4, "(B,1,H,W)")
    check_ndim("y (labels)", y, 2, "(B,K)")
    if d.shape[1] != 1:
        raise ValueError(f"d (depth edges): expected 1 channel (B,1,H,W), got {tuple(d.shape)}")
    check_same("a", (a.shape[0], *a.shape[2:]), "d", (d.shape[0], *d.shape[2:]), "B,H,W")
    check_same("a", a.shape[:2], "y", y.shape, "(B,K)")
    if valid is not None:
        check_same("valid", valid.shape, "d", d.shape, "shapes")


def edge_alignment_loss(
    a: torch.Tensor,
    d: torch.Tensor,
    y: torch.Tensor,
    mu: float = 2.5,
    eps: float = 1e-6,
    valid: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The DEAL formula on edge maps already in (0,1).

    a: (B,K,H,W) CAM edges, d: (B,1,H,W) depth edges, y: (B,K) multi-hot labels (0/1 or soft
    weights >= 0). valid: optional (B,1,H,W) bool mask or float pixel weights; masked pixels
    leave the per-image mean. Returns a scalar ("mean": over contributing images, see the
    module docstring) or the per-image losses (B,) with ``reduction="none"`` (0 for images
    that do not contribute).
    """
    _check_alignment_inputs(a, d, y, valid)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")
    y = y.to(a.dtype)
    n_pos = y.sum(1)  # (B,)
    labelled = n_pos > 0
    ap, dp = edge_activation(a, mu, eps), edge_activation(d, mu, eps)
    k_weight = y / n_pos.clamp_min(1e-12).unsqueeze(1)  # (B,K): y_k / sum_k y_k
    align = (k_weight[:, :, None, None] * ap).sum(1, keepdim=True) * dp  # (B,1,H,W)
    w = torch.ones_like(align) if valid is None else valid.to(align.dtype)
    w_sum = w.sum((1, 2, 3))
    per_image = -(w * align).sum((1, 2, 3)) / w_sum.clamp_min(1e-12)
    contributes = labelled & (w_sum > 0)
    per_image = torch.where(contributes, per_image, torch.zeros_like(per_image))
    if reduction == "none":
        return per_image
    return per_image.sum() / contributes.sum().clamp_min(1).to(per_image.dtype)
