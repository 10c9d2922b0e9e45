"""Depth + intrinsics + class mask -> per-class 3-D points in metres (numpy, vectorised).

Pinhole back-projection (the model of ``sensor_msgs/CameraInfo``: ``K = [fx 0 cx; 0 fy cy;
0 0 1]``, pixel centres at integer coordinates, REP 103 optical frame: x right, y down,
z forward)::

    X = (u - cx) * Z / fx        Y = (v - cy) * Z / fy        Z = depth(v, u)

for every pixel ``(v, u)`` with valid depth whose class id is kept. The depth must be aligned
to the colour image the mask was computed on (RealSense ``aligned_depth_to_color``) and ``K``
must be that colour camera's. Distortion coefficients are not applied (our choice: the
RealSense colour stream reports zero or near-zero distortion; rectify first otherwise).

When the depth image's size differs from the camera_info's ``width x height`` (a resized
stream) and the aspect ratio agrees within 1 %, ``K`` is scaled to the depth size
(:meth:`Intrinsics.scaled`); a different aspect ratio is an error (the wrong camera_info, e.g.
the depth camera's instead of the colour camera's). A mask or rgb image of another size than
the depth is resized to it by nearest neighbour.

No per-pixel Python loop: one ``np.nonzero`` over the selected pixels, then per-column and
per-row ray tables (``(u - cx) / fx`` and ``(v - cy) / fy``) gathered and multiplied by Z.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deal_ros.errors import DealError

__all__ = ["Cloud", "CloudError", "Intrinsics", "backproject"]

_ASPECT_TOLERANCE = 0.01


class CloudError(DealError, ValueError):
    """Unusable input for back-projection or point-cloud conversion (shapes, intrinsics,
    PointCloud2 / PLY layout)."""


def _where(name: str | None, what: str) -> str:
    return f"{what} '{name}'" if name else what


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of ``width x height`` pixels (``K`` without skew)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for key in ("fx", "fy"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise CloudError(f"intrinsics: {key} must be a finite number > 0, got {value}")
        for key in ("cx", "cy"):
            if not math.isfinite(getattr(self, key)):
                raise CloudError(f"intrinsics: {key} must be finite, got {getattr(self, key)}")
        if self.width <= 0 or self.height <= 0:
            raise CloudError(
                f"intrinsics: image size must be > 0, got width={self.width}, height={self.height}"
            )

    @classmethod
    def from_matrix(cls, k: Any, width: int, height: int, *, name: str | None = None) -> Intrinsics:
        """From a 3x3 ``K`` (or its 9 row-major values, as in ``CameraInfo.k``)."""
        arr = np.asarray(k, dtype=np.float64).reshape(-1)
        if arr.size != 9:
            raise CloudError(f"{_where(name, 'camera_info')}: K must hold 9 values, got {arr.size}")
        if not np.any(arr):
            raise CloudError(
                f"{_where(name, 'camera_info')}: K is all zeros (an uncalibrated camera?)"
            )
        try:
            return cls(
                float(arr[0]), float(arr[4]), float(arr[2]), float(arr[5]), int(width), int(height)
            )
        except CloudError as exc:
            raise CloudError(f"{_where(name, 'camera_info')}: {exc}") from None

    @classmethod
    def from_camera_info(cls, msg: Any, *, name: str | None = None) -> Intrinsics:
        """From a ``sensor_msgs/CameraInfo`` (rclpy or rosbags object, duck-typed on ``k``,
        ``width``, ``height``; ``binning_x/y`` and ``roi`` applied as the message's comments
        define them: the ROI shifts the principal point, binning divides K and the size)."""
        where = _where(name, "camera_info")
        try:
            k = msg.k if hasattr(msg, "k") else msg.K
            width, height = int(msg.width), int(msg.height)
        except AttributeError as exc:
            raise CloudError(f"{where}: not a sensor_msgs/CameraInfo ({exc})") from None
        if width <= 0 or height <= 0:
            raise CloudError(f"{where}: width/height must be > 0, got {width}x{height}")
        intr = cls.from_matrix(k, width, height, name=name)
        roi = getattr(msg, "roi", None)
        if roi is not None and int(roi.width) > 0 and int(roi.height) > 0:
            intr = cls(
                intr.fx,
                intr.fy,
                intr.cx - int(roi.x_offset),
                intr.cy - int(roi.y_offset),
                int(roi.width),
                int(roi.height),
            )
        bx = max(int(getattr(msg, "binning_x", 0) or 1), 1)
        by = max(int(getattr(msg, "binning_y", 0) or 1), 1)
        if bx > 1 or by > 1:
            intr = intr.scaled(intr.width // bx, intr.height // by)
        return intr

    @property
    def matrix(self) -> np.ndarray:
        """``K`` as a 3x3 float64 array."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], np.float64
        )

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The intrinsics of this image resized to ``width x height`` (pixel centres
        aligned: ``c' = (c + 0.5) * s - 0.5``, ``f' = f * s``)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            int(width),
            int(height),
        )

    def for_shape(self, shape: Sequence[int], *, name: str | None = None) -> Intrinsics:
        """These intrinsics for an image of ``shape`` ``(H, W, ...)``: itself when the size
        matches, scaled when only the resolution differs, :class:`CloudError` when the aspect
        ratio differs by more than 1 %."""
        height, width = int(shape[0]), int(shape[1])
        if (width, height) == (self.width, self.height):
            return self
        aspect, ours = width / height, self.width / self.height
        if abs(aspect / ours - 1) > _ASPECT_TOLERANCE:
            raise CloudError(
                f"{_where(name, 'depth image')}: size {width}x{height} does not match the "
                f"camera_info's {self.width}x{self.height} (aspect {aspect:.3f} vs {ours:.3f}): "
                "is the camera_info the colour camera's and the depth aligned to colour?"
            )
        return self.scaled(width, height)

    def rays(self, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``((u - cx) / fx`` per column, ``(v - cy) / fy`` per row) as float32, for every
        ``stride``-th column and row."""
        u = np.arange(0, self.width, stride, dtype=np.float64)
        v = np.arange(0, self.height, stride, dtype=np.float64)
        return (
            ((u - self.cx) / self.fx).astype(np.float32),
            ((v - self.cy) / self.fy).astype(np.float32),
        )


@dataclass
class Cloud:
    """An unorganised point cloud: ``points`` (N, 3) float32 metres, ``class_ids`` (N,)
    uint16 (0 = background), ``colors`` (N, 3) uint8 RGB or None."""

    points: np.ndarray
    class_ids: np.ndarray
    colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float32).reshape(-1, 3)
        n = len(self.points)
        self.class_ids = np.asarray(self.class_ids, dtype=np.uint16).reshape(-1)
        if self.class_ids.size == 1 and n != 1:
            self.class_ids = np.full(n, self.class_ids[0], np.uint16)
        if len(self.class_ids) != n:
            raise CloudError(f"cloud: {len(self.class_ids)} class ids for {n} points")
        if self.colors is not None:
            self.colors = np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)
            if len(self.colors) != n:
                raise CloudError(f"cloud: {len(self.colors)} colours for {n} points")

    def __len__(self) -> int:
        return len(self.points)

    @classmethod
    def empty(cls, colors: bool = False) -> Cloud:
        return cls(
            np.empty((0, 3), np.float32),
            np.empty(0, np.uint16),
            np.empty((0, 3), np.uint8) if colors else None,
        )

    def subset(self, index: np.ndarray) -> Cloud:
        """The points selected by ``index`` (a bool mask or integer indices)."""
        colors = None if self.colors is None else self.colors[index]
        return Cloud(self.points[index], self.class_ids[index], colors)

    def classes(self) -> list[int]:
        """The class ids present, ascending."""
        return [int(c) for c in np.unique(self.class_ids)]

    def by_class(self) -> dict[int, Cloud]:
        """One cloud per class id (one stable sort, no pass per class over all points)."""
        if len(self) == 0:
            return {}
        order = np.argsort(self.class_ids, kind="stable")
        ids = self.class_ids[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        bounds = np.r_[starts, len(ids)]
        return {int(ids[s]): self.subset(order[s:e]) for s, e in itertools.pairwise(bounds)}

    @staticmethod
    def concat(clouds: Iterable[Cloud]) -> Cloud:
        """All points of ``clouds`` in order; colours kept only when every cloud has them."""
        parts = list(clouds)
        if not parts:
            return Cloud.empty()
        with_colors = all(c.colors is not None for c in parts)
        return Cloud(
            np.concatenate([c.points for c in parts]),
            np.concatenate([c.class_ids for c in parts]),
            np.concatenate([c.colors for c in parts]) if with_colors else None,
        )


def _nearest_resize(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize (pixel centres aligned) of an (H, W[, C]) array."""
    h, w = arr.shape[:2]
    oh, ow = shape
    if (h, w) == (oh, ow):
        return arr
    iy = np.minimum(((np.arange(oh) + 0.5) * (h / oh)).astype(np.int64), h - 1)
    ix = np.minimum(((np.arange(ow) + 0.5) * (w / ow)).astype(np.int64), w - 1)
    return arr[iy][:, ix]


def _selection(
    mask: np.ndarray | None,
    valid: np.ndarray,
    classes: Iterable[int] | None,
    include_background: bool,
) -> np.ndarray:
    if mask is None:
        return valid
    if classes is not None:
        wanted = np.asarray(sorted({int(c) for c in classes}), dtype=np.int64)
        if wanted.size and wanted[0] < 0:
            raise CloudError(f"backproject: class ids must be >= 0, got {wanted[0]}")
        lut = np.zeros(max(int(mask.max(initial=0)), int(wanted.max(initial=0))) + 1, bool)
        lut[wanted] = True
        return valid & lut[mask]
    return valid if include_background else valid & (mask > 0)


def _check_shapes(depth: np.ndarray, valid: np.ndarray | None, name: str | None) -> None:
    where = _where(name, "depth image")
    if depth.ndim != 2:
        raise CloudError(f"{where}: expects an HxW depth map in metres, got shape {depth.shape}")
    if depth.dtype.kind != "f":
        raise CloudError(
            f"{where}: expects float depth in metres, got {depth.dtype} "
            "(convert with deal_ros.core.depth.depth_to_metres)"
        )
    if valid is not None and valid.shape != depth.shape:
        raise CloudError(f"{where}: valid shape {valid.shape} != depth shape {depth.shape}")


def backproject(
    depth_m: np.ndarray,
    intrinsics: Intrinsics,
    mask: np.ndarray | None = None,
    *,
    valid: np.ndarray | None = None,
    rgb: np.ndarray | None = None,
    classes: Iterable[int] | None = None,
    include_background: bool = False,
    stride: int = 1,
    name: str | None = None,
) -> Cloud:
    """Back-project the selected pixels of ``depth_m`` (HxW float metres) to a :class:`Cloud`.

    ``valid``: bool HxW (default: finite depth > 0); invalid pixels are never used.
    ``mask``: class ids (any integer HxW; resized to the depth size by nearest neighbour
    when it differs); ``None`` -> every valid pixel, class 0. ``classes``: the ids to keep
    (default: every id > 0, plus 0 with ``include_background``). 255 (ignore) is an id like
    any other: leave it out of ``classes`` to drop it. ``rgb``: (H, W, 3) uint8 colours
    (resized like the mask). ``stride``: use every ``stride``-th row and column (a speed
    knob; the points keep their true pixel coordinates). ``name`` goes into errors.
    """
    depth = np.asarray(depth_m)
    valid_arr = None if valid is None else np.asarray(valid, dtype=bool)
    _check_shapes(depth, valid_arr, name)
    if stride < 1:
        raise CloudError(f"backproject: stride must be >= 1, got {stride}")
    full_shape = depth.shape
    intr = intrinsics.for_shape(full_shape, name=name)
    if valid_arr is None:
        with np.errstate(invalid="ignore"):
            valid_arr = np.isfinite(depth) & (depth > 0)
    mask_arr = None
    if mask is not None:
        mask_arr = np.asarray(mask)
        if mask_arr.ndim != 2 or mask_arr.dtype.kind not in "ui":
            raise CloudError(
                f"backproject: mask must be an HxW integer class-id image, got shape "
                f"{mask_arr.shape} dtype {mask_arr.dtype}"
            )
        mask_arr = _nearest_resize(mask_arr, full_shape)[::stride, ::stride]
        if mask_arr.dtype.kind == "i" and mask_arr.size and mask_arr.min() < 0:
            raise CloudError("backproject: mask holds negative class ids")
    if stride > 1:
        depth, valid_arr = depth[::stride, ::stride], valid_arr[::stride, ::stride]
    rows, cols = np.nonzero(_selection(mask_arr, valid_arr, classes, include_background))
    z = depth[rows, cols].astype(np.float32, copy=False)
    xr, yr = intr.rays(stride)
    points = np.empty((len(z), 3), np.float32)
    np.multiply(xr[cols], z, out=points[:, 0])
    np.multiply(yr[rows], z, out=points[:, 1])
    points[:, 2] = z
    class_ids = (
        np.zeros(len(z), np.uint16) if mask_arr is None else mask_arr[rows, cols].astype(np.uint16)
    )
    colors = None
    if rgb is not None:
        image = np.asarray(rgb)
        if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
            raise CloudError(
                f"backproject: rgb must be an HxWx3 uint8 image, got shape {image.shape} "
                f"dtype {image.dtype}"
            )
        image = _nearest_resize(image, full_shape)[::stride, ::stride]
        colors = image[rows, cols, :3]
    return Cloud(points, class_ids, colors)
