"""Paired RGB-D frames from any rosbag (rosbag2 MCAP or sqlite3, rosbag1), no ROS install.

Messages are read in bag order with rosbags and pushed into the same
:class:`~deal_ros.core.pairing.ApproxTimePairer` the live recorder uses, so a replay pairs
what the robot would have paired:

- ``pair_by="header"`` (plain bags): rgb and depth are paired by header stamp within
  ``slop_ns`` (15 ms by default, the recorder's default);
- ``pair_by="log_time"`` (episodes): the recorder wrote both messages of a pair with the same
  log time, so pairing by log time with zero slop gives back exactly the recorded pairs.

camera_info is not paired: each frame gets the newest camera_info whose log time is not after
the log time at which the frame was completed (in an episode, the camera_info written with the
pair). Frames are decoded with the core codec: ``rgb`` (H, W, 3) uint8 (from rgb8, bgr8,
mono8, ...), ``depth_m`` float32 metres with ``valid`` (core depth conventions).

A message that cannot be decoded is skipped and counted in :attr:`BagFrameReader.skipped`
(with one warning per reason), unless ``strict=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.core.depth import depth_msg_to_metres
from deal_ros.core.errors import DepthFormatError, ImageFormatError
from deal_ros.core.image_codec import to_rgb8
from deal_ros.core.pairing import DEFAULT_SLOP_NS, ApproxTimePairer, PairingStats, stamp_to_ns
from deal_ros.errors import DealError

__all__ = ["BagError", "BagFrameReader", "Frame", "FrameTopics", "bag_topics", "open_bag"]

log = logging.getLogger(__name__)
_IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/Image")
_INFO_TYPES = ("sensor_msgs/msg/CameraInfo", "sensor_msgs/CameraInfo")


class BagError(DealError, ValueError):
    """A bag that cannot be opened, or a topic it does not hold."""


@dataclass(frozen=True)
class FrameTopics:
    """Which topics make a frame: ``rgb`` (required), ``depth`` and ``camera_info``
    (optional)."""

    rgb: str
    depth: str | None = None
    camera_info: str | None = None


@dataclass
class Frame:
    """One decoded frame. ``stamp_ns`` is the rgb header stamp, ``stamps`` every image's own
    header stamp, ``log_time_ns`` the bag log time of the rgb message and ``log_times`` that of
    every image (so a frame can be fetched again by log time)."""

    index: int
    stamp_ns: int
    log_time_ns: int
    stamps: dict[str, int]
    rgb: np.ndarray
    depth_m: np.ndarray | None = None
    valid: np.ndarray | None = None
    frame_ids: dict[str, str] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    camera_info: Any = None
    labels: tuple[str, ...] = ()
    log_times: dict[str, int] = field(default_factory=dict)


def open_bag(path: str | Path) -> Any:
    """An opened rosbags ``AnyReader`` on a bag directory (rosbag2) or file (rosbag1, or an
    .mcap/.db3 file inside a rosbag2 directory)."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag '{path}': no such file or directory")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        path = path.parent
    reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
    try:
        reader.open()
    except (AnyReaderError, OSError, ValueError) as exc:
        raise BagError(f"bag '{path}': cannot open: {exc}") from None
    return reader


def bag_topics(path: str | Path) -> dict[str, tuple[str | None, int]]:
    """``{topic: (message type, message count)}`` of a bag."""
    reader = open_bag(path)
    try:
        return {name: (info.msgtype, info.msgcount) for name, info in reader.topics.items()}
    finally:
        reader.close()


@dataclass
class _Pending:
    """A pair emitted by the pairer, held until the reader has passed its log time."""

    log_time: int
    items: dict[str, tuple[int, Any]]  # stream -> (log time, message)


class BagFrameReader:
    """Iterate paired, decoded :class:`Frame` objects from a bag (module doc).

    ``depth_min_m``/``depth_max_m`` bound valid depth (core defaults 0.1 m and 10 m; ``None``
    means unbounded). ``start_ns``/``stop_ns`` limit the log times read. ``every`` keeps one
    frame in ``every``. A missing camera_info topic is an error unless
    ``require_camera_info=False``. After iteration :attr:`stats` holds the pairing counters."""

    def __init__(
        self,
        path: str | Path,
        topics: FrameTopics,
        *,
        pair_by: str = "header",
        slop_ns: int = DEFAULT_SLOP_NS,
        queue_size: int = 30,
        depth_min_m: float | None = 0.1,
        depth_max_m: float | None = 10.0,
        labels: tuple[str, ...] | list[str] = (),
        start_ns: int | None = None,
        stop_ns: int | None = None,
        every: int = 1,
        strict: bool = False,
        require_camera_info: bool = True,
    ) -> None:
        if pair_by not in ("header", "log_time"):
            raise BagError(f"pair_by must be 'header' or 'log_time', got {pair_by!r}")
        if every < 1:
            raise BagError(f"every must be >= 1, got {every}")
        self.path = Path(path)
        self.topics = topics
        self.pair_by = pair_by
        self.slop_ns = 0 if pair_by == "log_time" else int(slop_ns)
        self.queue_size = queue_size
        self.depth_range = (depth_min_m, depth_max_m)
        self.labels = tuple(labels)
        self.start_ns, self.stop_ns, self.every = start_ns, stop_ns, every
        self.strict = strict
        self.require_camera_info = require_camera_info
        if topics.rgb == topics.depth:
            raise BagError(f"rgb and depth must be different topics, got '{topics.rgb}' twice")
        self.skipped: dict[str, int] = {}
        self.stats: PairingStats | None = None

    def _streams(self) -> tuple[str, ...]:
        return ("rgb", "depth") if self.topics.depth else ("rgb",)

    def _connections(self, reader: Any) -> dict[str, list[Any]]:
        wanted = {"rgb": self.topics.rgb, "depth": self.topics.depth}
        if self.topics.camera_info:
            wanted["camera_info"] = self.topics.camera_info
        by_topic: dict[str, list[Any]] = {}
        for conn in reader.connections:
            by_topic.setdefault(conn.topic, []).append(conn)
        out: dict[str, list[Any]] = {}
        for key, topic in wanted.items():
            if topic is None:
                continue
            conns = by_topic.get(topic)
            if not conns and key == "camera_info" and not self.require_camera_info:
                continue
            if not conns:
                have = ", ".join(f"{t} ({c[0].msgtype})" for t, c in sorted(by_topic.items()))
                raise BagError(
                    f"bag '{self.path}': no topic '{topic}' for {key}; it holds: {have or 'none'}"
                )
            types = _INFO_TYPES if key == "camera_info" else _IMAGE_TYPES
            if conns[0].msgtype not in types:
                raise BagError(
                    f"bag '{self.path}': topic '{topic}' ({key}) is {conns[0].msgtype}, "
                    f"expected {types[0]}"
                )
            out[key] = conns
        return out

    def __iter__(self) -> Iterator[Frame]:
        reader = open_bag(self.path)
        try:
            yield from self._frames(reader)
        finally:
            reader.close()

    def _frames(self, reader: Any) -> Iterator[Frame]:
        conns = self._connections(reader)
        stream_of = {cs[0].topic: key for key, cs in conns.items()}
        pairer = ApproxTimePairer(self._streams(), self.slop_ns, self.queue_size)
        pending: list[_Pending] = []
        info: Any = None
        count = emitted = 0
        everything = [c for cs in conns.values() for c in cs]
        for conn, log_time, raw in reader.messages(everything, self.start_ns, self.stop_ns):
            while pending and pending[0].log_time < log_time:
                frame = self._frame(pending.pop(0), info, emitted)
                emitted += 1
                if frame is not None and (emitted - 1) % self.every == 0:
                    count += 1
                    yield frame
            key = stream_of[conn.topic]
            msg = self._deserialize(reader, raw, conn, key)
            if msg is None:
                continue
            if key == "camera_info":
                info = msg
                continue
            stamp = log_time if self.pair_by == "log_time" else self._stamp(msg, key)
            if stamp is None:
                continue
            for pair in pairer.push(key, stamp, (log_time, msg)):
                pending.append(_Pending(log_time, pair.items))
        for pair in pairer.flush():
            pending.append(_Pending(pending[-1].log_time if pending else 0, pair.items))
        for item in pending:
            frame = self._frame(item, info, emitted)
            emitted += 1
            if frame is not None and (emitted - 1) % self.every == 0:
                count += 1
                yield frame
        self.stats = pairer.stats

    def _skip(self, reason: str, detail: str) -> None:
        if self.strict:
            raise BagError(f"bag '{self.path}': {detail}")
        if reason not in self.skipped:
            log.warning("bag '%s': skipping messages: %s", self.path, detail)
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def _deserialize(self, reader: Any, raw: bytes, conn: Any, key: str) -> Any:
        try:
            return reader.deserialize(raw, conn.msgtype)
        except Exception as exc:  # rosbags raises several types for corrupt data
            self._skip("malformed", f"{key} message on '{conn.topic}' cannot be read: {exc}")
            return None

    def _stamp(self, msg: Any, key: str) -> int | None:
        try:
            return stamp_to_ns(msg.header.stamp)
        except (AttributeError, DealError):
            self._skip("malformed", f"{key} message without a header stamp")
            return None

    def _frame(self, item: _Pending, info: Any, index: int) -> Frame | None:
        rgb_log, rgb_msg = item.items["rgb"]
        try:
            rgb = to_rgb8(rgb_msg, name=self.topics.rgb)
            if not rgb.flags.writeable:
                rgb = rgb.copy()
            depth_m = valid = None
            depth_msg = item.items.get("depth", (None, None))[1]
            if depth_msg is not None:
                lo, hi = self.depth_range
                depth_m, valid = depth_msg_to_metres(
                    depth_msg, name=self.topics.depth, min_m=lo, max_m=hi
                )
                if depth_m.shape != rgb.shape[:2]:
                    raise DepthFormatError(
                        f"depth image '{self.topics.depth}' is {depth_m.shape[1]}x"
                        f"{depth_m.shape[0]} but rgb is {rgb.shape[1]}x{rgb.shape[0]}"
                    )
        except (ImageFormatError, DepthFormatError) as exc:
            self._skip("decode", str(exc))
            return None
        msgs = {k: m for k, (_, m) in item.items.items()}
        return Frame(
            index=index,
            stamp_ns=stamp_to_ns(rgb_msg.header.stamp),
            log_time_ns=rgb_log,
            stamps={k: stamp_to_ns(m.header.stamp) for k, m in msgs.items()},
            rgb=rgb,
            depth_m=depth_m,
            valid=valid,
            frame_ids={k: m.header.frame_id for k, m in msgs.items()},
            encodings={k: m.encoding for k, m in msgs.items()},
            camera_info=info,
            labels=self.labels,
            log_times={k: t for k, (t, _) in item.items.items()},
        )
