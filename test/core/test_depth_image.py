"""DepthImage: a frame's depth decoded once for every reader of the same range."""

from __future__ import annotations

import numpy as np
import pytest

from deal_ros.core import depth_image
from deal_ros.core.depth import depth_msg_to_metres
from deal_ros.core.depth_image import DepthImage
from deal_ros.core.errors import DepthFormatError
from deal_ros.core.image_codec import numpy_to_image

RANGES = [(0.1, 10.0), (None, None), (0.5, None), (None, 2.0), (0.5, 2.0)]


def depth_messages():
    rng = np.random.default_rng(0)
    mm = rng.integers(0, 6000, (30, 40)).astype(np.uint16)
    mm[:3] = 0  # no measurement
    metres = rng.uniform(-1.0, 12.0, (30, 40)).astype(np.float32)
    metres[0, :5] = [np.nan, np.inf, -np.inf, 0.0, 1.0]
    metres[1, :4] = [0.1, 10.0, 0.5, 2.0]  # on the bounds
    return [numpy_to_image(mm, "16UC1"), numpy_to_image(metres, "32FC1")]


@pytest.mark.parametrize(("min_m", "max_m"), RANGES)
def test_within_is_what_depth_msg_to_metres_gives(min_m, max_m):
    for msg in depth_messages():
        want_m, want_valid = depth_msg_to_metres(msg, name="depth", min_m=min_m, max_m=max_m)
        got_m, got_valid = DepthImage(msg, name="depth").within(min_m, max_m)
        np.testing.assert_array_equal(got_valid, want_valid)
        np.testing.assert_array_equal(got_m, want_m)
        assert got_m.dtype == np.float32 and want_valid.any()


def test_readers_of_one_range_share_one_decode(monkeypatch):
    calls = []
    real = depth_image.depth_msg_to_metres
    monkeypatch.setattr(
        depth_image, "depth_msg_to_metres", lambda *a, **k: calls.append(k) or real(*a, **k)
    )
    depth = DepthImage(depth_messages()[0], name="depth")
    assert calls == [] and depth.decodes == 0  # nothing decoded before the first read
    gate = depth.within(0.1, 10.0)
    cloud = depth.within(0.1, 10.0)
    assert len(calls) == 1 and depth.decodes == 1 and cloud[0] is gate[0]
    with pytest.raises(ValueError, match="read-only"):
        gate[1][0, 0] = True  # shared between readers: nobody may write into it
    narrow = depth.within(0.3, 2.0)  # another range: its own decode
    assert depth.decodes == 2 and gate[1].sum() > narrow[1].sum()
    assert depth.header is depth.msg.header


def test_bad_depth_and_bad_ranges_say_what_is_wrong():
    bad = DepthImage(numpy_to_image(np.zeros((4, 4, 3), np.uint8), "rgb8"), name="/cam/depth")
    with pytest.raises(DepthFormatError, match="depth image '/cam/depth': unsupported depth"):
        bad.within(0.1, 10.0)
    depth = DepthImage(depth_messages()[0], name="depth")
    with pytest.raises(DepthFormatError, match=r"depth image 'depth': min_m \(3.0\) must be <="):
        depth.within(3.0, 2.0)
