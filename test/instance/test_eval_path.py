"""The mask path of ``deal eval`` for box runs, on a real COCO folder (RLE masks + 16-bit depth)
written by ``deal_ros.scene.coco_export``: images 240x320, network input 192x256 (and other
sizes and both fits). Known-good predictions - each ground-truth instance carried to the input
by the data pipeline's own fit (``fit_sample``, as the model's input image is) - go through
the same scoring as ``evaluate_model`` (``score_instances``: ``to_original``, RLE, COCOeval)
and must score mask AP 1; a mask shifted by the letterbox offset must not. This is the test
that tells collapsed masks from an evaluation that loses them (issue 17: 0.0 mask AP)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pycocotools")

from deal_ros.data.sample import Sample
from deal_ros.data.torch_dataset import fit_sample
from deal_ros.eval.instances import instance_ground_truth
from deal_ros.instance.condinst import Instances
from deal_ros.instance.config import load_box_config
from deal_ros.instance.data import open_box_dataset
from deal_ros.instance.evaluate import score_instances
from deal_ros.scene.camouflage import CamouflageGenerator
from deal_ros.scene.coco_export import write_coco_split


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("overlap-coco")
    gen = CamouflageGenerator(size=(240, 320), seed=3, min_objects=2, max_objects=4)
    write_coco_split((gen.sample(i) for i in range(3)), out, "val", gen.classes)
    return out


def _config(coco_dir, hw, fit):
    return load_box_config(
        "box",
        [
            f"data=coco:{coco_dir / 'val.json'}",
            f"data_options.depth={coco_dir / 'depth'}",
            f"input.height={hw[0]}",
            f"input.width={hw[1]}",
            f"input.fit={fit}",
        ],
    )


def _perfect(ds, cfg, shift: int = 0):
    """(index, sample, Instances) with every ground-truth instance as a predicted mask at the
    input size, placed by ``fit_sample`` exactly as the pipeline places the image."""
    size = (cfg.input.height, cfg.input.width)
    for i in range(len(ds)):
        s = ds[i]
        masks, classes, _ = instance_ground_truth(ds, i, s)
        ids = np.zeros(s.rgb.shape[:2], np.uint8)
        for k, m in enumerate(masks):
            ids[m] = k + 1
        fitted = fit_sample(Sample(rgb=s.rgb, labels=s.labels, mask=ids), size, cfg.input.fit)
        per = np.stack([fitted.mask == k + 1 for k in range(len(masks))])
        per = np.roll(per, shift, axis=2)
        boxes = []
        for m in per:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        yield (
            i,
            s,
            Instances(
                boxes=torch.tensor(boxes, dtype=torch.float32),
                scores=torch.linspace(0.9, 0.5, len(per)),
                classes=torch.as_tensor(classes),
                masks=torch.from_numpy(per.astype(np.float32)),
            ),
        )


@pytest.mark.parametrize(
    "hw, fit",
    [
        ((192, 256), "pad"),
        ((192, 256), "resize"),
        ((240, 320), "pad"),
        ((192, 192), "pad"),
        ((160, 256), "resize"),
    ],
)
def test_known_good_masks_score_ap_one_at_another_input_size(coco_dir, hw, fit):
    cfg = _config(coco_dir, hw, fit)
    ds = open_box_dataset(cfg, cfg.data)
    assert ds[0].depth is not None and ds[0].rgb.shape[:2] == (240, 320)
    r = score_instances(ds, cfg, _perfect(ds, cfg))
    assert r["instances"] >= 6 and r["detections"] == r["instances"]
    # resampling to the input and back moves a few outline pixels: IoU stays above 0.75
    assert r["segm"]["AP50"] == pytest.approx(1.0) and r["segm"]["AP75"] == pytest.approx(1.0)
    assert r["segm"]["AP"] > 0.8
    assert r["bbox"]["AP50"] == pytest.approx(1.0)


def test_masks_off_by_a_letterbox_shift_lose_ap(coco_dir):
    """The check has teeth: the same masks placed 12 input pixels off score far lower."""
    cfg = _config(coco_dir, (192, 192), "pad")
    ds = open_box_dataset(cfg, cfg.data)
    good = score_instances(ds, cfg, _perfect(ds, cfg))["segm"]["AP"]
    off = score_instances(ds, cfg, _perfect(ds, cfg, shift=12))["segm"]["AP"]
    assert off < 0.5 * good


def test_to_original_crops_each_mask_to_its_box_on_the_image():
    """``box_margin`` >= 0: a mask spilling past its box is cut there, on the image (after the
    letterbox is undone, as the runtime does), widened by the margin in input pixels."""
    from deal_ros.core.boxes import pixel_box
    from deal_ros.instance.evaluate import to_original

    masks = torch.ones(1, 64, 96)  # everywhere: a mask that ignores its box
    box = torch.tensor([[20.0, 10.0, 50.0, 40.0]])  # input pixels
    inst = Instances(box, torch.tensor([0.9]), torch.tensor([1]), masks)
    whole, boxes = to_original(inst, (64, 96), (90, 120), "pad")
    cut, same = to_original(inst, (64, 96), (90, 120), "pad", box_margin=2)
    np.testing.assert_array_equal(boxes, same)
    assert whole[0].all()  # -1 (the default): no crop
    margin = 2 * 120 / 85  # the 90x120 image is 64x85 inside the 64x96 input
    x0, y0, x1, y1 = pixel_box(boxes[0], (90, 120), margin)
    assert cut[0, y0:y1, x0:x1].all() and cut[0].sum() == (y1 - y0) * (x1 - x0)
