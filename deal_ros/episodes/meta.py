"""``episode.yaml``: the metadata of one onboarding episode (format in docs/formats.md).

Plain data plus the rules that keep an episode store safe: episode ids that cannot escape the
episodes directory, label checks, and an atomic replace of the file (write a temporary file,
fsync it, rename it over the old one, fsync the directory), so a crash leaves either the old
or the new file, never half of one.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from deal_ros import __version__
from deal_ros.errors import DealError

__all__ = [
    "BAG_DIR",
    "BAG_TOPICS",
    "DROP_KEYS",
    "FORMAT_VERSION",
    "INVALID_KEYS",
    "LOCK_FILE",
    "META_FILE",
    "STATES",
    "UPSTREAM_HINT_FRACTION",
    "EpisodeError",
    "EpisodeMeta",
    "default_episode_id",
    "iso_utc",
    "load_meta",
    "save_meta",
    "upstream_line",
    "validate_episode_id",
    "validate_labels",
]

FORMAT_VERSION = 1
META_FILE = "episode.yaml"
BAG_DIR = "bag"
LOCK_FILE = ".lock"
RESERVE_FILE = ".reserve"
#: Topic names inside an episode's bag (fixed, so readers need no options).
BAG_TOPICS = {"rgb": "/deal/rgb", "depth": "/deal/depth", "camera_info": "/deal/camera_info"}
STATES = ("recording", "complete", "interrupted", "repaired")
#: Why frames did not make it into the episode, counted per pair (one capture instant whose
#: messages were dropped counts once, under the reason that explains it).
DROP_KEYS = (
    "no_match",  # no partner within the slop (e.g. a colour frame missing)
    "out_of_order",  # stamp a little before the previous one on its stream (jitter, duplicate)
    "queue_full",  # the pairing queue overflowed
    "invalid",  # failed validation (see ``invalid`` for why)
    "writer_behind",  # the disk writer's bounded queue was full
    "keyframe_skip",  # near-duplicate of the last kept frame (keyframe selection on)
    "stamp_jump",  # a stamp far from the stream's recent ones: a glitch, dropped alone
)
INVALID_KEYS = ("malformed", "encoding", "size", "depth_all_invalid", "stamp")
#: Upstream loss above this share of a stream gets a hint (QoS, DDS profile).
UPSTREAM_HINT_FRACTION = 0.02
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


class EpisodeError(DealError, ValueError):
    """A bad episode id, label, path or ``episode.yaml``."""


def validate_episode_id(episode_id: Any) -> str:
    """``episode_id`` if it is a safe directory name: letters, digits, ``-`` and ``_``, 1 to
    128 characters, starting with a letter or digit (so no ``..``, no ``/``, no absolute path,
    no hidden file)."""
    if not isinstance(episode_id, str) or not _ID.match(episode_id):
        raise EpisodeError(
            f"episode id {episode_id!r} is not allowed: use 1-128 letters, digits, '-' or '_',"
            " starting with a letter or digit (no '/', '..' or absolute paths)"
        )
    return episode_id


def validate_labels(labels: Any) -> list[str]:
    """Labels as a list of distinct, non-empty, single-line strings (surrounding spaces are
    stripped)."""
    if isinstance(labels, str) or not hasattr(labels, "__iter__"):
        raise EpisodeError(f"labels must be a list of strings, got {labels!r}")
    out: list[str] = []
    for label in labels:
        if not isinstance(label, str):
            raise EpisodeError(f"label {label!r} is not a string")
        label = label.strip()
        if not label or any(ord(c) < 32 for c in label) or len(label) > 128:
            raise EpisodeError(
                f"label {label!r} is not allowed: 1-128 printable characters on one line"
            )
        if label in out:
            raise EpisodeError(f"label {label!r} is given twice")
        out.append(label)
    return out


def validate_boxes(boxes: Any, labels: Sequence[str], where: str = "boxes") -> list[dict]:
    """Operator boxes as ``episode.yaml`` stores them: ``{label, x0, y0, x1, y1, frames}`` with
    ``label`` one of ``labels``, finite pixel coordinates, ``x0 < x1``, ``y0 < y1`` (exclusive
    x1, y1) and ``frames`` ``all`` (default) or a list of rgb stamps in ns. One error line
    names the first bad box (``where[k]``)."""
    if boxes is None:
        return []
    if isinstance(boxes, (str, bytes, Mapping)) or not hasattr(boxes, "__iter__"):
        raise EpisodeError(f"{where} must be a list of boxes, got {boxes!r}")
    out = []
    for k, box in enumerate(boxes):
        at = f"{where}[{k}]"
        if not isinstance(box, Mapping):
            raise EpisodeError(f"{at}: expected {{label, x0, y0, x1, y1}}, got {box!r}")
        try:
            label = box["label"]
            x0, y0, x1, y1 = (float(box[c]) for c in ("x0", "y0", "x1", "y1"))
        except KeyError as exc:
            raise EpisodeError(
                f"{at}: missing {exc.args[0]!r} (needs label, x0, y0, x1, y1)"
            ) from None
        except (TypeError, ValueError):
            raise EpisodeError(f"{at}: x0, y0, x1, y1 must be numbers, got {dict(box)}") from None
        if label not in labels:
            raise EpisodeError(f"{at}: label {label!r} is not one of the episode's {list(labels)}")
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
            raise EpisodeError(
                f"{at}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or not finite "
                "(needs x0 < x1, y0 < y1; x1, y1 exclusive)"
            )
        out.append({"label": label, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                    "frames": _box_frames(box.get("frames", "all"), at)})  # fmt: skip
    return out


def _box_frames(frames: Any, at: str) -> str | list[int]:
    if frames in ("all", None):
        return "all"
    try:
        if isinstance(frames, (str, bytes)):
            raise TypeError
        return [int(s) for s in frames]
    except (TypeError, ValueError):
        raise EpisodeError(
            f"{at}: frames must be 'all' or a list of rgb stamps in ns, got {frames!r}"
        ) from None


def iso_utc(when: datetime | float | None = None) -> str:
    """``2026-11-22T03:15:00Z`` (seconds resolution) for a datetime, a POSIX time or now."""
    if when is None:
        when = datetime.now(timezone.utc)
    elif not isinstance(when, datetime):
        when = datetime.fromtimestamp(float(when), timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_episode_id(labels: list[str], when: datetime | None = None) -> str:
    """``<first label>-YYYYMMDD-HHMMSS`` (UTC); the label is reduced to safe characters."""
    when = when or datetime.now(timezone.utc)
    slug = _SLUG.sub("_", labels[0]).strip("_-")[:64] if labels else ""
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{slug or 'episode'}-{stamp}"


@dataclass
class EpisodeMeta:
    """The content of ``episode.yaml``; unknown keys of a newer minor writer survive a
    load/save round trip in ``extra``."""

    episode_id: str
    labels: list[str]
    state: str = "recording"
    created: str = field(default_factory=iso_utc)
    stopped: str | None = None
    software: str = f"deal_ros {__version__}"
    source: str = "realsense"
    topics: dict[str, str] = field(default_factory=lambda: dict(BAG_TOPICS))
    source_topics: dict[str, str] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_KEYS, 0))
    invalid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INVALID_KEYS, 0))
    bytes: int = 0
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None
    depth_valid_fraction: float | None = None
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)  # loss per stream
    clock_steps: int = 0  # camera clock steps followed (each stream's count, summed)
    stop_reason: str | None = None
    error: str | None = None
    repair: dict[str, Any] | None = None
    boxes: list[dict[str, Any]] = field(default_factory=list)
    format: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        if self.first_stamp_ns is None or self.last_stamp_ns is None:
            return 0.0
        return (self.last_stamp_ns - self.first_stamp_ns) / 1e9

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        ordered = {"format": data.pop("format"), **data}
        return {**ordered, **extra}

    @classmethod
    def from_dict(cls, data: Any, where: str = "episode.yaml") -> EpisodeMeta:
        if not isinstance(data, dict):
            raise EpisodeError(f"{where}: expected a mapping, got {type(data).__name__}")
        version = data.get("format")
        if not isinstance(version, int):
            raise EpisodeError(f"{where}: missing or bad 'format' (expected an integer)")
        if version > FORMAT_VERSION:
            raise EpisodeError(
                f"{where}: format {version} is newer than this deal_ros reads "
                f"({FORMAT_VERSION}); upgrade deal_ros"
            )
        for key in ("episode_id", "labels"):
            if key not in data:
                raise EpisodeError(f"{where}: missing '{key}'")
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        meta = cls(**kwargs)
        if meta.state not in STATES:
            raise EpisodeError(f"{where}: unknown state {meta.state!r}; expected one of {STATES}")
        meta.labels = [str(x) for x in meta.labels or []]
        meta.dropped = {**dict.fromkeys(DROP_KEYS, 0), **(meta.dropped or {})}
        meta.invalid = {**dict.fromkeys(INVALID_KEYS, 0), **(meta.invalid or {})}
        return meta


def load_meta(path: str | Path) -> EpisodeMeta:
    """Read ``episode.yaml`` (the file, or the episode directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / META_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EpisodeError(f"'{path}': no such file (not an episode directory?)") from None
    except OSError as exc:
        raise EpisodeError(f"'{path}': cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EpisodeError(f"'{path}': not valid YAML ({str(exc).splitlines()[0]})") from None
    return EpisodeMeta.from_dict(data, str(path))


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so the names created or renamed in it survive a power loss."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (tmp + fsync + rename + fsync dir). The rename
    replaces ``path`` itself, so a link there is replaced, never written through."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a stale tmp (or a link put there) goes, never written through
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644
        )
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def save_meta(directory: str | Path, meta: EpisodeMeta) -> Path:
    """Write ``<directory>/episode.yaml`` atomically; returns its path."""
    path = Path(directory) / META_FILE
    text = yaml.safe_dump(meta.to_dict(), sort_keys=False, default_flow_style=None, width=100)
    atomic_write_text(path, text)
    return path


def upstream_line(upstream: Mapping[str, Mapping[str, Any]]) -> str:
    """One line on the frames streams lost before they reached the recorder, with a hint
    (QoS, DDS profile) when a stream lost more than :data:`UPSTREAM_HINT_FRACTION`; "" when
    none is known."""
    parts = []
    worst = 0.0
    for stream, s in upstream.items():
        expected = int(s.get("received", 0)) + int(s.get("missing", 0))
        if not expected:
            continue
        loss = float(s.get("loss", 0.0))
        worst = max(worst, loss)
        parts.append(f"{stream} {loss:.1%} ({s.get('missing', 0)} of {expected})")
    if not parts:
        return ""
    line = "upstream loss " + ", ".join(parts)
    if worst > UPSTREAM_HINT_FRACTION:
        line += (
            ": frames lost before they reached the recorder; check the QoS (the recorder's "
            "qos.reliability and qos.depth against the driver's) and the DDS transport "
            "(FASTRTPS_DEFAULT_PROFILES_FILE: the shipped shared-memory profile "
            "config/fastdds_shm.xml, on both sides)"
        )
    return line
