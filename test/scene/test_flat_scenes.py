"""``FlatSceneGenerator``: the second, 2.5-D colour-overlap make: deterministic scenes whose
instance masks, boxes, class mask and depth agree, with a RealSense-like sensor model."""

from __future__ import annotations

import numpy as np
import pytest

from deal_ros.scene.flat_scenes import FlatSceneGenerator

SIZE = (120, 160)


def test_scenes_are_deterministic_per_seed_and_index():
    a = FlatSceneGenerator(size=SIZE, seed=1).sample(4)
    b = FlatSceneGenerator(size=SIZE, seed=1).sample(4)
    c = FlatSceneGenerator(size=SIZE, seed=2).sample(4)
    assert (a.rgb == b.rgb).all() and (a.depth == b.depth).all()
    assert not (a.rgb == c.rgb).all()


def test_ground_truth_agrees_with_itself_and_with_depth():
    gen = FlatSceneGenerator(size=SIZE, seed=0, diameter=(14.0, 30.0))
    for i in range(6):
        s = gen.sample(i)
        assert s.rgb.shape == (*SIZE, 3) and s.depth.shape == SIZE
        assert len(s.instance_masks) == len(s.boxes) == len(s.instance_classes) >= 1
        assert not (s.instance_masks.sum(0) > 1).any()  # visible pixels, one owner each
        for m, (c, x0, y0, x1, y1), k in zip(s.instance_masks, s.boxes, s.instance_classes):
            ys, xs = np.nonzero(m)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
            assert c == k and (s.mask[m] == c).all() and s.labels[c - 1] == 1
            # objects stand on the floor: nearer than the empty floor at their pixels
            assert (s.depth_gt[m] < s.background_depth[m]).mean() > 0.9
        ok = s.depth > 0
        assert 0.005 < 1 - ok.mean() < 0.3  # shadow, blob and salt holes, not a blank map
        err = np.abs(s.depth[ok] - s.depth_gt[ok])
        assert np.median(err) < 0.01 and np.allclose(
            s.depth[ok] * 1000, np.rint(s.depth[ok] * 1000), atol=1e-3
        )


def test_unknown_class_is_refused_by_name():
    with pytest.raises(ValueError, match="FlatSceneGenerator: classes"):
        FlatSceneGenerator(classes=("mug",))
