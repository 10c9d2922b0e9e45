"""The 2 x 2 mosaic: four half-size tiles in reading order, labels joined, seams invalid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deal_ros.data.mosaic import half, mosaic, mosaic_labels, quadrants
from deal_ros.data.registry import build_dataset
from deal_ros.data.transforms import RGBD
from deal_ros.train.config import AugmentConfig
from deal_ros.train.data import TrainItems


def _tiles(values, h: int = 40, w: int = 56) -> list[RGBD]:
    return [half(_flat(v, h, w), hw) for v, hw in zip(values, quadrants(h, w))]


def _flat(value: int, h: int = 40, w: int = 56) -> RGBD:
    rgb = np.full((h, w, 3), value, np.uint8)
    depth = np.full((h, w), 0.5 + value / 100, np.float32)
    depth[:2, :2] = 0  # a hole (2 x 2: one pixel at half size), which must stay a hole
    mask = np.full((h, w), value % 7, np.uint8)
    return RGBD.from_arrays(rgb, depth, mask=mask)


def test_tiles_land_in_reading_order_at_half_size():
    out = mosaic(_tiles((10, 20, 30, 40)), seam=0)
    assert out.shape == (40, 56) and out.K is None
    quads = {(0, 0): 10, (0, 28): 20, (20, 0): 30, (20, 28): 40}
    for (y, x), v in quads.items():
        assert (out.rgb[y + 1 : y + 19, x + 1 : x + 27] == v).all()
        assert (out.mask[y + 1 : y + 19, x + 1 : x + 27] == v % 7).all()
    assert not out.valid[0, 0] and out.depth[0, 0] == 0  # the hole of tile a survives
    assert bool((out.depth[~out.valid] == 0).all())


def test_seams_are_invalid_depth_on_both_sides():
    out = mosaic(_tiles((10, 20, 30, 40)), seam=3)
    assert not out.valid[17:23].any() and not out.valid[:, 25:31].any()
    assert out.valid[10, 10] and out.valid[30, 45]
    assert (out.depth[17:23] == 0).all()


def test_without_depth_every_pixel_is_invalid():
    out = mosaic(_tiles((10, 20, 30, 40)), keep_depth=False)
    assert not out.valid.any() and not out.depth.any() and (out.rgb[5, 5] == 10).all()


def test_odd_sizes_and_bad_tiles():
    out = mosaic(_tiles((1, 2, 3, 4), 41, 57))
    assert out.shape == (41, 57)
    with pytest.raises(ValueError, match="4 tiles"):
        mosaic(_tiles((1, 2, 3)))
    with pytest.raises(ValueError, match="quadrants"):
        mosaic([*_tiles((1, 2, 3)), _flat(4, 20, 20)])


def test_labels_join():
    labels = [np.array([1, 0, 0]), np.array([0, 0, 0]), np.array([0, 0, 1]), np.array([1, 0, 0])]
    assert mosaic_labels(labels).tolist() == [1.0, 0.0, 1.0]


def test_train_items_mosaic_is_reproducible_and_labels_every_tile():
    scenes = build_dataset("scene:n=6,seed=3,size=40x56")
    aug = AugmentConfig(hflip=True, scale=[0.9, 1.1], color_jitter=0.1, mosaic=1.0)
    a, b = TrainItems(scenes, (32, 48), aug, seed=5), TrainItems(scenes, (32, 48), aug, seed=5)
    x = a[(2, 1)]
    for key in ("image", "depth", "valid", "labels"):
        assert torch.equal(x[key], b[(2, 1)][key]), key
    assert x["image"].shape == (3, 32, 48)
    own = torch.from_numpy(scenes[2].labels)
    assert bool((x["labels"] >= own).all())  # the item's own labels are kept
    assert not x["valid"].any() and not x["depth"].any()  # a mosaic item carries no depth
    plain = TrainItems(scenes, (32, 48), AugmentConfig(mosaic=0.0), seed=5)[(2, 1)]
    assert torch.equal(plain["labels"], own)
