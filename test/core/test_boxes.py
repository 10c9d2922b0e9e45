"""deal_ros.core.boxes: pixel windows and the box crop that torch and the runtime share."""

from __future__ import annotations

import numpy as np
import torch

from deal_ros.core.boxes import crop_to_box, pixel_box


def test_pixel_box_widens_by_the_margin_and_stays_inside_the_image():
    assert pixel_box([6.5, 0.2, 9.1, 3.0], (8, 10), margin=1.0) == (5, 0, 10, 4)
    assert pixel_box([2.0, 2.0, 4.0, 4.0], (8, 10), margin=0.5) == (1, 1, 5, 5)
    assert pixel_box([2.0, 2.0, 4.0, 4.0], (8, 10), margin=30) == (0, 0, 10, 8)


def test_crop_to_box_zeros_outside_numpy_and_torch_alike():
    box = [2.5, 1.0, 6.0, 4.2]  # pixels 2..5 x 1..4
    as_numpy = crop_to_box(np.ones((2, 6, 8), bool), box)
    as_torch = crop_to_box(torch.ones(2, 6, 8), box)
    expected = np.zeros((6, 8), bool)
    expected[1:5, 2:6] = True
    for plane in (as_numpy[0], as_numpy[1], as_torch[0].numpy() > 0, as_torch[1].numpy() > 0):
        np.testing.assert_array_equal(plane, expected)
    wide = crop_to_box(np.ones((6, 8), np.float32), box, margin=1.0)
    assert wide[0:6, 1:7].all() and not wide[:, 0].any() and not wide[:, 7].any()
    gone = crop_to_box(np.ones((6, 8)), [20.0, 20.0, 30.0, 30.0])  # a box beside the image
    assert not gone.any()
