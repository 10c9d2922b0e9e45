"""Depth against the box's surround: a unary depth term of the mask (ours; not in the paper).

Inside a box, colour cannot tell an object from a background of its own colour, but depth can
when it is compared with what surrounds the box rather than with the image. For box b with
ring R_b (the valid pixels within ``ring`` of the box outside it), a plane is fitted to the
ring's depth by trimmed least squares,

    pi_b = argmin_(a, b, c) sum_{x in R_b'} (a u + b v + c - d(x))^2,

where R_b' keeps the ``keep`` fraction of ring pixels nearest the previous fit (3 rounds; the
first keeps the ``keep`` farthest pixels, as what covers the surface in the ring, other objects
or the object's own spill, lies in front of it; holes never enter). The relative rise above
the surround,

    rho(x) = (pi_b(x) - d(x)) / pi_b(x),

marks the box's pixels nearer than the surface behind them: q(x) = 1[rho(x) > margin]. Pixels
without valid depth carry no weight; so does a box whose prior is nearly empty or nearly
full (fraction of q below ``min_fill`` or above ``max_fill``: no depth step inside it), or
whose ring is too small to fit a plane (fewer than ``min_ring`` pixels). The prior and its
weight are averaged over the mask cells (stride 4), and the term is the weighted BCE

    L_surf = sum_x w(x) BCE(m(x), q(x)) / sum_x w(x)

over the box's cells. A plane, the trim, the margin (1 % of the depth: 1 cm at 1 m, like
``depth_scale``) and the fill bounds are our choices. On the colour-overlap scenes of issue 17
(cam170 train split, 581 objects) the prior alone, its unscored box pixels counted as object,
overlaps the ground-truth masks with IoU 0.91; the box itself, 0.75 (bench/README.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["surround_loss", "surround_prior", "surround_targets"]


def _ring(box: torch.Tensor, hw: tuple[int, int], ring: float) -> tuple[slice, slice, list[int]]:
    """The crop holding ``box`` and its ring; the box's rows/cols inside the crop."""
    h, w = hw
    x0, y0, x1, y1 = (float(v) for v in box)
    r = max(3.0, ring * max(x1 - x0, y1 - y0))
    cx0, cy0 = max(0, int(x0 - r)), max(0, int(y0 - r))
    cx1, cy1 = min(w, int(x1 + r + 1)), min(h, int(y1 + r + 1))
    bx0, by0 = max(round(x0), cx0) - cx0, max(round(y0), cy0) - cy0
    bx1, by1 = min(round(x1), cx1) - cx0, min(round(y1), cy1) - cy0
    return slice(cy0, cy1), slice(cx0, cx1), [by0, by1, bx0, bx1]


def _fit_plane(u: torch.Tensor, v: torch.Tensor, d: torch.Tensor, keep: float) -> torch.Tensor:
    """Trimmed least-squares plane d = a u + b v + c; returns (a, b, c)."""
    a = torch.stack([u, v, torch.ones_like(u)], 1)
    sel = d >= torch.quantile(d, 1.0 - keep)
    coef = torch.zeros(3, dtype=d.dtype, device=d.device)
    for _ in range(3):
        coef = torch.linalg.lstsq(a[sel], d[sel, None]).solution[:, 0]
        err = (a @ coef - d).abs()
        sel = err <= torch.quantile(err, keep)
    return coef


def surround_prior(
    depth: torch.Tensor,
    valid: torch.Tensor,
    box: torch.Tensor,
    *,
    ring: float = 0.1,
    margin: float = 0.01,
    keep: float = 0.7,
    min_ring: int = 12,
    min_fill: float = 0.05,
    max_fill: float = 0.98,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(H,W) depth (0 = invalid) + validity and one box (x0, y0, x1, y1, input pixels) ->
    (prior q, weight w), both (H,W) and zero outside the box (see the module docstring).
    ``ring`` is the ring's width as a fraction of the box's longer side (at least 3 px)."""
    q = torch.zeros_like(depth)
    w = torch.zeros_like(depth)
    rows, cols, (by0, by1, bx0, bx1) = _ring(box, tuple(depth.shape), ring)
    if by1 <= by0 or bx1 <= bx0:
        return q, w
    d = depth[rows, cols]
    ok = valid[rows, cols] & (d > 0) & torch.isfinite(d)
    inside = torch.zeros_like(ok)
    inside[by0:by1, bx0:bx1] = True
    in_ring = ok & ~inside
    if int(in_ring.sum()) < min_ring:
        return q, w
    vv, uu = torch.meshgrid(
        torch.arange(d.shape[0], dtype=d.dtype, device=d.device),
        torch.arange(d.shape[1], dtype=d.dtype, device=d.device),
        indexing="ij",
    )
    coef = _fit_plane(uu[in_ring], vv[in_ring], d[in_ring], keep)
    plane = coef[0] * uu + coef[1] * vv + coef[2]
    rho = (plane - d) / plane.clamp_min(1e-6)
    scored = ok & inside & (plane > 0)
    fg = (rho > margin) & scored
    fill = float(fg.sum()) / max(int(scored.sum()), 1)
    if not min_fill <= fill <= max_fill:
        return q, w
    q[rows, cols] = fg.to(q.dtype)
    w[rows, cols] = scored.to(w.dtype)
    return q, w


def surround_targets(
    depth: torch.Tensor,
    valid: torch.Tensor,
    boxes: torch.Tensor,
    image_index: torch.Tensor,
    stride: int = 4,
    **options: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,1,H,W) depth + validity, (G,4) boxes and their (G,) image index -> (G,1,H/s,W/s)
    prior and weight at the mask resolution: the prior is the mean of q over a cell's scored
    pixels, the weight the fraction of the cell's pixels that were scored."""
    g = boxes.shape[0]
    h, w = depth.shape[2], depth.shape[3]
    q = depth.new_zeros((g, 1, h, w))
    wt = depth.new_zeros((g, 1, h, w))
    for i in range(g):
        b = int(image_index[i])
        q[i, 0], wt[i, 0] = surround_prior(depth[b, 0], valid[b, 0] > 0, boxes[i], **options)
    num = F.avg_pool2d(q * wt, stride, stride)
    den = F.avg_pool2d(wt, stride, stride)
    return num / den.clamp_min(1e-12), den


def surround_loss(
    mask_logits: torch.Tensor, prior: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """sum w BCE(m, q) / sum w over (N,1,h,w) mask logits, priors and weights."""
    w = weight.to(mask_logits.dtype)
    bce = F.binary_cross_entropy_with_logits(
        mask_logits, prior.to(mask_logits.dtype), reduction="none"
    )
    return (w * bce).sum() / w.sum().clamp_min(1.0)
