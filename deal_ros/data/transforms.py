"""Paired RGB-D(-mask) augmentations in numpy that keep every map aligned.

A sample is an ``RGBD``: rgb (H, W, 3) uint8, depth (H, W) float32 metres, valid (H, W) bool,
optional mask (H, W) uint8 (255 = ignore) and optional intrinsics K (3, 3), updated by the
geometric transforms. Invariant kept by every transform: ``depth == 0`` wherever ``~valid``.
Geometric resampling of depth, valid and mask is nearest-neighbour, so an invalid pixel is
never blended into a valid value; RGB is resampled bilinearly on the same pixel grid (pixel
centres map as x_src = (x_dst + 0.5) / s - 0.5 for both).

Each transform is a small class holding its own seeded ``np.random.Generator``; ``Compose``
chains them and ``Compose.reseed(seed)`` gives every member an independent stream (one per
data-loader worker, say).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from deal_ros.data.depth_noise import DepthNoise

Array = np.ndarray
IGNORE = 255


@dataclass
class RGBD:
    """An aligned RGB-D sample (see the module docstring)."""

    rgb: Array
    depth: Array
    valid: Array
    mask: Array | None = None
    K: Array | None = None

    @classmethod
    def from_arrays(
        cls,
        rgb: Array,
        depth: Array,
        mask: Array | None = None,
        valid: Array | None = None,
        K: Array | None = None,
    ) -> RGBD:
        """Check shapes, derive ``valid`` (finite and > 0) when absent, zero invalid depth."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"RGBD: rgb must be (H, W, 3), got {rgb.shape}")
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"RGBD: depth {depth.shape} does not match rgb {rgb.shape[:2]}")
        if mask is not None and mask.shape != depth.shape:
            raise ValueError(f"RGBD: mask {mask.shape} does not match depth {depth.shape}")
        depth = depth.astype(np.float32)
        ok = np.isfinite(depth) & (depth > 0)
        valid = ok if valid is None else (valid.astype(bool) & ok)
        return cls(
            rgb=rgb.astype(np.uint8),
            depth=np.where(valid, depth, 0).astype(np.float32),
            valid=valid,
            mask=None if mask is None else mask.astype(np.uint8),
            K=None if K is None else np.asarray(K, np.float64).copy(),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.depth.shape[0], self.depth.shape[1]

    def take(self, rows: Array, cols: Array, rgb: Array | None = None) -> RGBD:
        """Nearest gather of depth / valid / mask at ``rows`` x ``cols`` (rgb given or gathered)."""
        ix = np.ix_(rows, cols)
        return replace(
            self,
            rgb=self.rgb[ix] if rgb is None else rgb,
            depth=self.depth[ix],
            valid=self.valid[ix],
            mask=None if self.mask is None else self.mask[ix],
        )


class Transform:
    """Base class: a seeded generator and ``__call__(sample) -> new sample``."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, s: RGBD) -> RGBD:
        raise NotImplementedError


class Compose(Transform):
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform], seed: int | None = None) -> None:
        super().__init__(seed)
        self.transforms = list(transforms)
        if seed is not None:
            self.reseed(seed)

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        for t, child in zip(self.transforms, seq.spawn(len(self.transforms))):
            t.reseed(child)

    def __call__(self, s: RGBD) -> RGBD:
        for t in self.transforms:
            s = t(s)
        return s


class HorizontalFlip(Transform):
    """Mirror left-right with probability ``p``. K becomes that of the mirrored scene
    (cx -> W - 1 - cx, fx kept positive), so back-projection gives the mirrored point cloud."""

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(seed)
        self.p = p

    def __call__(self, s: RGBD) -> RGBD:
        if self.rng.random() >= self.p:
            return s
        return flip(s)


def flip(s: RGBD) -> RGBD:
    """The left-right mirror image of a sample."""
    w = s.shape[1]
    out = s.take(np.arange(s.shape[0]), np.arange(w)[::-1])
    if s.K is not None:
        out.K = s.K.copy()
        out.K[0, 2] = w - 1 - s.K[0, 2]
        out.K[0, 1] = -s.K[0, 1]
    return out


class RandomScale(Transform):
    """Resize by a factor drawn log-uniformly from the range ``scale`` (our choice)."""

    def __init__(self, scale: tuple[float, float] = (0.75, 1.25), seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"RandomScale: need 0 < low <= high, got {scale}")
        self.scale = scale

    def __call__(self, s: RGBD) -> RGBD:
        lo, hi = np.log(self.scale[0]), np.log(self.scale[1])
        return resize(s, float(np.exp(self.rng.uniform(lo, hi))))


def resize(s: RGBD, factor: float) -> RGBD:
    """Scale a sample: bilinear RGB, nearest depth / valid / mask, K scaled."""
    h, w = s.shape
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    ys = (np.arange(nh) + 0.5) * (h / nh) - 0.5
    xs = (np.arange(nw) + 0.5) * (w / nw) - 0.5
    rows = np.clip(np.floor(ys + 0.5), 0, h - 1).astype(np.int64)
    cols = np.clip(np.floor(xs + 0.5), 0, w - 1).astype(np.int64)
    out = s.take(rows, cols, rgb=_bilinear(s.rgb, ys, xs))
    if s.K is not None:
        out.K = s.K.copy()
        out.K[0] *= nw / w
        out.K[1] *= nh / h
        out.K[0, 2] = (s.K[0, 2] + 0.5) * nw / w - 0.5
        out.K[1, 2] = (s.K[1, 2] + 0.5) * nh / h - 0.5
    return out


def _bilinear(img: Array, ys: Array, xs: Array) -> Array:
    h, w = img.shape[:2]
    ys, xs = np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    f = img.astype(np.float32)
    top = f[y0][:, x0] * (1 - fx) + f[y0][:, x1] * fx
    bottom = f[y1][:, x0] * (1 - fx) + f[y1][:, x1] * fx
    return np.clip(np.round(top * (1 - fy) + bottom * fy), 0, 255).astype(np.uint8)


class RandomCrop(Transform):
    """Crop ``size`` = (h, w) at a random place; smaller samples are padded first (rgb
    ``fill``, depth 0 / invalid, mask 255 = ignore), at a random offset."""

    def __init__(
        self,
        size: tuple[int, int],
        fill: tuple[int, int, int] = (0, 0, 0),
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.size = (int(size[0]), int(size[1]))
        self.fill = fill

    def __call__(self, s: RGBD) -> RGBD:
        ch, cw = self.size
        h, w = s.shape
        y0 = (
            int(self.rng.integers(0, h - ch + 1))
            if h >= ch
            else -int(self.rng.integers(0, ch - h + 1))
        )
        x0 = (
            int(self.rng.integers(0, w - cw + 1))
            if w >= cw
            else -int(self.rng.integers(0, cw - w + 1))
        )
        return crop(s, y0, x0, ch, cw, self.fill)


def crop(
    s: RGBD, y0: int, x0: int, ch: int, cw: int, fill: tuple[int, int, int] = (0, 0, 0)
) -> RGBD:
    """The window [y0, y0 + ch) x [x0, x0 + cw) of a sample; outside pixels are padding."""
    h, w = s.shape
    rows, cols = np.arange(y0, y0 + ch), np.arange(x0, x0 + cw)
    rin = (rows >= 0) & (rows < h)
    cin = (cols >= 0) & (cols < w)
    inside = rin[:, None] & cin[None, :]
    out = s.take(np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1))
    out.rgb = np.where(inside[..., None], out.rgb, np.asarray(fill, np.uint8))
    out.valid = out.valid & inside
    out.depth = np.where(inside, out.depth, 0).astype(np.float32)
    if out.mask is not None:
        out.mask = np.where(inside, out.mask, IGNORE).astype(np.uint8)
    if s.K is not None:
        out.K = s.K.copy()
        out.K[0, 2] -= x0
        out.K[1, 2] -= y0
    return out


class ColorJitter(Transform):
    """RGB only: brightness, contrast, saturation factors in [1 - a, 1 + a] and a hue rotation
    of up to ``hue`` x 180 degrees (YIQ), applied in that order."""

    def __init__(
        self,
        brightness: float = 0.3,
        contrast: float = 0.3,
        saturation: float = 0.3,
        hue: float = 0.05,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.brightness, self.contrast, self.saturation, self.hue = (
            brightness,
            contrast,
            saturation,
            hue,
        )

    def __call__(self, s: RGBD) -> RGBD:
        x = s.rgb.astype(np.float32)
        u = lambda a: 1 + self.rng.uniform(-a, a)  # noqa: E731
        x *= u(self.brightness)
        luma = np.array([0.299, 0.587, 0.114], np.float32)
        gray = np.einsum("ijk,k->ij", x, luma)
        x = gray.mean() + (x - gray.mean()) * u(self.contrast)
        gray = np.einsum("ijk,k->ij", x, luma)
        x = gray[..., None] + (x - gray[..., None]) * u(self.saturation)
        if self.hue > 0:
            hue = _hue_matrix(self.rng.uniform(-self.hue, self.hue) * np.pi)
            x = np.einsum("ijk,lk->ijl", x, hue)
        return replace(s, rgb=np.clip(np.round(x), 0, 255).astype(np.uint8))


def _hue_matrix(theta: float) -> Array:
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return (np.linalg.inv(to_yiq) @ rot @ to_yiq).astype(np.float32)


class RandomDepthNoise(Transform):
    """Depth only: the sensor noise model of :mod:`deal_ros.data.depth_noise` (Gaussian noise
    growing with z^2, holes, pixel dropout, optional flying pixels) drawn from this transform's
    generator. RGB, mask and K are untouched; pixels it invalidates get depth 0."""

    def __init__(self, noise: DepthNoise | None = None, seed: int | None = None) -> None:
        super().__init__(seed)
        self.noise = noise or DepthNoise()

    def __call__(self, s: RGBD) -> RGBD:
        depth, valid = self.noise.apply(s.depth, s.valid, self.rng)
        return replace(s, depth=depth.astype(np.float32), valid=valid)
