"""What the mask losses compare against, at the mask resolution (stride 4, BoxInst's
``mask_out_stride``): box masks, the L*a*b* image and the (pseudo) depth.

- Box mask of box (x0, y0, x1, y1): mask pixel (i, j) (centre (4j + 2, 4i + 2) in input
  pixels) is 1 when its centre lies in the box; a box smaller than a cell keeps the cell of
  its centre (our choice, so no box has an empty mask).
- Image: 4x4 average pooling (BoxInst), then sRGB -> L*a*b*.
- Depth: 4x4 average of the valid pixels (a cell with none is invalid = 0; holes never blend
  into fake depth); ``norm="median"`` divides each image by its median valid depth, so the
  depth consistency scale is unit-free (metres and relative pseudo depth alike; our choice).
- Depth target of the DG-MaskHead: "nearness" in [0, 1], 1 = near (the paper's DPT pseudo
  depth is inverse depth; DPT's own writer min-max normalises it per image). ``"image"``:
  (hi - d) / (hi - lo) with lo, hi the 2nd and 98th percentiles of the image's valid depth;
  ``"box"``: the same over the box; ``"inverse"``: lo / d (relative inverse depth: far
  surfaces approach 0 but the background of a box rarely reaches it). Invalid pixels carry
  no loss. The paper does not say how its depth was normalised: all three are our choices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deal_ros.losses import rgb_to_lab

STRIDE = 4


def box_masks(boxes: torch.Tensor, hw: tuple[int, int], stride: int = STRIDE) -> torch.Tensor:
    """(N, 4) input-pixel boxes -> (N, 1, h, w) float masks at stride ``stride``."""
    h, w = hw
    n = boxes.shape[0]
    c = stride / 2.0
    cols = torch.arange(w, device=boxes.device, dtype=boxes.dtype) * stride + c
    rows = torch.arange(h, device=boxes.device, dtype=boxes.dtype) * stride + c
    inx = (cols[None] >= boxes[:, 0:1]) & (cols[None] < boxes[:, 2:3])
    iny = (rows[None] >= boxes[:, 1:2]) & (rows[None] < boxes[:, 3:4])
    cx = ((boxes[:, 0] + boxes[:, 2]) / 2 / stride).floor().long().clamp(0, w - 1)
    cy = ((boxes[:, 1] + boxes[:, 3]) / 2 / stride).floor().long().clamp(0, h - 1)
    idx = torch.arange(n, device=boxes.device)
    inx[idx, cx] |= ~inx.any(1)
    iny[idx, cy] |= ~iny.any(1)
    return (iny[:, :, None] & inx[:, None, :]).to(boxes.dtype)[:, None]


def lab_image(images: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """(B,3,H,W) RGB in [0,1] -> (B,3,H/s,W/s) L*a*b* of the s x s averages."""
    return rgb_to_lab(F.avg_pool2d(images, stride, stride))


def pooled_depth(depth: torch.Tensor, valid: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """(B,1,H,W) depth + validity -> (B,1,H/s,W/s) mean of the valid pixels, 0 = invalid."""
    v = valid.to(depth.dtype) * (depth > 0).to(depth.dtype)
    num = F.avg_pool2d(depth * v, stride, stride)
    den = F.avg_pool2d(v, stride, stride)
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))


def normalise_depth(depth: torch.Tensor, norm: str = "median") -> torch.Tensor:
    """Divide each image's valid depth by its median (``"median"``) or keep it (``"none"``)."""
    if norm == "none":
        return depth
    if norm != "median":
        raise ValueError(f"depth_norm: expected 'median' or 'none', got {norm!r}")
    flat = depth.flatten(1)
    vals = torch.where(flat > 0, flat, torch.full_like(flat, float("nan")))
    med = torch.nanmedian(vals, dim=1).values
    med = torch.where(torch.isfinite(med) & (med > 0), med, torch.ones_like(med))
    return depth / med.view(-1, 1, 1, 1)


def nearness(
    depth: torch.Tensor, region: torch.Tensor | None = None, mode: str = "minmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,1,h,w) depth (0 = invalid) -> (target in [0,1], valid), over ``region`` (N,1,h,w)
    (default: the whole map): ``"minmax"`` (hi - d) / (hi - lo), ``"inverse"`` lo / d, with
    lo, hi the 2nd and 98th percentiles of the valid depth."""
    valid = depth > 0
    sel = valid if region is None else valid & (region > 0)
    flat = torch.where(sel, depth, torch.full_like(depth, float("nan"))).flatten(1)
    q = torch.nanquantile(
        flat, torch.tensor([0.02, 0.98], dtype=depth.dtype, device=depth.device), dim=1
    )
    lo, hi = (torch.nan_to_num(v, nan=0.0).view(-1, 1, 1, 1) for v in q)
    if mode == "inverse":
        target = torch.where(valid, lo / depth.clamp_min(1e-6), torch.zeros_like(depth))
    else:
        target = (hi - depth) / (hi - lo).clamp_min(1e-6)
    return target.clamp(0, 1), valid
