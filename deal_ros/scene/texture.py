"""Procedural textures for the synthetic RGB-D scenes (numpy only, deterministic from a Generator).

Textures are functions of surface coordinates in metres (u, v), so a pattern stays glued to its
surface when the camera or the object moves. A ``Texture`` layers: a base colour, optional
stripes, optional noise blobs of a second colour, and multi-scale luminance grain.
``PaintedShape`` is a flat 2-D figure (disc, rectangle, mug or can silhouette) painted on a
surface, optionally with fake shading so that it looks 3-D in colour while being flat in depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray


def random_colour(rng: np.random.Generator) -> Array:
    """A random albedo in [0.08, 0.95]^3 from HSV (any hue, mixed saturation and value)."""
    h = rng.random()
    s = rng.uniform(0.15, 0.9)
    v = rng.uniform(0.3, 0.95)
    return hsv_to_rgb(h, s, v)


def hsv_to_rgb(h: float, s: float, v: float) -> Array:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.clip(np.array(rgb, dtype=np.float32), 0.08, 0.95)


class ValueNoise:
    """Smooth periodic value noise in [0, 1]: a random ``size`` x ``size`` grid, upsampled once
    ``upsample`` times with smoothstep-bilinear interpolation into a lookup table; evaluation
    is a nearest lookup in that table (period ``size`` in input units)."""

    def __init__(self, rng: np.random.Generator, size: int = 32, upsample: int = 8) -> None:
        grid = rng.random((size, size), dtype=np.float32)
        f = np.arange(upsample, dtype=np.float32) / upsample
        f = f * f * (3 - 2 * f)
        nxt = np.roll(grid, -1, axis=1)
        rows = grid[:, :, None] * (1 - f) + nxt[:, :, None] * f  # (size, size, up)
        rows = rows.reshape(size, size * upsample)
        nxt = np.roll(rows, -1, axis=0)
        table = rows[:, None, :] * (1 - f)[None, :, None] + nxt[:, None, :] * f[None, :, None]
        self.table = np.ascontiguousarray(table.reshape(size * upsample, size * upsample))
        self.scale = float(upsample)
        self.mask = size * upsample - 1  # size * upsample is a power of two
        if (size * upsample) & self.mask:
            raise ValueError("ValueNoise: size * upsample must be a power of two")

    def __call__(self, u: Array, v: Array) -> Array:
        """Nearest lookup (fast; blocky when one table cell spans several pixels)."""
        i = (u * self.scale).astype(np.int64) & self.mask
        j = (v * self.scale).astype(np.int64) & self.mask
        return self.table[j, i]

    def smooth(self, u: Array, v: Array) -> Array:
        """Bilinear lookup: for thresholded patterns whose outlines must not show the table."""
        x, y = u * self.scale, v * self.scale
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
        i0, j0 = x0.astype(np.int64) & self.mask, y0.astype(np.int64) & self.mask
        i1, j1 = (i0 + 1) & self.mask, (j0 + 1) & self.mask
        t = self.table
        top = t[j0, i0] + (t[j0, i1] - t[j0, i0]) * fx
        bottom = t[j1, i0] + (t[j1, i1] - t[j1, i0]) * fx
        return top + (bottom - top) * fy


@dataclass
class Texture:
    """Base colour + stripes + blobs + grain, evaluated at surface coordinates in metres."""

    base: Array
    stripe_colour: Array | None = None
    stripe_period: float = 0.1
    stripe_angle: float = 0.0
    stripe_duty: float = 0.5
    blob_colour: Array | None = None
    blob_scale: float = 0.15  # metres per noise cell
    blob_threshold: float = 0.6
    grain: float = 0.1  # luminance modulation amplitude
    grain_scale: float = 0.02
    noise: ValueNoise = field(default=None)  # type: ignore[assignment]

    def __call__(self, u: Array, v: Array) -> Array:
        out = np.empty((*u.shape, 3), dtype=np.float32)
        out[:] = self.base
        if self.stripe_colour is not None:
            c, s = np.cos(self.stripe_angle), np.sin(self.stripe_angle)
            phase = np.mod((u * c + v * s) / self.stripe_period, 1.0)
            out[phase < self.stripe_duty] = self.stripe_colour
        if self.blob_colour is not None:
            blobs = self.noise.smooth(u / self.blob_scale + 7.3, v / self.blob_scale + 1.9)
            out[blobs > self.blob_threshold] = self.blob_colour
        if self.grain > 0:
            g = 0.6 * self.noise(u / self.grain_scale, v / self.grain_scale)
            g += 0.4 * self.noise(u / (self.grain_scale * 4) + 3.1, v / (self.grain_scale * 4))
            out *= (1.0 + self.grain * (g - 0.5) * 2.0)[..., None]
        return out


def random_texture(
    rng: np.random.Generator, palette: list[Array], busy: float, base: Array | None = None
) -> Texture:
    """A texture drawing its colours from ``palette``; ``busy`` in [0, 1] raises the clutter."""
    pick = lambda: palette[int(rng.integers(len(palette)))]  # noqa: E731
    tex = Texture(base=pick() if base is None else base, noise=ValueNoise(rng))
    if rng.random() < 0.3 + 0.6 * busy:
        tex.stripe_colour = pick()
        tex.stripe_period = float(rng.uniform(0.015, 0.25))
        tex.stripe_angle = float(rng.uniform(0, np.pi))
        tex.stripe_duty = float(rng.uniform(0.2, 0.6))
    if rng.random() < 0.3 + 0.6 * busy:
        tex.blob_colour = pick()
        tex.blob_scale = float(rng.uniform(0.03, 0.3))
        tex.blob_threshold = float(rng.uniform(0.55, 0.75))
    tex.grain = float(rng.uniform(0.03, 0.1 + 0.25 * busy))
    tex.grain_scale = float(rng.uniform(0.004, 0.05))
    return tex


SHAPE_KINDS: tuple[str, ...] = ("disc", "rect", "mug", "can")


@dataclass
class PaintedShape:
    """A flat figure centred at (u0, v0) (metres on its surface), of half size (a, b)."""

    kind: str
    u0: float
    v0: float
    a: float
    b: float
    angle: float
    colour: Array
    fake_shading: bool = False

    def paint(self, u: Array, v: Array, out: Array) -> None:
        """Overwrite ``out`` (N, 3) where the figure covers (u, v)."""
        reach = 2.2 * max(self.a, self.b)
        near = np.nonzero((np.abs(u - self.u0) < reach) & (np.abs(v - self.v0) < reach))[0]
        if near.size == 0:
            return
        c, s = np.cos(self.angle), np.sin(self.angle)
        du, dv = u[near] - self.u0, v[near] - self.v0
        inside, radial = self._inside(du * c + dv * s, -du * s + dv * c)
        rows = near[inside]
        colour = np.broadcast_to(self.colour, (rows.size, 3)).astype(np.float32)
        if self.fake_shading:  # a painted "highlight" that mimics a lit 3-D body
            colour = colour * (1.15 - 0.6 * np.clip(radial[inside], 0, 1) ** 2)[:, None]
        out[rows] = colour

    def _inside(self, x: Array, y: Array) -> tuple[Array, Array]:
        a, b = self.a, self.b
        if self.kind == "disc":
            r = np.sqrt((x / a) ** 2 + (y / a) ** 2)
            return r <= 1.0, np.sqrt(((x + 0.4 * a) / a) ** 2 + ((y - 0.4 * a) / a) ** 2)
        radial = np.abs(x) / a
        body = (np.abs(x) <= a) & (np.abs(y) <= b)
        if self.kind == "rect":
            return body, radial
        if self.kind == "can":
            top = ((x / a) ** 2 + ((y - b) / (0.3 * a)) ** 2) <= 1.0
            return body | top, radial
        ring = np.hypot(x - a, y) / (0.55 * b)  # mug: body + a handle ring on the right
        return body | ((ring <= 1.0) & (ring >= 0.6) & (x > a)), radial


def random_painted_shape(
    rng: np.random.Generator,
    colours: list[Array],
    u_range: tuple[float, float],
    v_range: tuple[float, float],
    size: tuple[float, float] = (0.03, 0.1),
) -> PaintedShape:
    """A painted figure at a random place of the (u, v) window, colour from ``colours``."""
    a = float(rng.uniform(*size))
    return PaintedShape(
        kind=SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))],
        u0=float(rng.uniform(*u_range)),
        v0=float(rng.uniform(*v_range)),
        a=a,
        b=a * float(rng.uniform(0.7, 1.8)),
        angle=float(rng.normal(0, 0.25)),
        colour=colours[int(rng.integers(len(colours)))] * np.float32(rng.uniform(0.85, 1.1)),
        fake_shading=bool(rng.random() < 0.6),
    )
