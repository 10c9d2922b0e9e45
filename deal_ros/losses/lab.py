"""sRGB -> CIE L*a*b* (D65) in torch, for BoxInst's colour similarity.

    linear = ((c + 0.055) / 1.055)^2.4 if c > 0.04045 else c / 12.92      (sRGB in [0,1])
    [X Y Z] = M_sRGB->XYZ(D65) @ linear,  divided by the D65 white (0.95047, 1, 1.08883)
    f(t)    = t^(1/3) if t > (6/29)^3 else t / (3 (6/29)^2) + 4/29
    L* = 116 f(Y) - 16,  a* = 500 (f(X) - f(Y)),  b* = 200 (f(Y) - f(Z))

L* in [0, 100]; a*, b* about [-128, 127] (skimage.color.rgb2lab's convention).
"""

from __future__ import annotations

import torch

from ._checks import check_ndim

_M = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE = (0.95047, 1.0, 1.08883)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) sRGB in [0,1] -> (B,3,H,W) L*a*b*. Values outside [0,1] are clamped."""
    check_ndim("rgb", rgb, 4, "(B,3,H,W)")
    if rgb.shape[1] != 3:
        raise ValueError(f"rgb: expected 3 channels (B,3,H,W), got {tuple(rgb.shape)}")
    c = rgb.clamp(0.0, 1.0)
    lin = torch.where(c > 0.04045, ((c + 0.055) / 1.055).pow(2.4), c / 12.92)
    m = torch.tensor(_M, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    xyz = torch.einsum("ij,bjhw->bihw", m, lin) / white
    delta = 6.0 / 29.0
    f = torch.where(
        xyz > delta**3, xyz.clamp_min(delta**3).pow(1.0 / 3.0), xyz / (3 * delta**2) + 4.0 / 29.0
    )
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)
