"""RGB + depth Images through real rclpy, decoded with the core codec.

One test runs publisher and subscriber nodes in one process; one runs the publisher in another
process with the shipped Fast DDS profile (config/fastdds_shm.xml), as on the robot.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from deal_ros.core.depth import depth_to_metres
from deal_ros.core.image_codec import image_to_numpy, numpy_to_image

from ros_image_publisher import frame
from rosutil import spin_until, wait_for_subscribers

HERE = Path(__file__).resolve().parent
RGB_TOPIC = "/camera/camera/color/image_raw"
DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"


def _collector(node, received: dict[str, dict[int, Image]]):
    qos = QoSProfile(depth=60, reliability=ReliabilityPolicy.RELIABLE)
    for key, topic in (("rgb", RGB_TOPIC), ("depth", DEPTH_TOPIC)):
        received[key] = {}
        node.create_subscription(
            Image,
            topic,
            lambda m, k=key: received[k].__setitem__(m.header.stamp.sec - 1000, m),
            qos,
        )


def _check_frame(i: int, rgb_msg: Image, depth_msg: Image) -> None:
    expected_rgb, expected_depth = frame(i, rgb_msg.height, rgb_msg.width)
    np.testing.assert_array_equal(image_to_numpy(rgb_msg), expected_rgb)
    depth = image_to_numpy(depth_msg)
    np.testing.assert_array_equal(depth, expected_depth)
    metres, valid = depth_to_metres(depth, "16UC1")
    assert not valid[:, :8].any() and valid[:, 8:].all()
    np.testing.assert_allclose(metres[0, 8], (500 + i) / 1000.0, rtol=1e-6)
    assert rgb_msg.header.frame_id == "color" and depth_msg.header.frame_id == "depth"


def test_two_nodes_one_process(ros_context):
    pub_node = rclpy.create_node("fake_camera", context=ros_context)
    sub_node = rclpy.create_node("receiver", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    received: dict[str, dict[int, Image]] = {}
    _collector(sub_node, received)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    rgb_pub = pub_node.create_publisher(Image, RGB_TOPIC, qos)
    depth_pub = pub_node.create_publisher(Image, DEPTH_TOPIC, qos)
    try:
        assert wait_for_subscribers(executor, rgb_pub) and wait_for_subscribers(executor, depth_pub)
        for i in range(5):
            rgb, depth = frame(i, 480, 640)
            for pub, arr, enc, fid in (
                (rgb_pub, rgb, "rgb8", "color"),
                (depth_pub, depth, "16UC1", "depth"),
            ):
                msg = numpy_to_image(arr, enc)
                msg.header.stamp.sec, msg.header.frame_id = 1000 + i, fid
                pub.publish(msg)
            executor.spin_once(timeout_sec=0.01)
        assert spin_until(
            executor, lambda: len(received["rgb"]) == 5 and len(received["depth"]) == 5
        )
        for i in range(5):
            _check_frame(i, received["rgb"][i], received["depth"][i])
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()


def test_two_processes_with_the_shipped_fastdds_profile(ros_context, repo_root):
    count = 45
    node = rclpy.create_node("receiver", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    received: dict[str, dict[int, Image]] = {}
    _collector(node, received)
    env = dict(
        os.environ, FASTRTPS_DEFAULT_PROFILES_FILE=str(repo_root / "config" / "fastdds_shm.xml")
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "ros_image_publisher.py"), "--count", str(count)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        t0 = time.monotonic()
        done = spin_until(
            executor,
            lambda: len(received["rgb"]) == count and len(received["depth"]) == count,
            timeout=60.0,
        )
        out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, out
        assert done, f"got {len(received['rgb'])} rgb / {len(received['depth'])} depth of {count}"
        assert time.monotonic() - t0 < 60.0
        for i in (0, count // 2, count - 1):
            _check_frame(i, received["rgb"][i], received["depth"][i])
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
