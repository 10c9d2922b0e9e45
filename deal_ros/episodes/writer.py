"""Write one episode: serialized rgb/depth (and camera_info) messages into a rosbag2 MCAP bag,
crash-safe (no rclpy).

The bag is written by :class:`deal_ros.episodes.mcap_writer.McapBagWriter` (rosbags-compatible
records and type definitions from the rosbags typestore, no payload copies). Durability (our
choice of mechanism, the bound is the issue's): frames are grouped into chunks of about 1 MiB
written as soon as they are full (one frame per chunk at 848x480), and every
``sync_interval_s`` (0.5 s by default) :meth:`EpisodeWriter.checkpoint` writes the pending
chunk and fdatasyncs the file. So a kill -9 loses at most the pending chunk (under
``sync_interval_s`` of frames) plus what waits in the writer queue, and a power loss at most
what came after the last fsync; ``repair`` then keeps every complete chunk
(:mod:`deal_ros.episodes.repair`).

Disk full (or any other write error): the bag is cut back to its last completely written chunk
and finalized in place, ``episode.yaml`` records ``stop_reason: disk_full`` and the error, and
the episode is closed; a small reserve file (``reserve_bytes``) created at start is deleted
first so the summary and the YAML files always fit.

:class:`AsyncEpisodeWriter` runs an :class:`EpisodeWriter` on its own thread behind a bounded
queue: :meth:`~AsyncEpisodeWriter.submit` never blocks; when the queue is full the frame is
dropped and counted as ``writer_behind``.
"""

from __future__ import annotations

import errno
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from deal_ros.episodes.mcap_writer import McapBagWriter
from deal_ros.episodes.meta import (
    BAG_DIR,
    BAG_TOPICS,
    LOCK_FILE,
    RESERVE_FILE,
    EpisodeError,
    EpisodeMeta,
    fsync_dir,
    iso_utc,
    save_meta,
    validate_boxes,
)
from deal_ros.episodes.repair import dir_bytes, pair_counts, recover_bag

__all__ = ["AsyncEpisodeWriter", "EpisodeWriter", "is_disk_full"]

_IMAGE = "sensor_msgs/msg/Image"
_CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left" style errors (ENOSPC, EDQUOT, EFBIG)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _lock(path: Path) -> int:
    import fcntl

    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise EpisodeError(f"episode '{path.parent}' is locked by another recorder") from None
    return fd


def _reserve(path: Path, size: int) -> None:
    if size <= 0:
        return
    with path.open("wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except (AttributeError, OSError) as exc:
            if is_disk_full(exc):
                raise
            f.write(b"\0" * size)


class EpisodeWriter:
    """Synchronous writer of one episode directory (not thread-safe for writes; counters may be
    updated from another thread with :meth:`update_counts`).

    ``directory`` must not exist yet; its parent must. Use :meth:`open` (or
    :meth:`deal_ros.episodes.store.EpisodeStore.create`), then :meth:`write_pair` per frame and
    :meth:`close` once."""

    def __init__(
        self,
        directory: str | Path,
        meta: EpisodeMeta,
        *,
        sync_interval_s: float = 0.5,
        reserve_bytes: int = 1 << 20,
        meta_interval_s: float = 5.0,
    ) -> None:
        if sync_interval_s <= 0:
            raise EpisodeError(f"sync_interval_s must be > 0, got {sync_interval_s}")
        self.directory = Path(directory)
        self.meta = meta
        self.sync_interval_s = float(sync_interval_s)
        self.reserve_bytes = int(reserve_bytes)
        self.meta_interval_s = float(meta_interval_s)
        self.frames = 0
        self.closed = False
        self._bag: Any = None
        self._conns: dict[str, Any] = {}
        self._store: Any = None
        self._lock_fd: int | None = None
        self._last_sync = self._last_meta = time.monotonic()
        self._meta_lock = threading.Lock()

    # ------------------------------------------------------------------ opening
    def open(self) -> EpisodeWriter:
        from rosbags.typesys import Stores, get_typestore

        try:
            self.directory.mkdir()
        except FileExistsError:
            raise EpisodeError(f"episode '{self.directory}' exists already") from None
        try:
            self._lock_fd = _lock(self.directory / LOCK_FILE)
            _reserve(self.directory / RESERVE_FILE, self.reserve_bytes)
            save_meta(self.directory, self.meta)
            self._store = get_typestore(Stores.ROS2_JAZZY)
            self._bag = McapBagWriter(self.directory / BAG_DIR).open()
            for key in ("rgb", "depth"):
                self._connection(key, _IMAGE)
            self._bag.flush(sync=True)
            fsync_dir(self.directory / BAG_DIR)
            fsync_dir(self.directory.parent)  # the episode directory itself: by save_meta
        except BaseException as exc:
            self._abandon()
            shutil.rmtree(self.directory, ignore_errors=True)  # nothing was recorded yet
            if is_disk_full(exc):
                raise EpisodeError(f"episode '{self.directory}': disk full at start") from exc
            raise
        return self

    def _connection(self, key: str, msgtype: str) -> Any:
        conn = self._conns.get(key)
        if conn is None:
            conn = self._bag.add_connection(BAG_TOPICS[key], msgtype, self._store)
            self._conns[key] = conn
        return conn

    # ------------------------------------------------------------------ writing
    @property
    def bytes_written(self) -> int:
        """Bytes of the bag so far (written plus the pending chunk)."""
        bag = self._bag
        if bag is None:
            return self.meta.bytes
        return bag.offset + bag.pending_bytes

    @property
    def durable_bytes(self) -> int:
        """File offset up to which data was fsync'ed (a clean chunk boundary)."""
        return self._bag.durable if self._bag is not None else self.meta.bytes

    def write_pair(
        self,
        stamp_ns: int,
        rgb: bytes | memoryview,
        depth: bytes | memoryview,
        camera_info: bytes | memoryview | None = None,
    ) -> None:
        """Write one paired frame; all its messages get log time ``stamp_ns`` (the rgb
        header stamp), camera_info first. ``stamp_ns`` increases from pair to pair, except
        after a camera clock step back (the recorder follows it): readers read in log-time
        order, so the frames after such a step come before the older stamps."""
        if self._bag is None or self.closed:
            raise EpisodeError(f"episode '{self.directory}' is not open for writing")
        messages = [(self._conns["rgb"], rgb), (self._conns["depth"], depth)]
        if camera_info is not None:
            messages.insert(0, (self._connection("camera_info", _CAMERA_INFO), camera_info))
        self._bag.write_group(stamp_ns, messages)
        self.frames += 1
        with self._meta_lock:  # the span of the stamps (a camera clock step back: not in order)
            first, last = self.meta.first_stamp_ns, self.meta.last_stamp_ns
            self.meta.first_stamp_ns = int(stamp_ns) if first is None else min(first, stamp_ns)
            self.meta.last_stamp_ns = int(stamp_ns) if last is None else max(last, stamp_ns)
        if time.monotonic() - self._last_sync >= self.sync_interval_s:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Put everything written so far on the disk (write the pending chunk, fdatasync);
        every ``meta_interval_s`` also refresh ``episode.yaml``."""
        self._bag.flush(sync=True)
        now = time.monotonic()
        self._last_sync = now
        if now - self._last_meta >= self.meta_interval_s:
            self._last_meta = now
            self._save(frames=self.frames, bytes_=self._bag.durable)

    def update_counts(
        self,
        dropped: dict[str, int] | None = None,
        invalid: dict[str, int] | None = None,
        **fields: Any,
    ) -> None:
        """Merge the recorder's counters (and other metadata fields such as ``encodings``,
        ``size``, ``depth_valid_fraction``) into the episode metadata; thread-safe."""
        with self._meta_lock:
            if dropped:
                self.meta.dropped.update({k: int(v) for k, v in dropped.items()})
            if invalid:
                self.meta.invalid.update({k: int(v) for k, v in invalid.items()})
            for key, value in fields.items():
                if not hasattr(self.meta, key):
                    raise EpisodeError(f"episode metadata has no field {key!r}")
                setattr(self.meta, key, value)

    def add_boxes(self, boxes: list[dict[str, Any]]) -> None:
        """Append boxes (``validate_boxes`` form) to the episode metadata; saved with the next
        metadata checkpoint, as the counters are; thread-safe."""
        boxes = validate_boxes(boxes, self.meta.labels)
        with self._meta_lock:
            self.meta.boxes.extend(boxes)

    def _save(self, **values: Any) -> None:
        with self._meta_lock:
            if "frames" in values:
                self.meta.frames = int(values["frames"])
            if "bytes_" in values:
                self.meta.bytes = int(values["bytes_"])
            save_meta(self.directory, self.meta)

    # ------------------------------------------------------------------ closing
    def close(self, stop_reason: str = "stopped") -> EpisodeMeta:
        """Finish the bag (rosbags writes its summary and ``metadata.yaml``), mark the episode
        ``complete`` and release it. A write error while closing takes the
        :meth:`close_after_error` path."""
        if self.closed:
            return self.meta
        try:
            self._bag.close()
        except OSError as exc:
            return self.close_after_error(exc)
        self._bag = None
        return self._finish("complete", stop_reason, None, self.frames)

    def close_after_error(self, exc: BaseException) -> EpisodeMeta:
        """Close after a failed write: keep every complete chunk (the data up to the last
        checkpoint is known clean), finalize the bag in place, record why."""
        if self.closed:
            return self.meta
        with suppress(OSError):
            (self.directory / RESERVE_FILE).unlink()
        reason = "disk_full" if is_disk_full(exc) else "error"
        message = _describe(exc)
        bag, self._bag = self._bag, None
        try:
            if bag is None:
                raise EpisodeError("the bag was never opened")
            frames = pair_counts(bag.close_after_error())[0]
        except Exception as again:  # the bag cannot be saved here: repair may do better
            message = f"{message}; finalizing the bag failed too: {_describe(again)}"
            with suppress(Exception):
                bag.abandon()
            try:
                frames = recover_bag(self.directory / BAG_DIR).frames
            except Exception:
                frames = 0
        return self._finish("complete", reason, message, frames)

    def _finish(self, state: str, reason: str, error: str | None, frames: int) -> EpisodeMeta:
        with suppress(OSError):
            (self.directory / RESERVE_FILE).unlink()
        with self._meta_lock:
            self.meta.state = state
            self.meta.stopped = iso_utc()
            self.meta.stop_reason = reason
            self.meta.error = error
        self.frames = frames
        try:
            self._save(frames=frames, bytes_=dir_bytes(self.directory / BAG_DIR))
        except OSError as exc:
            with self._meta_lock:
                self.meta.error = f"{error or ''}; episode.yaml not updated: {_describe(exc)}"
        self.closed = True
        self._unlock()
        return self.meta

    def _abandon(self) -> None:
        """Drop the episode as a crash would: close the file unfinished, release the lock."""
        bag, self._bag = self._bag, None
        if bag is not None:
            with suppress(OSError):
                bag.abandon()
        self._unlock()

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with suppress(OSError):
                os.close(fd)  # closing the descriptor releases the flock


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


_STOP = object()


class AsyncEpisodeWriter:
    """An :class:`EpisodeWriter` on its own thread behind a queue of ``max_queue`` frames.

    ``on_closed(meta, error)`` is called on the writer thread when the episode ends, by
    :meth:`stop` (``error`` None) or by a write error (disk full: the episode is closed with
    what was written)."""

    def __init__(
        self,
        writer: EpisodeWriter,
        max_queue: int = 30,
        on_closed: Callable[[EpisodeMeta, BaseException | None], None] | None = None,
    ) -> None:
        if max_queue < 1:
            raise EpisodeError(f"writer queue must hold at least 1 frame, got {max_queue}")
        self.writer = writer
        self.on_closed = on_closed
        self.writer_behind = 0
        self.error: BaseException | None = None
        self.result: EpisodeMeta | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="episode-writer", daemon=True)
        self._done = threading.Event()
        self._stop_reason = "stopped"

    @property
    def frames(self) -> int:
        return self.writer.frames

    @property
    def bytes_written(self) -> int:
        return self.writer.bytes_written if not self._done.is_set() else self.writer.meta.bytes

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self) -> AsyncEpisodeWriter:
        self._thread.start()
        return self

    def submit(
        self,
        stamp_ns: int,
        rgb: Any,
        depth: Any,
        camera_info: Any = None,
        wait_s: float = 0.0,
    ) -> bool:
        """Queue one frame; False (and ``writer_behind`` + 1) when the queue is full (after
        waiting up to ``wait_s`` for room: the recorder waits while it closes an episode, when
        no new frame can come in), False when the episode is already closed."""
        if self._done.is_set():
            return False
        try:
            item = (stamp_ns, rgb, depth, camera_info)
            if wait_s > 0:
                self._queue.put(item, timeout=wait_s)
            else:
                self._queue.put_nowait(item)
        except queue.Full:
            self.writer_behind += 1
            return False
        return True

    def update_counts(self, dropped: dict[str, int] | None = None, **fields: Any) -> None:
        """:meth:`EpisodeWriter.update_counts`, with this queue's ``writer_behind`` added."""
        dropped = {**(dropped or {}), "writer_behind": self.writer_behind}
        self.writer.update_counts(dropped, **fields)

    def add_boxes(self, boxes: list[dict[str, Any]]) -> None:
        """:meth:`EpisodeWriter.add_boxes`."""
        self.writer.add_boxes(boxes)

    def stop(self, timeout: float = 60.0, stop_reason: str = "stopped") -> EpisodeMeta:
        """Write what is queued, close the episode (``stop_reason`` goes into
        ``episode.yaml``) and return its metadata."""
        self._stop_reason = stop_reason
        if not self._thread.is_alive() and not self._done.is_set():
            self._thread.start()
        if not self._done.is_set():
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise EpisodeError(f"episode writer did not finish within {timeout} s")
        assert self.result is not None
        return self.result

    def _run(self) -> None:
        writer = self.writer
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                writer.write_pair(*item)
            self.result = writer.close(self._stop_reason)
        except BaseException as exc:
            self.error = exc
            self.result = writer.close_after_error(exc)
        finally:
            self._done.set()
            self._drain()
        if self.on_closed is not None:
            self.on_closed(self.result, self.error)

    def _drain(self) -> None:
        with suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
