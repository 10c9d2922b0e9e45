"""A RealSense-like camera driver process for the recorder tests and bench.

Publishes ``--count`` frames at ``--rate`` Hz: rgb8 colour and 16UC1 aligned depth (millimetres,
a band of zeros = invalid, like a RealSense), optional camera_info, with stamp jitter and some
colour frames missing (every ``--drop-color-every``-th). Frame ``i`` carries ``i`` in its pixels
(rgb[..., 0] = i % 256, depth = 500 + i mm outside the zero band) so a reader can check every
pair. ``--inject KIND:INDEX,...`` replaces frame INDEX by a bad one: ``encoding`` (yuv422 colour),
``size`` (depth of another size), ``backwards`` (colour and depth stamped 1 s in the past),
``invalid_depth`` (all-zero depth), ``zero_size`` (colour 0x0), ``short_step`` (colour step
under a row), ``short_data`` (colour data shorter than step*height), ``not_cdr`` (colour bytes
that are no CDR message), ``ahead`` (both stamped an hour ahead), ``colour_ahead`` (colour
alone an hour ahead), ``epoch`` (both stamped 3 s after 1970-01-01), ``future`` (both stamped
five years ahead); and from frame INDEX on, every frame: ``step_ahead`` (the camera clock steps
an hour forward, a driver restart) or ``step_back`` (10 s back, an NTP step).
``--manifest FILE`` receives a JSON record of what was sent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from deal_ros.core.image_codec import numpy_to_image

NS = 1_000_000_000
ACK_TIMEOUT_S = 10.0


def frame(i: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = i % 256
    rgb[..., 1] = (np.arange(width, dtype=np.uint32)[None, :] // 4) % 256
    rgb[..., 2] = (np.arange(height, dtype=np.uint32)[:, None] // 4) % 256
    depth = np.full((height, width), 500 + i, np.uint16)
    depth[:, : max(1, width // 16)] = 0  # RealSense-like invalid band on the left
    return rgb, depth


def serialized_pair(
    i: int, height: int, width: int, stamp_ns: int, frame_id: str = "c"
) -> tuple[bytes, bytes]:
    """Frame ``i`` as the CDR bytes a ``raw=True`` subscription receives (rgb8, 16UC1)."""
    from rclpy.serialization import serialize_message

    rgb, depth = frame(i, height, width)
    return (
        serialize_message(_msg(rgb, "rgb8", stamp_ns, frame_id)),
        serialize_message(_msg(depth, "16UC1", stamp_ns, frame_id)),
    )


def serialized_info(stamp_ns: int, height: int, width: int) -> bytes:
    from rclpy.serialization import serialize_message

    return serialize_message(_info(stamp_ns, height, width))


BAD_FRAMES = (
    "encoding", "size", "backwards", "invalid_depth", "zero_size", "short_step", "short_data",
    "not_cdr", "ahead", "colour_ahead", "epoch", "future",
)  # fmt: skip
CLOCK_STEPS = {"step_ahead": 3600 * NS, "step_back": -10 * NS}
HOUR = 3600 * NS


def parse_injections(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in filter(None, text.split(",")):
        kind, index = item.split(":")
        if kind not in BAD_FRAMES and kind not in CLOCK_STEPS:
            raise SystemExit(f"driver: unknown injection {kind!r}")
        out[int(index)] = kind
    return out


def _clock_step(injections: dict[int, str], i: int) -> int:
    """The camera clock's offset at frame ``i`` (the ``step_*`` injections so far)."""
    return sum(CLOCK_STEPS[k] for n, k in injections.items() if k in CLOCK_STEPS and n <= i)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=90)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=848)
    p.add_argument("--rgb-topic", default="/camera/camera/color/image_raw")
    p.add_argument("--depth-topic", default="/camera/camera/aligned_depth_to_color/image_raw")
    p.add_argument("--info-topic", default="", help="camera_info topic ('' = none)")
    p.add_argument("--drop-color-every", type=int, default=0, help="0 = never")
    p.add_argument("--jitter-ms", type=float, default=3.0)
    p.add_argument("--inject", default="", help="KIND:INDEX,... (see module doc)")
    p.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable")
    p.add_argument(
        "--keep-all",
        action="store_true",
        help="KEEP_ALL history: a slow subscriber slows the publisher instead of losing frames "
        "(isolates the recorder from transport loss on a busy test machine)",
    )
    p.add_argument("--wait-subscribers", type=float, default=20.0)
    p.add_argument("--manifest", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--node-name", default="fake_realsense")
    p.add_argument(
        "--wait-go", action="store_true", help="once subscribed, wait for a line on stdin"
    )
    return p


def _msg(arr: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    msg = numpy_to_image(arr, encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS)
    msg.header.frame_id = frame_id
    return msg


def _info(stamp_ns: int, height: int, width: int) -> CameraInfo:
    info = CameraInfo()
    info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp_ns, NS)
    info.header.frame_id = "camera_color_optical_frame"
    info.height, info.width = height, width
    info.k = [600.0, 0.0, width / 2, 0.0, 600.0, height / 2, 0.0, 0.0, 1.0]
    return info


def _bad(kind: str, i: int, args, stamp: int, rgb: np.ndarray, depth: np.ndarray):
    """(rgb msg or serialized bytes, depth msg) for an injected bad frame."""
    stamped = {"ahead": HOUR, "epoch": 3 * NS - stamp, "future": 5 * 365 * 86_400 * NS}
    if kind in stamped:
        moved = stamp + stamped[kind]
        return _msg(rgb, "rgb8", moved, "c"), _msg(depth, "16UC1", moved, "d")
    if kind == "colour_ahead":
        return _msg(rgb, "rgb8", stamp + HOUR, "c"), _msg(depth, "16UC1", stamp, "d")
    if kind in ("zero_size", "short_step", "short_data"):
        msg = _msg(rgb, "rgb8", stamp, "c")
        if kind == "zero_size":
            msg.height = msg.width = msg.step = 0
            msg.data = []
        elif kind == "short_step":
            msg.step = args.width  # a third of a row of rgb8
        else:
            msg.data = msg.data[: len(msg.data) // 2]
        return msg, _msg(depth, "16UC1", stamp, "d")
    if kind == "not_cdr":
        return b"\x07\x07 not a CDR message at all", _msg(depth, "16UC1", stamp, "d")
    if kind == "encoding":
        yuv = np.zeros((args.height, args.width, 2), np.uint8)
        return _msg(yuv, "8UC2", stamp, "c"), _msg(depth, "16UC1", stamp, "d")
    if kind == "size":
        small = np.full((args.height // 2, args.width // 2), 700, np.uint16)
        return _msg(rgb, "rgb8", stamp, "c"), _msg(small, "16UC1", stamp, "d")
    if kind == "backwards":
        old = stamp - NS
        return _msg(rgb, "rgb8", old, "c"), _msg(depth, "16UC1", old, "d")
    zeros = np.zeros_like(depth)
    return _msg(rgb, "rgb8", stamp, "c"), _msg(zeros, "16UC1", stamp, "d")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    injections = parse_injections(args.inject)
    rng = np.random.default_rng(args.seed)
    rclpy.init()
    node = rclpy.create_node(args.node_name)
    rel = ReliabilityPolicy.RELIABLE if args.qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(depth=10, reliability=rel)
    if args.keep_all:
        qos.history = HistoryPolicy.KEEP_ALL
    rgb_pub = node.create_publisher(Image, args.rgb_topic, qos)
    depth_pub = node.create_publisher(Image, args.depth_topic, qos)
    info_pub = node.create_publisher(CameraInfo, args.info_topic, qos) if args.info_topic else None
    deadline = time.monotonic() + args.wait_subscribers
    while min(rgb_pub.get_subscription_count(), depth_pub.get_subscription_count()) < 1:
        if time.monotonic() > deadline:
            print("driver: no subscriber appeared", file=sys.stderr)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    if args.wait_go:
        print("ready", flush=True)
        sys.stdin.readline()
    sent: dict[str, list] = {"rgb": [], "depth": [], "injected": []}
    t0 = time.monotonic()
    interrupted = False
    try:
        _publish(args, injections, rng, (rgb_pub, depth_pub, info_pub), sent)
    except KeyboardInterrupt:  # stopped early (the subscriber may be gone: a kill -9 test)
        interrupted = True
    sent["seconds"] = time.monotonic() - t0
    if args.manifest:  # what was sent, written first: nothing below may lose it
        with open(args.manifest, "w") as f:
            json.dump(sent, f)
    # every stream's last message is in the subscriber's reader once acknowledged (reliable
    # QoS); that the recorder has taken it is for the caller to wait on (its status counts).
    # Not after an interrupt: rclpy's SIGINT handler has shut the context down, and a dead
    # subscriber never acknowledges.
    if not interrupted and not _acknowledged((rgb_pub, depth_pub, info_pub), ACK_TIMEOUT_S):
        print(f"driver: the last frames not acknowledged within {ACK_TIMEOUT_S} s", file=sys.stderr)
    with contextlib.suppress(Exception):  # the context may already be shut down
        node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _acknowledged(pubs, timeout_s: float) -> bool:
    """Wait until every reliable subscriber of ``pubs`` acknowledged what was published
    (False, not an exception, when the context is shutting down)."""
    deadline = Duration(seconds=timeout_s)
    try:
        return all(pub.wait_for_all_acked(deadline) for pub in pubs if pub is not None)
    except Exception as exc:  # rclpy's RCLError once a signal shut the context down
        print(f"driver: acknowledgements not awaited: {exc}", file=sys.stderr)
        return False


def _publish(args, injections, rng, pubs, sent: dict) -> None:
    """Publish the frames (module doc), recording what was sent in ``sent``.

    Frame 0 goes out first and alone: once every subscriber acknowledged it, discovery is
    complete in both directions (a subscriber also knows this publisher), so no later frame is
    lost to a match still settling. Then the pacing restarts: frame i (i >= 1) is published
    ``(i - 1) / rate`` after that, stamped ``i / rate`` after frame 0, so the stamps stay one
    steady stream (the wait is no gap in them, which the recorder would count as frames lost
    upstream) that runs behind the wall clock by the wait. ``sent["published"]`` holds each
    frame's wall-clock publish time."""
    rgb_pub, depth_pub, info_pub = pubs
    period = 1.0 / args.rate
    base, start = time.time_ns(), time.monotonic()
    sent["published"] = []
    for i in range(args.count):
        stamp = base + int(i * period * NS) + int(rng.uniform(-1, 1) * args.jitter_ms * 1e6)
        stamp += _clock_step(injections, i)
        rgb, depth = frame(i, args.height, args.width)
        depth_stamp = stamp + int(rng.uniform(-1, 1) * 1e6)
        if injections.get(i) in BAD_FRAMES:
            rgb_msg, depth_msg = _bad(injections[i], i, args, stamp, rgb, depth)
            sent["injected"].append([i, injections[i]])
        else:
            rgb_msg, depth_msg = (
                _msg(rgb, "rgb8", stamp, "c"),
                _msg(depth, "16UC1", depth_stamp, "d"),
            )
        colour = not (
            args.drop_color_every and i % args.drop_color_every == args.drop_color_every - 1
        )
        if info_pub is not None:
            info_pub.publish(_info(stamp, args.height, args.width))
        if colour:
            rgb_pub.publish(rgb_msg)
            sent["rgb"].append([i, stamp])
        depth_pub.publish(depth_msg)
        sent["depth"].append([i, depth_stamp])
        sent["published"].append([i, time.time_ns()])
        if i == 0:
            if not _acknowledged((rgb_pub if colour else None, depth_pub, info_pub), 20.0):
                raise SystemExit("driver: frame 0 not acknowledged by the subscribers in 20 s")
            start = time.monotonic() - period
        # pacing at the camera rate (not synchronisation): frame i + 1 is due at this time
        time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main())
