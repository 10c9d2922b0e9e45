"""Keyframe selection: skip near-duplicate frames so a minute of a still scene does not become
1800 identical samples (numpy only; the measure is our choice, no paper prescribes one).

A frame is kept when it differs enough from the last KEPT frame, or when ``max_interval_s``
passed since then (a still scene still gives one frame per interval). The difference of two
frames is measured on small thumbnails (block means of a 4x-subsampled image, so sensor noise
averages out):

- colour: mean absolute difference of the grey thumbnails, on a 0..1 scale;
- depth: over thumbnail cells valid in both, the mean relative change ``|a - b| / max(a, b)``,
  plus the fraction of cells whose validity flipped;

``change = max(colour, depth)``; kept iff ``change >= min_change`` (0.03 by default: about
8 grey levels on average, or 3 % of the distance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["KeyframeSelector", "Thumbnail", "frame_change", "thumbnail"]


@dataclass(frozen=True)
class Thumbnail:
    grey: np.ndarray  # (gh, gw) float32 in [0, 1]
    depth: np.ndarray | None  # (gh, gw) float32 metres (raw units for unknown dtypes)
    valid: np.ndarray | None  # (gh, gw) bool


def _blocks(arr: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Block sums over a (gh, gw) grid of a 2-D float array (the edges that do not fill a
    whole block are left out)."""
    gh, gw = grid
    h, w = arr.shape
    bh, bw = max(1, h // gh), max(1, w // gw)
    gh, gw = min(gh, h), min(gw, w)
    return arr[: gh * bh, : gw * bw].reshape(gh, bh, gw, bw).sum(axis=(1, 3), dtype=np.float32)


def thumbnail(rgb: np.ndarray, depth: np.ndarray | None = None, grid=(24, 32)) -> Thumbnail:
    """Thumbnail of an (H, W, C) or (H, W) uint8 image and an optional raw depth map
    (uint16 millimetres or float metres; 0/NaN/inf invalid)."""
    small = np.asarray(rgb)[::4, ::4]
    grey = small.mean(axis=2, dtype=np.float32) if small.ndim == 3 else small.astype(np.float32)
    counts = _blocks(np.ones_like(grey), grid)
    grey = _blocks(grey, grid) / counts / 255.0
    if depth is None:
        return Thumbnail(grey, None, None)
    d = np.asarray(depth)[::4, ::4]
    metres = d.astype(np.float32) * (np.float32(0.001) if d.dtype.kind in "ui" else 1)
    ok = np.isfinite(metres) & (metres > 0)
    n = _blocks(ok.astype(np.float32), grid)
    total = _blocks(np.where(ok, metres, 0).astype(np.float32), grid)
    valid = n >= 0.5 * _blocks(np.ones_like(metres), grid)
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    return Thumbnail(grey, mean, valid)


def frame_change(a: Thumbnail, b: Thumbnail) -> float:
    """Difference of two thumbnails in [0, 1] (module doc)."""
    if a.grey.shape != b.grey.shape:
        return 1.0
    change = float(np.abs(a.grey - b.grey).mean())
    if a.depth is not None and b.depth is not None and a.valid is not None:
        both = a.valid & b.valid
        flipped = float(np.mean(a.valid != b.valid))
        rel = 0.0
        if both.any():
            da, db = a.depth[both], b.depth[both]
            rel = float(np.mean(np.abs(da - db) / np.maximum(da, db)))
        change = max(change, min(1.0, rel + flipped))
    return change


@dataclass
class KeyframeSelector:
    """Decide frame by frame whether to keep it (module doc)."""

    min_change: float = 0.03
    max_interval_s: float = 1.0
    grid: tuple[int, int] = (24, 32)
    _last: Thumbnail | None = field(default=None, repr=False)
    _last_stamp: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.min_change <= 1:
            raise ValueError(f"keyframes: min_change must be in [0, 1], got {self.min_change}")
        if self.max_interval_s <= 0:
            raise ValueError(f"keyframes: max_interval_s must be > 0, got {self.max_interval_s}")

    def reset(self) -> None:
        self._last, self._last_stamp = None, None

    def consider(self, stamp_ns: int, rgb: np.ndarray, depth: np.ndarray | None = None) -> bool:
        """True if this frame is a keyframe (and remember it as the reference)."""
        thumb = thumbnail(rgb, depth, self.grid)
        keep = (
            self._last is None
            or self._last_stamp is None
            or stamp_ns - self._last_stamp >= self.max_interval_s * 1e9
            or stamp_ns < self._last_stamp
            or frame_change(thumb, self._last) >= self.min_change
        )
        if keep:
            self._last, self._last_stamp = thumb, stamp_ns
        return keep
