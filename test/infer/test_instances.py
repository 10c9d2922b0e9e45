"""Instance post-processing helpers the segmenter node and deal infer share (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from deal_ros.infer import Runtime
from deal_ros.infer.instances import (
    InstanceResult,
    class_id_image,
    draw_instances,
    gate_instances,
    instance_id_image,
    pixel_box,
)

from instance_fixtures import box_bundle


def _three() -> InstanceResult:
    """Three instances on an 8x10 image: two overlapping (left half), one with an empty mask."""
    masks = np.zeros((3, 8, 10), bool)
    masks[0, 1:5, 1:5] = True  # best score, class 2
    masks[1, 3:7, 2:6] = True  # overlaps the first, class 1
    boxes = np.array([[1, 1, 5, 5], [2, 3, 6, 7], [6.5, 0.2, 9.1, 3.0]], np.float32)
    return InstanceResult(
        boxes=boxes,
        scores=np.array([0.9, 0.6, 0.3], np.float32),
        classes=np.array([2, 1, 2]),
        masks=masks,
    )


def test_class_ids_follow_the_instance_that_owns_each_pixel():
    r = _three()
    ids = instance_id_image(r.masks)
    classes = class_id_image(ids, r.classes)
    assert classes.dtype == np.uint8 and classes.shape == (8, 10)
    assert classes[3, 3] == 2  # overlap: the better-scored instance (class 2) wins
    assert classes[6, 3] == 1 and classes[0, 0] == 0
    np.testing.assert_array_equal(classes > 0, r.masks.any(0))
    np.testing.assert_allclose(r.class_scores(3), [0.6, 0.9, 0.0])
    empty = InstanceResult(
        np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), np.zeros((0, 8, 10), bool)
    )
    assert not class_id_image(instance_id_image(empty.masks, (8, 10)), empty.classes).any()
    np.testing.assert_array_equal(empty.class_scores(2), [0, 0])


def test_pixel_box_rounds_outwards_and_stays_inside_the_image():
    assert pixel_box([6.5, 0.2, 9.1, 3.0], (8, 10)) == (6, 0, 10, 3)
    assert pixel_box([-3.0, -1.0, 40.0, 50.0], (8, 10)) == (0, 0, 10, 8)
    assert pixel_box([12.0, 9.0, 11.0, 9.5], (8, 10)) == (10, 8, 10, 8)  # outside: empty


def test_the_gate_cuts_masks_and_drops_instances_it_empties():
    r = _three()
    everything = gate_instances(r, np.ones((8, 10), bool))
    assert len(everything) == 3  # a gate that keeps all changes nothing
    np.testing.assert_array_equal(everything.masks, r.masks)
    nothing = gate_instances(r, np.zeros((8, 10), bool))
    assert len(nothing) == 0 and nothing.masks.shape == (0, 8, 10)
    keep = np.zeros((8, 10), bool)
    keep[5:, :] = True  # bottom rows: only the second instance's lower part
    cut = gate_instances(r, keep)
    np.testing.assert_allclose(cut.scores, [0.6])
    np.testing.assert_array_equal(cut.masks[0], r.masks[1] & keep)
    keep[:, 7:] = True  # and the empty-masked instance's box
    np.testing.assert_allclose(gate_instances(r, keep).scores, [0.6, 0.3])
    with pytest.raises(ValueError, match=r"keep mask is \(4, 4\), the image \(8, 10\)"):
        gate_instances(r, np.ones((4, 4), bool))


def test_runtime_thresholds_change_at_run_time_and_fall_back_to_the_bundle():
    path = box_bundle().path
    rt = Runtime(path, threads=1)
    spec = rt.bundle.instance
    rt.set_thresholds(
        score_threshold=0.3, nms_threshold=0.4, mask_threshold=0.7, cam_threshold=0.9
    )  # fmt: skip  (cam_threshold: not read here)
    assert (rt.instance.score_threshold, rt.instance.nms_threshold) == (0.3, 0.4)
    assert rt.instance.mask_threshold == 0.7 and rt.score_threshold == 0.3
    rt.set_thresholds(score_threshold=-1.0, nms_threshold=None)
    assert rt.instance.score_threshold == spec.score_threshold
    assert rt.instance.nms_threshold == spec.nms_threshold and rt.instance.mask_threshold == 0.7
    with pytest.raises(ValueError, match="unknown nms"):
        rt.set_thresholds(nms=0.5)
    with pytest.raises(ValueError, match=r"mask_threshold must be in \[0, 1\]"):
        rt.set_thresholds(mask_threshold=2.0)
    rgb = np.full((48, 64, 3), 128, np.uint8)
    rt.set_thresholds(score_threshold=1.0)
    assert len(rt.detect(rgb)) == 0


def test_the_overlay_tints_each_pixel_once_with_its_owner_colour():
    masks = np.zeros((2, 40, 60), bool)
    masks[0, 10:30, 10:30], masks[1, 20:35, 20:40] = True, True
    boxes = np.array([[50, 0, 58, 4], [50, 30, 58, 34]], np.float32)  # labels out of the way
    rgb = np.full((40, 60, 3), 100, np.uint8)
    out = draw_instances(rgb, masks, boxes, np.array([0.9, 0.5]), np.array([1, 2]), ["a", "b"])
    # (25, 25): both masks, owned by the first; (12, 12): the first only; (32, 35): the second
    np.testing.assert_array_equal(out[25, 25], out[12, 12])
    assert not np.array_equal(out[32, 35], out[12, 12]) and (out[38, 2] == 100).all()
