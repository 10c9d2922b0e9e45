"""Feature similarity loss (Jonnarth & Felsberg), computed in a local window.

Pixels whose colours are similar should get similar class predictions, and dissimilar ones
may differ. With image x (B,C,H,W) in [0,1] and predictions y (B,K,H,W), for ordered pixel
pairs (p, q), as in the authors' public code (arvijj/icam, arvijj/hfpl):

    dx_pq  = clamp(||x_p - x_q||_1 / C, 0, 1)
    eta_pq = tanh(mu + log((dx_pq + 1e-5) / (1 - dx_pq + 1e-5)))        mu = 2.5
    dy_pq  = 1/2 ||y_p - y_q||_2^2
    g_pq   = exp(-||p - q||^2 / (2 sigma^2)) / (2 pi sigma^2)              sigma = 5.0
    L      = -(1 / (B H W)) sum_b sum_p sum_{q in N(p)} g_pq eta_pq dy_pq

eta < 0 for similar colours (dx < sigmoid(-mu) ~= 0.076): those pairs are penalised for
differing predictions; eta > 0 rewards differing predictions across colour edges.

Our choice (memory): N(p) is the disc ||p - q|| <= ``radius`` (default 10 px, the
``max_dist`` of the authors' "fast" mode), instead of all pixel pairs, so the loss never builds
an HW x HW matrix. A custom autograd function loops over the window offsets (each unordered
pair once, counted twice as in the full sum), keeps only x and y for the backward pass, and
recomputes the pair terms there: memory O(B (C + K) H W), independent of the radius. With
``radius >= sqrt(H^2 + W^2)`` it equals the authors' full-image loss. The image is a constant
(no gradient flows into x).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_ndim, check_same


def window_offsets(radius: float) -> list[tuple[int, int]]:
    """Half of the offsets (dy, dx) != 0 with dy^2 + dx^2 <= radius^2 (one per +-pair)."""
    r = math.floor(radius)
    out = []
    for dy in range(0, r + 1):
        for dx in range(-r, r + 1):
            if (dy > 0 or dx > 0) and dy * dy + dx * dx <= radius * radius:
                out.append((dy, dx))
    return out


def _regions(h: int, w: int, dy: int, dx: int):
    """Slices of p and q = p + (dy, dx) where both lie inside an h x w image (dy >= 0)."""
    x0, x1 = max(0, -dx), w - max(0, dx)
    p = (slice(0, h - dy), slice(x0, x1))
    q = (slice(dy, h), slice(x0 + dx, x1 + dx))
    return p, q


def _pair_weight(x: torch.Tensor, p, q, mu: float, g: float) -> torch.Tensor:
    """g * eta(dx) for the pairs of one offset, (B,1,h',w')."""
    dxc = (x[:, :, p[0], p[1]] - x[:, :, q[0], q[1]]).abs().sum(1, keepdim=True) / x.shape[1]
    dxc = dxc.clamp(0.0, 1.0)
    return g * torch.tanh(mu + torch.log((dxc + 1e-5) / (1.0 - dxc + 1e-5)))


def _gauss(dy: int, dx: int, sigma: float) -> float:
    return math.exp(-0.5 * (dy * dy + dx * dx) / sigma**2) / (2.0 * math.pi * sigma**2)


class _WindowedFSL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, x, mu, sigma, radius):
        b, _, h, w = y.shape
        total = y.new_zeros(())
        for dy, dx in window_offsets(radius):
            if dy >= h or abs(dx) >= w:
                continue
            p, q = _regions(h, w, dy, dx)
            wgt = _pair_weight(x, p, q, mu, _gauss(dy, dx, sigma))
            diff = y[:, :, p[0], p[1]] - y[:, :, q[0], q[1]]
            total = total + (wgt * diff.pow(2).sum(1, keepdim=True)).sum()  # 2 * 1/2
        ctx.save_for_backward(y, x)
        ctx.params = (mu, sigma, radius)
        return -total / (b * h * w)

    @staticmethod
    def backward(ctx, grad_out):
        y, x = ctx.saved_tensors
        mu, sigma, radius = ctx.params
        b, _, h, w = y.shape
        grad = torch.zeros_like(y)
        scale = -2.0 * grad_out / (b * h * w)
        for dy, dx in window_offsets(radius):
            if dy >= h or abs(dx) >= w:
                continue
            p, q = _regions(h, w, dy, dx)
            term = scale * _pair_weight(x, p, q, mu, _gauss(dy, dx, sigma))
            term = term * (y[:, :, p[0], p[1]] - y[:, :, q[0], q[1]])
            grad[:, :, p[0], p[1]] += term
            grad[:, :, q[0], q[1]] -= term
        return grad, None, None, None, None


def feature_similarity_loss(
    image: torch.Tensor,
    preds: torch.Tensor,
    mu: float = 2.5,
    sigma: float = 5.0,
    radius: float = 10.0,
) -> torch.Tensor:
    """FSL of predictions (B,K,H,W) given an image (B,C,H,W) in [0,1] of the same size."""
    check_ndim("image", image, 4, "(B,C,H,W)")
    check_ndim("preds", preds, 4, "(B,K,H,W)")
    check_same(
        "image",
        (image.shape[0], *image.shape[2:]),
        "preds",
        (preds.shape[0], *preds.shape[2:]),
        "B,H,W",
    )
    if radius < 1 or sigma <= 0:
        raise ValueError(f"radius >= 1 and sigma > 0 expected, got radius={radius}, sigma={sigma}")
    x = image.detach().to(preds.dtype).clamp(0.0, 1.0)
    return _WindowedFSL.apply(preds, x, float(mu), float(sigma), float(radius))


class FSLLoss(nn.Module):
    """Module form: ``forward(image (B,C,H,W) in [0,1], preds (B,K,h,w))``; the image is
    resized (bilinear) to the prediction size first, as the authors do at CAM resolution."""

    def __init__(self, mu: float = 2.5, sigma: float = 5.0, radius: float = 10.0) -> None:
        super().__init__()
        self.mu, self.sigma, self.radius = float(mu), float(sigma), float(radius)

    def forward(self, image: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
        check_ndim("image", image, 4, "(B,C,H,W)")
        if image.shape[-2:] != preds.shape[-2:]:
            image = F.interpolate(
                image, size=preds.shape[-2:], mode="bilinear", align_corners=False
            )
        return feature_similarity_loss(image, preds, self.mu, self.sigma, self.radius)
