"""Mosaic: four RGB-D samples at half size tiled 2 x 2 into one, their image labels joined.

Onboarding episodes show one object per frame ("this episode shows a mug"); the robot then
meets tables with several. A classifier trained only on single-object frames learns "the
image is a mug" rather than "there is a mug here": on the demo's held-out scenes of 1-3
objects it missed half the objects (the image-level score is the spatial mean of the CAM
logits, so a smaller share of the image gives a lower score). Tiling four frames teaches it
to find an object in a quarter of the image beside others (the mosaic of YOLOv4, used here for
weak supervision; the choice and its parameters are ours)::

    out = [[a, b],      each tile a sample at half size (bilinear RGB, nearest depth / valid /
           [c, d]]      mask), labels(out) = max(labels(a), labels(b), labels(c), labels(d))

(Training draws each tile at half size in one resize: the scale range times 1/2, then a crop
to its quadrant; ``half`` is the plain form.)

Every tile keeps its whole frame, so the joined labels are exact. Where two tiles meet, depth
jumps from one room to another: an edge no object makes. ``seam`` pixels on each side of the
seams are marked invalid, so the Depth Edge Alignment Loss never asks a CAM edge to sit there;
``keep_depth=False`` drops the mosaic's depth altogether (every pixel invalid: DEAL then
learns from whole frames only, training takes that; DEAL skips images without valid depth).
Why: at half size an object is 2-3 CAM cells at stride 16, the size at which DEAL flattens
CAMs (issue 13); with the tiles' depth kept, DEAL's CAMs on the demo's held-out scenes fell
from 50.1 to 40.9 mIoU. Intrinsics are dropped (K = None): no one camera took the mosaic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deal_ros.data.transforms import RGBD, crop, resize

__all__ = ["half", "mosaic", "mosaic_labels", "quadrants"]


def quadrants(h: int, w: int) -> list[tuple[int, int]]:
    """Sizes of the four tiles of an (h, w) mosaic, in reading order."""
    top, left = h // 2, w // 2
    return [(top, left), (top, w - left), (h - top, left), (h - top, w - left)]


def half(s: RGBD, hw: tuple[int, int]) -> RGBD:
    """``s`` at half its size, cropped or padded to exactly ``hw`` (a tile of the mosaic)."""
    out = resize(s, 0.5)
    return out if out.shape == hw else crop(out, 0, 0, hw[0], hw[1])


def mosaic(parts: Sequence[RGBD], seam: int = 8, keep_depth: bool = True) -> RGBD:
    """Four tiles of the sizes :func:`quadrants` gives (e.g. :func:`half` of four samples of
    one size) -> one sample, tiles in reading order."""
    if len(parts) != 4:
        raise ValueError(f"mosaic: needs 4 tiles, got {len(parts)}")
    h, w = parts[0].shape[0] + parts[2].shape[0], parts[0].shape[1] + parts[1].shape[1]
    if [p.shape for p in parts] != quadrants(h, w):
        raise ValueError(
            f"mosaic: tiles must be the quadrants {quadrants(h, w)}, got {[p.shape for p in parts]}"
        )
    top, left = parts[0].shape

    def join(name: str) -> np.ndarray:
        maps = [getattr(p, name) for p in parts]
        return np.concatenate(
            [np.concatenate(maps[:2], axis=1), np.concatenate(maps[2:], axis=1)], axis=0
        )

    masks = [p.mask for p in parts]
    mask = join("mask") if all(m is not None for m in masks) else None
    valid = join("valid") if keep_depth else np.zeros((h, w), bool)
    if seam > 0:
        valid[max(0, top - seam) : top + seam, :] = False
        valid[:, max(0, left - seam) : left + seam] = False
    depth = np.where(valid, join("depth"), 0).astype(np.float32)
    return RGBD(rgb=join("rgb"), depth=depth, valid=valid, mask=mask, K=None)


def mosaic_labels(labels: Sequence[np.ndarray]) -> np.ndarray:
    """Image-level labels of a mosaic: a class is present if any tile shows it."""
    return np.max(np.stack([np.asarray(v, np.float32) for v in labels]), axis=0)
