"""``CamouflageGenerator``: the generator's rooms and sensor, objects wearing the background's
texture, so colour separates them from their surroundings far less than in the plain scenes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from deal_ros.scene.camouflage import CamouflageGenerator
from deal_ros.scene.generator import SceneGenerator

KW = {"size": (120, 160), "seed": 3, "min_objects": 2, "max_objects": 4}


def _median_contrast(gen: SceneGenerator, n: int = 12) -> float:
    """Median over instances of the mean |RGB| difference between an instance and the
    background ring (4 px) around it."""
    out = []
    for i in range(n):
        s = gen.sample(i)
        fg = s.instance_masks.any(0)
        for m in s.instance_masks:
            ring = ndimage.binary_dilation(m, iterations=4) & ~fg & (s.mask == 0)
            if ring.sum() >= 10:
                diff = s.rgb[m].astype(float).mean(0) - s.rgb[ring].astype(float).mean(0)
                out.append(np.abs(diff).mean())
    assert len(out) >= 20
    return float(np.median(out))


def test_objects_blend_into_the_background_in_colour():
    plain = _median_contrast(SceneGenerator(**KW))
    camo = _median_contrast(CamouflageGenerator(**KW))
    assert camo < 0.7 * plain


def test_scenes_are_deterministic_and_keep_the_generators_ground_truth():
    a, b = CamouflageGenerator(**KW).sample(5), CamouflageGenerator(**KW).sample(5)
    assert (a.rgb == b.rgb).all() and (a.depth == b.depth).all()
    assert len(a.instance_masks) == len(a.boxes) >= 1
    for m, (c, x0, y0, x1, y1), k in zip(a.instance_masks, a.boxes, a.instance_classes):
        ys, xs = np.nonzero(m)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
        assert c == k and (a.mask[m] == c).all()


@pytest.mark.parametrize(
    ("kwargs", "word"), [({"wall_share": 1.5}, "wall_share"), ({"tint": (1.2, 1.0)}, "tint")]
)
def test_bad_options_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        CamouflageGenerator(**KW, **kwargs)
