"""The hard multi-object benchmark: the generator's "multi" mode, the scene: adapter's mode=,
and the VOC writer read back through the voc: adapter (JPEG, palette masks, 16-bit depth)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deal_ros.data.registry import build_dataset
from deal_ros.scene.generator import MODES, SceneGenerator
from deal_ros.scene.voc_writer import depth_millimetres, write_scene_voc

SIZE = (96, 128)


@pytest.fixture(scope="module")
def multi() -> SceneGenerator:
    return SceneGenerator.from_mode("multi", size=SIZE, seed=7)


def test_multi_mode_is_multi_object_multi_label_with_realsense_holes(multi):
    scenes = [multi.sample(i) for i in range(12)]
    assert multi.classes == ("mug", "box", "ball", "can") and multi.max_objects == 3
    counts = [len(s.boxes) for s in scenes]
    assert min(counts) >= 1 and max(counts) >= 2 and max(counts) <= 3
    assert any(s.labels.sum() >= 2 for s in scenes)  # several classes in one image
    holes = np.mean([(s.depth == 0).mean() for s in scenes])
    assert 0.03 < holes < 0.3  # 3 % random holes plus shadows and edge drop-outs
    rolls = [abs(SceneGenerator.from_mode("multi", size=SIZE, seed=k)._room(
        np.random.default_rng(k)).camera_angles[2]) for k in range(8)]  # fmt: skip
    assert max(rolls) > 0.1  # a slanted table, not the default 0.02 rad wobble


def test_projector_shadow_leaves_a_hole_beside_every_object(multi):
    """Left of each object's silhouette (where the background is farther) depth is missing
    far more often than on the background at large."""
    beside, overall = [], []
    for i in range(8):
        s = multi.sample(i)
        for m in s.instance_masks:
            left = np.zeros_like(m)
            left[:, :-3] = m[:, 3:] & ~m[:, :-3]
            left &= s.mask == 0
            if left.sum() > 5:
                beside.append((s.depth[left] == 0).mean())
        overall.append((s.depth[s.mask == 0] == 0).mean())
    assert np.mean(beside) > 3 * np.mean(overall)


def test_mode_keywords_override_and_bad_values_fail():
    g = SceneGenerator.from_mode("multi", size=SIZE, classes=("bottle", "mug"), salt=0.0)
    assert g.classes == ("bottle", "mug") and g.salt == 0.0 and MODES["multi"]["salt"] == 0.03
    with pytest.raises(ValueError, match="mode 'nope'"):
        SceneGenerator.from_mode("nope")
    with pytest.raises(ValueError, match="roll"):
        SceneGenerator(roll=2.0)
    with pytest.raises(ValueError, match="salt"):
        SceneGenerator(salt=0.9)


def test_scene_adapter_mode_multi_matches_the_generator(multi):
    ds = build_dataset("scene:n=3,seed=7,size=96x128,mode=multi")
    assert ds.classes == multi.classes and "mode=multi" in ds.source
    s, ref = ds[2], multi.sample(2)
    assert np.array_equal(s.rgb, ref.rgb) and np.array_equal(s.mask, ref.mask)
    other = build_dataset("scene:n=2,seed=7,size=96x128,mode=multi,max_objects=1")
    assert all(len(other[i].boxes) <= 1 for i in range(2))


def test_default_generator_is_unchanged_by_the_new_options():
    """roll/salt/shadow_baseline default to the old draws: the same scene, bit for bit."""
    a = SceneGenerator(size=SIZE, seed=3).sample(1)
    b = SceneGenerator(size=SIZE, seed=3, roll=0.02, salt=None, shadow_baseline=None).sample(1)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)


def test_voc_writer_round_trip(tmp_path, multi):
    root = write_scene_voc(multi, tmp_path / "voc", n_train=4, n_val=2)
    assert (root / "ImageSets/Segmentation/train.txt").read_text().split() == [
        f"tr{i:05d}" for i in range(4)
    ]
    val_ids = (root / "ImageSets/Segmentation/val.txt").read_text().split()
    assert val_ids == ["va00004", "va00005"]  # held-out scenes: indices after the train ones
    assert (root / "vocabulary.txt").read_text().split() == list(multi.classes)
    with Image.open(root / "SegmentationClass/tr00000.png") as m:
        assert m.mode == "P"
    with Image.open(root / "depth/tr00000.png") as d:
        assert np.asarray(d).dtype == np.uint16
    ds = build_dataset(f"voc:{root}", split="val", depth=str(root / "depth"),
                       vocabulary=list(multi.classes), labels_from="masks")  # fmt: skip
    s, ref = ds[1], multi.sample(5)
    assert np.array_equal(s.mask, ref.mask)
    assert np.array_equal(s.labels.astype(np.uint8), ref.labels)
    assert np.abs(s.depth - ref.depth).max() < 1e-6  # already mm-quantised: exact
    assert np.array_equal(s.valid, ref.depth > 0)
    assert np.abs(s.rgb.astype(int) - ref.rgb.astype(int)).mean() < 12  # JPEG q90 (4:2:0)
    assert s.rgb.flags.writeable and s.rgb.flags.c_contiguous  # for C extensions


def test_depth_millimetres_marks_invalid_as_zero():
    d = np.array([[0.0, np.nan, np.inf, 0.5], [70.0, 1.2344, -1.0, 0.0004]], np.float32)
    mm = depth_millimetres(d)
    assert mm.dtype == np.uint16
    assert mm.tolist() == [[0, 0, 0, 500], [65535, 1234, 0, 0]]
