"""A second, differently made colour-overlap scene: objects lying on a textured floor seen from
above, painted with the floor's own texture (numpy only, deterministic from a seed).

    gen = FlatSceneGenerator(size=(240, 320), seed=0)
    scene = gen.sample(5)          # a deal_ros.scene.generator.Scene

Unlike :class:`~deal_ros.scene.generator.SceneGenerator` (ray-cast 3-D rooms) this is 2.5-D
in image space: the floor is a tilted plane (inverse depth linear in the pixel coordinates),
each object a height field on it, drawn with a z-buffer: "ball" a dome, "box" a tilted
plateau, "can" a flat-topped disc with a rounded rim. Colour: one multi-scale value-noise
texture with colour blobs for the floor; every object wears the same texture (shifted, its
brightness scaled by ``tint``), so only shading (Lambert on the depth normals), a soft contact
shadow around the base and the texture's discontinuity at the outline tell it apart in RGB.
Depth sensor (a RealSense-like model of our own): range noise sigma = ``noise`` x z^2,
IR-shadow holes beside the left edge of each depth step (as wide as the disparity jump),
random blob holes and salt, mm quantisation. Sizes: object diameters ``diameter`` px.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deal_ros.scene.generator import Scene

__all__ = ["FlatSceneGenerator"]

KINDS = ("ball", "box", "can")


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid every ``cell`` px, bilinearly interpolated."""
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.random((gh, gw))
    ys, xs = np.arange(h) / cell, np.arange(w) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a, b = grid[y0][:, x0], grid[y0][:, x0 + 1]
    c, d = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) albedo: base colour, blobs of a second colour, multi-scale luminance grain."""
    base = rng.uniform(0.25, 0.85, 3)
    second = np.clip(base + rng.normal(0, 0.15, 3), 0.05, 0.95)
    blobs = _value_noise(rng, h, w, rng.uniform(20, 60)) > rng.uniform(0.55, 0.7)
    out = np.where(blobs[..., None], second, base)
    grain = 0.6 * _value_noise(rng, h, w, 3.0) + 0.4 * _value_noise(rng, h, w, 12.0)
    return out * (1 + rng.uniform(0.05, 0.2) * (grain - 0.5) * 2)[..., None]


class FlatSceneGenerator:
    """Deterministic colour-overlap scenes (see the module docstring)."""

    def __init__(
        self,
        classes: Sequence[str] = KINDS,
        size: tuple[int, int] = (240, 320),
        seed: int = 0,
        min_objects: int = 2,
        max_objects: int = 5,
        diameter: tuple[float, float] = (12.0, 55.0),
        tint: tuple[float, float] = (0.88, 1.12),
        noise: float = 0.003,
        min_visible_px: int = 30,
    ) -> None:
        bad = [c for c in classes if c not in KINDS]
        if bad or not classes:
            raise ValueError(f"FlatSceneGenerator: classes must be among {', '.join(KINDS)}")
        self.classes, self.size, self.seed = tuple(classes), (int(size[0]), int(size[1])), seed
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.diameter, self.tint, self.noise = diameter, tint, float(noise)
        self.min_visible_px = int(min_visible_px)

    def sample(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, 7_919, int(index)])
        h, w = self.size
        f = 0.9 * w
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        z_near, z_far = rng.uniform(0.6, 0.9), rng.uniform(1.3, 2.2)
        inv = 1 / z_far + (1 / z_near - 1 / z_far) * (yy / (h - 1))  # tilted floor
        inv = inv * (1 + rng.uniform(-0.08, 0.08) * (xx / (w - 1) - 0.5))
        z_bg = 1 / inv
        z = z_bg.copy()
        inst = np.full((h, w), -1, np.int32)
        tex = _texture(rng, h, w)
        albedo = tex.copy()
        n = int(rng.integers(self.min_objects, self.max_objects + 1))
        cls = [int(rng.integers(1, len(self.classes) + 1)) for _ in range(n)]
        for i, c in enumerate(cls):
            self._draw(rng, i, self.classes[c - 1], z, z_bg, inst, albedo, tex, f, yy, xx)
        rgb = self._shade(rng, z, inst, albedo, f)
        depth = self._sense(rng, z, f)
        return self._labelled(rgb, depth, z, z_bg, inst, cls, f, int(index))

    def _draw(self, rng, i, kind, z, z_bg, inst, albedo, tex, f, yy, xx) -> None:
        h, w = z.shape
        r = rng.uniform(*self.diameter) / 2
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        zb = z_bg[int(cy), int(cx)]
        size_m = 2 * r * zb / f  # metric diameter at that distance
        ex = rng.uniform(0.7, 1.3) if kind != "ball" else 1.0
        ang = rng.uniform(0, np.pi)
        du, dv = xx - cx, yy - cy
        u = (du * np.cos(ang) + dv * np.sin(ang)) / (r * ex)
        v = (-du * np.sin(ang) + dv * np.cos(ang)) / (r / ex)
        if kind == "box":
            inside = (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
            slope = rng.uniform(-0.25, 0.25, 2)
            height = size_m * (0.5 + 0.1 * (u * slope[0] + v * slope[1]))
        else:
            rr = np.hypot(u, v)
            inside = rr <= 1.0
            dome = np.sqrt(np.clip(1 - rr * rr, 0, 1))
            rim = np.clip((1 - rr) / 0.25, 0, 1) ** 0.5
            height = size_m * (0.5 * dome if kind == "ball" else 0.45 * rim)
        zo = zb - height
        closer = inside & (zo < z)
        z[closer], inst[closer] = zo[closer], i
        shift = (int(rng.integers(-h // 2, h // 2)), int(rng.integers(-w // 2, w // 2)))
        own = np.roll(tex, shift, axis=(0, 1)) * rng.uniform(*self.tint)
        albedo[closer] = own[closer]

    def _shade(self, rng, z, inst, albedo, f) -> np.ndarray:
        gy, gx = np.gradient(z)
        normal = np.stack([-gx * f / z, -gy * f / z, -np.ones_like(z)], -1)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        el, az = rng.uniform(0.7, 1.3), rng.uniform(0, 2 * np.pi)
        light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), -np.sin(el)])
        lambert = np.clip(normal @ light, 0, None)
        ambient = rng.uniform(0.35, 0.55)
        shade = ambient + (1 - ambient) * lambert / max(lambert[inst < 0].mean(), 1e-3) * 0.8
        fg = (inst >= 0).astype(np.float64)
        near = _blur(fg, 3)
        shade = shade * np.where(inst < 0, 1 - 0.35 * near, 1.0)  # soft contact shadow
        rgb = albedo * shade[..., None] + rng.normal(0, 0.012, albedo.shape)
        return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)

    def _sense(self, rng, z, f) -> np.ndarray:
        h, w = z.shape
        d = z + rng.normal(0, 1, z.shape) * self.noise * z * z
        baseline = 0.05
        disparity = f * baseline / z
        jump = disparity[:, 1:] - disparity[:, :-1]  # > 0: the right pixel is nearer
        holes = np.zeros((h, w), bool)
        for y, x in zip(*np.nonzero(jump > 0.5)):
            holes[y, max(x + 1 - int(np.rint(jump[y, x])), 0) : x + 1] = True
        holes |= _value_noise(rng, h, w, 10.0) > 0.93
        holes |= rng.random((h, w)) < 0.004
        d[holes] = 0
        return (np.rint(d * 1000) / 1000).astype(np.float32)

    def _labelled(self, rgb, depth, z, z_bg, inst, cls, f, index) -> Scene:
        h, w = z.shape
        mask = np.zeros((h, w), np.uint8)
        masks, classes, boxes = [], [], []
        for i, c in enumerate(cls):
            m = inst == i
            if m.sum() < self.min_visible_px:
                mask[m] = 255 if m.any() else 0
                continue
            ys, xs = np.nonzero(m)
            mask[m] = c
            masks.append(m)
            classes.append(c)
            boxes.append((c, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
        labels = np.zeros(len(self.classes), np.uint8)
        for c in classes:
            labels[c - 1] = 1
        K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
        return Scene(
            rgb=rgb,
            depth=depth,
            mask=mask,
            labels=labels,
            boxes=boxes,
            instance_masks=np.stack(masks) if masks else np.zeros((0, h, w), bool),
            instance_classes=np.asarray(classes, np.int64),
            depth_gt=z.astype(np.float32),
            background_depth=z_bg.astype(np.float32),
            K=K,
            classes=self.classes,
            index=index,
        )


def _blur(a: np.ndarray, radius: int) -> np.ndarray:
    """A box blur of ``radius`` px, repeated twice (about Gaussian)."""
    out = a
    for _ in range(2):
        pad = np.pad(out, radius, mode="edge")
        c = pad.cumsum(0).cumsum(1)
        c = np.pad(c, ((1, 0), (1, 0)))
        k = 2 * radius + 1
        out = (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)
    return out
