"""``deal_ros.scene.coco_export``: generated scenes written as a COCO instances folder (RLE
masks encoded in plain Python, 16-bit millimetre depth) that the ``coco:`` adapter reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from deal_ros.data.adapters.coco import rle_mask
from deal_ros.scene.camouflage import CamouflageGenerator
from deal_ros.scene.coco_export import rle_encode, write_coco_split

pytest.importorskip("pycocotools")


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("overlap-coco")
    gen = CamouflageGenerator(size=(240, 320), seed=3, min_objects=2, max_objects=4)
    write_coco_split((gen.sample(i) for i in range(3)), out, "val", gen.classes)
    return out


def test_rle_written_decodes_to_the_scene_masks(coco_dir):
    data = json.loads((coco_dir / "val.json").read_text())
    gen = CamouflageGenerator(size=(240, 320), seed=3, min_objects=2, max_objects=4)
    scene = gen.sample(0)
    anns = [a for a in data["annotations"] if a["image_id"] == 1]
    assert len(anns) == len(scene.instance_masks) >= 2
    for a, m in zip(anns, scene.instance_masks):
        assert (rle_mask(a["segmentation"], 240, 320, "test") == m).all()
        assert a["area"] == m.sum()
    from pycocotools import mask as mask_utils  # the encoder agrees with pycocotools'

    m = scene.instance_masks[0]
    ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert rle_encode(m)["counts"] == ref["counts"].decode("ascii")
    full = np.ones((5, 4), bool)
    assert rle_encode(full)["counts"] == mask_utils.encode(
        np.asfortranarray(full.astype(np.uint8))
    )["counts"].decode("ascii")


def test_depth_folder_holds_millimetres_with_zero_invalid(coco_dir):
    gen = CamouflageGenerator(size=(240, 320), seed=3, min_objects=2, max_objects=4)
    depth = gen.sample(0).depth
    mm = np.asarray(Image.open(coco_dir / "depth" / "val_00000.png"))
    assert mm.dtype == np.uint16 and mm.shape == depth.shape
    ok = np.isfinite(depth) & (depth > 0)
    assert ((mm == 0) == ~ok).all() and (~ok).any()
    assert np.abs(mm[ok] / 1000.0 - depth[ok]).max() <= 0.0005 + 1e-9
