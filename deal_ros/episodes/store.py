"""The episode store: onboarding episodes on disk, written by the recorder, read by training
(no rclpy; format in docs/formats.md).

An episode is a directory ``<episodes_dir>/<episode_id>/`` with ``episode.yaml`` and a rosbag2
MCAP bag in ``bag/`` holding the paired rgb and depth Image messages (and camera_info) under
fixed topic names, both messages of a pair at the same log time.

    store = EpisodeStore("./episodes")
    writer = store.create(["mug"])                 # an EpisodeWriter, already open
    writer.write_pair(stamp_ns, rgb_cdr, depth_cdr)
    writer.close()
    for frame in store.open(writer.meta.episode_id).frames():
        frame.rgb, frame.depth_m, frame.valid, frame.labels

Writing is crash-safe (:mod:`deal_ros.episodes.writer`); :func:`repair_episode` turns an
interrupted episode into a valid one (:mod:`deal_ros.episodes.repair`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deal_ros.episodes.bag_io import BagFrameReader, Frame, FrameTopics
from deal_ros.episodes.meta import (
    BAG_DIR,
    BAG_TOPICS,
    LOCK_FILE,
    META_FILE,
    RESERVE_FILE,
    EpisodeError,
    EpisodeMeta,
    default_episode_id,
    iso_utc,
    load_meta,
    save_meta,
    validate_episode_id,
    validate_labels,
)
from deal_ros.episodes.repair import dir_bytes, recover_bag
from deal_ros.episodes.safe_paths import refuse_outside_links
from deal_ros.episodes.writer import AsyncEpisodeWriter, EpisodeWriter, is_disk_full

__all__ = [
    "AsyncEpisodeWriter",
    "Episode",
    "EpisodeError",
    "EpisodeMeta",
    "EpisodeStore",
    "EpisodeWriter",
    "Frame",
    "RepairReport",
    "is_disk_full",
    "repair_episode",
]

_PLAUSIBLE_NS = 946_684_800 * 10**9  # 2000-01-01: older stamps are not wall-clock time


class Episode:
    """One episode directory (read side)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta: EpisodeMeta = load_meta(self.path)

    def __repr__(self) -> str:
        return f"Episode({str(self.path)!r}, {self.meta.frames} frames, {self.state})"

    @property
    def episode_id(self) -> str:
        return self.meta.episode_id

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    @property
    def bag_dir(self) -> Path:
        return self.path / BAG_DIR

    def __len__(self) -> int:
        return int(self.meta.frames)

    def is_locked(self) -> bool:
        """True while a recorder holds the episode open (its lock dies with the process)."""
        import fcntl

        lock = self.path / LOCK_FILE
        if not lock.exists():
            return False
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    @property
    def state(self) -> str:
        """``episode.yaml``'s state, except that a ``recording`` episode no recorder holds is
        ``interrupted`` (the recorder died: run repair)."""
        if self.meta.state == "recording" and not self.is_locked():
            return "interrupted"
        return self.meta.state

    def disk_bytes(self) -> int:
        return dir_bytes(self.path)

    def frames(
        self,
        *,
        depth_min_m: float | None = 0.1,
        depth_max_m: float | None = ...,  # type: ignore[assignment]
        every: int = 1,
        start_ns: int | None = None,
        stop_ns: int | None = None,
        strict: bool = False,
        on_crc: str = "skip",
    ) -> BagFrameReader:
        """An iterable of decoded :class:`Frame` (labels attached), exactly the recorded pairs.
        ``depth_max_m`` defaults to 10 m, and to no bound for sonar episodes (ranges of tens
        of metres). ``on_crc``: ``skip`` a chunk whose CRC fails (counted, one warning) or
        ``stop`` there (``strict`` stops too)."""
        if self.state in ("recording", "interrupted"):
            raise EpisodeError(
                f"episode '{self.path}' is {self.state}: its bag is not closed yet"
                + ("; run 'deal episodes repair'" if self.state == "interrupted" else "")
            )
        if depth_max_m is ...:
            depth_max_m = None if self.meta.source == "sonar" else 10.0
        topics = FrameTopics(
            rgb=self.meta.topics.get("rgb", BAG_TOPICS["rgb"]),
            depth=self.meta.topics.get("depth", BAG_TOPICS["depth"]),
            camera_info=self.meta.topics.get("camera_info", BAG_TOPICS["camera_info"]),
        )
        return BagFrameReader(
            self.bag_dir,
            topics,
            pair_by="log_time",
            depth_min_m=depth_min_m,
            depth_max_m=depth_max_m,
            labels=tuple(self.meta.labels),
            every=every,
            start_ns=start_ns,
            stop_ns=stop_ns,
            strict=strict,
            require_camera_info=False,
            on_crc=on_crc,
        )

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames())

    def repair(self, progress: Callable[[int], None] | None = None) -> RepairReport:
        return repair_episode(self.path, progress=progress)


@dataclass
class RepairReport:
    """What :func:`repair_episode` did."""

    episode_id: str
    state_before: str
    frames_before: int  # frame count in episode.yaml before (last periodic update)
    frames_kept: int
    orphan_messages: int
    dropped_bytes: int
    problem: str
    already_valid: bool
    bad_chunks: int = 0  # chunks failing their CRC (left in place, skipped by readers)
    bad_frames: int = 0

    def summary(self) -> str:
        bad = (
            f"; {self.bad_chunks} chunk(s) fail their CRC: {self.bad_frames} frames not "
            "counted, readers skip them"
            if self.bad_chunks
            else ""
        )
        if self.already_valid:
            return (
                f"{self.episode_id}: already valid ({self.frames_kept} frames), nothing to do{bad}"
            )
        why = f"; torn tail: {self.problem}" if self.problem else ""
        return (
            f"{self.episode_id}: repaired, kept {self.frames_kept} frames "
            f"(episode.yaml said {self.frames_before} before), cut {self.dropped_bytes} bytes, "
            f"{self.orphan_messages} messages of incomplete pairs left for readers to "
            f"skip{bad}{why}"
        )


def repair_episode(
    path: str | Path, *, progress: Callable[[int], None] | None = None
) -> RepairReport:
    """Turn an interrupted episode into a valid one in place (see
    :func:`deal_ros.episodes.repair.recover_bag`) and mark it ``repaired``. Refuses an
    episode a running recorder holds, and one whose files to rewrite are links leading outside
    its folder (:mod:`deal_ros.episodes.safe_paths`). Idempotent."""
    episode = Episode(path)
    if episode.is_locked():
        raise EpisodeError(
            f"episode '{episode.path}' is being recorded (a running recorder holds it); "
            "stop the recorder first"
        )
    meta, state_before = episode.meta, episode.state
    bag = episode.bag_dir
    refuse_outside_links(episode.path, [bag], "repair")
    if not bag.is_dir():
        raise EpisodeError(f"episode '{episode.path}': no '{BAG_DIR}/' directory")
    written = [*bag.glob("*.mcap"), bag / "metadata.yaml", episode.path / META_FILE]
    refuse_outside_links(episode.path, [*written, episode.path / RESERVE_FILE], "repair")
    recovery = recover_bag(bag, progress=progress)
    (episode.path / RESERVE_FILE).unlink(missing_ok=True)
    report = RepairReport(
        meta.episode_id,
        state_before,
        int(meta.frames),
        recovery.frames,
        recovery.orphans,
        recovery.dropped_bytes,
        recovery.problem,
        recovery.was_valid and meta.state in ("complete", "repaired"),
        recovery.bad_chunks,
        recovery.bad_frames,
    )
    if report.already_valid:
        return report
    if not meta.encodings or not meta.size or meta.depth_valid_fraction is None:
        _restore_images(meta, bag, recovery)
    last = recovery.last_log_ns
    meta.state = "repaired"
    meta.frames = recovery.frames
    meta.first_stamp_ns = recovery.first_log_ns
    meta.last_stamp_ns = last
    meta.bytes = dir_bytes(episode.bag_dir)
    if meta.stopped is None:
        plausible = last is not None and last > _PLAUSIBLE_NS
        meta.stopped = iso_utc(last / 1e9 if plausible else None)
    meta.stop_reason = meta.stop_reason or "interrupted"
    meta.repair = {
        "at": iso_utc(),
        "state_before": state_before,
        "frames_before": report.frames_before,
        "frames_kept": report.frames_kept,
        "dropped_bytes": report.dropped_bytes,
        "orphan_messages": report.orphan_messages,
        "problem": report.problem,
    }
    save_meta(episode.path, meta)
    return report


def _restore_images(meta: EpisodeMeta, bag: Path, recovery: Any) -> None:
    """Size, encodings and depth validity from the bag when episode.yaml lacks them (a
    recorder killed before its first metadata checkpoint)."""
    from deal_ros.episodes.image_summary import summarize_images
    from deal_ros.episodes.mcap_recover import scan_mcap
    from deal_ros.episodes.repair import pair_counts

    times = pair_counts(scan_mcap(recovery.mcap, trusted_until=recovery.mcap.stat().st_size))[2]
    found = summarize_images(bag, times)
    if found.pairs_read:
        meta.size = meta.size or found.size
        meta.encodings = meta.encodings or found.encodings
        if meta.depth_valid_fraction is None:
            meta.depth_valid_fraction = found.depth_valid_fraction


class EpisodeStore:
    """A directory of episodes. Ids are validated so nothing is written outside ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, episode_id: str) -> Path:
        """The directory of ``episode_id`` (validated; always directly inside ``root``)."""
        validate_episode_id(episode_id)
        path = self.root / episode_id
        if path.resolve().parent != self.root.resolve():
            raise EpisodeError(f"episode id {episode_id!r} escapes '{self.root}'")
        return path

    def free_bytes(self) -> int:
        """Free bytes on the file system that holds (or will hold) the store: the nearest
        folder of ``root`` that exists, since the store's folders are made at the first
        episode."""
        target = self.root
        while not target.exists() and target.parent != target:
            target = target.parent
        return shutil.disk_usage(target).free

    def check_space(self, min_free_bytes: int) -> None:
        """Raise :class:`EpisodeError` when fewer than ``min_free_bytes`` are free."""
        free = self.free_bytes()
        if free < min_free_bytes:
            raise EpisodeError(
                f"not enough free space in '{self.root}': {free / 1e6:.1f} MB free, "
                f"need {min_free_bytes / 1e6:.1f} MB"
            )

    def _new_id(self, labels: list[str], name: str | None, when: datetime | None) -> str:
        if name:
            if self.path_for(name).exists():
                raise EpisodeError(f"episode '{name}' exists already in '{self.root}'")
            return name
        base = default_episode_id(labels, when or datetime.now(timezone.utc))
        candidate, n = base, 2
        while self.path_for(candidate).exists():
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def create(
        self,
        labels: Sequence[str],
        name: str | None = None,
        *,
        source: str = "realsense",
        source_topics: dict[str, str] | None = None,
        sync_interval_s: float = 0.5,
        reserve_bytes: int = 1 << 20,
        when: datetime | None = None,
        **meta_fields: Any,
    ) -> EpisodeWriter:
        """Create and open a new episode; returns its :class:`EpisodeWriter`. ``name`` (optional)
        becomes the episode id, else ``<first label>-<UTC time>`` (made unique)."""
        labels = validate_labels(labels)
        if not labels:
            raise EpisodeError("an episode needs at least one label")
        self.root.mkdir(parents=True, exist_ok=True)
        episode_id = self._new_id(labels, name or None, when)
        meta = EpisodeMeta(
            episode_id=episode_id,
            labels=labels,
            source=source,
            source_topics=dict(source_topics or {}),
            **meta_fields,
        )
        writer = EpisodeWriter(
            self.path_for(episode_id),
            meta,
            sync_interval_s=sync_interval_s,
            reserve_bytes=reserve_bytes,
        )
        return writer.open()

    def episodes(self) -> list[Episode]:
        """Every episode under ``root`` (directories holding an ``episode.yaml``), by id.
        Unreadable ones are skipped; see :meth:`scan` for them."""
        return [e for e in self.scan() if isinstance(e, Episode)]

    def scan(self) -> list[Episode | tuple[Path, str]]:
        """Every episode directory: an :class:`Episode`, or ``(path, error)`` when its
        ``episode.yaml`` cannot be read."""
        if not self.root.is_dir():
            raise EpisodeError(f"episodes directory '{self.root}' does not exist")
        out: list[Episode | tuple[Path, str]] = []
        for path in sorted(p for p in self.root.iterdir() if (p / META_FILE).is_file()):
            try:
                out.append(Episode(path))
            except EpisodeError as exc:
                out.append((path, str(exc)))
        return out

    def open(self, episode_id: str) -> Episode:
        path = self.path_for(episode_id)
        if not (path / META_FILE).is_file():
            raise EpisodeError(f"no episode '{episode_id}' in '{self.root}'")
        return Episode(path)
