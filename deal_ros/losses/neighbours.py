"""Pixel neighbourhoods for pairwise losses: the 8 neighbours of a 3x3 kernel with dilation.

``neighbours(x)`` returns, for every pixel i, the values x_j of its K*K - 1 neighbours
j = i + dilation * (u, v), u, v in {-(K-1)/2 .. (K-1)/2}, (u, v) != (0, 0), as (B,C,K*K-1,H,W),
with zeros outside the image; ``inside(h, w)`` says which of those neighbours exist.
BoxInst uses K = 3, dilation = 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _offsets(kernel_size: int, dilation: int) -> list[tuple[int, int]]:
    if kernel_size < 3 or kernel_size % 2 == 0 or dilation < 1:
        raise ValueError(
            f"kernel_size must be odd >= 3 and dilation >= 1, got {kernel_size}, {dilation}"
        )
    r = kernel_size // 2
    return [
        (u * dilation, v * dilation)
        for u in range(-r, r + 1)
        for v in range(-r, r + 1)
        if (u, v) != (0, 0)
    ]


def neighbours(x: torch.Tensor, kernel_size: int = 3, dilation: int = 2) -> torch.Tensor:
    """(B,C,H,W) -> (B,C,K*K-1,H,W): the neighbour values, zero outside the image."""
    h, w = x.shape[-2:]
    pad = (kernel_size // 2) * dilation
    xp = F.pad(x, (pad, pad, pad, pad))
    views = [
        xp[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]
        for dy, dx in _offsets(kernel_size, dilation)
    ]
    return torch.stack(views, dim=2)


def inside(h: int, w: int, kernel_size: int = 3, dilation: int = 2, device=None) -> torch.Tensor:
    """(1,1,K*K-1,H,W) bool: whether each neighbour lies inside an h x w image."""
    ones = torch.ones(1, 1, h, w, device=device)
    return neighbours(ones, kernel_size, dilation) > 0.5
