"""The synthetic RGB-D scene generator: determinism, geometry, sensor model, labels."""

from __future__ import annotations

import numpy as np
import pytest

from deal_ros.scene.generator import Scene, SceneGenerator, render_overview
from deal_ros.scene.sensor import DepthSensor

SIZE = (120, 160)


@pytest.fixture(scope="module")
def gen() -> SceneGenerator:
    return SceneGenerator(classes=("mug", "box", "ball"), size=SIZE, seed=3, difficulty="hard")


@pytest.fixture(scope="module")
def scenes(gen: SceneGenerator) -> list[Scene]:
    return [gen.sample(i) for i in range(8)]


def _same(a: Scene, b: Scene) -> bool:
    arrays = ("rgb", "depth", "mask", "labels", "instance_masks", "depth_gt", "background_depth")
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays) and a.boxes == b.boxes


def test_same_seed_and_index_give_the_same_scene_in_any_order(gen, scenes):
    again = SceneGenerator(classes=("mug", "box", "ball"), size=SIZE, seed=3, difficulty="hard")
    assert _same(again.sample(5), scenes[5])
    assert _same(gen.sample(2), scenes[2])  # after other samples were drawn
    assert not np.array_equal(scenes[0].rgb, scenes[1].rgb)
    other_seed = SceneGenerator(
        classes=("mug", "box", "ball"), size=SIZE, seed=4, difficulty="hard"
    )
    assert not np.array_equal(other_seed.sample(5).rgb, scenes[5].rgb)


def test_types_shapes_and_millimetre_quantisation(scenes):
    for s in scenes:
        assert s.rgb.shape == (*SIZE, 3) and s.rgb.dtype == np.uint8
        assert s.depth.shape == SIZE and s.depth.dtype == np.float32
        assert s.mask.dtype == np.uint8 and s.labels.shape == (3,)
        mm = s.depth.astype(np.float64) * 1000.0
        assert np.abs(mm - np.round(mm)).max() < 0.02
        assert s.depth.min() == 0.0 and s.depth[s.depth > 0].min() > 0.2
        assert s.K[0, 0] == s.K[1, 1] > 0 and s.K[0, 2] == pytest.approx((SIZE[1] - 1) / 2)


def test_objects_stand_in_front_of_the_room_and_everything_else_is_flat_room(scenes):
    """Painted look-alikes are flat: outside the 3-D objects the depth IS the empty room's."""
    for s in scenes:
        obj = (s.mask > 0) & (s.mask != 255)
        assert obj.any()
        gap = s.background_depth[obj] - s.depth_gt[obj]
        assert np.all(gap > 0) and np.median(gap) > 0.02  # touching the table at the bottom
        assert np.array_equal(s.depth_gt[s.mask == 0], s.background_depth[s.mask == 0])


def test_labels_boxes_and_instances_agree_with_the_mask(scenes):
    for s in scenes:
        for k in range(1, 4):
            assert s.labels[k - 1] == int((s.mask == k).any())
        assert len(s.boxes) == len(s.instance_masks) == len(s.instance_classes)
        assert s.instance_masks.sum(0).max() <= 1  # instances are disjoint
        union = np.zeros(SIZE, bool)
        for (cls, x0, y0, x1, y1), m, c in zip(s.boxes, s.instance_masks, s.instance_classes):
            ys, xs = np.nonzero(m)
            assert cls == c and (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert np.all(s.mask[m] == cls)
            union |= m
        assert np.array_equal(union, (s.mask > 0) & (s.mask != 255))


def test_depth_holes_are_present_and_crowd_at_object_edges(scenes):
    edge_rate, overall = [], []
    for s in scenes:
        holes = s.depth == 0
        assert 0.005 < holes.mean() < 0.3
        assert np.all(s.depth_gt > 0)  # the truth has no holes: they come from the sensor
        obj = (s.mask > 0).astype(np.int8)
        edge = np.zeros(SIZE, bool)
        edge[:, 1:] |= obj[:, 1:] != obj[:, :-1]
        edge[:, :-1] |= obj[:, 1:] != obj[:, :-1]
        edge_rate.append(holes[edge].mean())
        overall.append(holes.mean())
    assert np.mean(edge_rate) > 3 * np.mean(overall)


def test_depth_noise_grows_with_distance():
    g = SceneGenerator(size=SIZE, seed=1, difficulty="hard")
    near, far = [], []
    for i in range(4):
        s = g.sample(i)
        ok = s.depth > 0
        err = (s.depth - s.depth_gt)[ok]
        z = s.depth_gt[ok]
        near.append(err[z < np.quantile(z, 0.2)].std())
        far.append(err[z > np.quantile(z, 0.8)].std())
    assert np.mean(far) > 2 * np.mean(near)


def test_occlusion_shadow_falls_left_of_a_nearer_surface():
    z = np.full((4, 100), 2.0, np.float32)
    z[:, 50:60] = 0.5
    shadow = DepthSensor(baseline=0.05).occlusion_shadow(z, f=256.0)
    cols = np.nonzero(shadow[0])[0]
    width = 256 * 0.05 * (1 / 0.5 - 1 / 2.0)  # disparity step, 19.2 px
    assert cols.min() == 50 - int(width) and cols.max() == 49  # only left of the step
    assert not shadow[:, 50:].any()


def test_episode_frames_show_one_object_moving(gen):
    frames = list(gen.frames("ball", 5, seed=2))
    again = list(gen.frames("ball", 5, seed=2))
    assert len(frames) == 5 and all(_same(a, b) for a, b in zip(frames, again))
    for f in frames:
        assert f.labels.tolist() == [0, 0, 1] and len(f.boxes) == 1
    assert not np.array_equal(frames[0].mask, frames[-1].mask)
    area = [int((f.mask == 3).sum()) for f in frames]
    assert max(area) < 2 * min(area)  # the same object, slightly moved
    with pytest.raises(ValueError, match="unknown class 'cat'"):
        next(gen.frames("cat", 2))


def _shared_colour_fraction(difficulty: str) -> float:
    """Fraction of object pixels whose coarse colour bin also occurs in the background."""
    g = SceneGenerator(size=SIZE, seed=5, difficulty=difficulty)
    shared = []
    for i in range(6):
        s = g.sample(i)
        bg = s.rgb[s.mask == 0].astype(np.int32) // 32
        seen = np.zeros(512, bool)
        seen[bg[:, 0] * 64 + bg[:, 1] * 8 + bg[:, 2]] = True
        obj = s.rgb[(s.mask > 0) & (s.mask != 255)].astype(np.int32) // 32
        shared.append(seen[obj[:, 0] * 64 + obj[:, 1] * 8 + obj[:, 2]].mean())
    return float(np.mean(shared))


def test_difficulty_makes_colour_less_telling():
    """'hard' scenes: most object colours also occur in the background; more than 'easy'."""
    easy, hard = _shared_colour_fraction("easy"), _shared_colour_fraction("hard")
    assert hard > 0.6 and hard > easy + 0.2


def test_overview_grid_and_argument_errors(scenes):
    grid = render_overview(scenes[:2])
    h, w = SIZE
    assert grid.dtype == np.uint8 and grid.shape == (2 * h + 4, 3 * w + 8, 3)
    depth_panel = grid[:h, w + 4 : 2 * w + 4]
    assert np.all(depth_panel[scenes[0].depth == 0] == 0)  # invalid depth drawn black
    with pytest.raises(ValueError, match="class 'cat' has no shape"):
        SceneGenerator(classes=("cat",))
    assert (
        SceneGenerator(classes=("cup",), shapes={"cup": "mug"}, size=SIZE).sample(0).labels[0] == 1
    )
    with pytest.raises(ValueError, match="difficulty 'brutal'"):
        SceneGenerator(difficulty="brutal")


def test_zoom_is_a_longer_lens_with_bigger_objects_and_default_one():
    plain = SceneGenerator(size=SIZE, seed=5)
    close = SceneGenerator(size=SIZE, seed=5, zoom=2.5)
    assert plain.zoom == 1.0 and plain.sample(0).K[0, 0] == pytest.approx(0.8 * SIZE[1])
    assert close.sample(0).K[0, 0] == pytest.approx(2.5 * 0.8 * SIZE[1])

    def cover(g):
        return np.mean([((s.mask > 0) & (s.mask != 255)).mean() for s in map(g.sample, range(6))])

    assert cover(close) > 2.5 * cover(plain)
    with pytest.raises(ValueError, match="zoom"):
        SceneGenerator(size=SIZE, zoom=0.0)
