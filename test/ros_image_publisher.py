"""A driver process for the cross-process transport test.

Publishes ``--count`` RGB (rgb8) + depth (16UC1) pairs at ``--rate`` Hz; frame ``i`` carries
``i`` in its stamp and in its pixels so the receiver can check every byte it decodes.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from deal_ros.core.image_codec import numpy_to_image


def frame(i: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = i % 256
    rgb[..., 1] = np.arange(width, dtype=np.uint32)[None, :] % 256
    rgb[..., 2] = np.arange(height, dtype=np.uint32)[:, None] % 256
    depth = np.full((height, width), 500 + i, np.uint16)
    depth[:, :8] = 0  # RealSense-like invalid band
    return rgb, depth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--wait-subscribers", type=float, default=20.0)
    args = parser.parse_args(argv)

    rclpy.init()
    node = rclpy.create_node("fake_realsense")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    rgb_pub = node.create_publisher(Image, "/camera/camera/color/image_raw", qos)
    depth_pub = node.create_publisher(Image, "/camera/camera/aligned_depth_to_color/image_raw", qos)
    deadline = time.monotonic() + args.wait_subscribers
    while min(rgb_pub.get_subscription_count(), depth_pub.get_subscription_count()) < 1:
        if time.monotonic() > deadline:
            print("publisher: no subscriber appeared", file=sys.stderr)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    period = 1.0 / args.rate
    next_t = time.monotonic()
    for i in range(args.count):
        rgb, depth = frame(i, args.height, args.width)
        stamp = node.get_clock().now().to_msg()
        stamp.sec, stamp.nanosec = 1000 + i, 0
        rgb_msg = numpy_to_image(rgb, "rgb8")
        depth_msg = numpy_to_image(depth, "16UC1")
        for msg, frame_id in ((rgb_msg, "color"), (depth_msg, "depth")):
            msg.header.stamp = stamp
            msg.header.frame_id = frame_id
        rgb_pub.publish(rgb_msg)
        depth_pub.publish(depth_msg)
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))  # pacing at --rate, not synchronisation
    # the receiver holds every frame once it acknowledged it (reliable QoS): then exit
    acked = all(pub.wait_for_all_acked(Duration(seconds=10)) for pub in (rgb_pub, depth_pub))
    if not acked:
        print("publisher: frames not acknowledged within 10 s", file=sys.stderr)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
