"""Depth units, invalid pixels and resampling that never blends invalid depth into valid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rosbags.typesys import Stores, get_typestore

from deal_ros.core.depth import (
    depth_msg_to_metres,
    depth_stats,
    depth_to_metres,
    metres_to_16uc1,
    metres_to_32fc1,
    resize_depth,
)
from deal_ros.core.errors import DepthFormatError
from deal_ros.core.image_codec import numpy_to_image

NAN, INF = float("nan"), float("inf")


# --- units and validity --------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_millimetres_to_metres(encoding):
    raw = np.array([[0, 50, 1234], [9999, 10001, 65535]], np.uint16)
    depth, valid = depth_to_metres(raw, encoding)
    assert depth.dtype == np.float32 and valid.dtype == bool
    np.testing.assert_array_equal(valid, [[False, False, True], [True, False, False]])
    np.testing.assert_allclose(depth, [[0, 0, 1.234], [9.999, 0, 0]], rtol=1e-6)


def test_zero_millimetres_is_invalid_even_without_range_limits():
    raw = np.array([[0, 1, 65535]], np.uint16)
    depth, valid = depth_to_metres(raw, "16UC1", min_m=None, max_m=None)
    np.testing.assert_array_equal(valid, [[False, True, True]])
    np.testing.assert_allclose(depth, [[0, 0.001, 65.535]], rtol=1e-6)


def test_float_metres_validity_of_zero_nan_inf_negative_and_range():
    raw = np.array([[0.0, NAN, INF, -INF, -1.0, 0.05, 2.5, 12.0]], np.float32)
    depth, valid = depth_to_metres(raw, "32FC1")
    np.testing.assert_array_equal(valid, [[0, 0, 0, 0, 0, 0, 1, 0]])
    np.testing.assert_array_equal(depth, [[0, 0, 0, 0, 0, 0, 2.5, 0]])
    depth, valid = depth_to_metres(raw, "32FC1", min_m=None, max_m=None, fill=NAN)
    np.testing.assert_array_equal(valid, [[0, 0, 0, 0, 0, 1, 1, 1]])
    assert np.isnan(depth[0, :5]).all() and depth[0, 5] == np.float32(0.05)


def test_scale_override_64fc1_and_hxwx1():
    raw = np.array([[[10000], [0]]], np.uint16)  # 0.1 mm units (our example), HxWx1
    depth, valid = depth_to_metres(raw, "16UC1", scale=0.0001)
    assert depth.shape == (1, 2) and valid.tolist() == [[True, False]]
    assert depth[0, 0] == pytest.approx(1.0)
    depth, valid = depth_to_metres(np.array([[3.0, NAN]]), "64FC1")
    assert depth.dtype == np.float32 and valid.tolist() == [[True, False]]


def test_input_is_not_modified():
    raw = np.array([[NAN, 1.0]], np.float32)
    depth_to_metres(raw, "32FC1")
    assert np.isnan(raw[0, 0])


def test_depth_from_messages_rclpy_and_rosbags():
    raw = np.array([[0, 1500], [700, 20000]], np.uint16)
    ts = get_typestore(Stores.ROS2_JAZZY)
    for msg_type in (None, ts.types["sensor_msgs/msg/Image"]):
        msg = numpy_to_image(raw, "16UC1", msg_type=msg_type)
        depth, valid = depth_msg_to_metres(msg, name="aligned_depth")
        assert valid.tolist() == [[False, True], [True, False]]
        np.testing.assert_allclose(depth, [[0, 1.5], [0.7, 0]], rtol=1e-6)


def test_depth_errors_name_the_problem():
    with pytest.raises(DepthFormatError) as err:
        depth_to_metres(np.zeros((2, 2), np.float32), "16UC1", name="foo")
    assert str(err.value) == "depth image 'foo': 16UC1 expects dtype uint16, got float32"
    with pytest.raises(DepthFormatError) as err:
        depth_to_metres(np.zeros((2, 2), np.uint8), "mono8")
    assert str(err.value) == (
        "depth image: unsupported depth encoding 'mono8'; supported: 16UC1, mono16, 32FC1, 64FC1"
    )
    with pytest.raises(DepthFormatError) as err:
        depth_to_metres(np.zeros((2, 2, 3), np.uint16), "16UC1")
    assert str(err.value) == "depth image: expects an HxW (or HxWx1) array, got shape (2, 2, 3)"
    with pytest.raises(DepthFormatError) as err:
        depth_to_metres(np.zeros((2, 2), np.uint16), "16UC1", min_m=5, max_m=1)
    assert str(err.value) == "depth image: min_m (5) must be <= max_m (1)"
    with pytest.raises(DepthFormatError, match=r"scale must be a finite number > 0, got -1.0"):
        depth_to_metres(np.zeros((2, 2), np.uint16), "16UC1", scale=-1)
    with pytest.raises(ValueError):  # plain Python callers can catch ValueError
        depth_to_metres(np.zeros((2, 2), np.uint16), "16UC3")


# --- stats and writer side -----------------------------------------------------------------


def test_depth_stats():
    valid = np.array([[True, False], [True, True]])
    depth = np.array([[1.0, 0.0], [3.0, 2.0]], np.float32)
    stats = depth_stats(valid, depth)
    assert (stats.n_valid, stats.n_total, stats.valid_fraction) == (3, 4, 0.75)
    assert (stats.min_m, stats.max_m, stats.median_m) == (1.0, 3.0, 2.0)
    assert not stats.all_invalid
    empty = depth_stats(np.zeros((3, 3), bool), depth_m=np.ones((3, 3)))
    assert empty.all_invalid and empty.valid_fraction == 0.0 and np.isnan(empty.median_m)


def test_metres_to_16uc1_round_trip_and_invalid_values():
    depth = np.array([[1.2344, 0.0004, 70.0, NAN, INF, -2.0, 0.5]], np.float32)
    raw = metres_to_16uc1(depth)
    assert raw.dtype == np.uint16
    assert raw.tolist() == [[1234, 0, 0, 0, 0, 0, 500]]
    valid = np.array([[True, True, True, True, True, True, False]])
    assert metres_to_16uc1(depth, valid)[0, 6] == 0
    back, ok = depth_to_metres(metres_to_16uc1(np.array([[0.75, 3.0]])), "16UC1")
    np.testing.assert_allclose(back, [[0.75, 3.0]], rtol=1e-6)
    assert ok.all()


def test_metres_to_32fc1_marks_invalid_with_nan():
    out = metres_to_32fc1(np.array([[1.5, 2.0]]), np.array([[True, False]]))
    assert out.dtype == np.float32 and out[0, 0] == 1.5 and np.isnan(out[0, 1])
    back, valid = depth_to_metres(out, "32FC1")
    assert valid.tolist() == [[True, False]] and back[0, 0] == 1.5


# --- resizing ------------------------------------------------------------------------------


def test_area_downsampling_averages_valid_pixels_only():
    depth = np.array(
        [
            [1.0, 1.0, 5.0, 7.0],
            [1.0, 999.0, 9.0, 999.0],
            [2.0, 999.0, 3.0, 3.0],
            [999.0, 999.0, 3.0, 3.0],
        ],
        np.float32,
    )
    valid = depth != 999.0
    out, out_valid = resize_depth(depth, valid, (2, 2), mode="area")
    # top-left 3 of 4 valid -> mean 1.0; top-right 3 of 4 -> mean 7.0;
    # bottom-left 1 of 4 valid (support 0.25 < 0.5) -> invalid; bottom-right all valid -> 3.0
    assert out_valid.tolist() == [[True, True], [False, True]]
    np.testing.assert_allclose(out, [[1.0, 7.0], [0.0, 3.0]], rtol=1e-6)
    _, strict = resize_depth(depth, valid, (2, 2), mode="area", min_support=1.0)
    assert strict.tolist() == [[False, False], [False, True]]


def test_bilinear_upsampling_does_not_pull_depth_towards_invalid_zero():
    depth = np.array([[2.0, 0.0], [2.0, 0.0]], np.float32)
    valid = np.array([[True, False], [True, False]])
    out, out_valid = resize_depth(depth, valid, (4, 4), mode="bilinear")
    # every valid output lies near the valid column: exactly 2.0, never a blend with 0
    assert out_valid[:, 0].all() and out_valid[:, 1].all()
    np.testing.assert_array_equal(out[out_valid], 2.0)
    assert not out_valid[:, 3].any()


def test_nearest_copies_depth_and_validity_together():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    valid = depth % 3 != 0
    up, up_valid = resize_depth(depth, valid, (6, 8), mode="nearest")
    np.testing.assert_array_equal(up, np.where(valid, depth, 0).repeat(2, 0).repeat(2, 1))
    np.testing.assert_array_equal(up_valid, valid.repeat(2, 0).repeat(2, 1))
    down, down_valid = resize_depth(up, up_valid, (3, 4), mode="nearest")
    np.testing.assert_array_equal(down_valid, valid)
    np.testing.assert_array_equal(down[down_valid], depth[valid])


def test_constant_fully_valid_map_stays_constant_and_valid():
    depth = np.full((30, 40), 1.75, np.float32)
    valid = np.ones((30, 40), bool)
    for mode in ("area", "bilinear", "nearest"):
        for size in [(7, 9), (60, 80), (30, 40)]:
            out, ok = resize_depth(depth, valid, size, mode=mode, min_support=1.0)
            assert ok.all(), (mode, size)
            np.testing.assert_allclose(out, 1.75, rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(2, 24),
    w=st.integers(2, 24),
    oh=st.integers(1, 32),
    ow=st.integers(1, 32),
    mode=st.sampled_from(["area", "bilinear", "nearest"]),
    seed=st.integers(0, 2**31),
)
def test_resize_never_invents_depth(h, w, oh, ow, mode, seed):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 4.0, (h, w)).astype(np.float32)
    valid = rng.random((h, w)) < 0.6
    out, ok = resize_depth(depth, valid, (oh, ow), mode=mode)
    # garbage (NaN, huge, negative) in invalid pixels changes nothing
    garbage = np.where(valid, depth, rng.choice([NAN, 1e9, -5.0], (h, w))).astype(np.float32)
    out2, ok2 = resize_depth(garbage, valid, (oh, ow), mode=mode)
    np.testing.assert_array_equal(ok, ok2)
    np.testing.assert_array_equal(out, out2)
    if valid.any():  # valid outputs lie within the range of valid inputs
        lo, hi = depth[valid].min(), depth[valid].max()
        assert (out[ok] >= lo - 1e-5).all() and (out[ok] <= hi + 1e-5).all()
    else:
        assert not ok.any()
    assert (out[~ok] == 0).all()


@settings(max_examples=30, deadline=None)
@given(factor=st.integers(2, 4), seed=st.integers(0, 2**31))
def test_area_at_integer_factor_equals_blockwise_valid_mean(factor, seed):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 4.0, (4 * factor, 6 * factor)).astype(np.float32)
    valid = rng.random(depth.shape) < 0.7
    out, ok = resize_depth(depth, valid, (4, 6), mode="area")
    blocks = lambda a: a.reshape(4, factor, 6, factor).swapaxes(1, 2).reshape(4, 6, -1)  # noqa: E731
    d, v = blocks(depth), blocks(valid)
    count = v.sum(-1)
    np.testing.assert_array_equal(ok, count >= 0.5 * factor * factor)
    mean = (d * v).sum(-1) / np.maximum(count, 1)
    np.testing.assert_allclose(out[ok], mean[ok], rtol=1e-5)


def test_resize_errors():
    d, v = np.ones((4, 4), np.float32), np.ones((4, 4), bool)
    with pytest.raises(DepthFormatError) as err:
        resize_depth(d, v, (0, 3))
    assert str(err.value) == "resize_depth: size_hw must be positive, got (0, 3)"
    with pytest.raises(DepthFormatError) as err:
        resize_depth(d, v, (2, 2), mode="bicubic")
    assert str(err.value) == (
        "resize_depth: unknown mode 'bicubic'; choose one of nearest, area, bilinear"
    )
    with pytest.raises(DepthFormatError) as err:
        resize_depth(d, np.ones((4, 5), bool), (2, 2))
    assert str(err.value) == "resize_depth: depth_m shape (4, 4) != valid shape (4, 5)"
    with pytest.raises(DepthFormatError, match=r"min_support must be in \(0, 1\], got 0"):
        resize_depth(d, v, (2, 2), min_support=0)
