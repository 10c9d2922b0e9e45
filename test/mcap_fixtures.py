"""Real MCAP bags for the storage tests, no ROS: images serialized by the rosbags typestore,
bags written by :class:`McapBagWriter`, and the official ``mcap`` library as the oracle of
what a file holds."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader, breakup_chunk
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from deal_ros.episodes.mcap_writer import McapBagWriter
from deal_ros.episodes.meta import BAG_TOPICS

STORE = get_typestore(Stores.ROS2_JAZZY)
NS = 1_000_000_000
BASE = 1_700_000_000 * NS
IMAGE, CAMERA_INFO, STRING = (
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CameraInfo",
    "std_msgs/msg/String",
)
_T = STORE.types


def stamp_of(i: int) -> int:
    """Frame ``i``'s stamp at 30 Hz."""
    return BASE + i * NS // 30


def image_bytes(
    pixels: np.ndarray, encoding: str, stamp_ns: int, *, step: int | None = None, frame_id="c"
) -> memoryview:
    """A serialized ``sensor_msgs/Image`` (CDR, as a raw subscription receives it);
    ``step`` overrides the row size written in the message (the data stays as is)."""
    data = np.ascontiguousarray(pixels).reshape(-1).view(np.uint8)
    sec, nanosec = divmod(stamp_ns, NS)
    header = _T["std_msgs/msg/Header"](
        stamp=_T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )
    h, w = pixels.shape[:2]
    msg = _T[IMAGE](
        header=header,
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=step if step is not None else data.size // max(h, 1),
        data=data,
    )
    return STORE.serialize_cdr(msg, IMAGE)


def frame_arrays(i: int, h: int = 12, w: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``i``: rgb8 with ``i`` in its red channel, 16UC1 depth of ``500 + i`` mm with an
    invalid (zero) first column."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = i % 256
    rgb[..., 1] = np.arange(w, dtype=np.uint8)[None, :]
    depth = np.full((h, w), 500 + i, np.uint16)
    depth[:, 0] = 0
    return rgb, depth


def frame_bytes(i: int, h: int = 12, w: int = 16, stamp_ns: int | None = None):
    """(rgb, depth) of frame ``i`` serialized, stamped ``stamp_of(i)`` unless given."""
    stamp = stamp_of(i) if stamp_ns is None else stamp_ns
    rgb, depth = frame_arrays(i, h, w)
    return image_bytes(rgb, "rgb8", stamp), image_bytes(depth, "16UC1", stamp)


def info_bytes(stamp_ns: int, h: int = 12, w: int = 16) -> memoryview:
    sec, nanosec = divmod(stamp_ns, NS)
    header = _T["std_msgs/msg/Header"](
        stamp=_T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id="c"
    )
    roi = _T["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    msg = _T[CAMERA_INFO](
        header=header,
        height=h,
        width=w,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.array([600.0, 0, w / 2, 0, 600.0, h / 2, 0, 0, 1]),
        r=np.eye(3).reshape(-1),
        p=np.zeros(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )
    return STORE.serialize_cdr(msg, CAMERA_INFO)


def write_bag(
    bag_dir: Path,
    frames: int,
    *,
    chunk_bytes: int = 1 << 20,
    info_every: int = 0,
    late_topic_at: int | None = None,
    flush_every: int = 0,
) -> McapBagWriter:
    """An episode-like bag of ``frames`` rgb + depth pairs (and camera_info every
    ``info_every``-th frame; a ``/late`` String topic added before frame ``late_topic_at``;
    a chunk cut every ``flush_every`` frames). Returns the writer, NOT closed."""
    writer = McapBagWriter(bag_dir, chunk_bytes=chunk_bytes).open()
    info = writer.add_connection(BAG_TOPICS["camera_info"], CAMERA_INFO, STORE) if info_every else 0
    rgb = writer.add_connection(BAG_TOPICS["rgb"], IMAGE, STORE)
    depth = writer.add_connection(BAG_TOPICS["depth"], IMAGE, STORE)
    late = None
    for i in range(frames):
        if i == late_topic_at:
            late = writer.add_connection("/late", STRING, STORE)
        t = stamp_of(i)
        a, b = frame_bytes(i)
        messages = [(rgb, a), (depth, b)]
        if info_every and i % info_every == 0:
            messages.append((info, info_bytes(t)))
        if late is not None:
            messages.append((late, STORE.serialize_cdr(_T[STRING](data=f"f{i}"), STRING)))
        writer.write_group(t, messages)
        if flush_every and (i + 1) % flush_every == 0:
            writer.flush(sync=False)
    return writer


def records(data: bytes) -> list[tuple[int, int, int]]:
    """``(offset, opcode, record bytes)`` of every top-level record after the magic, up to
    the first that does not fit ``data`` (the record framing: opcode u8, length u64)."""
    out, pos = [], 8
    while pos + 9 <= len(data):
        op, length = struct.unpack_from("<BQ", data, pos)
        if pos + 9 + length > len(data):
            break
        out.append((pos, op, 9 + length))
        pos += 9 + length
    return out


def chunk_groups(mcap: Path) -> list[tuple[int, set[tuple[str, int]]]]:
    """(end offset of chunk + its message indexes, {(topic, log_time)}) per chunk of a
    finalized file, from the official mcap library."""
    data = mcap.read_bytes()
    with mcap.open("rb") as f:
        summary = make_reader(f).get_summary()
    topics = {cid: ch.topic for cid, ch in summary.channels.items()}
    groups = []
    for ci in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
        start = ci.chunk_start_offset
        raw = data[start : start + ci.chunk_length]
        chunk = next(iter(StreamReader(io.BytesIO(raw), skip_magic=True, emit_chunks=True).records))
        msgs = {
            (topics[r.channel_id], r.log_time)
            for r in breakup_chunk(chunk)
            if type(r).__name__ == "Message"
        }
        groups.append((start + ci.chunk_length + ci.message_index_length, msgs))
    return groups


def mcap_messages(mcap: Path) -> set[tuple[str, int, bytes]]:
    """Every message as (topic, log time, data), read with the official mcap library through
    the summary (CRCs validated where written)."""
    with mcap.open("rb") as f:
        reader = make_reader(f, validate_crcs=True)
        return {(ch.topic, m.log_time, bytes(m.data)) for _, ch, m in reader.iter_messages()}


def stream_records(mcap: Path) -> list[str]:
    """Record type names of the whole file read front to back by the mcap stream reader
    (which checks the magic at both ends)."""
    with mcap.open("rb") as f:
        return [type(r).__name__ for r in StreamReader(f, validate_crcs=True).records]


def rosbags_messages(bag_dir: Path) -> set[tuple[str, int, bytes]]:
    """Every message as (topic, log time, data), read with rosbags (metadata.yaml + MCAP)."""
    with Reader(bag_dir) as reader:
        return {(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()}


def rosbags_bag(path, frames: int = 12):
    """A plain MCAP bag written by rosbags (CRC 0: nothing to check), ~1 chunk per 4 frames."""
    sent = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        rgb = writer.add_connection("/camera/camera/color/image_raw", IMAGE, typestore=STORE)
        depth = writer.add_connection(
            "/camera/camera/aligned_depth_to_color/image_raw", IMAGE, typestore=STORE
        )
        for i in range(frames):
            pixels = np.full((240, 320, 3), i, np.uint8)
            mm = np.full((240, 320), 500 + i, np.uint16)
            writer.write(rgb, stamp_of(i), image_bytes(pixels, "rgb8", stamp_of(i)))
            writer.write(depth, stamp_of(i) + 1, image_bytes(mm, "16UC1", stamp_of(i)))
            sent.append(i)
    return sent
