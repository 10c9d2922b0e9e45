"""Any rosbag2 bag (MCAP or sqlite3; rosbag1 too) with a labels file: ``bag:PATH``.

Options: ``rgb_topic=`` (``sensor_msgs/Image``: rgb8, bgr8, mono8 ...), ``depth_topic=``
(16UC1 mm or 32FC1 m; ``none`` for RGB-only), ``camera_info_topic=`` (``none`` to ignore),
``labels=``, ``slop_ms=`` (pairing tolerance, 15 by default, as the recorder), ``pair_by=``
(``header`` stamps, default; ``log_time`` for bags written like episodes), ``every=`` (keep
one frame in N), ``min_depth=``/``max_depth=`` (metres; 0.1 and 10 by default), ``on_crc=``
(``skip``, the default: an MCAP chunk whose CRC fails is left out with one warning line and
its frames are not in the dataset; ``stop``: fail in one line).

Topics left out are found in the bag: rgb ``/deal/rgb`` or
``/camera/camera/color/image_raw``; depth ``/deal/depth`` or
``/camera/camera/aligned_depth_to_color/image_raw``; camera_info ``/deal/camera_info`` or
``<rgb topic's namespace>/camera_info``. Frames are paired by :class:`BagFrameReader` (the
recorder's pairing algorithm).

``labels=``: a list (or ``"mug,box"``) for every frame of the bag, ``none`` for an unlabelled
bag (all-zero labels, e.g. for ``deal infer``), or a YAML file::

    format: 1
    labels: [mug]            # frames no segment covers (leave out: such frames are skipped)
    segments:                # time ranges -> labels; start inclusive, end exclusive
      - {start: 0.0, end: 12.5, labels: [mug]}       # seconds since the bag's first message,
                                                     #   against each frame's rgb log time
      - {start: 12.5, labels: [mug, box]}            # no end: to the end of the bag
      - {start_ns: 1700000020000000000, end_ns: 1700000021000000000, labels: []}
                                                     # absolute rgb header stamps (ns)

A frame inside several segments gets the union of their labels; ``labels: []`` marks
background-only frames. Classes: ``classes=`` or, by default, every label the file names,
sorted; a label outside ``classes=`` fails with one line naming it and the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from deal_ros.data.adapters.bag_access import BagAccess, FrameRef, index_frames
from deal_ros.data.adapters.base import (
    DatasetError,
    IndexedDataset,
    as_float,
    as_int,
    multi_hot,
    select_classes,
)
from deal_ros.data.sample import Sample
from deal_ros.episodes.bag_io import BagError, BagFrameReader, FrameTopics, bag_topics

__all__ = ["LABELS_FORMAT", "BagDataset", "LabelPlan", "Segment", "load_labels"]

LABELS_FORMAT = 1
_RGB = ("/deal/rgb", "/camera/camera/color/image_raw")
_DEPTH = ("/deal/depth", "/camera/camera/aligned_depth_to_color/image_raw")
_NONE = ("none", "null", "")


@dataclass(frozen=True)
class Segment:
    """Labels of the frames whose time lies in [start, end): ``relative`` seconds since the
    bag's first message (rgb log time), else absolute rgb header stamps in ns."""

    start: float
    end: float
    labels: tuple[str, ...]
    relative: bool


@dataclass(frozen=True)
class LabelPlan:
    """Parsed ``labels=``: ``default`` labels (None: uncovered frames are skipped) and
    ``segments``; ``where`` names the file for error messages."""

    default: tuple[str, ...] | None
    segments: tuple[Segment, ...]
    where: str
    labelled: bool = True

    def names(self) -> list[str]:
        out = set(self.default or ())
        for s in self.segments:
            out.update(s.labels)
        return sorted(out)

    def labels_at(self, log_rel_s: float, stamp_ns: int) -> tuple[str, ...] | None:
        hit = [
            s for s in self.segments if s.start <= (log_rel_s if s.relative else stamp_ns) < s.end
        ]
        if not hit:
            return self.default
        return tuple(sorted({name for s in hit for name in s.labels}))


def _label_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise DatasetError(f"{where}: labels must be a list of names, got {value!r}")
    names = tuple(str(v).strip() for v in value)
    if any(not n for n in names):
        raise DatasetError(f"{where}: empty label name in {list(value)}")
    return names


def _segment(item: Any, k: int, where: str) -> Segment:
    here = f"{where}: segments[{k}]"
    if not isinstance(item, dict):
        raise DatasetError(f"{here}: expected a mapping, got {item!r}")
    unknown = sorted(set(item) - {"start", "end", "start_ns", "end_ns", "labels"})
    if unknown:
        raise DatasetError(f"{here}: unknown key(s) {', '.join(unknown)}")
    if "labels" not in item:
        raise DatasetError(f"{here}: missing 'labels'")
    relative = "start" in item or "end" in item
    if relative and ("start_ns" in item or "end_ns" in item):
        raise DatasetError(f"{here}: mixes start/end (seconds) with start_ns/end_ns")
    try:
        if relative:
            start, end = float(item.get("start", 0.0)), float(item.get("end", float("inf")))
        else:
            if "start_ns" not in item and "end_ns" not in item:
                raise DatasetError(f"{here}: needs start/end (s) or start_ns/end_ns")
            start = int(item.get("start_ns", 0))
            end = int(item["end_ns"]) if "end_ns" in item else float("inf")
    except (TypeError, ValueError):
        raise DatasetError(f"{here}: start/end must be numbers") from None
    if not start < end:
        raise DatasetError(f"{here}: start {start} is not before end {end}")
    return Segment(start, end, _label_list(item["labels"], here), relative)


def load_labels(value: Any) -> LabelPlan:
    """``labels=`` option -> :class:`LabelPlan` (formats: module docstring)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
        return LabelPlan((), (), "labels=none", labelled=False)
    if isinstance(value, (list, tuple)):
        return LabelPlan(_label_list(value, "labels="), (), "labels=")
    text = str(value)
    path = Path(text).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file() or "/" in text:
        return _load_labels_file(path)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    return LabelPlan(names, (), f"labels={text}")


def _load_labels_file(path: Path) -> LabelPlan:
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"bag labels: file {path} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"bag labels: cannot read {path}: {first}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a mapping with labels and/or segments")
    version = data.get("format", LABELS_FORMAT)
    if not isinstance(version, int) or version > LABELS_FORMAT:
        raise DatasetError(
            f"{where}: format {version!r} is newer than this deal_ros reads "
            f"({LABELS_FORMAT}); upgrade deal_ros"
        )
    unknown = sorted(set(data) - {"format", "labels", "segments"})
    if unknown:
        raise DatasetError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected format, labels, segments"
        )
    default = _label_list(data["labels"], where) if "labels" in data else None
    segs = data.get("segments") or []
    if not isinstance(segs, list):
        raise DatasetError(f"{where}: segments must be a list")
    if default is None and not segs:
        raise DatasetError(f"{where}: gives neither labels nor segments")
    return LabelPlan(default, tuple(_segment(s, k, where) for k, s in enumerate(segs)), where)


def _pick(
    option: str | None,
    candidates: Sequence[str],
    topics: dict[str, Any],
    what: str,
    path: Path,
    optional: bool = False,
) -> str | None:
    if option is not None:
        if str(option).strip().lower() in _NONE:
            return None
        if option not in topics:
            have = ", ".join(f"{t} ({m})" for t, (m, _) in sorted(topics.items()))
            raise DatasetError(f"bag '{path}': no topic '{option}' ({what}); it holds: {have}")
        return option
    for c in candidates:
        if c in topics:
            return c
    if optional:
        return None
    images = ", ".join(t for t, (m, _) in sorted(topics.items()) if m and m.endswith("Image"))
    raise DatasetError(
        f"bag '{path}': none of {', '.join(candidates)} holds the {what}; give "
        f"{what}_topic= (Image topics: {images or 'none'})"
        + ("; or depth_topic=none for RGB-only" if what == "depth" else "")
    )


class BagDataset(IndexedDataset):
    """Paired frames of a rosbag2 bag with labels from a file (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        classes: Sequence[str] | None = None,
        labels: Any = None,
        rgb_topic: str | None = None,
        depth_topic: str | None = None,
        camera_info_topic: str | None = None,
        slop_ms: float = 15.0,
        pair_by: str = "header",
        every: int | str = 1,
        min_depth: float | None = 0.1,
        max_depth: float | None = 10.0,
        on_crc: str = "skip",
    ) -> None:
        self.path = Path(path).expanduser()
        self.source = f"bag:{self.path}"
        self.plan = load_labels(labels)
        min_depth = as_float(min_depth, "bag: min_depth", optional=True)
        max_depth = as_float(max_depth, "bag: max_depth", optional=True)
        slop_ns = int(as_float(slop_ms, "bag: slop_ms") * 1e6)
        every = as_int(every, "bag: every")
        try:
            topics = bag_topics(self.path)
        except BagError as exc:
            raise DatasetError(str(exc)) from None
        rgb = _pick(rgb_topic, _RGB, topics, "rgb", self.path)
        depth = _pick(depth_topic, _DEPTH, topics, "depth", self.path)
        ns = rgb.rsplit("/", 1)[0]
        info = _pick(
            camera_info_topic,
            ("/deal/camera_info", f"{ns}/camera_info"),
            topics,
            "camera_info",
            self.path,
            optional=True,
        )
        self.topics = FrameTopics(rgb=rgb, depth=depth, camera_info=info)
        self.classes = select_classes(self.plan.names(), classes, "bag", open_set=True)
        reader = BagFrameReader(
            self.path,
            self.topics,
            pair_by=pair_by,
            slop_ns=slop_ns,
            depth_min_m=min_depth,
            depth_max_m=max_depth,
            every=every,
            on_crc=on_crc,
        )
        start = _bag_start(self.path)
        refs: list[FrameRef] = []
        self.labels: list[np.ndarray] = []
        try:
            all_refs = index_frames(reader)
        except BagError as exc:
            raise DatasetError(str(exc)) from None
        self.skipped = dict(reader.skipped)  # e.g. {"crc": messages in chunks left out}
        for ref in all_refs:
            names = self.plan.labels_at((ref.log_time_ns - start) / 1e9, ref.stamp_ns)
            if names is None:
                continue
            refs.append(ref)
            self.labels.append(multi_hot(names, self.classes, self.plan.where))
        self.refs = refs
        self.pairing = reader.stats
        self.access = BagAccess(
            self.path, self.topics, depth_min_m=min_depth, depth_max_m=max_depth
        )
        if not refs:
            raise DatasetError(
                f"bag '{self.path}': no labelled frames ({len(all_refs)} paired frames, none "
                f"covered by {self.plan.where})"
                if all_refs
                else f"bag '{self.path}': no rgb+depth pairs on {rgb} and {depth}"
            )

    def __len__(self) -> int:
        return len(self.refs)

    def _load(self, index: int) -> Sample:
        ref = self.refs[index]
        rgb, depth, valid = self.access.read(ref)
        meta: dict[str, Any] = {
            "source": self.source,
            "index": index,
            "stamp_ns": ref.stamp_ns,
            "log_time_ns": ref.log_time_ns,
            "path": str(self.path),
        }
        if ref.K is not None:
            meta["K"] = np.asarray(ref.K, np.float64).reshape(3, 3)
        return Sample(
            rgb=rgb, labels=self.labels[index].copy(), depth=depth, valid=valid, meta=meta
        )


def _bag_start(path: Path) -> int:
    from deal_ros.episodes.bag_io import open_bag

    source = open_bag(path)
    try:
        return int(source.start_time)
    finally:
        source.close()
