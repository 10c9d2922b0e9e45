"""Scenes where colour does not separate the objects from the background: a grey mug on a grey
table, a box the colour of the wall.

    gen = CamouflageGenerator(size=(240, 320), seed=0, max_objects=4)
    scene = gen.sample(3)

The rooms, cameras, lights and the depth sensor model (noise growing with z^2, IR-shadow holes
at occluding edges, blob and glare holes, mm quantisation) are
:class:`~deal_ros.scene.generator.SceneGenerator`'s; only the objects' albedo changes: every
labelled object wears the texture of the table it stands on (with probability
``wall_share``: the wall's), brightness scaled by a factor in ``tint`` (1 = the same paint).
What still tells an object from its surroundings in colour is what a real camera sees too:
shading (its faces turn from the light differently from the table's), the cast shadow, the
texture scale on a curved surface; depth tells it apart always.

Our choice for the instance benchmark (bench/bench_instance.py ``--mode overlap``): the
generator's ``camouflage`` option wears the wall texture on 35 % x difficulty of the objects
only; here it is every object, so box supervision cannot lean on colour.
"""

from __future__ import annotations

import numpy as np

from deal_ros.scene.generator import Room, SceneGenerator, _place
from deal_ros.scene.geometry import SceneObject
from deal_ros.scene.objects import make_object
from deal_ros.scene.texture import Texture

__all__ = ["CamouflageGenerator"]


def _tinted(tex: Texture, factor: float) -> Texture:
    """A copy of ``tex`` with every colour scaled by ``factor``."""
    out = Texture(**{k: getattr(tex, k) for k in tex.__dataclass_fields__})
    for name in ("base", "stripe_colour", "blob_colour"):
        colour = getattr(out, name)
        if colour is not None:
            setattr(out, name, np.clip(colour * np.float32(factor), 0.02, 0.98))
    return out


class CamouflageGenerator(SceneGenerator):
    """``SceneGenerator`` whose labelled objects wear the background's texture (module
    docstring); every other option is the generator's."""

    def __init__(
        self,
        *args,
        wall_share: float = 0.3,
        tint: tuple[float, float] = (0.9, 1.1),
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= wall_share <= 1.0:
            raise ValueError(f"CamouflageGenerator: wall_share must be in [0, 1], got {wall_share}")
        if not 0 < tint[0] <= tint[1]:
            raise ValueError(f"CamouflageGenerator: tint must be (low, high) > 0, got {tint}")
        self.wall_share, self.tint = float(wall_share), (float(tint[0]), float(tint[1]))

    def _populate(
        self, rng: np.random.Generator, room: Room, class_ids: list[int]
    ) -> list[SceneObject]:
        d = self.difficulty
        objects: list[SceneObject] = []
        specs = [(c, self.kinds[self.classes[c - 1]]) for c in class_ids]
        specs += [(0, "books")] * self.clutter_objects
        for class_id, kind in specs:
            camo = None
            if class_id > 0:
                surface = room.wall if rng.random() < self.wall_share else room.table
                camo = _tinted(surface, float(rng.uniform(*self.tint)))
            obj = make_object(kind, class_id, rng, room.palette, d, 0.3 + 0.6 * d, camo)
            if _place(rng, obj, objects, room):
                objects.append(obj)
        return objects
