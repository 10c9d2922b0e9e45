"""A second, independently written hard RGB-D generator: 2.5-D extruded shapes on a slanted slab.

Written apart from ``deal_ros.scene`` on purpose (no code shared but the VOC writer), so a
recipe chosen on one generator can be confirmed on data it was not tuned on.

* Camera: pinhole, focal U(230, 300) px at 320 px width, principal point at the centre.
* Support: a plane (the "slab") seen from 0.4-0.75 m above, pitched 0.45-1.0 rad and rolled up to
  +-0.35 rad (a slanted table), ending in a back plane 0.4-1.2 m behind the objects.
* Objects (4 classes): ``puck`` (disc), ``brick`` (rectangle), ``prism`` (triangle) and
  ``cross`` (plus sign) footprints, extruded upright in image space: the silhouette is the
  footprint swept up by the object's projected height; depth in a column is the slab depth
  at the object's base minus a per-shape bulge (round for pucks, flat for bricks). 1-3
  objects per image, each class drawn independently.
* Colour: the slab and the back plane wear two-scale Voronoi patches and stripes from a
  5-colour palette; objects take a palette colour with probability 0.75 (colour overlaps the
  background), their own grain, Lambert shading from depth normals with a random light;
  FLAT painted copies of the shapes (no depth) lie on the slab as distractors.
* Depth sensor (its own model): sigma = 0.0025 z^2 noise plus a smooth bias, IR-projector
  shadow to the RIGHT of each object (width f b (1/z_obj - 1/z_bg), b = 0.1 m; the other
  generator shadows the left), 3 % i.i.d. holes plus dark-patch holes, flying pixels on 30 %
  of the silhouette, millimetre quantisation, 0 = invalid.

    python bench/slab_scenes.py OUT [--train 160] [--val 60] [--seed 0] [--size 240x320]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CLASSES = ("puck", "brick", "prism", "cross")
Array = np.ndarray


def _footprint(kind: str, h: int, w: int, rng: np.random.Generator) -> Array:
    """A (h, w) bool footprint of ``kind`` (roughly filling the box, random aspect/turn)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    a = rng.uniform(-0.6, 0.6)
    u = ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / (w / 2)
    v = (-(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)) / (h / 2)
    if kind == "puck":
        return u * u + v * v <= 1.0
    if kind == "brick":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.65)
    if kind == "prism":
        return (v <= 0.7) & (v >= -0.9 + 1.6 * np.abs(u))
    arm = 0.33
    return ((np.abs(u) <= arm) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= arm) & (np.abs(u) <= 0.95))


def _voronoi(h: int, w: int, rng: np.random.Generator, palette: Array, cells: int) -> Array:
    pts = rng.uniform(0, 1, (cells, 2)) * (h, w)
    yy, xx = np.mgrid[0:h:2, 0:w:2]
    d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
    idx = np.argmin(d, -1)
    col = palette[rng.integers(0, len(palette), cells)][idx]
    return np.repeat(np.repeat(col, 2, 0), 2, 1)[:h, :w]


def _smooth(rng: np.random.Generator, h: int, w: int, cell: int) -> Array:
    g = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    ys = np.linspace(0, g.shape[0] - 1.001, h)
    xs = np.linspace(0, g.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    b = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return a * (1 - fy) + b * fy


class SlabScenes:
    """Deterministic (seed, index) -> (rgb uint8, depth metres float32, mask uint8)."""

    def __init__(self, seed: int = 0, size: tuple[int, int] = (240, 320), scale: float = 1.0):
        self.seed, self.size, self.scale = int(seed), size, float(scale)
        self.classes = CLASSES

    # -------------------------------------------------------------- geometry
    def _slab(self, rng):
        h, w = self.size
        f = rng.uniform(230, 300) * w / 320 * self.scale
        pitch, roll = rng.uniform(0.45, 1.0), rng.uniform(-0.35, 0.35)
        height = rng.uniform(0.4, 0.75)
        n = np.array([0.0, -np.cos(pitch), -np.sin(pitch)])  # world up in the camera frame
        cr, sr = np.cos(roll), np.sin(roll)
        n = np.array([n[0] * cr - n[1] * sr, n[0] * sr + n[1] * cr, n[2]])
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        rays = np.stack([(xx - w / 2) / f, (yy - h / 2) / f, np.ones_like(xx)], -1)
        denom = -(rays @ n)  # plane: n . X = -height (camera above the slab)
        with np.errstate(divide="ignore"):
            z_plane = np.where(denom > 1e-3, height / np.maximum(denom, 1e-9), np.inf)
        return f, z_plane, rays, n

    def sample(self, index: int):
        rng = np.random.default_rng([self.seed, 77, int(index)])
        h, w = self.size
        f, z_plane, rays, _ = self._slab(rng)
        z_back = float(np.quantile(z_plane[np.isfinite(z_plane)], 0.5)) + rng.uniform(0.4, 1.2)
        back = z_plane > z_back
        z = np.where(back, z_back, z_plane)
        palette = rng.uniform(0.1, 0.9, (5, 3))
        albedo = np.where(back[..., None], _voronoi(h, w, rng, palette, 12),
                          _voronoi(h, w, rng, palette, 40))  # fmt: skip
        if rng.random() < 0.5:  # stripes across the slab
            stripe = np.sin((np.arange(w) * np.cos(0.5) + np.arange(h)[:, None]) / 6) > 0.3
            albedo = np.where((stripe & ~back)[..., None], palette[rng.integers(5)], albedo)
        mask = np.zeros((h, w), np.uint8)
        obj_z = np.full((h, w), np.inf)
        inst = np.full((h, w), -1, np.int16)
        n_obj = int(rng.integers(1, 4))
        for k in range(n_obj + int(rng.integers(1, 4))):  # the extra ones are painted decoys
            painted = k >= n_obj
            cls = int(rng.integers(0, len(CLASSES)))
            v0 = int(rng.uniform(0.45, 0.92) * h)
            u0 = int(rng.uniform(0.1, 0.9) * w)
            if not np.isfinite(z_plane[v0, u0]) or back[v0, u0]:
                continue
            zb = z_plane[v0, u0]
            size_m = rng.uniform(0.09, 0.16)
            fw = max(8, int(f * size_m / zb * rng.uniform(0.8, 1.2)))
            fh = max(5, int(fw * rng.uniform(0.45, 0.75)))  # foreshortened on the slab
            hpx = 0 if painted else int(f * rng.uniform(0.04, 0.1) / zb)
            fp = _footprint(CLASSES[cls], fh, fw, rng)
            sil = np.zeros((fh + hpx, fw), bool)
            for t in range(hpx + 1):
                sil[t : t + fh] |= fp
            top, left = v0 - fh // 2 - hpx, u0 - fw // 2
            ys, xs = np.nonzero(sil)
            ys, xs = ys + top, xs + left
            ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
            ys, xs = ys[ok], xs[ok]
            if ys.size < 40:
                continue
            colour = palette[rng.integers(5)] if rng.random() < 0.75 else rng.uniform(0.1, 0.9, 3)
            grain = 1 + 0.12 * (rng.random(ys.size) - 0.5)
            if painted:
                albedo[ys, xs] = colour * grain[:, None]
                continue
            # depth: each column stands at the depth of its lowest pixel, minus a bulge
            col_base = {}
            for y, x in zip(ys, xs):
                col_base[x] = max(col_base.get(x, y), y)
            base_row = np.array([col_base[x] for x in xs])
            zcol = z_plane[np.clip(base_row, 0, h - 1), xs]
            rel = (xs - u0) / (fw / 2)
            bulge = {
                "puck": np.sqrt(np.clip(1 - rel**2, 0, 1)),
                "brick": np.ones_like(rel),
                "prism": 1 - 0.5 * np.abs(rel),
                "cross": np.ones_like(rel),
            }[CLASSES[cls]]
            zo = zcol - 0.5 * size_m * bulge
            nearer = zo < obj_z[ys, xs]
            ys, xs, zo, grain = ys[nearer], xs[nearer], zo[nearer], grain[nearer]
            obj_z[ys, xs] = zo
            mask[ys, xs] = cls + 1
            inst[ys, xs] = k
            albedo[ys, xs] = colour * grain[:, None]
        z_true = np.where(np.isfinite(obj_z), obj_z, z)
        rgb = self._shade(rng, z_true, rays, albedo, mask)
        depth = self._sensor(rng, z_true, f, inst)
        return rgb, depth.astype(np.float32), mask

    # -------------------------------------------------------------- appearance
    def _shade(self, rng, z, rays, albedo, mask):
        p = rays * z[..., None]
        gy, gx = np.gradient(p, axis=0), np.gradient(p, axis=1)
        nrm = np.cross(gx, gy)
        nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True) + 1e-9
        light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-1.0, -0.3), -rng.uniform(0.4, 1)])
        light /= np.linalg.norm(light)
        lam = np.clip(-(nrm @ light), 0, 1)
        amb = rng.uniform(0.35, 0.6)
        shade = amb + (1 - amb) * lam
        img = albedo * shade[..., None] * (0.85 + 0.3 * _smooth(rng, *z.shape, 60))[..., None]
        img = img * 255 + rng.normal(0, 4.0, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _sensor(self, rng, z, f, inst):
        h, w = z.shape
        noisy = z + 0.0025 * z * z * rng.standard_normal((h, w))
        noisy += 0.003 * z * z * (_smooth(rng, h, w, 50) - 0.5)
        hole = rng.random((h, w)) < 0.03
        hole |= _smooth(rng, h, w, 10) > 0.93
        # IR projector on the right: background just right of a nearer surface is unlit
        disp = f * 0.1 / np.maximum(z, 1e-3)
        for s in range(1, 30):
            hole[:, s:] |= (disp[:, :-s] - disp[:, s:]) > s
        fg = inst >= 0
        edge = np.zeros_like(fg)
        edge[:, 1:] |= fg[:, 1:] != fg[:, :-1]
        edge[1:] |= fg[1:] != fg[:-1]
        fly = edge & (rng.random((h, w)) < 0.3)
        blur = (z + np.roll(z, 2, 1) + np.roll(z, -2, 1)) / 3
        noisy = np.where(fly, blur, noisy)
        out = np.where(hole | ~np.isfinite(z) | (z > 4.0), 0.0, np.round(noisy * 1000) / 1000)
        return np.maximum(out, 0.0)


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from deal_ros.scene.voc_writer import VOCFrame, write_voc

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--train", type=int, default=160)
    p.add_argument("--val", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="240x320")
    p.add_argument("--scale", type=float, default=1.0, help="focal length multiplier")
    a = p.parse_args()
    h, w = (int(x) for x in a.size.lower().split("x"))
    gen = SlabScenes(a.seed, (h, w), a.scale)

    def frames(lo, hi, prefix):
        for i in range(lo, hi):
            rgb, depth, mask = gen.sample(i)
            yield f"{prefix}{i:05d}", VOCFrame(rgb, depth, mask)

    write_voc(a.out, {"train": frames(0, a.train, "tr"),
                      "val": frames(a.train, a.train + a.val, "va")}, CLASSES)  # fmt: skip
    print(f"slab scenes: {a.train} train + {a.val} val at {h}x{w} -> {a.out} "
          f"(vocabulary {','.join(CLASSES)})")  # fmt: skip


if __name__ == "__main__":
    main()
