"""Synthetic RGB-D table-top scenes: the onboarding benchmark and the camera of ``make demo``.

numpy only, deterministic from a seed. Household objects (simple 3-D primitives: see
``scene_objects``) stand on a table in front of a wall and are ray-cast with depth, Lambertian +
specular shading and cast shadows; the depth goes through a RealSense-like sensor model (noise
growing with z^2, occlusion shadows and holes at edges, blob and glare holes, mm quantisation;
see ``scene_sensor``). Colour alone is made unreliable on purpose: textured wall and table
(stripes, blobs, grain at several scales), objects drawing their colours (and sometimes the
wall's texture) from the same palette as the background, and FLAT painted look-alikes of the
objects (with fake shading) on the wall and the table, which only depth tells apart.

    gen = SceneGenerator(classes=("mug", "box", "ball"), size=(240, 320), seed=0)
    scene = gen.sample(7)                  # always the same scene for (seed, 7)
    for frame in gen.frames("mug", 30):    # an onboarding episode: one mug, camera jitter
        ...

Label layout: mask holds 0 = background, k = classes[k - 1], 255 = ignore (instances too
small to label, and an optional band around object outlines); ``labels[k - 1] == 1`` iff
class id k occurs in the mask.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from deal_ros.scene.geometry import Camera, SceneObject, background_hits, rotation
from deal_ros.scene.objects import KINDS, make_object
from deal_ros.scene.sensor import DepthSensor, colour_sensor
from deal_ros.scene.texture import (
    PaintedShape,
    Texture,
    random_colour,
    random_painted_shape,
    random_texture,
)
from deal_ros.scene.view import Box, overview

Array = np.ndarray
DIFFICULTY: dict[str, float] = {"easy": 0.2, "medium": 0.5, "hard": 0.85}
# Named settings of the generator (``SceneGenerator.from_mode``, ``scene:mode=NAME``).
# "multi": the hard multi-object, multi-label benchmark of issue 13: 1-3 objects of 4 classes
# per image, colours shared with the background, a slanted table (camera roll up to ~0.3 rad),
# RealSense-like depth with a wide IR-projector shadow beside every object, 3 % random holes
# and noise growing with z^2.
MODES: dict[str, dict] = {
    "multi": {
        "classes": ("mug", "box", "ball", "can"),
        "min_objects": 1,
        "max_objects": 3,
        "difficulty": "hard",
        "roll": 0.15,
        "salt": 0.03,
        "shadow_baseline": 0.12,
    },
}
MAX_ATTEMPTS = 8


@dataclass
class Scene:
    """One RGB-D frame with its ground truth (the labels a WSSS method may NOT train on are
    ``mask``, ``instance_masks``, ``boxes``, ``depth_gt``, ``background_depth``)."""

    rgb: Array  # (H, W, 3) uint8
    depth: Array  # (H, W) float32 metres, 0 = invalid, quantised to mm
    mask: Array  # (H, W) uint8 class ids: 0 background, 1..K, 255 ignore
    labels: Array  # (K,) uint8 multi-hot, labels[k - 1] <=> class id k in the mask
    boxes: list[Box]  # (class id, x0, y0, x1, y1) per labelled instance, x1/y1 exclusive
    instance_masks: Array  # (N, H, W) bool, visible pixels of each labelled instance
    instance_classes: Array  # (N,) class ids
    depth_gt: Array  # (H, W) float32 noise-free depth, metres
    background_depth: Array  # (H, W) float32 depth of the empty room (no 3-D objects)
    K: Array  # (3, 3) camera intrinsics
    classes: tuple[str, ...]
    index: int = 0


@dataclass
class Room:
    """Everything of a scene that is not an object pose: camera, surfaces, light, sensor."""

    camera: Camera
    wall_z: float
    table_half_width: float
    floor_y: float
    wall: Texture
    table: Texture
    floor: Texture
    wall_paint: list[PaintedShape]
    table_paint: list[PaintedShape]
    light: Array
    ambient: float
    sensor: DepthSensor
    rgb_noise: float
    palette: list[Array] = field(default_factory=list)
    camera_angles: tuple[float, float, float] = (0.0, 0.5, 0.0)  # yaw, pitch, roll (radians)


class SceneGenerator:
    """Deterministic generator of labelled RGB-D table-top scenes (see the module docstring).

    ``difficulty``: "easy" | "medium" | "hard" or a float in [0, 1]; it raises texture clutter,
    colour sharing between objects and background, painted look-alikes, depth noise and holes.
    ``shapes`` maps class names to object kinds (default: the name itself, one of ``KINDS``).
    ``clutter_objects``: unlabelled 3-D objects (flat boxes) per scene, mask 0.
    ``zoom``: focal length multiplier (default 1: focal 0.8 x width). A close-up camera: the
    same rooms and objects seen through a longer lens, so objects cover ``zoom**2`` times as
    many pixels (at ``zoom`` 2.5 a mug is about 5 CAM pixels wide at 120x160 and stride 8).
    ``roll``: standard deviation of the camera roll (radians; 0.02 by default): a larger roll
    slants the table in the image. ``salt``: fraction of random depth holes (default from
    ``difficulty``). ``shadow_baseline``: metres between the left imager and the IR projector
    whose shadow empties the background beside every nearer surface (default: the stereo
    baseline, 0.05). ``from_mode("multi")`` is the hard multi-object benchmark (``MODES``).
    """

    def __init__(
        self,
        classes: Sequence[str] = ("mug", "box", "ball"),
        size: tuple[int, int] = (240, 320),
        seed: int = 0,
        difficulty: str | float = "medium",
        min_objects: int = 1,
        max_objects: int = 3,
        clutter_objects: int = 0,
        min_visible_px: int = 30,
        ignore_edges: int = 0,
        shapes: dict[str, str] | None = None,
        zoom: float = 1.0,
        roll: float = 0.02,
        salt: float | None = None,
        shadow_baseline: float | None = None,
    ) -> None:
        self.classes = tuple(classes)
        self.kinds = {c: (shapes or {}).get(c, c) for c in self.classes}
        for name, kind in self.kinds.items():
            if kind not in KINDS:
                raise ValueError(
                    f"SceneGenerator: class '{name}' has no shape (kind '{kind}'); known kinds: "
                    f"{', '.join(KINDS)} (map names with shapes={{'{name}': 'mug'}})"
                )
        if not self.classes:
            raise ValueError("SceneGenerator: classes is empty")
        h, w = size
        if h < 16 or w < 16:
            raise ValueError(f"SceneGenerator: size must be at least 16x16, got {size}")
        if not 0 <= min_objects <= max_objects:
            raise ValueError(
                f"SceneGenerator: need 0 <= min_objects <= max_objects, got "
                f"{min_objects}, {max_objects}"
            )
        if not 0.25 <= float(zoom) <= 10.0:
            raise ValueError(f"SceneGenerator: zoom must lie in [0.25, 10], got {zoom}")
        self.zoom = float(zoom)
        if not 0.0 <= float(roll) <= 1.0:
            raise ValueError(f"SceneGenerator: roll must lie in [0, 1] radians, got {roll}")
        if salt is not None and not 0.0 <= float(salt) < 0.5:
            raise ValueError(f"SceneGenerator: salt must lie in [0, 0.5), got {salt}")
        if shadow_baseline is not None and not 0.0 <= float(shadow_baseline) <= 0.5:
            raise ValueError(
                f"SceneGenerator: shadow_baseline must lie in [0, 0.5] m, got {shadow_baseline}"
            )
        self.roll = float(roll)
        self.salt = None if salt is None else float(salt)
        self.shadow_baseline = None if shadow_baseline is None else float(shadow_baseline)
        self.size = (int(h), int(w))
        self.seed = int(seed)
        self.difficulty = _difficulty(difficulty)
        self.min_objects, self.max_objects = min_objects, max_objects
        self.clutter_objects = clutter_objects
        self.min_visible_px = min_visible_px
        self.ignore_edges = ignore_edges

    @classmethod
    def from_mode(cls, mode: str, **overrides) -> SceneGenerator:
        """A generator with the named settings of ``MODES`` (keywords override them)."""
        if mode not in MODES:
            raise ValueError(f"SceneGenerator: mode '{mode}' is not one of {', '.join(MODES)}")
        return cls(**{**MODES[mode], **overrides})

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # ------------------------------------------------------------------ public API
    def sample(self, index: int) -> Scene:
        """The scene number ``index`` (the same for the same seed, in any order)."""
        for attempt in range(MAX_ATTEMPTS):  # redraw the rare layout left with no visible object
            key = [self.seed, int(index)] + ([attempt] if attempt else [])
            rng = np.random.default_rng(key)
            room = self._room(rng)
            n = int(rng.integers(self.min_objects, self.max_objects + 1))
            class_ids = [int(rng.integers(1, self.num_classes + 1)) for _ in range(n)]
            objects = self._populate(rng, room, class_ids)
            scene = self._render(room, objects, room.camera, rng, index)
            if len(scene.boxes) >= min(self.min_objects, 1):
                break
        return scene

    def __getitem__(self, index: int) -> Scene:
        return self.sample(index)

    def frames(self, class_name: str, n: int, seed: int = 0) -> Iterator[Scene]:
        """An onboarding episode: ``n`` frames of ONE object of ``class_name`` turning and
        sliding slightly on the table while the hand-held camera jitters."""
        if class_name not in self.classes:
            raise ValueError(
                f"SceneGenerator.frames: unknown class '{class_name}' "
                f"(classes: {', '.join(self.classes)})"
            )
        for attempt in range(MAX_ATTEMPTS):  # redraw the rare layout where the object fits nowhere
            rng = np.random.default_rng([self.seed, 1_000_003, int(seed), attempt])
            room = self._room(rng)
            objects = self._populate(rng, room, [self.classes.index(class_name) + 1])
            target = next((o for o in objects if o.class_id > 0), None)
            if target is not None:
                break
        x0, z0, yaw0 = (target.x, target.z, target.yaw) if target else (0.0, 0.0, 0.0)
        turn = rng.uniform(-1.5, 1.5)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        walk = np.zeros(6)
        for i in range(n):
            s = i / max(n - 1, 1)
            if target is not None:
                target.x = x0 + 0.02 * np.sin(2 * np.pi * s + phase[0])
                target.z = z0 + 0.015 * np.sin(2 * np.pi * s + phase[1])
                target.yaw = yaw0 + turn * s
            walk = 0.8 * walk + rng.normal(0, [0.002, 0.002, 0.002, 0.004, 0.003, 0.003])
            cam = _jittered(room, walk)
            yield self._render(room, objects, cam, rng, i)

    # ------------------------------------------------------------------ scene layout
    def _room(self, rng: np.random.Generator) -> Room:
        d = self.difficulty
        h, w = self.size
        angles = (rng.normal(0, 0.08), rng.uniform(0.45, 0.8), rng.normal(0, 1.0) * self.roll)
        cam = Camera(
            h,
            w,
            0.8 * w * self.zoom,
            np.array([0.0, rng.uniform(0.45, 0.8), 0.0]),
            rotation(*angles),
        )
        wall_z = float(rng.uniform(1.0, 1.9))
        palette = [random_colour(rng) for _ in range(6)]
        el, az = rng.uniform(0.6, 1.3), rng.uniform(-1.0, 1.0)
        light = np.array([np.sin(az) * np.cos(el), np.sin(el), -np.cos(az) * np.cos(el)])
        half_x = (wall_z + 0.5) * w / (2 * cam.f) * 1.2
        wall_paint = [
            random_painted_shape(rng, palette, (-half_x, half_x), (0.02, 0.9), (0.03, 0.12))
            for _ in range(round(rng.uniform(1, 3) + 6 * d))
        ]
        table_paint = [
            random_painted_shape(rng, palette, (-half_x, half_x), (0.3, wall_z), (0.02, 0.06))
            for _ in range(round(rng.uniform(0, 2) + 3 * d))
        ]
        floor = random_texture(rng, palette, 0.2)
        floor.base = floor.base * 0.5
        sensor = DepthSensor(
            noise_coeff=0.001 + 0.004 * d,
            edge_drop=0.3 + 0.5 * d,
            blob_fraction=0.005 + 0.03 * d,
            salt=0.001 + 0.004 * d if self.salt is None else self.salt,
            shadow_baseline=self.shadow_baseline,
        )
        return Room(
            camera=cam,
            wall_z=wall_z,
            table_half_width=float(rng.uniform(0.6, 1.5)),
            floor_y=-float(rng.uniform(0.7, 0.8)),
            wall=random_texture(rng, palette, d),
            table=random_texture(rng, palette, 0.8 * d),
            floor=floor,
            wall_paint=wall_paint,
            table_paint=table_paint,
            light=light / np.linalg.norm(light),
            ambient=float(rng.uniform(0.3, 0.55)),
            sensor=sensor,
            rgb_noise=1.5 + 5.0 * d,
            palette=palette,
            camera_angles=tuple(float(a) for a in angles),
        )

    def _populate(
        self, rng: np.random.Generator, room: Room, class_ids: list[int]
    ) -> list[SceneObject]:
        d = self.difficulty
        objects: list[SceneObject] = []
        specs = [(c, self.kinds[self.classes[c - 1]]) for c in class_ids]
        specs += [(0, "books")] * self.clutter_objects
        for class_id, kind in specs:
            camo = room.wall if rng.random() < 0.35 * d else None
            obj = make_object(kind, class_id, rng, room.palette, d, 0.3 + 0.6 * d, camo)
            if _place(rng, obj, objects, room):
                objects.append(obj)
        return objects

    # ------------------------------------------------------------------ rendering
    def _render(
        self,
        room: Room,
        objects: list[SceneObject],
        cam: Camera,
        rng: np.random.Generator,
        index: int,
    ) -> Scene:
        h, w = cam.h, cam.w
        o = cam.origin.astype(np.float32)
        d = cam.rays()
        t_bg, surf = background_hits(o, d, room.wall_z, room.table_half_width, room.floor_y)
        t = t_bg.copy()
        inst = np.full(h * w, -1, np.int16)
        normal = np.zeros((h * w, 3), np.float32)
        normal[surf == 0] = (0, 0, -1)
        normal[surf != 0] = (0, 1, 0)
        mat = np.zeros(h * w, np.int8)
        local = np.zeros((h * w, 3), np.float32)
        for i, obj in enumerate(objects):
            idx = _footprint(cam, obj)
            if idx.size == 0:
                continue
            hit, loc = obj.intersect(o, d[idx])
            closer = hit.t < t[idx]
            sel = idx[closer]
            t[sel], inst[sel] = hit.t[closer], i
            normal[sel], mat[sel], local[sel] = (
                hit.normal[closer],
                hit.material[closer],
                loc[closer],
            )
        p = o + t[:, None] * d
        rows = np.nonzero(inst >= 0)[0]
        pixels = [rows[inst[rows] == i] for i in range(len(objects))]
        albedo = _albedo(room, objects, p, surf, inst, mat, local, pixels)
        shade, spec = _shading(room, objects, p, d, normal, surf, inst, pixels, cam)
        rgb = colour_sensor(albedo * shade[:, None] + spec[:, None], rng, room.rgb_noise)
        depth_gt = t.reshape(h, w)
        glare = (spec > 0.35).reshape(h, w)
        depth = room.sensor.measure(depth_gt, cam.f, rng, glare)
        return self._labelled(
            rgb.reshape(h, w, 3),
            depth,
            depth_gt,
            t_bg.reshape(h, w),
            inst.reshape(h, w),
            objects,
            cam,
            index,
        )

    def _labelled(
        self,
        rgb: Array,
        depth: Array,
        depth_gt: Array,
        bg: Array,
        inst: Array,
        objects: list[SceneObject],
        cam: Camera,
        index: int,
    ) -> Scene:
        mask = np.zeros(inst.shape, np.uint8)
        masks, classes, boxes = [], [], []
        for i, obj in enumerate(objects):
            m = inst == i
            if obj.class_id == 0 or not m.any():
                continue
            if m.sum() < self.min_visible_px:
                mask[m] = 255
                continue
            mask[m] = obj.class_id
            ys, xs = np.nonzero(m)
            masks.append(m)
            classes.append(obj.class_id)
            boxes.append(
                (obj.class_id, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            )
        if self.ignore_edges > 0:
            mask[_outline(mask, self.ignore_edges)] = 255
        labels = np.zeros(self.num_classes, np.uint8)
        for c in np.unique(mask):
            if 0 < c <= self.num_classes:
                labels[c - 1] = 1
        inst_masks = np.stack(masks) if masks else np.zeros((0, *mask.shape), bool)
        return Scene(
            rgb=rgb,
            depth=depth,
            mask=mask,
            labels=labels,
            boxes=boxes,
            instance_masks=inst_masks,
            instance_classes=np.array(classes, np.int64),
            depth_gt=depth_gt.astype(np.float32),
            background_depth=bg.astype(np.float32),
            K=cam.K,
            classes=self.classes,
            index=int(index),
        )


def _difficulty(value: str | float) -> float:
    if isinstance(value, str):
        if value not in DIFFICULTY:
            raise ValueError(
                f"SceneGenerator: difficulty '{value}' is not one of "
                f"{', '.join(DIFFICULTY)} or a number in [0, 1]"
            )
        return DIFFICULTY[value]
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"SceneGenerator: difficulty must lie in [0, 1], got {value}")
    return float(value)


def _place(
    rng: np.random.Generator, obj: SceneObject, placed: list[SceneObject], room: Room
) -> bool:
    """Put ``obj`` on the visible table, clear of the others; False after 60 failed tries."""
    cam = room.camera
    r = obj.extra["footprint"]
    for _ in range(60):
        u, v = rng.uniform(0.12, 0.88) * cam.w, rng.uniform(0.45, 0.9) * cam.h
        ray = cam.R @ np.array([(u - (cam.w - 1) / 2) / cam.f, (v - (cam.h - 1) / 2) / cam.f, 1])
        if ray[1] >= -1e-6:
            continue
        tt = -cam.origin[1] / ray[1]
        x, z = cam.origin[0] + tt * ray[0], cam.origin[2] + tt * ray[2]
        if abs(x) > room.table_half_width - r or z < 0.3 or z > room.wall_z - r - 0.02:
            continue
        if any(np.hypot(x - q.x, z - q.z) < r + q.extra["footprint"] + 0.015 for q in placed):
            continue
        obj.x, obj.z, obj.yaw = float(x), float(z), float(rng.uniform(0, 2 * np.pi))
        return True
    return False


def _footprint(cam: Camera, obj: SceneObject, extra: Array | None = None) -> Array:
    """Flat indices of the pixels whose rays may hit ``obj`` (its projected bounding sphere),
    widened to hold the projections of the world points ``extra`` (its cast shadow)."""
    centre, radius = obj.bounds()
    u, v, z = cam.project(centre)
    if z <= radius * 1.05:
        return np.arange(cam.h * cam.w)
    r_px = cam.f * radius / np.sqrt(z * z - radius * radius) * 1.3 + 2
    lo_u, hi_u, lo_v, hi_v = u - r_px, u + r_px, v - r_px, v + r_px
    for q in () if extra is None else extra:
        qu, qv, qz = cam.project(q)
        if qz <= 0.05:
            return np.arange(cam.h * cam.w)
        lo_u, hi_u = min(lo_u, qu - 2), max(hi_u, qu + 2)
        lo_v, hi_v = min(lo_v, qv - 2), max(hi_v, qv + 2)
    u0, u1 = max(0, int(lo_u)), min(cam.w, int(hi_u) + 1)
    v0, v1 = max(0, int(lo_v)), min(cam.h, int(hi_v) + 1)
    if u0 >= u1 or v0 >= v1:
        return np.zeros(0, np.int64)
    return (np.arange(v0, v1)[:, None] * cam.w + np.arange(u0, u1)[None, :]).ravel()


def _shadow_points(obj: SceneObject, room: Room) -> Array:
    """Where the corners of the object's bounding cube cast their shadow (table or wall)."""
    centre, radius = obj.bounds()
    corners = centre + radius * np.array(
        [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64
    )
    L = room.light
    s_table = np.maximum(corners[:, 1], 0) / max(L[1], 1e-3)
    s_wall = (room.wall_z - corners[:, 2]) / max(-L[2], 1e-3) if L[2] < 0 else np.inf
    s = np.minimum(s_table, s_wall)
    return corners - s[:, None] * L


def _albedo(
    room: Room,
    objects: list[SceneObject],
    p: Array,
    surf: Array,
    inst: Array,
    mat: Array,
    local: Array,
    pixels: list[Array],
) -> Array:
    out = np.empty(p.shape, np.float32)
    bg = inst < 0
    for sid, tex, paint, (a, b) in (
        (0, room.wall, room.wall_paint, (0, 1)),
        (1, room.table, room.table_paint, (0, 2)),
        (2, room.floor, [], (0, 2)),
    ):
        rows = np.nonzero(bg & (surf == sid))[0]
        if rows.size == 0:
            continue
        u, v = p[rows, a], p[rows, b]
        col = tex(u, v)
        for shape in paint:
            shape.paint(u, v, col)
        out[rows] = col
    for obj, rows in zip(objects, pixels):
        loc = local[rows]
        su, sv = np.arctan2(loc[:, 2], loc[:, 0]) * 0.04, loc[:, 1]
        for j, tex in enumerate(obj.materials):
            m = mat[rows] == j
            if m.any():
                out[rows[m]] = tex(su[m], sv[m])
    return out


def _shading(
    room: Room,
    objects: list[SceneObject],
    p: Array,
    d: Array,
    normal: Array,
    surf: Array,
    inst: Array,
    pixels: list[Array],
    cam: Camera,
) -> tuple[Array, Array]:
    """Lambert (ambient + diffuse x cast shadow x contact darkening) and Phong highlights."""
    L = room.light.astype(np.float32)
    ndotl = np.clip(np.einsum("ij,j->i", normal, L), 0.0, None)
    lit = np.ones(len(p), np.float32)
    shade_extra = np.ones(len(p), np.float32)
    for obj in objects:
        centre, radius = obj.bounds()
        area = _footprint(cam, obj, _shadow_points(obj, room))
        pc = centre.astype(np.float32) - p[area]
        along = np.einsum("ij,j->i", pc, L)
        cand = (ndotl[area] > 0) & (along > 0)
        cand &= (pc * pc).sum(1) - along * along < radius * radius
        idx = area[cand]
        if idx.size:
            hit, _ = obj.intersect(p[idx] + 2e-3 * normal[idx], np.broadcast_to(L, (idx.size, 3)))
            lit[idx[np.isfinite(hit.t)]] = 0.0
        near = _footprint(cam, obj)
        table = near[(inst[near] < 0) & (surf[near] == 1)]
        gap = np.hypot(p[table, 0] - obj.x, p[table, 2] - obj.z) - obj.extra["base_radius"]
        shade_extra[table] *= 1 - 0.35 * np.exp(-np.maximum(gap, 0) / 0.015)
    shade = (room.ambient + (1 - room.ambient) * ndotl * lit) * shade_extra
    spec = np.zeros(len(p), np.float32)
    for obj, rows in zip(objects, pixels):
        if obj.glossy <= 0 or rows.size == 0:
            continue
        n = normal[rows]
        view = -d[rows] / np.linalg.norm(d[rows], axis=1, keepdims=True)
        refl = 2 * np.einsum("ij,j->i", n, L)[:, None] * n - L
        spec[rows] = obj.glossy * np.clip((refl * view).sum(1), 0, None) ** 40 * lit[rows]
    return shade, spec


def _outline(mask: Array, width: int) -> Array:
    """Pixels within ``width`` px of a change of mask value."""
    edge = np.zeros(mask.shape, bool)
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[1:] |= mask[1:] != mask[:-1]
    out = edge.copy()
    for _ in range(width):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _jittered(room: Room, walk: Array) -> Camera:
    """The room's camera moved by ``walk`` = (dx, dy, dz metres, dyaw, dpitch, droll rad)."""
    cam = room.camera
    angles = np.asarray(room.camera_angles) + walk[3:]
    return Camera(cam.h, cam.w, cam.f, cam.origin + walk[:3], rotation(*angles))


def render_overview(scenes: Sequence[Scene], max_depth: float | None = None) -> Array:
    """A uint8 image grid, one row per scene: rgb (boxes drawn) | depth (turbo-like colours,
    invalid black) | mask (class colours, ignore white)."""
    return overview(scenes, max_depth)
