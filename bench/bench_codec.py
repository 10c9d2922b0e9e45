"""Image codec cost, as ratios to a plain ``bytes`` copy of the same buffer, same run.

640x480 rgb8 and 16UC1 messages (rclpy and rosbags objects): decode (zero-copy view),
decode with copy, to_rgb8 from bgr8, 16UC1 -> metres; encode numpy -> rclpy Image by
numpy_to_image against the two obvious ways of filling ``msg.data``; encode to a rosbags Image.

Run: ``.venv/bin/python bench/bench_codec.py [--quick|--full]``.
"""

from __future__ import annotations

import argparse
import array
import time
from collections.abc import Callable

import numpy as np
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image

from deal_ros.core.depth import depth_msg_to_metres, depth_to_metres, resize_depth
from deal_ros.core.image_codec import image_to_numpy, numpy_to_image, to_rgb8

H, W = 480, 640


def timed_interleaved(fns: list[Callable[[], object]], number: int, repeat: int) -> list[float]:
    """Best (lowest) seconds per call of each function over ``repeat`` rounds of ``number``
    calls; every round runs all functions in turn, so a busy neighbour on a shared machine
    or the allocator's state disturbs all of them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / number)
    return best


def _public_setter_bytes(arr: np.ndarray) -> Image:
    msg = Image(height=H, width=W, encoding="rgb8", step=W * 3)
    msg.data = arr.tobytes()
    return msg


def _public_setter_array(arr: np.ndarray) -> Image:
    msg = Image(height=H, width=W, encoding="rgb8", step=W * 3)
    buf = array.array("B")
    buf.frombytes(arr)
    msg.data = buf
    return msg


def cases() -> list[tuple[str, str, Callable[[], object]]]:
    """(group, name, fn); every group's first case is the bytes-copy baseline."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth_mm = rng.integers(0, 8000, (H, W), dtype=np.uint16)
    rgb_msg, bgr_msg = numpy_to_image(rgb, "rgb8"), numpy_to_image(rgb, "bgr8")
    depth_msg = numpy_to_image(depth_mm, "16UC1")
    bag = get_typestore(Stores.ROS2_JAZZY).types["sensor_msgs/msg/Image"]
    bag_rgb = numpy_to_image(rgb, "rgb8", msg_type=bag, copy=True)
    depth_m, valid = depth_to_metres(depth_mm, "16UC1")
    rgb_dec, depth_dec = "decode rgb8 640x480", "decode 16UC1 640x480"
    rgb_enc = "encode rgb8 640x480"
    return [
        (rgb_dec, "bytes(msg.data) copy", lambda: bytes(rgb_msg.data)),
        (rgb_dec, "image_to_numpy rclpy", lambda: image_to_numpy(rgb_msg)),
        (rgb_dec, "image_to_numpy rosbags", lambda: image_to_numpy(bag_rgb)),
        (rgb_dec, "image_to_numpy copy=True", lambda: image_to_numpy(rgb_msg, copy=True)),
        (rgb_dec, "to_rgb8 from bgr8", lambda: to_rgb8(bgr_msg)),
        (depth_dec, "bytes(msg.data) copy", lambda: bytes(depth_msg.data)),
        (depth_dec, "image_to_numpy rclpy", lambda: image_to_numpy(depth_msg)),
        (depth_dec, "depth_msg_to_metres", lambda: depth_msg_to_metres(depth_msg)),
        (depth_dec, "resize_depth area -> 60x80", lambda: resize_depth(depth_m, valid, (60, 80))),
        (rgb_enc, "arr.tobytes() copy", lambda: rgb.tobytes()),
        (rgb_enc, "numpy_to_image rclpy", lambda: numpy_to_image(rgb, "rgb8")),
        (rgb_enc, "Image + msg.data = bytes", lambda: _public_setter_bytes(rgb)),
        (rgb_enc, "Image + msg.data = array.array", lambda: _public_setter_array(rgb)),
        (rgb_enc, "numpy_to_image rosbags", lambda: numpy_to_image(rgb, "rgb8", msg_type=bag)),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="fewer rounds (about 2 s)")
    speed.add_argument("--full", action="store_true", help="more rounds (about 20 s)")
    args = parser.parse_args(argv)
    number, repeat = (10, 3) if args.quick else (20, 40) if args.full else (10, 15)
    table = cases()
    seconds = timed_interleaved([fn for _, _, fn in table], number, repeat)
    baseline: dict[str, float] = {}
    print(f"{'case':<52} {'us/call':>10} {'x bytes copy':>13}")
    for (group, name, _), sec in zip(table, seconds):
        base = baseline.setdefault(group, sec)
        label = f"{group}: {name}"
        print(f"{label:<52} {sec * 1e6:>10.1f} {sec / base:>13.3f}")


if __name__ == "__main__":
    main()
