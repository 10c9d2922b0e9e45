"""Box data: bad annotations skipped with counts or refused with one line, augmentation that
keeps boxes on their objects, instance ground truth, and the ``stage: box`` config."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from deal_ros.data.registry import build_dataset
from deal_ros.data.sample import Box, Sample
from deal_ros.errors import DealError
from deal_ros.instance.config import (
    BoxAugmentConfig,
    is_box_config,
    load_box_config,
)
from deal_ros.instance.data import (
    BoxTransform,
    box_items,
    clean_boxes,
    instance_ground_truth,
    open_box_dataset,
)
from deal_ros.instance.train import check_has_boxes
from deal_ros.train.config import ConfigError


def test_clean_boxes_skips_and_counts_bad_boxes():
    boxes = [
        Box(1, 10, 10, 30, 30),  # fine
        Box(2, 50, 5, 50, 20),  # zero width
        Box(1, 40, 40, 20, 60),  # x1 < x0
        Box(1, 200, 10, 240, 30),  # right of the image
        Box(1, -30, -30, -1, 5),  # above-left of the image
        Box(7, 10, 10, 20, 20),  # class id outside 1..K
        Box(0, 10, 10, 20, 20),  # 0 is background, not a class
        Box(1, float("nan"), 0, 5, 5),  # not finite
        Box(2, -5, 50, 20, 80),  # reaches past the image: clipped
        Box(1, 95.6, 10, 120, 20),  # under one pixel once clipped
    ]
    kept, counts = clean_boxes(boxes, 64, 96, num_classes=2)
    assert [(b.class_id, b.x0, b.y0, b.x1, b.y1) for b in kept] == [
        (1, 10, 10, 30, 30),
        (2, 0.0, 50.0, 20.0, 64.0),
    ]
    assert counts == {"invalid": 1, "empty": 3, "outside": 2, "unknown_class": 2}


def _scene_sample(size=(64, 96)):
    ds = build_dataset(f"scene:n=4,seed=3,size={size[0]}x{size[1]}")
    return ds, ds[0]


def _tight(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_box_transform_keeps_boxes_on_their_objects():
    ds, s = _scene_sample()
    assert s.boxes, "the generator labels its objects with boxes"
    t = BoxTransform(
        (64, 96), 3, "resize", BoxAugmentConfig(hflip=True, scale=[1.3, 1.3], color_jitter=0.0)
    )
    for seed in range(6):
        out = t(s, np.random.default_rng(seed))
        assert out.rgb.shape == (64, 96, 3) and out.meta["box_skipped"]["empty"] == 0
        for b in out.boxes:  # each box still frames pixels of its class
            x0, y0 = math.floor(b.x0), math.floor(b.y0)
            inside = out.mask[y0 : math.ceil(b.y1), x0 : math.ceil(b.x1)]
            assert (inside == b.class_id).any()
            assert 0 <= b.x0 < b.x1 <= 96 and 0 <= b.y0 < b.y1 <= 64
    # an exact check without scaling: a flipped box is the tight box of the flipped mask
    flip = BoxTransform(
        (64, 96), 3, "resize", BoxAugmentConfig(hflip=True, scale=[1.0, 1.0], color_jitter=0.0)
    )
    masks, _, _ = instance_ground_truth(ds, 0, s)
    for seed in range(8):
        rng = np.random.default_rng(seed)
        rng.uniform(1.0, 1.0)  # the transform draws its scale first, then the flip
        flipped = rng.random() < 0.5
        out = flip(s, np.random.default_rng(seed))
        for b, m in zip(out.boxes, masks):
            ref = _tight(m[:, ::-1] if flipped else m)
            assert (b.x0, b.y0, b.x1, b.y1) == pytest.approx(ref)


def _write_coco(tmp_path, anns, categories=None):
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in (1, 2):
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(
            img_dir / f"{i}.png"
        )
        np.save(depth_dir / f"{i}.npy", np.full((64, 96), 1.5, np.float32))
    data = {
        "images": [{"id": i, "file_name": f"{i}.png", "height": 64, "width": 96} for i in (1, 2)],
        "annotations": anns,
        "categories": categories or [{"id": 1, "name": "mug"}, {"id": 2, "name": "box"}],
    }
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps(data))
    return path, img_dir, depth_dir


def _ann(i, image, cat, bbox):
    x, y, w, h = bbox
    poly = [x, y, x + w, y, x + w, y + h, x, y + h]
    return {
        "id": i,
        "image_id": image,
        "category_id": cat,
        "bbox": bbox,
        "iscrowd": 0,
        "area": w * h,
        "segmentation": [poly],
    }


def test_coco_bad_annotations_are_counted_or_refused(tmp_path):
    anns = [
        _ann(1, 1, 1, [10, 10, 20, 20]),
        _ann(2, 1, 2, [30, 5, 0, 20]),  # empty (w = 0)
        _ann(3, 1, 1, [150, 10, 20, 20]),  # outside the 96 x 64 image
        _ann(4, 2, 2, [80, 40, 40, 40]),  # partly outside: clipped to 80..96 x 40..64
    ]
    path, img_dir, depth_dir = _write_coco(tmp_path, anns)
    cfg = load_box_config(
        None, [f"data=coco:{path}", f"depth={depth_dir}", f"data_options.images={img_dir}"]
    )
    ds = open_box_dataset(cfg, cfg.data)
    items = box_items(ds, (64, 96))
    first, second = items[0], items[1]
    assert first["meta"]["box_skipped"] == {
        "invalid": 0,
        "empty": 1,
        "outside": 1,
        "unknown_class": 0,
    }
    assert first["boxes"].tolist() == [[1.0, 10.0, 10.0, 30.0, 30.0]]
    assert second["boxes"].tolist() == [[2.0, 80.0, 40.0, 96.0, 64.0]]
    assert bool(first["has_depth"]) and float(first["depth"].max()) == pytest.approx(1.5)
    masks, classes, crowd = instance_ground_truth(ds, 0, ds[0])
    assert masks.shape == (3, 64, 96) and classes.tolist() == [1, 2, 1] and not crowd.any()
    # a category id the file does not declare: one line naming the annotation
    bad, _, _ = _write_coco(tmp_path, [_ann(9, 1, 5, [1, 1, 5, 5])])
    with pytest.raises(DealError, match=r"category_id 5\) of annotation 9"):
        build_dataset(f"coco:{bad}", images=img_dir)


def test_no_usable_box_is_one_clear_error():
    rgb = np.zeros((32, 32, 3), np.uint8)

    class NoBoxes:
        classes = ("mug",)
        source = "folder:./frames"

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return Sample(rgb=rgb, labels=np.ones(1, np.float32), boxes=[Box(1, 5, 5, 5, 9)])

    with pytest.raises(
        DealError, match=r"no usable box in 3 of its 3 samples \(skipped: empty 3\)"
    ):
        check_has_boxes(NoBoxes(), 1)


def test_box_config_preset_overrides_and_errors():
    cfg = load_box_config(
        "box",
        [
            "data=scene:n=4",
            "loss.depth_tau=0.7",
            "name=001",
            "distill.enabled=false",
            "model.sizes_of_interest=[32,64]",
        ],
    )
    assert cfg.stage == "box" and cfg.loss.depth_tau == 0.7 and cfg.name == "001"
    assert cfg.distill.enabled is False and cfg.model.sizes_of_interest == [32.0, 64.0]
    assert cfg.distill.ema == 0.999 and cfg.distill.tau == 0.8 and cfg.distill.dice_weight == 4.0
    assert is_box_config("box", []) and not is_box_config("scene", [])
    assert is_box_config(None, ["stage=box"])
    with pytest.raises(ConfigError, match=r"unknown config key 'loss.depth_tua'.*loss.depth_tau"):
        load_box_config("box", ["loss.depth_tua=0.5"])
    with pytest.raises(ConfigError, match="multiples of 8"):
        load_box_config("box", ["input.height=100"])
    with pytest.raises(ConfigError, match=r"distill\.match"):
        load_box_config("box", ["distill.match=area"])
    with pytest.raises(ConfigError, match=r"distill\.pseudo"):
        load_box_config("box", ["distill.pseudo=hard"])


def test_loader_workers_default_to_what_the_machine_has():
    """The preset's ``num_workers: auto``: one per usable CPU but one, at most 4 (the old 4 on a
    2-core machine made torch warn on every run); explicit counts are kept, bad ones refused."""
    from deal_ros.engine.settings import auto_workers, usable_cpus

    assert [auto_workers(n) for n in (1, 2, 3, 8, 64)] == [0, 1, 2, 4, 4]
    assert load_box_config("box", []).train.num_workers == auto_workers(usable_cpus())
    assert load_box_config(None, []).train.num_workers == auto_workers()
    assert load_box_config("box", ["train.num_workers=3"]).train.num_workers == 3
    assert load_box_config("box", ["train.num_workers=auto"]).train.num_workers == auto_workers()
    with pytest.raises(ConfigError, match=r"train\.num_workers: expected auto or a count"):
        load_box_config("box", ["train.num_workers=many"])
