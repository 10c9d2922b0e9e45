"""One letterbox / crop geometry (``deal_ros.core.placement``): the training fit
(``fit_sample``), the inference letterbox (``Preprocessor``) and the way back (``to_original``,
``unplace_boxes``) all agree with it, and the eval overlay is ``deal infer``'s plus the ground
truth."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from deal_ros.core.placement import Placement, placement
from deal_ros.data.sample import Box, Sample
from deal_ros.data.torch_dataset import fit_sample
from deal_ros.infer import preprocess
from deal_ros.infer.bundle import InputSpec
from deal_ros.infer.instances import INSTANCE_COLOURS, draw_instances
from deal_ros.infer.postprocess import unplace_boxes
from deal_ros.instance.condinst import Instances
from deal_ros.instance.evaluate import to_original

# (image, input): odd sizes, wider / taller / equal aspect, up and down scaling, 1-pixel sides
CASES = [
    ((37, 91), (24, 32)),
    ((91, 37), (24, 32)),
    ((33, 33), (17, 29)),
    ((7, 5), (31, 23)),
    ((1, 57), (9, 13)),
    ((45, 1), (13, 9)),
    ((24, 32), (24, 32)),
]
FITS = ("resize", "pad", "crop")


def _sample(h: int, w: int) -> Sample:
    """Mask all 1 (so the 255 fill shows where the image is not), a box over the whole image,
    a camera with its optical centre off the image centre."""
    rng = np.random.default_rng(h * 100 + w)
    K = np.array([[50.0, 0, 0.3 * w], [0, 50.0, 0.6 * h], [0, 0, 1]])
    return Sample(
        rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        labels=np.zeros(1, np.float32),
        mask=np.ones((h, w), np.uint8),
        boxes=[Box(1, 0.0, 0.0, float(w), float(h))],
        meta={"K": K},
    )


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize(("image", "size"), CASES)
def test_fit_sample_puts_the_image_where_placement_says(image, size, fit):
    (h, w), (H, W) = image, size
    p = placement(image, size, fit)
    assert p.image == image
    out = fit_sample(_sample(h, w), size, fit)
    assert out.rgb.shape == (H, W, 3)
    rows = slice(max(p.top, 0), min(p.top + p.height, H))
    cols = slice(max(p.left, 0), min(p.left + p.width, W))
    inside = np.zeros((H, W), bool)
    inside[rows, cols] = True
    np.testing.assert_array_equal(out.mask != 255, inside)
    if fit == "resize":
        assert (p.top, p.left, p.height, p.width) == (0, 0, H, W)
    elif fit == "pad":  # fits inside, one side filled (within rounding), centred
        assert p.top >= 0 and p.left >= 0 and p.height <= H and p.width <= W
        assert p.height == H or p.width == W or (p.height, p.width) == (1, 1)
    else:  # covers the input: the window lies inside the scaled image
        assert p.top <= 0 and p.left <= 0 and p.height >= H and p.width >= W
        assert inside.all()
    # the whole-image box and the optical centre go where the placement puts the image
    box = out.boxes[0]
    np.testing.assert_allclose(
        [box.x0, box.y0, box.x1, box.y1], [cols.start, rows.start, cols.stop, rows.stop], atol=1e-9
    )
    sx, sy = p.width / w, p.height / h
    cx, cy = (0.3 * w + 0.5) * sx - 0.5 + p.left, (0.6 * h + 0.5) * sy - 0.5 + p.top
    np.testing.assert_allclose(out.meta["K"][:2, 2], [cx, cy], atol=1e-9)
    np.testing.assert_allclose(np.diag(out.meta["K"])[:2], [50 * sx, 50 * sy])


@pytest.mark.parametrize(("image", "size"), CASES)
def test_inference_letterbox_is_the_training_pad(image, size):
    """The bundle's Preprocessor pads with the same geometry (and the mean colour) as
    fit_sample, bit for bit on the image pixels."""
    fill = (124, 116, 104)
    pre = preprocess.Preprocessor(
        InputSpec(height=size[0], width=size[1], fit="pad", pad_value=fill)
    )
    s = _sample(*image)
    x, where = pre.with_placement(s.rgb, size)
    assert where == placement(image, size, "pad")
    np.testing.assert_allclose(
        x[0].transpose(1, 2, 0) * 255, fit_sample(s, size, "pad").rgb, atol=1e-3
    )


def test_placement_is_re_exported_and_torch_and_ros_free():
    assert preprocess.Placement is Placement and preprocess.placement is placement
    code = (
        "import sys; import deal_ros.core.placement; "
        "sys.exit(any(m in sys.modules for m in ('torch', 'rclpy')))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_unknown_fit_is_one_line():
    with pytest.raises(
        ValueError, match=r"^placement: fit='stretch': choose one of resize, crop, pad$"
    ):
        placement((10, 10), (8, 8), "stretch")


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize(("image", "size"), [((37, 91), (24, 32)), ((61, 47), (29, 40))])
def test_to_original_undoes_fit_sample(image, size, fit):
    """A mask and box fitted like training inputs, taken as predictions at the input size,
    come back where they were on the image (up to resampling at the edges)."""
    h, w = image
    mask = np.zeros((h, w), np.uint8)
    y0, y1, x0, x1 = h // 4, 3 * h // 4, w // 3, 2 * w // 3  # inside any crop window here
    mask[y0:y1, x0:x1] = 1
    s = Sample(
        rgb=np.zeros((h, w, 3), np.uint8),
        labels=np.zeros(1, np.float32),
        mask=mask,
        boxes=[Box(1, float(x0), float(y0), float(x1), float(y1))],
    )
    out = fit_sample(s, size, fit)
    b = out.boxes[0]
    inst = Instances(
        boxes=torch.tensor([[b.x0, b.y0, b.x1, b.y1]], dtype=torch.float32),
        scores=torch.ones(1),
        classes=torch.ones(1, dtype=torch.long),
        masks=torch.from_numpy((out.mask == 1).astype(np.float32))[None],
    )
    masks, boxes = to_original(inst, size, image, fit)
    assert masks.shape == (1, h, w) and boxes.dtype == np.float32
    truth = mask.astype(bool)
    iou = np.count_nonzero(masks[0] & truth) / np.count_nonzero(masks[0] | truth)
    assert iou > 0.85, iou
    np.testing.assert_allclose(boxes[0], [x0, y0, x1, y1], atol=1e-4)
    np.testing.assert_array_equal(
        boxes, unplace_boxes(inst.boxes.numpy(), placement(image, size, fit))
    )


def test_eval_overlay_is_the_infer_overlay_plus_white_ground_truth():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 200, (40, 60, 3), dtype=np.uint8)
    masks = np.zeros((2, 40, 60), bool)
    masks[0, 5:20, 5:30], masks[1, 22:35, 30:55] = True, True
    boxes = np.array([[5, 5, 30, 20], [30, 22, 55, 35]], np.float32)
    args = (rgb, masks, boxes, np.array([0.9, 0.5]), np.array([1, 2]), ["a", "b"])
    plain = draw_instances(*args)
    gt = [(2.0, 3.0, 50.0, 38.0)]
    with_gt = draw_instances(*args, outlines=gt)
    white = np.all(with_gt == 255, axis=2)
    assert white[3, 2:50].all() and white[37, 2:50].all() and white[3:38, 2].all()
    assert white[3:38, 49].all() and not white[20, 20]  # an outline, not a fill
    changed = np.any(with_gt != plain, axis=2)
    assert changed.any() and not changed[~white].any()  # only the outline is added
    # the best instance is tinted with the first colour (weight 0.55 in 8 bits, the semantic
    # overlay's) and drawn last
    inner = plain[18, 26].astype(float)
    weight = round(0.55 * 255) / 255
    expect = (1 - weight) * rgb[18, 26] + weight * INSTANCE_COLOURS[0]
    np.testing.assert_allclose(inner, expect, atol=0.51)
