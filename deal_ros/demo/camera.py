"""``deal_demo_camera``: the scene generator as a RealSense stand-in, through real rclpy.

Publishes on the RealSense ROS 2 wrapper's topic names (remappable):

==================================================  ===========================================
``/camera/camera/color/image_raw``                  sensor_msgs/Image rgb8
``/camera/camera/aligned_depth_to_color/image_raw`` sensor_msgs/Image 16UC1 millimetres, 0 = none
``/camera/camera/color/camera_info``                sensor_msgs/CameraInfo (the generator's K)
``~/status``                                        std_msgs/String JSON, transient local
==================================================  ===========================================

All three carry the same header (stamp = publication time, like the driver). At start-up the
node renders one take per class (:mod:`deal_ros.demo.takes`) on a thread; parameter ``show``
(``ros2 param set /deal_demo_camera show mug``) picks the take it streams, back and forth, at
``rate_hz``; ``show: ''`` streams nothing. With ``once: true`` a take is played once, frames
0 .. n-1, from the moment it is shown, and then nothing until the next ``show`` (what ``deal
demo`` records: every run records the same frames). ``~/status`` says which takes are rendered
and what is shown: ``{"state": "rendering"|"ready", "rendered": [...], "showing": "mug",
"published": 123, "take_published": 40, "take_frames": 64}`` (``take_published``: frames of
the shown take since it was shown; published again when a ``once`` take has ended). With
``gt_dir`` set, every published frame is logged there with its stamp, next to the takes'
masks (the ground truth of the demo's metrics).

    python -m deal_ros.demo.camera --ros-args -p classes:="[mug, box]" -p show:=mug
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from deal_ros.core.image_codec import numpy_to_image
from deal_ros.demo.takes import STAMPS_FILE, Take, pingpong, render_take, save_take_masks
from deal_ros.errors import DealError
from deal_ros.nodes._common import declare, qos_profile
from deal_ros.scene.generator import SceneGenerator
from deal_ros.scene.objects import KINDS

__all__ = ["NODE_NAME", "TOPICS", "SceneCameraNode", "main"]

NODE_NAME = "deal_demo_camera"
TOPICS = {
    "rgb": "/camera/camera/color/image_raw",
    "depth": "/camera/camera/aligned_depth_to_color/image_raw",
    "camera_info": "/camera/camera/color/camera_info",
}


class SceneCameraNode(Node):
    """The demo camera (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.classes = self._classes()
        p = self._declare()
        self.generator = SceneGenerator(
            classes=self.classes,
            size=(p["height"], p["width"]),
            seed=p["seed"],
            difficulty=p["difficulty"],
            zoom=p["zoom"],
        )
        self.rooms = p["rooms"]
        self.once = bool(p["once"])
        self.frame_id = p["frame_id"]
        self.gt_dir = Path(p["gt_dir"]) if p["gt_dir"] else None
        self._gt_log = None
        self._lock = threading.Lock()
        self.takes: dict[str, Take] = {}
        self.showing = ""
        self.published = 0
        self._index = 0
        self._error = ""
        qos = qos_profile("reliable", 10)
        self.pubs = {
            "rgb": self.create_publisher(Image, TOPICS["rgb"], qos),
            "depth": self.create_publisher(Image, TOPICS["depth"], qos),
            "camera_info": self.create_publisher(CameraInfo, TOPICS["camera_info"], qos),
        }
        self.status_pub = self.create_publisher(
            String, "~/status", qos_profile("reliable", 1, "transient_local")
        )
        self.add_on_set_parameters_callback(self._on_set)
        self._show(p["show"])
        self._renderer = threading.Thread(
            target=self._render_all, args=(p["frames"], p["episode_seed"]), daemon=True
        )
        self._renderer.start()
        self.create_timer(1.0 / p["rate_hz"], self._tick)
        self.publish_status()

    # ------------------------------------------------------------------ parameters
    def _classes(self) -> list[str]:
        value = declare(
            self,
            "classes",
            list(KINDS[:3]),
            "Objects the camera can show (scene kinds)",
            read_only=True,
        )
        classes = [str(c) for c in value]
        bad = [c for c in classes if c not in KINDS]
        if bad or not classes:
            raise DealError(
                f"parameter classes: {bad or 'empty'} not scene objects; known: {', '.join(KINDS)}"
            )
        return classes

    def _declare(self) -> dict[str, Any]:
        ro = {"read_only": True}
        specs: dict[str, tuple[Any, str, dict[str, Any]]] = {
            "height": (240, "image height (px)", {**ro, "value_range": (16, 2160)}),
            "width": (320, "image width (px)", {**ro, "value_range": (16, 3840)}),
            "rate_hz": (15.0, "frames per second", {**ro, "value_range": (0.5, 120.0)}),
            "frames": (60, "frames per take (one per class)", {**ro, "value_range": (1, 10**5)}),
            "seed": (0, "scene generator seed", ro),
            "episode_seed": (0, "seed of the takes (the room they are shown in)", ro),
            "difficulty": ("medium", "scene difficulty: easy | medium | hard", ro),
            "zoom": (
                1.0,
                "focal length multiplier (close-up camera)",
                {**ro, "value_range": (0.25, 10.0)},
            ),
            "rooms": (1, "rooms each take is split over", {**ro, "value_range": (1, 1000)}),
            "frame_id": ("camera_color_optical_frame", "header frame_id", ro),
            "gt_dir": ("", "folder for ground truth (stamps.jsonl + masks); '' = none", ro),
            "once": (
                False,
                "play a take once (frames 0..n-1) from its show, then nothing; false = back "
                "and forth",
                ro,
            ),
            "show": ("", "class whose take is streamed ('' = none)", {}),
        }
        return {k: declare(self, k, d, text, **o) for k, (d, text, o) in specs.items()}

    def _on_set(self, params: Sequence[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name == "show":
                value = str(param.value)
                if value and value not in self.classes:
                    reason = f"show: '{value}' is not one of {', '.join(self.classes)}"
                    return SetParametersResult(successful=False, reason=reason)
                self._show(value)
        return SetParametersResult(successful=True)

    def _show(self, class_name: str) -> None:
        with self._lock:
            self.showing, self._index = class_name, 0
        self.publish_status()

    # ------------------------------------------------------------------ rendering
    def _render_all(self, frames: int, seed: int) -> None:
        try:
            for name in self.classes:
                take = render_take(self.generator, name, frames, seed, self.rooms)
                if self.gt_dir is not None:
                    save_take_masks(self.gt_dir, take)
                with self._lock:
                    self.takes[name] = take
                self.get_logger().info(f"take '{name}' rendered: {frames} frames")
                self.publish_status()
        except Exception as exc:  # reported on ~/status; the node keeps running
            self._error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"rendering failed: {self._error}")
            self.publish_status()

    # ------------------------------------------------------------------ streaming
    def _tick(self) -> None:
        with self._lock:
            take = self.takes.get(self.showing)
            if take is None or (self.once and self._index >= len(take)):
                return
            frame = self._index if self.once else pingpong(self._index, len(take))
            self._index += 1
            ended = self.once and self._index == len(take)
        header = self._header()
        self.pubs["camera_info"].publish(self._info(take, header))
        self.pubs["rgb"].publish(numpy_to_image(take.rgb[frame], "rgb8", header))
        self.pubs["depth"].publish(numpy_to_image(take.depth_mm[frame], "16UC1", header))
        self.published += 1
        self._log_gt(header, take.class_name, frame)
        if ended or self.published % 30 == 0:
            self.publish_status()

    def _header(self) -> Any:
        from std_msgs.msg import Header

        return Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)

    def _info(self, take: Take, header: Any) -> CameraInfo:
        info = CameraInfo(header=header)
        info.height, info.width = take.rgb.shape[1:3]
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        k = [float(v) for v in take.K.reshape(-1)]
        info.k = k
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    def _log_gt(self, header: Any, class_name: str, frame: int) -> None:
        if self.gt_dir is None:
            return
        if self._gt_log is None:
            self.gt_dir.mkdir(parents=True, exist_ok=True)
            self._gt_log = (self.gt_dir / STAMPS_FILE).open("a", buffering=1)
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        self._gt_log.write(json.dumps({"stamp_ns": stamp_ns, "class": class_name, "frame": frame}))
        self._gt_log.write("\n")

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        with self._lock:
            rendered = [c for c in self.classes if c in self.takes]
            showing, take_published = self.showing, self._index
            take = self.takes.get(showing)
        state = "ready" if len(rendered) == len(self.classes) else "rendering"
        if self._error:
            state = "error"
        return {
            "state": state,
            "rendered": rendered,
            "classes": self.classes,
            "showing": showing,
            "published": self.published,
            "take_published": take_published,
            "take_frames": len(take) if take is not None else 0,
            "error": self._error,
        }

    def publish_status(self) -> None:
        try:
            self.status_pub.publish(String(data=json.dumps(self.status())))
        except Exception as exc:  # context shutting down
            self.get_logger().debug(f"status not published: {exc}")

    def close(self) -> None:
        self.publish_status()
        if self._gt_log is not None:
            self._gt_log.close()
            self._gt_log = None


def main(args: Sequence[str] | None = None) -> int:
    from deal_ros.nodes._common import run_node

    return run_node(SceneCameraNode, args)


if __name__ == "__main__":
    sys.exit(main())
