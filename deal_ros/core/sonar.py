"""Sonar images -> the RGB-D form the pipeline uses (ROS-free, numpy only).

Sonar drivers publish mono8 intensity images (a Ping360-style scan, an Oculus fan image, a
side-scan ping). The adapter keeps the intensity as the "rgb" image and derives a depth-like
map, so DEAL's depth edges exist underwater too.

Geometry (our choice; no paper prescribes it). Every pixel lies on a *beam* (a bearing, or
one side of a side-scan ping) at a *range* r from the transducer:

- ``polar``: the image is already (range x beam): ``layout="range_rows"`` (rows = range bins,
  row 0 nearest; columns = beams) or ``"range_cols"`` (columns = range bins, column 0 nearest).
  Bin i covers ``[r_min + i*dr, r_min + (i+1)*dr)`` with ``dr = (r_max - r_min) / bins``; its
  range is the bin centre.
- ``fan``: a Cartesian fan image (what Oculus/Ping360 viewers draw). The transducer (apex) sits
  at the centre of the bottom edge (``apex="bottom"``, looking up) or of the top edge; one
  pixel is ``r_max / H`` metres, so ``r_max`` reaches the opposite edge straight ahead; the fan
  spans ``fov_deg`` around the axis. A pixel is on the fan iff ``r_min <= r <= r_max`` and its
  bearing is within ``fov/2``; it maps to the nearest cell of a (H ranges x W beams) polar grid,
  which is processed as in ``polar`` and mapped back. Pixels off the fan are invalid.
- ``sidescan``: a waterfall (rows = pings, newest first; columns = across-track samples, port
  on the left with range growing leftwards from the centre, starboard on the right with range
  growing rightwards); each side of each ping is a beam.

Depth-like value along a beam, as a range camera at the transducer would report it:

- an *echo* cell (intensity, smoothed over ``smooth_bins`` range bins, >= ``threshold``)
  has its own range;
- a quiet cell between two echoes is in an *acoustic shadow*: something at the last echo's
  range hides it, so it gets that (occluder) range. The shadow becomes a plateau whose outline
  -- where the seabed's rising range meets it -- is a depth edge at the object's silhouette;
- quiet cells before the first echo (water column) or after the last one (nothing came back)
  have no measurement: invalid (0 m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from deal_ros.core.errors import DepthFormatError

__all__ = [
    "SONAR_MODES",
    "SonarGeometry",
    "Waterfall",
    "depth_like_along_range",
    "fan_maps",
    "range_bins",
    "sonar_to_rgbd",
]

SONAR_MODES = ("polar", "fan", "sidescan")
_LAYOUTS = ("range_rows", "range_cols")
_APEX = ("bottom", "top")


@dataclass(frozen=True)
class SonarGeometry:
    """How a sonar image maps to ranges, and the echo/shadow rule (module doc)."""

    mode: str = "fan"
    range_min_m: float = 0.0
    range_max_m: float = 20.0
    fov_deg: float = 130.0
    apex: str = "bottom"
    layout: str = "range_rows"
    threshold: int = 40
    smooth_bins: int = 3

    def __post_init__(self) -> None:
        where = "sonar geometry"
        if self.mode not in SONAR_MODES:
            raise DepthFormatError(f"{where}: mode {self.mode!r} is not one of {SONAR_MODES}")
        if not (0 <= self.range_min_m < self.range_max_m and math.isfinite(self.range_max_m)):
            raise DepthFormatError(
                f"{where}: need 0 <= range_min_m < range_max_m, got "
                f"{self.range_min_m} and {self.range_max_m}"
            )
        if not 0 < self.fov_deg <= 360:
            raise DepthFormatError(f"{where}: fov_deg must be in (0, 360], got {self.fov_deg}")
        if self.apex not in _APEX:
            raise DepthFormatError(f"{where}: apex {self.apex!r} is not one of {_APEX}")
        if self.layout not in _LAYOUTS:
            raise DepthFormatError(f"{where}: layout {self.layout!r} is not one of {_LAYOUTS}")
        if not 0 <= self.threshold <= 255:
            raise DepthFormatError(f"{where}: threshold must be in [0, 255], got {self.threshold}")
        if self.smooth_bins < 1:
            raise DepthFormatError(f"{where}: smooth_bins must be >= 1, got {self.smooth_bins}")


def range_bins(n: int, range_min_m: float, range_max_m: float) -> np.ndarray:
    """Centres (metres, float32) of ``n`` equal range bins covering [min, max)."""
    step = (range_max_m - range_min_m) / n
    return (range_min_m + (np.arange(n, dtype=np.float64) + 0.5) * step).astype(np.float32)


def _smooth(intensity: np.ndarray, k: int) -> np.ndarray:
    """Moving average over ``k`` cells along axis 0 (same length; shorter windows at ends)."""
    x = intensity.astype(np.float32)
    if k <= 1:
        return x
    c = np.cumsum(np.pad(x, ((1, 0), (0, 0))), axis=0, dtype=np.float64)
    n = x.shape[0]
    lo = np.clip(np.arange(n) - k // 2, 0, n)
    hi = np.clip(np.arange(n) + (k - k // 2), 0, n)
    return ((c[hi] - c[lo]) / (hi - lo)[:, None]).astype(np.float32)


def depth_like_along_range(
    intensity: np.ndarray, ranges: np.ndarray, threshold: int = 40, smooth_bins: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Depth-like map of an (R ranges x B beams) intensity array, rows by increasing range
    (module doc: echoes keep their range, shadows take the occluder's, the rest is invalid).
    Returns ``(depth_m float32, valid bool)``, invalid cells 0."""
    intensity = np.asarray(intensity)
    if intensity.ndim != 2 or intensity.shape[0] != len(ranges):
        raise DepthFormatError(
            f"sonar: intensity {intensity.shape} does not match {len(ranges)} range bins"
        )
    rows = intensity.shape[0]
    echo = _smooth(intensity, smooth_bins) >= threshold
    index = np.arange(rows)[:, None]
    last = np.maximum.accumulate(np.where(echo, index, -1), axis=0)
    following = np.minimum.accumulate(np.where(echo, index, rows)[::-1], axis=0)[::-1]
    valid = echo | ((last >= 0) & (following < rows))
    depth = np.where(valid, np.asarray(ranges, np.float32)[np.clip(last, 0, None)], 0)
    return depth.astype(np.float32), valid


@dataclass(frozen=True)
class FanMaps:
    """Index maps between a fan image (H, W) and its (H ranges x W beams) polar grid."""

    inside: np.ndarray  # (H, W) bool: pixel on the fan
    range_index: np.ndarray  # (H, W) int: polar row of each pixel
    beam_index: np.ndarray  # (H, W) int: polar column of each pixel
    sample_y: np.ndarray  # (R, B) int: image row sampled by each polar cell
    sample_x: np.ndarray  # (R, B) int
    sample_ok: np.ndarray  # (R, B) bool: the sample lies in the image
    ranges: np.ndarray  # (R,) float32 bin centres


@lru_cache(maxsize=8)
def fan_maps(height: int, width: int, geometry: SonarGeometry) -> FanMaps:
    """The (cached) maps of a fan image of this size and geometry (module doc)."""
    g = geometry
    scale = g.range_max_m / height  # metres per pixel
    half = math.radians(g.fov_deg) / 2
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    dx = (xs + 0.5 - width / 2) * scale
    dy = ((height - (ys + 0.5)) if g.apex == "bottom" else (ys + 0.5)) * scale
    r = np.hypot(dx, dy)
    theta = np.arctan2(dx, dy)
    inside = (r >= g.range_min_m) & (r <= g.range_max_m) & (np.abs(theta) <= half)
    n_r, n_b = height, width
    span = g.range_max_m - g.range_min_m
    range_index = np.clip(((r - g.range_min_m) / span * n_r).astype(np.int64), 0, n_r - 1)
    beam_index = np.clip(((theta + half) / (2 * half) * n_b).astype(np.int64), 0, n_b - 1)
    ranges = range_bins(n_r, g.range_min_m, g.range_max_m).astype(np.float64)
    bearings = -half + (np.arange(n_b) + 0.5) * (2 * half / n_b)
    rr, bb = np.meshgrid(ranges, bearings, indexing="ij")
    sx = np.floor(width / 2 + rr * np.sin(bb) / scale).astype(np.int64)
    fy = rr * np.cos(bb) / scale
    sy = np.floor(height - fy if g.apex == "bottom" else fy).astype(np.int64)
    ok = (sx >= 0) & (sx < width) & (sy >= 0) & (sy < height)
    return FanMaps(
        inside,
        range_index,
        beam_index,
        np.clip(sy, 0, height - 1),
        np.clip(sx, 0, width - 1),
        ok,
        ranges.astype(np.float32),
    )


def _fan(image: np.ndarray, g: SonarGeometry) -> tuple[np.ndarray, np.ndarray]:
    maps = fan_maps(image.shape[0], image.shape[1], g)
    polar = np.where(maps.sample_ok, image[maps.sample_y, maps.sample_x], 0)
    depth_p, valid_p = depth_like_along_range(polar, maps.ranges, g.threshold, g.smooth_bins)
    valid = maps.inside & valid_p[maps.range_index, maps.beam_index]
    depth = np.where(valid, depth_p[maps.range_index, maps.beam_index], 0).astype(np.float32)
    return depth, valid


def _sidescan(image: np.ndarray, g: SonarGeometry) -> tuple[np.ndarray, np.ndarray]:
    width = image.shape[1]
    half = width // 2
    ranges = range_bins(half, g.range_min_m, g.range_max_m)
    depth = np.zeros(image.shape, np.float32)
    valid = np.zeros(image.shape, bool)
    port = image[:, :half][:, ::-1].T  # (range, ping), range growing away from the centre
    starboard = image[:, width - half :].T
    for side, cols in ((port, slice(half - 1, None, -1)), (starboard, slice(width - half, None))):
        d, v = depth_like_along_range(side, ranges, g.threshold, g.smooth_bins)
        depth[:, cols], valid[:, cols] = d.T, v.T
    return depth, valid


def sonar_to_rgbd(
    image: np.ndarray, geometry: SonarGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(intensity uint8 (H, W), depth_m float32 (H, W), valid bool (H, W))`` for one mono8
    sonar image (a waterfall for ``sidescan``); invalid depth is 0."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2 or image.dtype != np.uint8 or 0 in image.shape:
        raise DepthFormatError(
            f"sonar: expects a non-empty (H, W) uint8 intensity image, got {image.shape} "
            f"{image.dtype}"
        )
    g = geometry
    if g.mode == "fan":
        depth, valid = _fan(image, g)
    elif g.mode == "sidescan":
        depth, valid = _sidescan(image, g)
    elif g.layout == "range_rows":
        ranges = range_bins(image.shape[0], g.range_min_m, g.range_max_m)
        depth, valid = depth_like_along_range(image, ranges, g.threshold, g.smooth_bins)
    else:
        ranges = range_bins(image.shape[1], g.range_min_m, g.range_max_m)
        depth, valid = depth_like_along_range(image.T, ranges, g.threshold, g.smooth_bins)
        depth, valid = depth.T.copy(), valid.T.copy()
    return image, depth, valid


class Waterfall:
    """Side-scan waterfall: the last ``rows`` pings, newest first (row 0). Pings of another
    width than the first one are rejected."""

    def __init__(self, rows: int = 400) -> None:
        if rows < 1:
            raise DepthFormatError(f"waterfall: rows must be >= 1, got {rows}")
        self.rows = rows
        self._buf: np.ndarray | None = None
        self.count = 0

    @property
    def width(self) -> int | None:
        return None if self._buf is None else self._buf.shape[1]

    def push(self, pings: np.ndarray) -> np.ndarray:
        """Add one ping (W,) or several (k, W), the newest LAST; return the waterfall
        (rows, W) uint8, newest ping in row 0 (rows not filled yet are 0)."""
        pings = np.asarray(pings)
        if pings.ndim == 1:
            pings = pings[None, :]
        if pings.ndim != 2 or pings.dtype != np.uint8 or 0 in pings.shape:
            raise DepthFormatError(
                f"waterfall: expects (W,) or (k, W) uint8 pings, got {pings.shape} {pings.dtype}"
            )
        if self._buf is None:
            self._buf = np.zeros((self.rows, pings.shape[1]), np.uint8)
        if pings.shape[1] != self._buf.shape[1]:
            raise DepthFormatError(
                f"waterfall: ping width {pings.shape[1]} != {self._buf.shape[1]} of earlier pings"
            )
        new = pings[::-1][: self.rows]
        self._buf = np.concatenate([new, self._buf[: self.rows - len(new)]])
        self.count += len(pings)
        return self._buf
