"""One recording session: serialized rgb/depth messages in, validated pairs out to the episode
writer (no rclpy: the recorder node feeds it from its raw subscriptions, tests and benches
feed it directly).

Per message: parse the CDR header (:mod:`deal_ros.episodes.cdr_image`, a few microseconds, no
pixel copy), check the encoding and the layout, drop stamps that do not increase on their
stream, and push to the core :class:`~deal_ros.core.pairing.ApproxTimePairer`. Per pair:
same size for rgb and depth and for the whole episode, depth not all invalid (every pixel
counted: :func:`~deal_ros.core.depth.measured_fraction`), optional keyframe selection, then
the ORIGINAL serialized bytes go to the writer (no decode/re-encode). Every rejection is
counted by reason and reported through ``warn(key, line)`` (the node throttles it per key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deal_ros.core.depth import measured_fraction
from deal_ros.core.errors import ImageFormatError
from deal_ros.core.image_codec import check_layout, image_spec, image_to_numpy
from deal_ros.core.pairing import DEFAULT_SLOP_NS, ApproxTimePairer, PairedSet
from deal_ros.episodes.cdr_image import CdrImage, parse_image
from deal_ros.episodes.keyframes import KeyframeSelector
from deal_ros.episodes.meta import DROP_KEYS, INVALID_KEYS, EpisodeMeta
from deal_ros.episodes.writer import AsyncEpisodeWriter

__all__ = ["DEPTH_ENCODINGS", "RGB_ENCODINGS", "RecordingSession"]

RGB_ENCODINGS = ("rgb8", "bgr8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
_ALLOWED = {"rgb": RGB_ENCODINGS, "depth": DEPTH_ENCODINGS}
_NS = 1e9


def _seconds(ns: int) -> str:
    return f"{ns / _NS:.3f} s"


@dataclass
class _Image:
    header: CdrImage
    raw: Any


class RecordingSession:
    """Validate, pair and queue one episode's frames (module doc).

    ``topics`` names the source topics (for log lines); ``warn(key, line)`` reports a dropped
    frame, one ``key`` per kind of problem."""

    def __init__(
        self,
        writer: AsyncEpisodeWriter,
        topics: dict[str, str],
        *,
        slop_ns: int = DEFAULT_SLOP_NS,
        pair_queue_size: int = 30,
        drop_invalid_depth: bool = True,
        keyframes: KeyframeSelector | None = None,
        warn: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.writer = writer
        self.topics = dict(topics)
        self.pairer = ApproxTimePairer(("rgb", "depth"), slop_ns, pair_queue_size)
        self.drop_invalid_depth = drop_invalid_depth
        self.keyframes = keyframes
        self.warn = warn or (lambda key, line: None)
        self.camera_info: Any = None
        self.size: tuple[int, int] | None = None
        self.encodings: dict[str, str] = {}
        self.invalid = dict.fromkeys(INVALID_KEYS, 0)
        self.out_of_order = 0
        self.keyframe_skips = 0
        self._last_stamp: dict[str, int] = {}
        self._valid_sum = 0.0
        self._valid_n = 0

    # ---------------------------------------------------------------- counters
    def dropped(self) -> dict[str, int]:
        """Drops by reason (``DROP_KEYS``), pairing drops counted per message."""
        stats = self.pairer.stats
        return {
            "no_match": stats.dropped_total("no_match"),
            "out_of_order": stats.dropped_total("out_of_order") + self.out_of_order,
            "queue_full": stats.dropped_total("queue_full"),
            "invalid": sum(self.invalid.values()),
            "writer_behind": self.writer.writer_behind,
            "keyframe_skip": self.keyframe_skips,
        }

    def dropped_total(self) -> int:
        return sum(self.dropped().values())

    def depth_valid_fraction(self) -> float | None:
        return round(float(self._valid_sum) / self._valid_n, 4) if self._valid_n else None

    def sync_counts(self) -> None:
        """Copy the counters into the episode metadata (saved at the next checkpoint)."""
        extra: dict[str, Any] = {"invalid": dict(self.invalid)}
        if self.size is not None:
            extra["size"] = {"height": self.size[0], "width": self.size[1]}
            extra["encodings"] = dict(self.encodings)
        extra["depth_valid_fraction"] = self.depth_valid_fraction()
        dropped = self.dropped()
        assert set(dropped) == set(DROP_KEYS)
        self.writer.update_counts(dropped, **extra)

    # ---------------------------------------------------------------- input
    def on_camera_info(self, raw: Any) -> None:
        self.camera_info = raw

    def _reject(self, reason: str, key: str, line: str) -> None:
        self.invalid[reason] += 1
        self.warn(key, line)

    def on_image(self, stream: str, raw: Any) -> None:
        """One serialized ``sensor_msgs/Image`` of ``stream`` ("rgb" or "depth")."""
        topic = self.topics.get(stream, stream)
        try:
            header = parse_image(raw, name=topic)
        except ImageFormatError as exc:
            self._reject("malformed", f"{stream}:malformed", f"dropped {stream} frame: {exc}")
            return
        if header.encoding not in _ALLOWED[stream]:  # before the codec: its list is longer
            self._reject(
                "encoding",
                f"{stream}:encoding",
                f"dropped {stream} frame on '{topic}': encoding '{header.encoding}' is not "
                f"supported; expected one of {', '.join(_ALLOWED[stream])}",
            )
            return
        try:
            spec = image_spec(header.encoding, name=topic)
            check_layout(spec, header.height, header.width, header.step, header.nbytes, name=topic)
        except ImageFormatError as exc:
            self._reject("malformed", f"{stream}:layout", f"dropped {stream} frame: {exc}")
            return
        last = self._last_stamp.get(stream)
        if last is not None and header.stamp_ns <= last:
            self.out_of_order += 1
            self.warn(
                f"{stream}:backwards",
                f"dropped {stream} frame on '{topic}': stamp {_seconds(header.stamp_ns)} is not "
                f"after the previous {_seconds(last)} (stamps going backwards)",
            )
            return
        self._last_stamp[stream] = header.stamp_ns
        for pair in self.pairer.push(stream, header.stamp_ns, _Image(header, raw)):
            self._pair(pair)

    # ---------------------------------------------------------------- pairs
    def _pair(self, pair: PairedSet) -> None:
        rgb, depth = pair.items["rgb"], pair.items["depth"]
        rh, dh = rgb.header, depth.header
        if (rh.height, rh.width) != (dh.height, dh.width):
            self._reject(
                "size",
                "pair:size",
                f"dropped pair at {_seconds(pair.stamp_ns)}: rgb is {rh.width}x{rh.height} but "
                f"depth is {dh.width}x{dh.height} (depth must be aligned to colour)",
            )
            return
        if not self._same_as_episode(rh, dh, pair.stamp_ns):
            return
        depth_arr = image_to_numpy(dh, name=self.topics.get("depth"))
        if not self._depth_ok(depth_arr, pair.stamp_ns):
            return
        if self.keyframes is not None:
            rgb_arr = image_to_numpy(rh, name=self.topics.get("rgb"))
            if not self.keyframes.consider(pair.stamp_ns, rgb_arr, depth_arr):
                self.keyframe_skips += 1
                return
        self.writer.submit(pair.stamp_ns, rgb.raw, depth.raw, self.camera_info)

    def _same_as_episode(self, rh: CdrImage, dh: CdrImage, stamp_ns: int) -> bool:
        size, encodings = (rh.height, rh.width), {"rgb": rh.encoding, "depth": dh.encoding}
        if self.size is None:
            self.size, self.encodings = size, encodings
            return True
        if size != self.size:
            self._reject(
                "size",
                "pair:episode_size",
                f"dropped pair at {_seconds(stamp_ns)}: size {size[1]}x{size[0]} differs from "
                f"this episode's {self.size[1]}x{self.size[0]}",
            )
            return False
        if encodings != self.encodings:
            self._reject(
                "encoding",
                "pair:episode_encoding",
                f"dropped pair at {_seconds(stamp_ns)}: encodings {encodings} differ from "
                f"this episode's {self.encodings}",
            )
            return False
        return True

    def _depth_ok(self, depth: np.ndarray, stamp_ns: int) -> bool:
        fraction = measured_fraction(depth)
        if fraction == 0.0 and self.drop_invalid_depth:
            self._reject(
                "depth_all_invalid",
                "pair:depth_invalid",
                f"dropped pair at {_seconds(stamp_ns)}: depth on "
                f"'{self.topics.get('depth')}' has no valid pixel (all 0/NaN)",
            )
            return False
        self._valid_sum += fraction
        self._valid_n += 1
        return True

    # ---------------------------------------------------------------- end
    def finish(self, stop_reason: str = "stopped", timeout: float = 60.0) -> EpisodeMeta:
        """Pair what is still pending, write it, close the episode; returns its metadata."""
        for pair in self.pairer.flush():
            self._pair(pair)
        self.sync_counts()
        return self.writer.stop(timeout, stop_reason)
