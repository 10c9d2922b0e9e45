"""Ray casting of simple 3-D primitives for the synthetic RGB-D scenes (numpy only).

World frame: X right, Y up, Z forward (away from the camera, horizontally); metres. The table
top is the plane Y = 0, the back wall the plane Z = ``wall_z``; a floor lies below the table.
The camera is a pinhole (fx = fy = f) at ``origin`` with rotation ``R`` whose columns are the
camera's right, down and forward axes in world coordinates; a pixel ray is
``R @ ((u - cx) / f, (v - cy) / f, 1)``, so the ray parameter t of a hit IS its depth (the
camera Z coordinate, what a RealSense reports).

Objects are unions of parts (spheres, vertical cylinders with a top cap, axis-aligned boxes) in
an object frame that sits on the table at (x, 0, z) with a yaw about Y; rays are moved into that
frame once per object.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray
EPS = 1e-4
INF = np.float32(np.inf)


def rotation(yaw: float, pitch: float, roll: float) -> Array:
    """Camera rotation: columns = right, down, forward in world. pitch > 0 looks down."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    forward = np.array([sy * cp, -sp, cy * cp])
    right0 = np.array([cy, 0.0, -sy])
    down0 = np.cross(right0, forward)  # points down: (0, -1, 0) when level
    cr, sr = np.cos(roll), np.sin(roll)
    right = cr * right0 + sr * down0
    down = -sr * right0 + cr * down0
    return np.stack([right, down, forward], axis=1)


def yaw_matrix(yaw: float) -> Array:
    """Rotation about world Y: object frame -> world."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass
class Camera:
    """Pinhole camera: image size (h, w), focal f, principal point, pose (origin, R)."""

    h: int
    w: int
    f: float
    origin: Array
    R: Array

    @property
    def K(self) -> Array:  # noqa: N802 (the usual name of the intrinsics matrix)
        return np.array(
            [[self.f, 0, (self.w - 1) / 2], [0, self.f, (self.h - 1) / 2], [0, 0, 1]], np.float64
        )

    def rays(self) -> Array:
        """World ray directions (h*w, 3), float32, with camera-Z component 1."""
        return np.einsum(
            "ij,kj->ik", _camera_rays(self.h, self.w, self.f), self.R.astype(np.float32)
        )

    def project(self, p: Array) -> tuple[float, float, float]:
        """World point -> (u, v, depth)."""
        c = self.R.T @ (np.asarray(p, np.float64) - self.origin)
        return (
            self.f * c[0] / c[2] + (self.w - 1) / 2,
            self.f * c[1] / c[2] + (self.h - 1) / 2,
            c[2],
        )


@functools.lru_cache(maxsize=8)
def _camera_rays(h: int, w: int, f: float) -> Array:
    """Camera-frame pixel rays (h*w, 3) float32 (cached: read-only)."""
    u = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / f
    v = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / f
    cam = np.empty((h, w, 3), np.float32)
    cam[..., 0] = u[None, :]
    cam[..., 1] = v[:, None]
    cam[..., 2] = 1.0
    cam = cam.reshape(-1, 3)
    cam.flags.writeable = False
    return cam


@dataclass
class Part:
    """One primitive in the object frame. kind: "sphere" | "cyl" | "box"."""

    kind: str
    center: Array  # sphere centre, cylinder base centre, box centre
    size: Array  # sphere (r,), cylinder (r, h), box half extents (3,)
    material: int = 0
    cap_material: int | None = None  # cylinder top cap material (e.g. the coffee in a mug)


@dataclass
class Hit:
    """Nearest hits of a ray batch: t (inf = none), local normals, material ids."""

    t: Array
    normal: Array
    material: Array

    @classmethod
    def empty(cls, n: int) -> Hit:
        return cls(np.full(n, INF, np.float32), np.zeros((n, 3), np.float32), np.zeros(n, np.int8))

    def merge(self, t: Array, normal: Array, material: int | Array) -> None:
        closer = t < self.t
        self.t = np.where(closer, t, self.t)
        self.normal[closer] = normal[closer]
        self.material[closer] = np.broadcast_to(material, t.shape)[closer]


def _sphere(o: Array, d: Array, c: Array, r: float) -> tuple[Array, Array]:
    oc = o - c
    a = np.einsum("ij,ij->i", d, d)
    b = np.einsum("ij,ij->i", oc, d) if oc.ndim == 2 else np.einsum("ij,j->i", d, oc)
    cc = (np.einsum("ij,ij->i", oc, oc) if oc.ndim == 2 else float(oc @ oc)) - r * r
    disc = b * b - a * cc
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / a
    t = np.where((disc >= 0) & (t > EPS), t, INF).astype(np.float32)
    p = o + t[:, None] * d
    return t, ((p - c) / r).astype(np.float32)


def _cylinder(o: Array, d: Array, base: Array, r: float, h: float) -> tuple[Array, Array, Array]:
    o = np.broadcast_to(o, d.shape)
    ox, oz = o[:, 0] - base[0], o[:, 2] - base[2]
    dx, dz = d[:, 0], d[:, 2]
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    disc = b * b - a * (ox * ox + oz * oz - r * r)
    with np.errstate(invalid="ignore", divide="ignore"):
        ts = (-b - np.sqrt(disc)) / a
        y = o[:, 1] + ts * d[:, 1]
        ok = (disc >= 0) & (ts > EPS) & (y >= base[1]) & (y <= base[1] + h)
        ts = np.where(ok, ts, INF)
        tc = (base[1] + h - o[:, 1]) / d[:, 1]
    xc, zc = ox + tc * dx, oz + tc * dz
    tc = np.where((d[:, 1] < 0) & (tc > EPS) & (xc * xc + zc * zc <= r * r), tc, INF)
    cap = tc < ts
    t = np.minimum(ts, tc).astype(np.float32)
    n = np.zeros(d.shape, np.float32)
    n[:, 0] = (ox + t * dx) / r
    n[:, 2] = (oz + t * dz) / r
    n[cap] = (0.0, 1.0, 0.0)
    return t, n, cap


def _box(o: Array, d: Array, c: Array, half: Array) -> tuple[Array, Array]:
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(d) < 1e-9, 1e-9, d)
        t1 = (c - half - o) * inv
        t2 = (c + half - o) * inv
    tlo, thi = np.minimum(t1, t2), np.maximum(t1, t2)
    tmin, tmax = tlo.max(axis=1), thi.min(axis=1)
    ok = (tmax >= tmin) & (tmin > EPS)
    t = np.where(ok, tmin, INF).astype(np.float32)
    axis = tlo.argmax(axis=1)
    n = np.zeros(d.shape, np.float32)
    rows = np.arange(len(d))
    n[rows, axis] = -np.sign(d[rows, axis])
    return t, n


@dataclass
class SceneObject:
    """A rigid union of parts standing on the table at (x, z) with a yaw; class id 0 = clutter."""

    class_id: int
    kind: str
    parts: list[Part]
    materials: list[object]  # textures (callables (u, v) -> rgb), indexed by Part.material
    glossy: float = 0.0
    x: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def pos(self) -> Array:
        return np.array([self.x, 0.0, self.z])

    def bounds(self) -> tuple[Array, float]:
        """Bounding sphere (world centre, radius)."""
        pts = []
        for p in self.parts:
            s = p.size
            if p.kind == "sphere":
                pts += [p.center + s[0], p.center - s[0]]
            elif p.kind == "cyl":
                pts += [
                    p.center + np.array([s[0], s[1], s[0]]),
                    p.center - np.array([s[0], 0, s[0]]),
                ]
            else:
                pts += [p.center + s, p.center - s]
        pts = np.array(pts)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre_local = (lo + hi) / 2
        radius = float(np.linalg.norm(hi - lo) / 2)
        return yaw_matrix(self.yaw) @ centre_local + self.pos, radius

    def intersect(self, o: Array, d: Array) -> tuple[Hit, Array]:
        """Hits of world rays; returns the hit (normals in WORLD frame) and local hit points."""
        rot = yaw_matrix(self.yaw)
        rot32 = rot.astype(np.float32)
        ol = _rows_times(np.asarray(o - self.pos, np.float32), rot32)
        dl = _rows_times(d, rot32)
        hit = Hit.empty(len(d))
        for part in self.parts:
            if part.kind == "sphere":
                t, n = _sphere(ol, dl, part.center, float(part.size[0]))
                hit.merge(t, n, part.material)
            elif part.kind == "cyl":
                t, n, cap = _cylinder(ol, dl, part.center, float(part.size[0]), float(part.size[1]))
                mat = np.full(len(d), part.material, np.int8)
                if part.cap_material is not None:
                    mat[cap] = part.cap_material
                hit.merge(t, n, mat)
            else:
                t, n = _box(np.broadcast_to(ol, dl.shape), dl, part.center, part.size)
                hit.merge(t, n, part.material)
        local = ol + np.where(np.isfinite(hit.t), hit.t, 0)[:, None] * dl
        hit.normal = _rows_times(hit.normal, rot32.T)
        return hit, local


def _rows_times(a: Array, m: Array) -> Array:
    """``a @ m`` for (N, 3) or (3,) ``a`` and a 3x3 ``m``, without BLAS (whose threads thrash
    on a busy machine for such thin products)."""
    if a.ndim == 1:
        return (a @ m).astype(np.float32)
    return np.einsum("ij,jk->ik", a, m).astype(np.float32, copy=False)


def background_hits(
    o: Array, d: Array, wall_z: float, table_half_width: float, floor_y: float
) -> tuple[Array, Array]:
    """Depth t and surface id (0 wall, 1 table, 2 floor) of the empty room for each ray."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = np.where(d[:, 2] > 1e-6, (wall_z - o[2]) / d[:, 2], INF)
        t_table = np.where(d[:, 1] < -1e-6, -o[1] / d[:, 1], INF)
        t_floor = np.where(d[:, 1] < -1e-6, (floor_y - o[1]) / d[:, 1], INF)
    x_table = o[0] + t_table * d[:, 0]
    t_table = np.where(np.abs(x_table) <= table_half_width, t_table, INF)
    t = np.minimum(t_wall, t_table)
    surf = (t_table < t_wall).astype(np.int8)
    floor = t_floor < t
    surf[floor] = 2
    return np.where(floor, t_floor, t).astype(np.float32), surf
