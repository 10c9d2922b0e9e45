"""Network outputs -> what a robot uses: class mask, CAM heat map, rgb8 overlay (numpy + PIL).

Mask from CAMs (the usual WSSS rule, as SEAM / IRN make pseudo labels; the background is a
constant score ``cam_threshold``, 0.26 in SEAM)::

    present_k = scores_k >= score_threshold                     (image-level decision)
    mask(p)   = argmax( cam_threshold, {cam_k(p) : present_k} )  (0 = background)

with each CAM upsampled bilinearly (pixel centres aligned) from the CAM grid to the INPUT
image's size. Ties go to the lower id (background first), so a pixel needs
``cam_k(p) > cam_threshold``. Only present classes are upsampled (the common case is one), and
the argmax is a running maximum, never a Python loop over pixels.

Mask from a stage-2 segmenter: ``argmax_c seg_logits`` at the model's size, then nearest
resizing to the input size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from deal_ros.core.errors import DepthFormatError
from deal_ros.core.placement import Placement

__all__ = [
    "MaskResult",
    "cams_to_mask",
    "colorize",
    "depth_keep",
    "heat_to_rgb",
    "overlay",
    "palette_array",
    "present_classes",
    "resize_mask",
    "seg_logits_to_mask",
    "strongest_class",
    "threshold_on_image",
    "unplace",
    "unplace_boxes",
    "upsample",
]

Size = tuple[int, int]  # (height, width)


def upsample(plane: np.ndarray, size: Size) -> np.ndarray:
    """Bilinear resize of a float map (h, w) to ``size`` = (H, W), pixel centres aligned
    (torch's ``align_corners=False``); float32, C-contiguous."""
    plane = np.ascontiguousarray(plane, dtype=np.float32)
    if plane.shape == tuple(size):
        return plane
    image = Image.fromarray(plane, mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def unplace(plane: np.ndarray, where: Placement) -> np.ndarray:
    """A float map at the network input size back on the image (``where``: fit "resize" or
    "pad", the image inside the input): the padding cut off, then a bilinear resize to the
    image size (what ``deal_ros.instance.evaluate.to_original`` does in torch)."""
    rows = slice(where.top, where.top + where.height)
    cols = slice(where.left, where.left + where.width)
    return upsample(plane[rows, cols], where.image)


def _window(src: np.ndarray, full: Size, origin: Size, out: Size, rows: Size, cols: Size):
    """Rows ``rows`` x cols ``cols`` of the bilinear resize of a ``full`` (H, W) map to ``out``
    (H, W), computed from ``src``: the map's part whose top-left is ``origin``, covering the
    support of those output pixels (PIL's ``box``: same pixel centres as the whole resize)."""
    sy, sx = full[0] / out[0], full[1] / out[1]
    (y0, y1), (x0, x1) = rows, cols
    h, w = src.shape
    box = (max(x0 * sx - origin[1], 0.0), max(y0 * sy - origin[0], 0.0),
           min(x1 * sx - origin[1], float(w)), min(y1 * sy - origin[0], float(h)))  # fmt: skip
    image = Image.fromarray(np.ascontiguousarray(src, dtype=np.float32), mode="F")
    return np.asarray(image.resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR, box=box))


def _reach(lo: int, hi: int, src: int, out: int) -> Size:
    """The output pixels [a, b) (of a bilinear resize from ``src`` to ``out`` pixels) whose
    value can depend on source pixels [lo, hi), with a pixel of margin."""
    scale = src / out
    support = max(1.0, scale)
    a = math.floor((lo - support - 1) / scale)
    b = math.ceil((hi + support + 1) / scale)
    return max(a, 0), min(b, out)


def _needs(a: int, b: int, src: int, out: int) -> Size:
    """The source pixels [lo, hi) that output pixels [a, b) read, with a pixel of margin."""
    scale = src / out
    support = max(1.0, scale)
    return max(math.floor(a * scale - support - 1), 0), min(math.ceil(b * scale + support + 1), src)


def threshold_on_image(
    plane: np.ndarray, input_size: Size, where: Placement, threshold: float
) -> np.ndarray:
    """``unplace(upsample(plane, input_size), where) > threshold`` as (H, W) bool, resizing
    only where the result can be true: a bilinear value is a weighted mean of its source
    pixels, so it exceeds ``threshold`` only near source pixels that do. An instance mask
    covers a small part of the image, so this is several times faster than the whole resize;
    the values it computes are the whole resize's to float rounding (~1e-6)."""
    plane = np.asarray(plane, dtype=np.float32)
    out = np.zeros(where.image, dtype=bool)
    above = plane > np.float32(threshold)
    if not above.any():
        return out
    if where.top < 0 or where.left < 0:  # a crop window: the plain path
        return unplace(upsample(plane, input_size), where) > np.float32(threshold)
    h, w = plane.shape
    rows, cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
    # input pixels that can exceed the threshold (stage 1: mask grid -> network input)
    r1 = _reach(int(rows[0]), int(rows[-1]) + 1, h, input_size[0])
    c1 = _reach(int(cols[0]), int(cols[-1]) + 1, w, input_size[1])
    # image pixels that can (stage 2: the placed part of the input -> the image)
    crop = (where.height, where.width)
    r2 = _reach(r1[0] - where.top, r1[1] - where.top, crop[0], where.image[0])
    c2 = _reach(c1[0] - where.left, c1[1] - where.left, crop[1], where.image[1])
    if r2[0] >= r2[1] or c2[0] >= c2[1]:
        return out
    if crop == where.image:  # stage 2 is the identity
        rows_in = (r2[0] + where.top, r2[1] + where.top)
        cols_in = (c2[0] + where.left, c2[1] + where.left)
        part = _window(plane, (h, w), (0, 0), input_size, rows_in, cols_in)
    else:
        er = _needs(*r2, crop[0], where.image[0])
        ec = _needs(*c2, crop[1], where.image[1])
        rows_in = (er[0] + where.top, er[1] + where.top)
        cols_in = (ec[0] + where.left, ec[1] + where.left)
        placed = _window(plane, (h, w), (0, 0), input_size, rows_in, cols_in)
        part = _window(placed, crop, (er[0], ec[0]), where.image, r2, c2)
    out[r2[0] : r2[1], c2[0] : c2[1]] = part > np.float32(threshold)
    return out


def unplace_boxes(boxes: np.ndarray, where: Placement) -> np.ndarray:
    """(n, 4) x0, y0, x1, y1 boxes in input pixels -> image pixels (float32)."""
    h, w = where.image
    shift = np.array([where.left, where.top, where.left, where.top], np.float32)
    scale = np.array([where.width / w, where.height / h] * 2, np.float32)
    return ((np.asarray(boxes, np.float32) - shift) / scale).astype(np.float32)


def resize_mask(mask: np.ndarray, size: Size) -> np.ndarray:
    """Nearest-neighbour resize of a uint8 label map to ``size`` = (H, W)."""
    if mask.shape == tuple(size):
        return mask
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.NEAREST))


def present_classes(scores: np.ndarray, score_threshold: float) -> np.ndarray:
    """(K,) bool: the image-level decision ``scores_k >= score_threshold``."""
    return np.asarray(scores, dtype=np.float32) >= np.float32(score_threshold)


def strongest_class(scores: np.ndarray, present: np.ndarray) -> int:
    """Class id (1..K) of the highest-scoring present class; 0 when none is present."""
    if not present.any():
        return 0
    gated = np.where(present, scores, -np.inf)
    return int(np.argmax(gated)) + 1


@dataclass
class MaskResult:
    """``mask`` (H, W) uint8 class ids; ``maps`` the upsampled CAMs by class id (present
    classes and any asked for); ``present`` (K,) bool; ``strongest`` class id or 0."""

    mask: np.ndarray
    present: np.ndarray
    strongest: int
    maps: dict[int, np.ndarray] = field(default_factory=dict)


def cams_to_mask(
    cams: np.ndarray,
    scores: np.ndarray,
    size: Size,
    cam_threshold: float,
    score_threshold: float,
    extra_maps: Iterable[int] = (),
) -> MaskResult:
    """Class mask at ``size`` from CAMs (K, h, w) in [0, 1] and scores (K,) (module docstring).

    ``extra_maps``: class ids whose upsampled CAM is wanted even if absent (for heat maps).
    """
    cams = np.asarray(cams)
    if cams.ndim != 3 or cams.shape[0] != len(scores):
        raise ValueError(
            f"cams_to_mask: cams must be (K, h, w) with K = {len(scores)} scores, got {cams.shape}"
        )
    present = present_classes(scores, score_threshold)
    strongest = strongest_class(np.asarray(scores), present)
    ids = [int(k) + 1 for k in np.flatnonzero(present)]
    wanted = sorted(set(ids) | {int(k) for k in extra_maps if 1 <= int(k) <= len(scores)})
    maps = {k: upsample(cams[k - 1], size) for k in wanted}
    return MaskResult(
        mask=_argmax_with_background(maps, ids, size, cam_threshold),
        present=present,
        strongest=strongest,
        maps=maps,
    )


def _argmax_with_background(
    maps: dict[int, np.ndarray], ids: Sequence[int], size: Size, threshold: float
) -> np.ndarray:
    thr = np.float32(threshold)
    if not ids:
        return np.zeros(size, dtype=np.uint8)
    if len(ids) == 1:
        mask = np.greater(maps[ids[0]], thr).view(np.uint8)
        if ids[0] != 1:
            mask *= np.uint8(ids[0])
        return mask
    best = np.full(size, thr, dtype=np.float32)
    mask = np.zeros(size, dtype=np.uint8)
    above = np.empty(size, dtype=bool)
    for k in ids:
        np.greater(maps[k], best, out=above)
        np.putmask(mask, above, np.uint8(k))
        np.maximum(best, maps[k], out=best)
    return mask


def seg_logits_to_mask(seg_logits: np.ndarray, size: Size) -> np.ndarray:
    """(C, h, w) logits with channel 0 = background -> uint8 class ids at ``size``."""
    seg_logits = np.asarray(seg_logits)
    if seg_logits.ndim != 3:
        raise ValueError(f"seg_logits_to_mask: expected (C, h, w), got {seg_logits.shape}")
    return resize_mask(np.argmax(seg_logits, axis=0).astype(np.uint8), size)


def depth_keep(
    depth_m: np.ndarray, valid: np.ndarray, size: Size, max_range_m: float
) -> np.ndarray:
    """(H, W) bool at ``size``: pixels with a valid depth no farther than ``max_range_m``.
    Foreground elsewhere is set to background by the segmenter's depth gate (our choice: a
    work-space limit, not part of the method). The depth must have the image's size (depth
    aligned to colour): another size is a :class:`~deal_ros.core.errors.DepthFormatError`,
    never resampled (a depth image of another size is another view, not a scaled copy)."""
    depth_m = np.asarray(depth_m)
    if depth_m.shape != tuple(size):
        raise DepthFormatError(
            f"depth gate: depth is {depth_m.shape[-1]}x{depth_m.shape[0]}, the image "
            f"{size[1]}x{size[0]}; the gate needs depth aligned to colour (same size)"
        )
    return np.asarray(valid, dtype=bool) & (depth_m <= np.float32(max_range_m))


def palette_array(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(256, 3) uint8 palette (unused ids black), for PIL "P" images and table lookups."""
    table = np.zeros((256, 3), dtype=np.uint8)
    rows = np.asarray(palette, dtype=np.uint8)[:256]
    table[: len(rows)] = rows
    return table


def colorize(mask: np.ndarray, palette: np.ndarray) -> Image.Image:
    """The class mask as an RGB PIL image through ``palette`` ((256, 3) uint8)."""
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(palette.tobytes())
    return image.convert("RGB")


_ALPHA_LUTS: dict[int, list[int]] = {}


def overlay(rgb: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float) -> np.ndarray:
    """rgb8 image: class colours blended with weight ``alpha`` over foreground pixels;
    background pixels keep the input colour. ``rgb`` (H, W, 3) uint8, ``mask`` (H, W)."""
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"overlay: image {rgb.shape[:2]} and mask {mask.shape} differ in size")
    level = round(min(max(alpha, 0.0), 1.0) * 255)
    lut = _ALPHA_LUTS.get(level)
    if lut is None:
        lut = _ALPHA_LUTS.setdefault(level, [0] + [level] * 255)
    base = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    weight = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L").point(lut)
    return np.asarray(Image.composite(colorize(mask, palette), base, weight))


def _jet_lut() -> np.ndarray:
    """(256, 3) uint8 'jet'-like colour map: blue (0) -> cyan -> yellow -> red (1)."""
    x = np.linspace(0.0, 1.0, 256)
    r = np.clip(1.5 - np.abs(4 * x - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * x - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * x - 1), 0, 1)
    return (np.stack([r, g, b], axis=1) * 255 + 0.5).astype(np.uint8)


_JET = _jet_lut()


def heat_to_rgb(heat: np.ndarray) -> np.ndarray:
    """A map in [0, 1] (H, W) as an rgb8 colour image (for files and viewers)."""
    index = np.clip(np.asarray(heat, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return _JET[index]
