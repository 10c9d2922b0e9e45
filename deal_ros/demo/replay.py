"""An episode replayed into ROS, and the segmenter's outputs collected and checked.

``EpisodeReplay`` reads an episode's bag with the same reader training uses
(:meth:`deal_ros.episodes.store.Episode.frames`: rosbags + the core pairer + the core codec) and
republishes every frame on the topics it was recorded from (``source_topics`` of
``episode.yaml``) with its ORIGINAL headers, at the recorded pace.

``OutputCollector`` subscribes to the segmenter's ``~/mask``, ``~/cam``, ``~/overlay``,
``~/segmentation`` and ``~/stats``; every output is checked against what was sent (stamp and
frame_id of an input frame), its arrival timed (replay publish -> output, one clock), and the
outputs of chosen frames are written as PNGs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from deal_ros.core.depth import metres_to_16uc1
from deal_ros.core.image_codec import image_to_numpy, numpy_to_image
from deal_ros.core.pairing import ns_to_sec_nanosec, stamp_to_ns
from deal_ros.episodes.bag_io import Frame
from deal_ros.infer.postprocess import heat_to_rgb

__all__ = ["OUTPUTS", "EpisodeReplay", "OutputCollector", "SentFrame"]

OUTPUTS = ("mask", "cam", "overlay", "segmentation")


@dataclass
class SentFrame:
    stamp_ns: int
    frame_id: str
    sent_at: float  # time.perf_counter() at publication
    episode_id: str
    save: bool


def _header(stamp_ns: int, frame_id: str) -> Any:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    sec, nanosec = ns_to_sec_nanosec(stamp_ns)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _camera_info(info: Any, header: Any) -> Any:
    """A rosbags CameraInfo as an rclpy one (the fields a consumer reads)."""
    from sensor_msgs.msg import CameraInfo

    out = CameraInfo(header=header, height=int(info.height), width=int(info.width))
    out.distortion_model = str(info.distortion_model)
    out.d = [float(v) for v in info.d]
    out.k = [float(v) for v in info.k]
    out.r = [float(v) for v in info.r]
    out.p = [float(v) for v in info.p]
    return out


class EpisodeReplay:
    """Publishes recorded frames (see the module docstring) from the demo's node."""

    def __init__(self, node: Any, topics: dict[str, str]) -> None:
        from sensor_msgs.msg import CameraInfo, Image

        from deal_ros.nodes._common import qos_profile

        qos = qos_profile("reliable", 10)
        self.topics = topics
        self.rgb = node.create_publisher(Image, topics["rgb"], qos)
        self.depth = (
            node.create_publisher(Image, topics["depth"], qos) if topics.get("depth") else None
        )
        info_topic = topics.get("camera_info")
        self.info = node.create_publisher(CameraInfo, info_topic, qos) if info_topic else None

    def publish(self, frame: Frame) -> tuple[int, str]:
        """Publish one frame with its recorded headers; returns the rgb (stamp_ns, frame_id)."""
        stamp = frame.stamps["rgb"]
        frame_id = frame.frame_ids.get("rgb", "")
        if self.info is not None and frame.camera_info is not None:
            self.info.publish(_camera_info(frame.camera_info, _header(stamp, frame_id)))
        if self.depth is not None and frame.depth_m is not None:
            depth_header = _header(frame.stamps["depth"], frame.frame_ids.get("depth", frame_id))
            depth = metres_to_16uc1(frame.depth_m, frame.valid)
            self.depth.publish(numpy_to_image(depth, "16UC1", depth_header))
        self.rgb.publish(numpy_to_image(frame.rgb, "rgb8", _header(stamp, frame_id)))
        return stamp, frame_id


@dataclass
class Received:
    """What arrived on one output topic."""

    count: int = 0
    unmatched: int = 0  # stamp or frame_id of no sent frame
    stamps: set[int] = field(default_factory=set)
    latency_s: list[float] = field(default_factory=list)


class OutputCollector:
    """Collects and checks the segmenter's outputs (see the module docstring).

    ``out_dir`` receives ``overlays/``, ``cams/`` and ``masks/`` PNGs of the frames sent with
    ``save=True``; ``palette`` ((256, 3) uint8) colours the mask PNGs (the class ids stay the
    pixel values)."""

    def __init__(self, node: Any, segmenter: str, out_dir: Path, palette: np.ndarray) -> None:
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from deal_ros.msg import Segmentation
        from deal_ros.nodes._common import qos_profile

        self.out_dir = Path(out_dir)
        self.palette = palette
        self.sent: dict[int, SentFrame] = {}
        self.received = {k: Received() for k in OUTPUTS}
        self.masks: dict[int, np.ndarray] = {}
        self.saved: dict[str, list[Path]] = {"overlay": [], "cam": [], "mask": []}
        self.stats: dict[str, Any] = {}
        self.last_arrival = 0.0
        self.label_info: dict[str, Any] | None = None
        qos = qos_profile("reliable", 50)
        base = f"/{segmenter}"
        types = {"mask": Image, "cam": Image, "overlay": Image, "segmentation": Segmentation}
        self.subs = [
            node.create_subscription(types[k], f"{base}/{k}", self._handler(k), qos)
            for k in OUTPUTS
        ]
        node.create_subscription(String, f"{base}/stats", self._on_stats, 10)
        node.create_subscription(
            String,
            f"{base}/class_names",
            self._on_label_info,
            qos_profile("reliable", 1, "transient_local"),
        )

    # ------------------------------------------------------------------ bookkeeping
    def expect(self, frame: SentFrame) -> None:
        self.sent[frame.stamp_ns] = frame

    def connected(self) -> bool:
        """Every output subscription sees the segmenter's publisher."""
        return all(s.get_publisher_count() >= 1 for s in self.subs)

    def pending(self) -> int:
        """Sent frames with no overlay yet."""
        return len(self.sent) - len(self.received["overlay"].stamps & self.sent.keys())

    def _handler(self, kind: str) -> Callable[[Any], None]:
        return lambda msg: self._on_output(kind, msg)

    def _on_output(self, kind: str, msg: Any) -> None:
        now = time.perf_counter()
        self.last_arrival = now
        rec = self.received[kind]
        rec.count += 1
        stamp = stamp_to_ns(msg.header.stamp)
        sent = self.sent.get(stamp)
        if sent is None or msg.header.frame_id != sent.frame_id:
            rec.unmatched += 1
            return
        rec.stamps.add(stamp)
        rec.latency_s.append(now - sent.sent_at)
        if kind == "mask":
            self.masks[stamp] = np.array(image_to_numpy(msg), copy=True)
        if sent.save and kind in self.saved:
            self._save(kind, msg, sent)

    def _save(self, kind: str, msg: Any, sent: SentFrame) -> None:
        arr = image_to_numpy(msg)
        folder = self.out_dir / f"{kind}s"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{sent.episode_id}_{sent.stamp_ns}.png"
        if kind == "overlay":
            image = PILImage.fromarray(np.ascontiguousarray(arr), mode="RGB")
        elif kind == "cam":
            image = PILImage.fromarray(heat_to_rgb(arr), mode="RGB")
        else:
            image = PILImage.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), mode="P")
            image.putpalette(self.palette.tobytes())
        image.save(path)
        self.saved[kind].append(path)

    def _on_stats(self, msg: Any) -> None:
        self.stats = json.loads(msg.data)

    def _on_label_info(self, msg: Any) -> None:
        self.label_info = json.loads(msg.data)

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        sent = set(self.sent)
        overlay = self.received["overlay"]
        complete = set.intersection(*(self.received[k].stamps for k in OUTPUTS)) & sent
        unmatched = sum(r.unmatched for r in self.received.values())
        total = sum(r.count for r in self.received.values())
        latency = np.asarray(overlay.latency_s) * 1000.0
        return {
            "frames_sent": len(sent),
            "outputs": {k: r.count for k, r in self.received.items()},
            "frames_with_all_outputs": len(complete),
            "outputs_unmatched": unmatched,
            "stamp_match_fraction": (total - unmatched) / total if total else 0.0,
            "stamps_matched": bool(total and unmatched == 0),
            "frames_processed_fraction": len(overlay.stamps & sent) / max(len(sent), 1),
            "latency_ms": _percentiles(latency),
        }


def _percentiles(values_ms: np.ndarray) -> dict[str, float]:
    if values_ms.size == 0:
        return {}
    return {
        "p50": round(float(np.percentile(values_ms, 50)), 2),
        "p95": round(float(np.percentile(values_ms, 95)), 2),
        "max": round(float(values_ms.max()), 2),
        "mean": round(float(values_ms.mean()), 2),
    }
