"""Object models of the synthetic scenes: each kind is a union of primitives in metres.

Kinds: "mug" (cylinder, coffee-coloured top, a handle made of a chain of small spheres), "box"
(cuboid), "ball" (sphere), "can" (short cylinder, metal top), "bottle" (cylinder, spherical
shoulder, neck with a cap). Class id 0 marks unlabelled 3-D clutter ("books": flat boxes).
Sizes are those of household objects (our choice).
"""

from __future__ import annotations

import numpy as np

from deal_ros.scene.geometry import Part, SceneObject
from deal_ros.scene.texture import Texture, ValueNoise, random_colour, random_texture

KINDS: tuple[str, ...] = ("mug", "box", "ball", "can", "bottle")
Array = np.ndarray


def _v(*xs: float) -> Array:
    return np.array(xs, dtype=np.float32)


def _mug(rng: np.random.Generator) -> tuple[list[Part], float]:
    r, h = rng.uniform(0.035, 0.05), rng.uniform(0.08, 0.11)
    parts = [Part("cyl", _v(0, 0, 0), _v(r, h), material=0, cap_material=1)]
    rh, sr = 0.3 * h, rng.uniform(0.008, 0.011)
    for phi in np.linspace(-np.pi / 2, np.pi / 2, 9):
        centre = _v(r + rh * np.cos(phi) - 0.3 * sr, h / 2 + rh * np.sin(phi), 0)
        parts.append(Part("sphere", centre, _v(sr)))
    return parts, 0.5


def _box(rng: np.random.Generator) -> tuple[list[Part], float]:
    half = _v(rng.uniform(0.03, 0.08), rng.uniform(0.025, 0.07), rng.uniform(0.025, 0.06))
    return [Part("box", _v(0, half[1], 0), half)], 0.15


def _ball(rng: np.random.Generator) -> tuple[list[Part], float]:
    r = rng.uniform(0.03, 0.06)
    return [Part("sphere", _v(0, r, 0), _v(r))], 0.6


def _can(rng: np.random.Generator) -> tuple[list[Part], float]:
    r, h = rng.uniform(0.028, 0.035), rng.uniform(0.10, 0.13)
    return [Part("cyl", _v(0, 0, 0), _v(r, h), material=0, cap_material=1)], 0.7


def _bottle(rng: np.random.Generator) -> tuple[list[Part], float]:
    r, h = rng.uniform(0.028, 0.04), rng.uniform(0.12, 0.18)
    neck = rng.uniform(0.04, 0.06)
    return [
        Part("cyl", _v(0, 0, 0), _v(r, h)),
        Part("sphere", _v(0, h, 0), _v(r)),
        Part("cyl", _v(0, h + 0.6 * r, 0), _v(0.35 * r, neck), material=1, cap_material=1),
    ], 0.5


def _books(rng: np.random.Generator) -> tuple[list[Part], float]:
    half = _v(rng.uniform(0.06, 0.12), rng.uniform(0.01, 0.04), rng.uniform(0.05, 0.1))
    return [Part("box", _v(0, half[1], 0), half)], 0.05


_BUILDERS = {
    "mug": _mug,
    "box": _box,
    "ball": _ball,
    "can": _can,
    "bottle": _bottle,
    "books": _books,
}
_SECOND = {  # colour of material 1 (mug coffee, can top, bottle cap)
    "mug": _v(0.22, 0.12, 0.06),
    "can": _v(0.7, 0.7, 0.72),
    "bottle": _v(0.9, 0.9, 0.9),
}


def make_object(
    kind: str,
    class_id: int,
    rng: np.random.Generator,
    palette: list[Array],
    busy: float,
    share: float,
    camouflage: Texture | None = None,
) -> SceneObject:
    """Build an object; its colours come from ``palette`` with probability ``share``, and with
    ``camouflage`` it wears that (background) texture."""
    parts, glossy = _BUILDERS[kind](rng)
    base = palette[int(rng.integers(len(palette)))] if rng.random() < share else random_colour(rng)
    if camouflage is not None:
        body = camouflage
    elif rng.random() < 0.3 + 0.5 * busy:
        body = random_texture(rng, palette, busy, base=base)
    else:
        body = Texture(base=base, grain=float(rng.uniform(0.02, 0.08)), noise=ValueNoise(rng))
    second = Texture(base=_SECOND.get(kind, base), grain=0.03, noise=ValueNoise(rng))
    obj = SceneObject(class_id, kind, parts, [body, second], glossy=glossy * rng.uniform(0.3, 1))
    obj.extra["footprint"] = max(_xz_radius(p) for p in parts)
    first = parts[0]
    if first.kind == "box":
        obj.extra["base_radius"] = float(max(first.size[0], first.size[2]))
    else:
        obj.extra["base_radius"] = float(first.size[0]) * (0.4 if first.kind == "sphere" else 1.0)
    return obj


def _xz_radius(p: Part) -> float:
    """Radius of a vertical cylinder around the object axis that holds the part at any yaw."""
    if p.kind == "box":
        return float(np.hypot(abs(p.center[0]) + p.size[0], abs(p.center[2]) + p.size[2]))
    return float(np.hypot(p.center[0], p.center[2]) + p.size[0])
