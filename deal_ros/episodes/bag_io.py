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

MCAP bags (episodes, and ``ros2 bag`` bags) are read by
:class:`~deal_ros.episodes.mcap_reader.McapBagReader`: a chunk whose CRC fails is skipped, its
messages counted in ``skipped["crc"]`` and the chunk listed in
:attr:`BagFrameReader.skipped_chunks` with one warning line each (``on_crc="stop"``, or
``strict=True``, stops with one line instead); a torn file (no summary) is read up to its tear
with one warning saying how much that is and naming the command that makes it valid
(:attr:`BagFrameReader.torn`). Other storages (sqlite3, rosbag1) go through rosbags.
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
from deal_ros.episodes.mcap_format import McapError
from deal_ros.episodes.mcap_reader import ON_CRC, ChunkCrcError, McapBagReader, mcap_files
from deal_ros.errors import DealError

__all__ = [
    "BagError",
    "BagFrameReader",
    "BagSource",
    "Frame",
    "FrameTopics",
    "bag_topics",
    "open_bag",
]

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


class BagSource:
    """One opened bag, whatever its storage: ``topics`` (``{topic: (type, count)}``),
    :meth:`messages` in log-time order as ``(topic, log_time, raw)``, :meth:`message_at`
    (random access by log time), :meth:`deserialize`, ``start_time``; for MCAP bags also the
    chunks skipped for their CRC (``skipped``) and :meth:`torn_note`."""

    def __init__(self, path: Path, mcap: McapBagReader | None, rosbags: Any = None) -> None:
        self.path = path
        self._mcap = mcap
        self._rosbags = rosbags
        if rosbags is not None:
            self._conns: dict[str, list[Any]] = {}
            for conn in rosbags.connections:
                self._conns.setdefault(conn.topic, []).append(conn)

    @property
    def is_mcap(self) -> bool:
        return self._mcap is not None

    @property
    def topics(self) -> dict[str, tuple[str | None, int]]:
        if self._mcap is not None:
            return self._mcap.topics
        return {name: (info.msgtype, info.msgcount) for name, info in self._rosbags.topics.items()}

    def msgtype(self, topic: str) -> str:
        if self._mcap is not None:
            return self._mcap.msgtype(topic)
        return self._conns[topic][0].msgtype

    @property
    def start_time(self) -> int:
        return self._mcap.start_time if self._mcap is not None else int(self._rosbags.start_time)

    @property
    def skipped(self) -> list:
        return self._mcap.skipped if self._mcap is not None else []

    def torn_note(self) -> str:
        return self._mcap.torn_note(self.path) if self._mcap is not None else ""

    def messages(
        self, topics: list[str], start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[str, int, Any]]:
        if self._mcap is not None:
            try:
                yield from self._mcap.messages(topics, start, stop)
            except ChunkCrcError as exc:
                raise BagError(f"bag '{self.path}': {exc}") from None
            return
        conns = [c for t in topics for c in self._conns.get(t, [])]
        try:
            for conn, log_time, raw in self._rosbags.messages(conns, start, stop):
                yield conn.topic, log_time, raw
        except Exception as exc:  # rosbags' ReaderError: a checksum or a torn file
            raise BagError(f"bag '{self.path}': cannot read: {exc}") from None

    def message_at(self, topic: str, log_time: int) -> list[Any]:
        """Every raw message of ``topic`` logged at ``log_time``."""
        if self._mcap is not None:
            try:
                return self._mcap.message_at(topic, log_time)
            except ChunkCrcError as exc:
                raise BagError(f"bag '{self.path}': {exc}") from None
        return [raw for _t, _lt, raw in self.messages([topic], log_time, log_time + 1)]

    def deserialize(self, raw: Any, msgtype: str) -> Any:
        if self._mcap is not None:
            return self._mcap.deserialize(raw, msgtype)
        return self._rosbags.deserialize(raw, msgtype)

    def close(self) -> None:
        if self._mcap is not None:
            self._mcap.close()
        else:
            self._rosbags.close()


def open_bag(path: str | Path, *, on_crc: str = "skip", warn: Any = None) -> BagSource:
    """An opened :class:`BagSource` on a bag directory (rosbag2) or file (rosbag1, or an
    .mcap/.db3 file inside a rosbag2 directory). MCAP bags are read by
    :class:`~deal_ros.episodes.mcap_reader.McapBagReader` (``on_crc``, ``warn(line)``: see
    there), the others by rosbags."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag '{path}': no such file or directory")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        path = path.parent
    files = mcap_files(path)
    if files is not None:
        try:
            return BagSource(path, McapBagReader(files, on_crc=on_crc, warn=warn))
        except (McapError, OSError) as exc:
            raise BagError(f"bag '{path}': cannot open: {exc}") from None
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
    try:
        reader.open()
    except (AnyReaderError, OSError, ValueError) as exc:
        raise BagError(f"bag '{path}': cannot open: {exc}") from None
    return BagSource(path, None, reader)


def bag_topics(path: str | Path) -> dict[str, tuple[str | None, int]]:
    """``{topic: (message type, message count)}`` of a bag."""
    source = open_bag(path)
    try:
        return source.topics
    finally:
        source.close()


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
    ``require_camera_info=False``. ``on_crc``: ``skip`` (default) or ``stop`` at a chunk whose
    CRC fails (``strict`` stops). After iteration :attr:`stats` holds the pairing counters,
    :attr:`skipped` the messages skipped by reason (``crc`` among them),
    :attr:`skipped_chunks` the chunks left out for their CRC and :attr:`torn` the note on a
    torn bag ("" when closed)."""

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
        on_crc: str = "skip",
    ) -> None:
        if pair_by not in ("header", "log_time"):
            raise BagError(f"pair_by must be 'header' or 'log_time', got {pair_by!r}")
        if every < 1:
            raise BagError(f"every must be >= 1, got {every}")
        if on_crc not in ON_CRC:
            raise BagError(f"on_crc must be one of {', '.join(ON_CRC)}, got {on_crc!r}")
        self.path = Path(path)
        self.topics = topics
        self.pair_by = pair_by
        self.slop_ns = 0 if pair_by == "log_time" else int(slop_ns)
        self.queue_size = queue_size
        self.depth_range = (depth_min_m, depth_max_m)
        self.labels = tuple(labels)
        self.start_ns, self.stop_ns, self.every = start_ns, stop_ns, every
        self.strict = strict
        self.on_crc = "stop" if strict else on_crc
        self.require_camera_info = require_camera_info
        if topics.rgb == topics.depth:
            raise BagError(f"rgb and depth must be different topics, got '{topics.rgb}' twice")
        self.skipped: dict[str, int] = {}
        self.skipped_chunks: list[Any] = []
        self.torn = ""
        self.stats: PairingStats | None = None

    def _streams(self) -> tuple[str, ...]:
        return ("rgb", "depth") if self.topics.depth else ("rgb",)

    def _wanted(self, source: BagSource) -> dict[str, str]:
        """``{stream: topic}`` of the topics to read, each checked against the bag."""
        wanted = {"rgb": self.topics.rgb, "depth": self.topics.depth}
        if self.topics.camera_info:
            wanted["camera_info"] = self.topics.camera_info
        have = source.topics
        out: dict[str, str] = {}
        for key, topic in wanted.items():
            if topic is None:
                continue
            if topic not in have and key == "camera_info" and not self.require_camera_info:
                continue
            if topic not in have:
                listed = ", ".join(f"{t} ({m})" for t, (m, _) in sorted(have.items()))
                raise BagError(
                    f"bag '{self.path}': no topic '{topic}' for {key}; it holds: {listed or 'none'}"
                )
            types = _INFO_TYPES if key == "camera_info" else _IMAGE_TYPES
            if have[topic][0] not in types:
                raise BagError(
                    f"bag '{self.path}': topic '{topic}' ({key}) is {have[topic][0]}, "
                    f"expected {types[0]}"
                )
            out[key] = topic
        return out

    def __iter__(self) -> Iterator[Frame]:
        source = open_bag(self.path, on_crc=self.on_crc, warn=self._crc_warning)
        self.torn = source.torn_note()
        if self.torn:
            log.warning("%s", self.torn)
        try:
            yield from self._frames(source)
        finally:
            self.skipped_chunks = list(source.skipped)
            source.close()

    def _crc_warning(self, line: str) -> None:
        log.warning("bag '%s': %s", self.path, line)

    def _frames(self, source: BagSource) -> Iterator[Frame]:
        wanted = self._wanted(source)
        stream_of = {topic: key for key, topic in wanted.items()}
        pairer = ApproxTimePairer(self._streams(), self.slop_ns, self.queue_size)
        pending: list[_Pending] = []
        info: Any = None
        count = emitted = 0
        seen_skips = 0
        messages = source.messages(list(wanted.values()), self.start_ns, self.stop_ns)
        for topic, log_time, raw in messages:
            if len(source.skipped) != seen_skips:
                self._count_crc(source.skipped[seen_skips:], stream_of)
                seen_skips = len(source.skipped)
            while pending and pending[0].log_time < log_time:
                frame = self._frame(pending.pop(0), info, emitted)
                emitted += 1
                if frame is not None and (emitted - 1) % self.every == 0:
                    count += 1
                    yield frame
            key = stream_of[topic]
            msg = self._deserialize(source, raw, topic, key)
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
        self._count_crc(source.skipped[seen_skips:], stream_of)
        for pair in pairer.flush():
            pending.append(_Pending(pending[-1].log_time if pending else 0, pair.items))
        for item in pending:
            frame = self._frame(item, info, emitted)
            emitted += 1
            if frame is not None and (emitted - 1) % self.every == 0:
                count += 1
                yield frame
        self.stats = pairer.stats

    def _count_crc(self, chunks: list[Any], stream_of: dict[str, str]) -> None:
        for chunk in chunks:
            n = sum(v for t, v in chunk.messages.items() if t in stream_of)
            self.skipped["crc"] = self.skipped.get("crc", 0) + n

    def _skip(self, reason: str, detail: str) -> None:
        if self.strict:
            raise BagError(f"bag '{self.path}': {detail}")
        if reason not in self.skipped:
            log.warning("bag '%s': skipping messages: %s", self.path, detail)
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def _deserialize(self, source: BagSource, raw: Any, topic: str, key: str) -> Any:
        try:
            return source.deserialize(raw, source.msgtype(topic))
        except Exception as exc:  # rosbags raises several types for corrupt data
            self._skip("malformed", f"{key} message on '{topic}' cannot be read: {exc}")
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
