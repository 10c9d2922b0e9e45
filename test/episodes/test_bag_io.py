"""Reading plain rosbags (sqlite3 and MCAP) as paired frames; the CDR header parser; keyframes."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from deal_ros.core.errors import ImageFormatError
from deal_ros.core.image_codec import image_to_numpy, numpy_to_image
from deal_ros.core.pairing import ApproxTimePairer
from deal_ros.episodes.bag_io import BagError, BagFrameReader, FrameTopics, bag_topics
from deal_ros.episodes.cdr_image import parse_image
from deal_ros.episodes.keyframes import KeyframeSelector

from recorder_driver import frame

NS = 1_000_000_000
STORE = get_typestore(Stores.ROS2_JAZZY)
IMAGE = "sensor_msgs/msg/Image"


def _image(arr, encoding, stamp_ns):
    types = STORE.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp_ns // NS, nanosec=stamp_ns % NS),
        frame_id="cam",
    )
    return STORE.serialize_cdr(numpy_to_image(arr, encoding, header, types[IMAGE]), IMAGE)


def _plain_bag(path, storage, missing_colour=(), h=12, w=16):
    """A camera-like bag: colour (bgr8) and depth (32FC1 metres) with stamp jitter, colour
    frames ``missing_colour`` absent, depth logged 5 ms after colour. Returns the pairs the
    core pairer makes from the same stamps (the oracle)."""
    rng = np.random.default_rng(1)
    pairer = ApproxTimePairer()
    expected = []
    with Writer(path, version=9, storage_plugin=storage) as writer:
        rgb_c = writer.add_connection("/cam/color", IMAGE, typestore=STORE)
        depth_c = writer.add_connection("/cam/depth", IMAGE, typestore=STORE)
        other = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
        for i in range(30):
            t = 5 * NS + i * NS // 30
            stamp_rgb = t + int(rng.uniform(-3e6, 3e6))
            stamp_depth = stamp_rgb + int(rng.uniform(-2e6, 2e6))
            rgb, depth_mm = frame(i, h, w)
            depth = np.where(depth_mm > 0, depth_mm / 1000.0, np.nan).astype(np.float32)
            if i not in missing_colour:
                writer.write(rgb_c, t, _image(rgb[..., ::-1].copy(), "bgr8", stamp_rgb))
                expected += pairer.push("rgb", stamp_rgb, i)
            writer.write(depth_c, t + 5_000_000, _image(depth, "32FC1", stamp_depth))
            expected += pairer.push("depth", stamp_depth, i)
            msg = STORE.types["std_msgs/msg/String"](data="x")
            writer.write(other, t, STORE.serialize_cdr(msg, "std_msgs/msg/String"))
    expected += pairer.flush()
    return [(p.items["rgb"], p.stamp_ns) for p in expected]


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_plain_bag_pairs_like_the_recorder(tmp_path, storage):
    bag = tmp_path / "bag"
    expected = _plain_bag(bag, storage, missing_colour=(4, 17))
    assert bag_topics(bag)["/cam/color"] == (IMAGE, 28)
    reader = BagFrameReader(bag, FrameTopics("/cam/color", "/cam/depth"), labels=["mug"])
    frames = list(reader)
    assert [(int(f.rgb[0, 0, 0]), f.stamp_ns) for f in frames] == expected
    assert len(frames) == 28 and reader.stats.dropped_total("no_match") == 2
    f = frames[0]
    assert f.rgb.flags.writeable and f.encodings == {"rgb": "bgr8", "depth": "32FC1"}
    assert f.valid[:, 0].sum() == 0 and np.allclose(f.depth_m[f.valid], 0.5)
    assert f.labels == ("mug",) and f.frame_ids == {"rgb": "cam", "depth": "cam"}
    assert f.log_times["depth"] == f.log_times["rgb"] + 5_000_000 == f.log_time_ns + 5_000_000
    every = list(BagFrameReader(bag, FrameTopics("/cam/color", "/cam/depth"), every=10))
    assert [int(f.rgb[0, 0, 0]) for f in every] == [e[0] for e in expected[::10]]
    rgb_only = list(BagFrameReader(bag, FrameTopics("/cam/color")))
    assert len(rgb_only) == 28 and rgb_only[0].depth_m is None


def test_plain_bag_errors_name_the_topic(tmp_path):
    bag = tmp_path / "bag"
    _plain_bag(bag, StoragePlugin.MCAP)
    with pytest.raises(BagError, match=r"no topic '/cam/rgb' for rgb; it holds: /cam/color"):
        list(BagFrameReader(bag, FrameTopics("/cam/rgb", "/cam/depth")))
    with pytest.raises(BagError, match=r"'/chatter' \(rgb\) is std_msgs/msg/String"):
        list(BagFrameReader(bag, FrameTopics("/chatter", "/cam/depth")))
    with pytest.raises(BagError, match="no such file"):
        list(BagFrameReader(tmp_path / "nope", FrameTopics("/a", "/b")))


def test_cdr_header_parser_matches_rclpy_serialization():
    for frame_id in ("", "c", "abc", "camera_color_optical_frame"):
        for enc, arr in (
            ("rgb8", np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)),
            ("16UC1", np.arange(35, dtype=np.uint16).reshape(5, 7)),
            ("32FC1", np.linspace(0, 1, 35, dtype=np.float32).reshape(5, 7)),
        ):
            msg = numpy_to_image(arr, enc)
            msg.header.frame_id = frame_id
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 567
            raw = serialize_message(msg)
            head = parse_image(raw)
            assert (head.frame_id, head.encoding, head.height, head.width) == (frame_id, enc, 5, 7)
            assert head.stamp_ns == 1234 * NS + 567 and head.step == msg.step
            assert np.array_equal(image_to_numpy(head), arr)  # zero-copy view decodes
    with pytest.raises(ImageFormatError, match="image 'cam': serialized Image truncated"):
        parse_image(raw[:30], name="cam")
    with pytest.raises(ImageFormatError, match="not a CDR-serialized message"):
        parse_image(b"\x07\x07\x00\x00rest", name="cam")


def test_keyframes_skip_a_still_scene_but_keep_motion():
    rng = np.random.default_rng(0)
    rgb, depth = frame(0, 96, 128)
    selector = KeyframeSelector(min_change=0.03, max_interval_s=1.0)
    kept = []
    for i in range(60):  # 2 s of a still, noisy scene at 30 Hz
        noisy = np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
        kept.append(selector.consider(i * NS // 30, noisy, depth))
    assert kept[0] and sum(kept) == 2  # the first frame and one after max_interval_s
    moved = np.roll(rgb, 20, axis=1)
    assert selector.consider(61 * NS // 30, moved, depth)  # a real change is kept at once
    closer = np.where(depth > 0, depth - 100, 0).astype(np.uint16)  # 20 % closer
    assert selector.consider(62 * NS // 30, moved, closer)
    with pytest.raises(ValueError, match="min_change"):
        KeyframeSelector(min_change=2)
