"""Random access to the paired frames of a bag, for map-style datasets.

:class:`deal_ros.episodes.bag_io.BagFrameReader` reads a bag front to back, pairing with the core
:class:`~deal_ros.core.pairing.ApproxTimePairer` (what the robot saw). A dataset needs frame
``i`` in any order, so:

1. :func:`index_frames` runs that reader ONCE and keeps, per frame, the log time and header
   stamp of each of its messages (:class:`FrameRef`) and the camera matrix;
2. :class:`BagAccess` fetches one frame by reading only the messages at those log times with
   one :class:`~deal_ros.episodes.bag_io.BagSource` kept open per process (opened on first
   use; not pickled, and reopened in a forked child, so DataLoader workers never share a file
   offset), and decodes them with the same core functions as the reader. An MCAP chunk read
   here is checked against its CRC again: one that fails (the file changed since it was
   indexed) is one error line, never a frame.

``bench/bench_datasets.py`` (640x480 episode, a busy 2-core machine): a random frame this way
took 4-11 ms, 7-20x less than ``Episode.frames(start_ns, stop_ns)`` over a one-frame window,
which opens the bag on every call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.core.depth import depth_msg_to_metres
from deal_ros.core.errors import DepthFormatError, ImageFormatError
from deal_ros.core.image_codec import to_rgb8
from deal_ros.core.pairing import stamp_to_ns
from deal_ros.data.adapters.base import DatasetError
from deal_ros.episodes.bag_io import BagError, BagFrameReader, Frame, FrameTopics, open_bag

__all__ = ["BagAccess", "FrameRef", "index_frames"]


@dataclass(frozen=True)
class FrameRef:
    """Where one paired frame lives in its bag: per stream (``rgb``, ``depth``) the log time
    and header stamp of its message; ``K`` the 3x3 camera matrix (row-major) or None."""

    stamp_ns: int
    log_times: tuple[tuple[str, int], ...]
    stamps: tuple[tuple[str, int], ...]
    K: tuple[float, ...] | None = None
    labels: tuple[str, ...] = ()

    @property
    def log_time_ns(self) -> int:
        return dict(self.log_times)["rgb"]


def _k_of(info: Any) -> tuple[float, ...] | None:
    k = getattr(info, "k", None)
    if k is None:
        return None
    k = tuple(float(v) for v in np.asarray(k).reshape(-1))
    return k if len(k) == 9 and any(k) else None


def _depth_log_times(path: Path, topic: str) -> dict[int, int]:
    """header stamp -> log time of every message on the depth topic (the first one wins, as
    the pairer drops a repeated stamp)."""
    source = open_bag(path)
    try:
        msgtype = source.msgtype(topic)
        out: dict[int, int] = {}
        for _topic, log_time, raw in source.messages([topic]):
            try:
                stamp = stamp_to_ns(source.deserialize(raw, msgtype).header.stamp)
            except Exception:
                continue
            out.setdefault(stamp, log_time)
        return out
    finally:
        source.close()


def index_frames(reader: BagFrameReader, frames: Iterable[Frame] | None = None) -> list[FrameRef]:
    """One pass of ``reader`` -> a :class:`FrameRef` per frame it yields (see module doc)."""
    refs = []
    depth_topic = reader.topics.depth
    same_log_time = reader.pair_by == "log_time"
    depth_logs: dict[int, int] | None = None
    for f in reader if frames is None else frames:
        logs = {"rgb": f.log_time_ns}
        if depth_topic and "depth" in f.stamps:
            if same_log_time:
                logs["depth"] = f.log_time_ns
            else:
                if depth_logs is None:
                    depth_logs = _depth_log_times(reader.path, depth_topic)
                if f.stamps["depth"] not in depth_logs:
                    raise DatasetError(
                        f"bag '{reader.path}': the depth message stamped {f.stamps['depth']} "
                        f"on '{depth_topic}' cannot be found again (unreadable?)"
                    )
                logs["depth"] = depth_logs[f.stamps["depth"]]
        refs.append(
            FrameRef(
                stamp_ns=f.stamp_ns,
                log_times=tuple(sorted(logs.items())),
                stamps=tuple(sorted(f.stamps.items())),
                K=_k_of(f.camera_info),
                labels=tuple(f.labels),
            )
        )
    return refs


class BagAccess:
    """Fetch and decode indexed frames of one bag (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        topics: FrameTopics,
        *,
        depth_min_m: float | None = 0.1,
        depth_max_m: float | None = 10.0,
    ) -> None:
        self.path = Path(path)
        self.topics = topics
        self.depth_range = (depth_min_m, depth_max_m)
        self._reader: Any = None
        self._pid = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None
        return state

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def _open(self) -> Any:
        if self._reader is not None and self._pid != os.getpid():
            self._reader = None  # inherited through fork: the parent's file
        if self._reader is None:
            self._reader, self._pid = open_bag(self.path), os.getpid()
        return self._reader

    def _message(self, key: str, log_time: int, stamp: int) -> Any:
        source = self._open()
        topic = getattr(self.topics, key)
        try:
            raws = source.message_at(topic, log_time)
        except BagError as exc:
            raise DatasetError(str(exc)) from None
        for raw in raws:
            msg = source.deserialize(raw, source.msgtype(topic))
            if stamp_to_ns(msg.header.stamp) == stamp:
                return msg
        raise DatasetError(
            f"bag '{self.path}': no {key} message on '{topic}' with stamp {stamp} at log time "
            f"{log_time} (the bag changed since it was indexed?)"
        )

    def read(self, ref: FrameRef) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(rgb (H,W,3) uint8, depth_m float32 or None, valid bool or None)`` of a frame."""
        logs, stamps = dict(ref.log_times), dict(ref.stamps)
        rgb_msg = self._message("rgb", logs["rgb"], stamps["rgb"])
        try:
            rgb = to_rgb8(rgb_msg, name=self.topics.rgb)
            if not rgb.flags.writeable:
                rgb = rgb.copy()
            if "depth" not in logs:
                return rgb, None, None
            depth_msg = self._message("depth", logs["depth"], stamps["depth"])
            lo, hi = self.depth_range
            depth, valid = depth_msg_to_metres(
                depth_msg, name=self.topics.depth, min_m=lo, max_m=hi
            )
        except (ImageFormatError, DepthFormatError) as exc:
            raise DatasetError(f"bag '{self.path}': {exc}") from None
        if depth.shape != rgb.shape[:2]:
            raise DatasetError(
                f"bag '{self.path}': depth image '{self.topics.depth}' is {depth.shape[1]}x"
                f"{depth.shape[0]} but rgb is {rgb.shape[1]}x{rgb.shape[0]}"
            )
        return rgb, depth, valid
