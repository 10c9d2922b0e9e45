"""Quick-look images for RGB-D scenes: depth colour map, mask colours, an overview grid (numpy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from deal_ros.core.palette import default_palette

Array = np.ndarray
Box = tuple[int, int, int, int, int]  # (class id, x0, y0, x1, y1), x1/y1 exclusive


class SceneLike(Protocol):
    """What :func:`overview` reads of a scene (:class:`deal_ros.scene.generator.Scene` has it;
    a Protocol so that this module needs nothing of the generator)."""

    @property
    def rgb(self) -> Array: ...  # (H, W, 3) uint8

    @property
    def depth(self) -> Array: ...  # (H, W) float32 metres, 0 = invalid

    @property
    def mask(self) -> Array: ...  # (H, W) uint8 class ids, 255 ignore

    @property
    def boxes(self) -> Sequence[Box]: ...


# Anchor colours of a turbo-like map (blue -> cyan -> green -> yellow -> red), interpolated.
_ANCHORS = np.array(
    [
        [48, 18, 59],
        [70, 134, 251],
        [27, 229, 181],
        [164, 252, 60],
        [251, 185, 56],
        [226, 66, 14],
        [122, 4, 3],
    ],
    np.float32,
)
MASK_COLOURS = np.array(default_palette(10), np.uint8)  # background + 10 classes


def colorize_depth(depth: Array, max_depth: float | None = None) -> Array:
    """(H, W) metres -> (H, W, 3) uint8; near = blue, far = red, invalid (0 / non-finite) black."""
    valid = np.isfinite(depth) & (depth > 0)
    hi = max_depth or (float(depth[valid].max()) if valid.any() else 1.0)
    lo = float(depth[valid].min()) if valid.any() else 0.0
    x = np.clip((np.where(valid, depth, lo) - lo) / max(hi - lo, 1e-6), 0, 1) * (len(_ANCHORS) - 1)
    i = np.minimum(x.astype(np.int64), len(_ANCHORS) - 2)
    f = (x - i)[..., None]
    rgb = _ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f
    rgb[~valid] = 0
    return rgb.astype(np.uint8)


def colorize_mask(mask: Array) -> Array:
    """Class ids -> colours (cycling after 10 classes); 255 (ignore) is white."""
    ids = mask.astype(np.int64)
    out = MASK_COLOURS[np.where(ids == 0, 0, (ids - 1) % (len(MASK_COLOURS) - 1) + 1)]
    out[mask == 255] = 255
    return out


def draw_boxes(rgb: Array, boxes: Sequence[Box]) -> Array:
    """A copy of ``rgb`` with one-pixel box outlines in the class colours."""
    out = rgb.copy()
    for cls, x0, y0, x1, y1 in boxes:
        c = colorize_mask(np.array([[cls]], np.uint8))[0, 0]
        out[y0, x0:x1] = c
        out[y1 - 1, x0:x1] = c
        out[y0:y1, x0] = c
        out[y0:y1, x1 - 1] = c
    return out


def overview(scenes: Sequence[SceneLike], max_depth: float | None = None, gap: int = 4) -> Array:
    """Rows of rgb (with boxes) | depth | mask, separated by ``gap`` white pixels."""
    if not scenes:
        raise ValueError("render_overview: no scenes")
    rows = []
    for s in scenes:
        panels = [
            draw_boxes(s.rgb, s.boxes),
            colorize_depth(s.depth, max_depth),
            colorize_mask(s.mask),
        ]
        h = panels[0].shape[0]
        sep = np.full((h, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([panels[0], sep, panels[1], sep, panels[2]], axis=1))
    width = max(r.shape[1] for r in rows)
    out = []
    for r in rows:
        pad = np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)
        out += [np.concatenate([r, pad], axis=1), np.full((gap, width, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=0)
