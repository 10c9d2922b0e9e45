"""DepthImage: one decode per depth image, any range read from it as depth_msg_to_metres gives."""

from __future__ import annotations

import numpy as np
import pytest

from deal_ros.core import depth_image
from deal_ros.core.depth import depth_msg_to_metres
from deal_ros.core.depth_image import DepthImage
from deal_ros.core.errors import DepthFormatError
from deal_ros.core.image_codec import numpy_to_image

RANGES = [(0.1, 10.0), (None, None), (0.5, None), (None, 2.0), (1.0, 1.0), (0.0, 3.5)]


def depth_messages():
    rng = np.random.default_rng(0)
    mm = rng.integers(0, 6000, (30, 40)).astype(np.uint16)
    mm[:3] = 0  # no measurement
    metres = rng.uniform(-1.0, 12.0, (30, 40)).astype(np.float32)
    metres[0, :5] = [np.nan, np.inf, -np.inf, 0.0, 1.0]
    metres[1, :4] = [0.1, 10.0, 0.5, 2.0]  # on the bounds
    return [numpy_to_image(mm, "16UC1"), numpy_to_image(metres, "32FC1")]


@pytest.mark.parametrize("min_m, max_m", RANGES)
def test_within_is_the_pair_depth_msg_to_metres_gives(min_m, max_m):
    for msg in depth_messages():
        want_m, want_valid = depth_msg_to_metres(msg, min_m=min_m, max_m=max_m)
        got_m, got_valid = DepthImage(msg, name="depth").within(min_m, max_m)
        assert got_m.dtype == np.float32 and got_valid.dtype == bool
        np.testing.assert_array_equal(got_valid, want_valid)
        np.testing.assert_array_equal(got_m, want_m)
        assert 0 < want_valid.sum() < want_valid.size or (min_m, max_m) == (1.0, 1.0)


def test_one_decode_for_every_reader(monkeypatch):
    calls = []
    real = depth_image.depth_msg_to_metres
    monkeypatch.setattr(
        depth_image, "depth_msg_to_metres", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    depth = DepthImage(depth_messages()[0], name="depth")
    assert calls == []  # nothing decoded before the first read
    gate = depth.within(0.1, 10.0)[1]
    cloud = depth.within(0.3, 2.0)[1]
    assert len(calls) == 1 and gate.sum() > cloud.sum()
    assert depth.decoded() is depth.decoded()  # the unranged pair is kept, not copied
    assert depth.header is depth.msg.header


def test_bad_depth_and_bad_ranges_say_what_is_wrong():
    bad = DepthImage(numpy_to_image(np.zeros((4, 4, 3), np.uint8), "rgb8"), name="/cam/depth")
    with pytest.raises(DepthFormatError, match="depth image '/cam/depth': unsupported depth"):
        bad.within(0.1, 10.0)
    depth = DepthImage(depth_messages()[0], name="depth")
    with pytest.raises(DepthFormatError, match=r"depth image 'depth': min_m \(3.0\) must be <="):
        depth.within(3.0, 2.0)
    with pytest.raises(DepthFormatError, match=r"depth image 'depth': min_m \(3.0\) must be <="):
        depth_msg_to_metres(depth.msg, name="depth", min_m=3.0, max_m=2.0)  # the same line
