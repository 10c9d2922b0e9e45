"""Variants of the DEAL agreement term that a flat (or all-zero) CAM cannot satisfy.

All take the same inputs as the paper's ``edge_alignment_loss``: CAM edges a (B,K,H,W) and
depth edges d (B,1,H,W) in (0, 1), labels y (B,K), an optional validity mask / pixel weights
(B,1,H,W), and use the same activation a' = eta(a), d' = eta(d) (tanh(mu + logit), zero at
sigmoid(-mu) ~= 0.076). Per image, the class terms are averaged with y_k / sum_k y_k; images
without a positive label or without valid pixels contribute 0 and leave the batch mean (as
the paper variant in ``deal.py``).

Why (measured, issue 13): on RealSense-like depth at CAM resolution the depth-edge pixels are
few (5-10 % of the valid cells) and one-sided (the bottom of an object touches the table, one
side is an IR-shadow hole that the validity mask removes). The paper's mean over all pixels
is then dominated by "no CAM edge where there is no depth edge", so the all-zero / flat CAM
scores better than the true object outline and a CAM net can lower the loss by flattening
its CAMs. Each variant below removes that optimum (all are our choices; the paper has none).

Measured (``bench/README.md``, held-out multi-object scenes, 2-core CPU): the flat optimum is
a property of the CAM grid as much as of the term. At output stride 16 the paper's term
already ranks the true outline first (``test_deal_variants.py``) and trained the best pseudo
labels; ``balanced`` and ``signed`` (pooled depth edges) trained sharper CAMs at their best
threshold but lower pseudo labels after the CRF, so the ``scene`` preset keeps
``variant: paper`` at stride 16 and these stay options for other data.

``balanced``
    Depth-edge and non-edge pixels get equal total weight, with soft memberships
    e = (1 + d') / 2 and n = (1 - d') / 2:

        S_k = sum_ij w e a'_k d' / sum_ij w e  +  sum_ij w n a'_k d' / sum_ij w n
        L   = -(1/2) sum_k y_k S_k / sum_k y_k

    A flat CAM (a' = -1) scores 0, the true outline about -(recall - false-alarm rate) < 0:
    the outline wins whatever the edge fraction. An image without depth-edge mass (sum w e
    below one pixel) keeps the non-edge term alone.

``precision``
    Fraction of the CAM-edge mass that lies on depth edges, with p = (1 + a') / 2 in (0, 1):

        L_k = -sum_ij w p_k d' / (sum_ij w p_k + 1)

    (the +1, one pixel of edge mass, keeps the gradient of a nearly flat CAM bounded). A flat
    CAM scores about 0, CAM edges on depth edges -> -1, CAM edges off them -> +1.

``near``
    The paper's agreement counted only within ``radius`` CAM cells of a depth edge (d' > 0):
    the many pixels far from any depth edge, which a flat CAM satisfies for free, leave the
    mean.

``signed``
    The paper's term plus a term for the depth ORDER that Sobel magnitudes throw away: at a
    depth edge the occluding (nearer) side is the object, so a CAM edge there should fall
    from the near side to the far side. With the CAM gradient g_k (Sobel x, y of the CAM),
    the depth gradient g_z oriented to grow towards the near side, edge memberships
    e = (1 + d') / 2 and CAM-edge activity p = (1 + a') / 2:

        cos_k = g_k . g_z / (|g_k| |g_z|)
        L     = L_paper - w_dir sum_k y_k [sum_ij w e p_k cos_k / sum_ij w e] / sum_k y_k

    A flat CAM scores the paper's value (its direction term is 0); a CAM whose edges fall off
    across depth edges away from the near side scores lower; a CAM peak displaced off the
    object (its ramp lying on the object, rising towards the background: cos = -1) higher.
    Magnitude-only terms reward that displacement at coarse strides (measured: with
    ``balanced`` at stride 16 the CAM maxima moved above the objects, onto their top depth
    edges).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .edge_alignment import edge_activation, edge_alignment_loss
from .edges import sobel_xy

__all__ = ["DEAL_VARIANTS", "deal_agreement"]

DEAL_VARIANTS = ("paper", "balanced", "precision", "near", "signed")


def _class_weights(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n_pos = y.sum(1)
    return y / n_pos.clamp_min(1e-12).unsqueeze(1), n_pos > 0


def _reduce(per_image: torch.Tensor, contributes: torch.Tensor, reduction: str) -> torch.Tensor:
    per_image = torch.where(contributes, per_image, torch.zeros_like(per_image))
    if reduction == "none":
        return per_image
    return per_image.sum() / contributes.sum().clamp_min(1).to(per_image.dtype)


def balanced_alignment_loss(a, d, y, mu=2.5, eps=1e-6, valid=None, reduction="mean"):
    """The ``balanced`` variant (module docstring)."""
    y = y.to(a.dtype)
    k_weight, labelled = _class_weights(y)
    ap, dp = edge_activation(a, mu, eps), edge_activation(d, mu, eps)
    w = torch.ones_like(dp) if valid is None else valid.to(dp.dtype)
    we, wn = w * (1 + dp) / 2, w * (1 - dp) / 2
    se, sn = we.sum((2, 3)), wn.sum((2, 3))  # (B,1)
    edge = (we * dp * ap).sum((2, 3)) / se.clamp_min(1e-12)  # (B,K)
    flat = (wn * dp * ap).sum((2, 3)) / sn.clamp_min(1e-12)
    has_edge = (se >= 1.0).to(a.dtype)
    score = (edge * has_edge + flat) / (1.0 + has_edge)
    per_image = -(k_weight * score).sum(1)
    return _reduce(per_image, labelled & (w.sum((1, 2, 3)) > 0), reduction)


def precision_alignment_loss(a, d, y, mu=2.5, eps=1e-6, valid=None, reduction="mean"):
    """The ``precision`` variant (module docstring)."""
    y = y.to(a.dtype)
    k_weight, labelled = _class_weights(y)
    p = (1 + edge_activation(a, mu, eps)) / 2
    dp = edge_activation(d, mu, eps)
    w = torch.ones_like(dp) if valid is None else valid.to(dp.dtype)
    score = (w * p * dp).sum((2, 3)) / ((w * p).sum((2, 3)) + 1.0)
    per_image = -(k_weight * score).sum(1)
    return _reduce(per_image, labelled & (w.sum((1, 2, 3)) > 0), reduction)


def direction_term(a, d, y, cams, depth_grad, mu=2.5, eps=1e-6, valid=None, reduction="mean"):
    """-sum_k y_k [sum w e p_k cos_k / sum w e] / sum y_k (the ``signed`` variant's second
    term); ``depth_grad`` (B,2,h,w) points towards the NEAR side."""
    y = y.to(a.dtype)
    k_weight, labelled = _class_weights(y)
    p = (1 + edge_activation(a, mu, eps)) / 2
    e = (1 + edge_activation(d, mu, eps)) / 2
    w = torch.ones_like(e) if valid is None else valid.to(e.dtype)
    we = w * e
    gx, gy = sobel_xy(cams)
    zx, zy = depth_grad[:, :1], depth_grad[:, 1:2]
    tiny = 1e-12
    cos = (gx * zx + gy * zy) / (
        torch.sqrt(gx * gx + gy * gy + tiny) * torch.sqrt(zx * zx + zy * zy + tiny)
    )
    se = we.sum((2, 3))
    score = (we * p * cos).sum((2, 3)) / se.clamp_min(1e-12)
    per_image = -(k_weight * score).sum(1)
    return _reduce(per_image, labelled & (se[:, 0] >= 1.0), reduction)


def near_edge_mask(d: torch.Tensor, mu: float, eps: float, radius: int) -> torch.Tensor:
    """Pixels within ``radius`` cells (Chebyshev) of a depth-edge pixel (d' > 0)."""
    edge = (edge_activation(d, mu, eps) > 0).to(d.dtype)
    if radius <= 0:
        return edge > 0
    return F.max_pool2d(edge, 2 * radius + 1, stride=1, padding=radius) > 0


def deal_agreement(
    variant: str,
    a: torch.Tensor,
    d: torch.Tensor,
    y: torch.Tensor,
    *,
    mu: float = 2.5,
    eps: float = 1e-6,
    valid: torch.Tensor | None = None,
    radius: int = 1,
    reduction: str = "mean",
    cams: torch.Tensor | None = None,
    depth_grad: torch.Tensor | None = None,
    direction_weight: float = 1.0,
) -> torch.Tensor:
    """The DEAL term of ``variant`` (one of ``DEAL_VARIANTS``; "paper" is the formula).
    "signed" also needs the CAMs (B,K,h,w) and the depth gradient (B,2,h,w), oriented to
    grow towards the near side."""
    if variant == "paper":
        return edge_alignment_loss(a, d, y, mu=mu, eps=eps, valid=valid, reduction=reduction)
    if variant == "balanced":
        return balanced_alignment_loss(a, d, y, mu, eps, valid, reduction)
    if variant == "precision":
        return precision_alignment_loss(a, d, y, mu, eps, valid, reduction)
    if variant == "near":
        band = near_edge_mask(d, mu, eps, radius)
        w = band if valid is None else band & valid.bool()
        return edge_alignment_loss(a, d, y, mu=mu, eps=eps, valid=w, reduction=reduction)
    if variant == "signed":
        if cams is None or depth_grad is None:
            raise ValueError("DEAL variant 'signed': needs cams and depth_grad")
        paper = edge_alignment_loss(a, d, y, mu=mu, eps=eps, valid=valid, reduction=reduction)
        turn = direction_term(a, d, y, cams, depth_grad, mu, eps, valid, reduction)
        return paper + direction_weight * turn
    raise ValueError(f"DEAL variant: expected one of {', '.join(DEAL_VARIANTS)}, got {variant!r}")
