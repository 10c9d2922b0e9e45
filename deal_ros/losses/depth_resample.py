"""Resample a depth map with invalid pixels to CAM size without smearing the holes.

DEAL resamples depth bicubically to the CAM resolution. A RealSense hole (0) or a NaN/inf in
32FC1 would bleed into its neighbours and make a fake edge, so (our choices):

1. ``transform_depth``: metres -> the quantity whose edges count ("log" depth in DEALLoss, see
   ``DEPTH_TRANSFORMS``); invalid pixels become 0, never NaN.
2. ``resample_depth``: validity-normalised bicubic resampling, written with the two 1-D
   matrices of torch's bicubic kernel (built from ``F.interpolate`` itself):

       z_out = (Wy (v z) Wx^T) / (Wy v Wx^T)          v = 1 on valid pixels, 0 on holes

   so a hole contributes nothing and the remaining weights are renormalised; with no hole in
   the support this is exactly torch's bicubic. A CAM pixel is valid when the |weight|-mass
   of valid source pixels in its support, (|Wy| v |Wx|^T) / (|Wy| 1 |Wx|^T), is at least
   ``min_support_valid`` (1.0: every source pixel with a non-zero weight was valid).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_ndim

DEPTH_TRANSFORMS = ("inverse", "log", "metres")


def depth_validity(depth: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Valid pixels (bool, same shape): finite and > 0, and ``valid`` where given."""
    ok = (depth > 0) & (depth < float("inf"))  # NaN fails both comparisons
    if valid is not None:
        if valid.shape != depth.shape:
            raise ValueError(
                f"valid: expected the depth shape {tuple(depth.shape)}, got {tuple(valid.shape)}"
            )
        ok = ok & valid.bool()
    return ok


def transform_depth(depth: torch.Tensor, valid: torch.Tensor, mode: str) -> torch.Tensor:
    """Metres -> "inverse" (1/d, 1/m), "log" (ln d) or "metres"; invalid pixels -> 0."""
    check_choice("depth_transform", mode, DEPTH_TRANSFORMS)
    if mode == "inverse":
        return torch.where(valid, 1.0 / torch.where(valid, depth, 1.0), 0.0)
    if mode == "log":
        return torch.log(torch.where(valid, depth, 1.0))  # log(1) = 0 on holes
    return torch.where(valid, depth, 0.0)


@functools.lru_cache(maxsize=64)
def _resample_matrix_cpu(n_in: int, n_out: int, antialias: bool) -> torch.Tensor:
    """(n_out, n_in) float64 matrix of torch's 1-D bicubic resampling (align_corners=False).

    Built by resampling an identity image along one axis only (the other keeps its size, which
    is an exact identity); a width-1 image is avoided on purpose (torch's antialiased bicubic
    returns zeros for it).
    """
    eye = torch.eye(n_in, dtype=torch.float64).reshape(1, 1, n_in, n_in)
    aa = antialias and n_out < n_in
    out = F.interpolate(eye, size=(n_out, n_in), mode="bicubic", align_corners=False, antialias=aa)
    return out[0, 0].contiguous()


@functools.lru_cache(maxsize=64)
def _resample_matrix_on(
    n_in: int, n_out: int, antialias: bool, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    return _resample_matrix_cpu(n_in, n_out, antialias).to(device=device, dtype=dtype)


def resample_matrix(
    n_in: int, n_out: int, *, antialias: bool = True, like: torch.Tensor | None = None
) -> torch.Tensor:
    """The 1-D bicubic resampling matrix (n_out, n_in), on ``like``'s device and dtype."""
    if like is None:
        return _resample_matrix_cpu(int(n_in), int(n_out), bool(antialias))
    return _resample_matrix_on(int(n_in), int(n_out), bool(antialias), like.device, like.dtype)


def resample_depth(
    z: torch.Tensor,
    valid: torch.Tensor,
    size: tuple[int, int],
    *,
    antialias: bool = False,
    min_support_valid: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validity-normalised bicubic resampling of ``z`` (B,1,H,W) to ``size`` (h, w).

    Returns (z_out (B,1,h,w), valid_out (B,1,h,w) bool). Values stored in invalid pixels
    (even NaN) never reach the output; invalid output pixels hold 0.
    """
    check_ndim("depth", z, 4, "(B,1,H,W)")
    if valid.shape != z.shape:
        raise ValueError(f"valid: expected the depth shape {tuple(z.shape)}, got {valid.shape}")
    if not 0.0 < min_support_valid <= 1.0:
        raise ValueError(f"min_support_valid: expected (0, 1], got {min_support_valid}")
    h, w = size
    wy = resample_matrix(z.shape[-2], h, antialias=antialias, like=z)
    wx = resample_matrix(z.shape[-1], w, antialias=antialias, like=z)
    v = valid.to(z.dtype)
    num = wy @ torch.where(valid, z, 0.0) @ wx.t()
    den = wy @ v @ wx.t()
    ay, ax = wy.abs(), wx.abs()
    if min_support_valid >= 1.0:  # exact: no invalid pixel with a non-zero weight
        valid_out = (ay @ (1.0 - v) @ ax.t()) <= 0
    else:
        good = ay @ v @ ax.t()  # |W|-mass of the valid pixels in each support
        total = ay.sum(1, keepdim=True) * ax.sum(1)  # |W|-mass of each support, (h, w)
        valid_out = good >= min_support_valid * total
    # with >= half of the |W|-mass valid, den >= ~0.18 for the bicubic kernel: a safe divide
    valid_out = valid_out & (den.abs() > 1e-3)
    z_out = torch.where(valid_out, num / torch.where(valid_out, den, torch.ones_like(den)), 0.0)
    return z_out, valid_out
