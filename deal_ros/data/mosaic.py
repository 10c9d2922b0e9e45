"""Mosaic: four RGB-D samples at half size tiled 2 x 2 into one, their image labels joined.

Onboarding episodes show one object per frame ("this episode shows a mug"); the robot then
meets tables with several. A classifier trained only on single-object frames learns "the
image is a mug" rather than "there is a mug here": on the demo's held-out scenes of 1-3
objects it missed half the objects (the image-level score is the spatial mean of the CAM
logits, so a smaller share of the image gives a lower score). Tiling four frames teaches it
to find an object in a quarter of the image beside others (the mosaic of YOLOv4, used here for
weak supervision; the choice and its parameters are ours)::

    out = [[a, b],      each tile resized by 1/2 (bilinear RGB, nearest depth / valid / mask),
           [c, d]]      labels(out) = max(labels(a), labels(b), labels(c), labels(d))

Every tile keeps its whole frame, so the joined labels are exact. Where two tiles meet, depth
jumps from one room to another: an edge no object makes. ``seam`` pixels on each side of the
seams are marked invalid, so the Depth Edge Alignment Loss never asks a CAM edge to sit there.
Intrinsics are dropped (K = None): no one camera took the mosaic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deal_ros.data.transforms import RGBD, crop, resize

__all__ = ["mosaic", "mosaic_labels"]


def _tile(s: RGBD, hw: tuple[int, int]) -> RGBD:
    """``s`` at half its size, cropped or padded to exactly ``hw``."""
    half = resize(s, 0.5)
    if half.shape != hw:
        half = crop(half, 0, 0, hw[0], hw[1])
    return half


def mosaic(tiles: Sequence[RGBD], seam: int = 8) -> RGBD:
    """Four samples of one size (H, W) -> one (H, W) sample, tiles in reading order."""
    if len(tiles) != 4:
        raise ValueError(f"mosaic: needs 4 tiles, got {len(tiles)}")
    h, w = tiles[0].shape
    if any(t.shape != (h, w) for t in tiles):
        raise ValueError(f"mosaic: tiles must share one size, got {[t.shape for t in tiles]}")
    top, left = h // 2, w // 2
    sizes = [(top, left), (top, w - left), (h - top, left), (h - top, w - left)]
    parts = [_tile(t, hw) for t, hw in zip(tiles, sizes)]

    def join(name: str) -> np.ndarray:
        maps = [getattr(p, name) for p in parts]
        return np.concatenate(
            [np.concatenate(maps[:2], axis=1), np.concatenate(maps[2:], axis=1)], axis=0
        )

    masks = [p.mask for p in parts]
    mask = join("mask") if all(m is not None for m in masks) else None
    valid = join("valid")
    if seam > 0:
        valid[max(0, top - seam) : top + seam, :] = False
        valid[:, max(0, left - seam) : left + seam] = False
    depth = np.where(valid, join("depth"), 0).astype(np.float32)
    return RGBD(rgb=join("rgb"), depth=depth, valid=valid, mask=mask, K=None)


def mosaic_labels(labels: Sequence[np.ndarray]) -> np.ndarray:
    """Image-level labels of a mosaic: a class is present if any tile shows it."""
    return np.max(np.stack([np.asarray(v, np.float32) for v in labels]), axis=0)
