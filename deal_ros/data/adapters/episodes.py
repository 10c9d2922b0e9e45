"""Onboarding episodes (``episode.yaml`` + MCAP bag, docs/formats.md): ``DIR`` or
``episodes:DIR``.

``DIR`` is one episode folder or a folder of them. Each frame is one recorded rgb+depth pair,
exactly as the recorder paired it (read with :meth:`deal_ros.episodes.store.Episode.frames`),
labelled with the episode's ``labels``; operator ``boxes`` of ``episode.yaml`` become
:class:`~deal_ros.data.sample.Box` es (``frames: all`` or a list of rgb stamps in ns).

Episodes in a state outside ``states=`` (``complete`` and ``repaired`` by default) are left
out with one warning naming them (``interrupted``: run ``deal episodes repair``); a folder
naming one such episode directly fails. An unreadable ``episode.yaml`` fails, naming it.
Classes: ``classes=`` or every label of the episodes, sorted. ``every=N`` keeps one frame in
N; ``min_depth``/``max_depth`` (metres) bound valid depth (0.1 m and 10 m; no upper bound for
sonar episodes unless given). ``on_crc=``: ``skip`` (default) leaves out a chunk whose CRC
fails, with one warning line, ``stop`` fails in one line naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.data.adapters.bag_access import BagAccess, FrameRef, index_frames
from deal_ros.data.adapters.base import (
    DatasetError,
    IndexedDataset,
    as_float,
    as_int,
    multi_hot,
    require_dir,
    select_classes,
)
from deal_ros.data.sample import Box, Sample
from deal_ros.episodes.bag_io import BagError
from deal_ros.episodes.meta import META_FILE, EpisodeError, validate_boxes
from deal_ros.episodes.store import Episode, EpisodeStore

__all__ = ["EpisodesDataset"]

DEFAULT_STATES = ("complete", "repaired")


def _episodes(root: Path) -> tuple[list[Episode], bool]:
    """The episodes under ``root`` and whether ``root`` is itself one episode."""
    try:
        if (root / META_FILE).is_file():
            return [Episode(root)], True
        found = EpisodeStore(root).scan()
    except EpisodeError as exc:
        raise DatasetError(f"episodes: {exc}") from None
    for item in found:
        if not isinstance(item, Episode):
            raise DatasetError(f"episodes: {item[1]}")
    if not found:
        raise DatasetError(f"episodes: no episode (folder with {META_FILE}) in {root}")
    return list(found), False


class _BoxPlan:
    """An episode's boxes: those of every frame, and those of given frames by rgb stamp (a
    detector's, one entry per frame: looked up, not scanned)."""

    def __init__(self, ep: Episode, classes: Sequence[str]) -> None:
        where = f"{ep.path / META_FILE}: boxes"
        try:
            boxes = validate_boxes(ep.meta.boxes, ep.meta.labels, where)
        except EpisodeError as exc:
            raise DatasetError(str(exc)) from None
        self.always: list[Box] = []
        self.by_stamp: dict[int, list[Box]] = {}
        for b in boxes:
            cid = int(np.argmax(multi_hot([b["label"]], classes, where))) + 1
            box = Box(cid, b["x0"], b["y0"], b["x1"], b["y1"])
            if b["frames"] == "all":
                self.always.append(box)
            for stamp in () if b["frames"] == "all" else b["frames"]:
                self.by_stamp.setdefault(stamp, []).append(box)

    def of(self, stamp_ns: int) -> list[Box]:
        return self.always + self.by_stamp.get(stamp_ns, [])


class EpisodesDataset(IndexedDataset):
    """Recorded frames of one or more episodes as :class:`Sample` (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        classes: Sequence[str] | None = None,
        states: Sequence[str] | str = DEFAULT_STATES,
        every: int | str = 1,
        min_depth: float | None = 0.1,
        max_depth: float | str | None = "auto",
        on_crc: str = "skip",
    ) -> None:
        root = require_dir(path, "episodes")
        self.source = f"episodes:{root}"
        states = (
            tuple(s.strip() for s in states.split(","))
            if isinstance(states, str)
            else tuple(states)
        )
        every = as_int(every, "episodes: every")
        min_depth = as_float(min_depth, "episodes: min_depth", optional=True)
        if max_depth != "auto":
            max_depth = as_float(max_depth, "episodes: max_depth", optional=True)
        episodes, single = _episodes(root)
        kept = [e for e in episodes if e.state in states]
        left = [e for e in episodes if e.state not in states]
        if left and single:
            e = left[0]
            hint = "; run 'deal episodes repair'" if e.state == "interrupted" else ""
            raise DatasetError(
                f"episode '{e.path}' is {e.state} (states read: {', '.join(states)}){hint}"
            )
        if left:
            warnings.warn(
                "episodes left out: "
                + ", ".join(f"{e.episode_id} ({e.state})" for e in left)
                + f"; states read: {', '.join(states)}",
                stacklevel=2,
            )
        if not kept:
            raise DatasetError(
                f"episodes: none of the {len(episodes)} episodes in {root} is {' or '.join(states)}"
            )
        self.episodes = kept
        vocabulary = sorted({label for e in kept for label in e.labels})
        self.classes = select_classes(vocabulary, classes, "episodes", open_set=True)
        self.refs: list[tuple[int, FrameRef]] = []
        self.access: list[BagAccess] = []
        self.label_vectors: list[np.ndarray] = []
        self.box_plans = []
        self.on_crc = on_crc
        self.skipped: dict[str, int] = {}
        for k, ep in enumerate(kept):
            self._index(k, ep, every, min_depth, max_depth)
        if not self.refs:
            raise DatasetError(f"episodes: no frames in {', '.join(str(e.path) for e in kept)}")

    def _index(self, k: int, ep: Episode, every: int, lo: float | None, hi: Any) -> None:
        where = str(ep.path / META_FILE)
        self.label_vectors.append(multi_hot(ep.labels, self.classes, where))
        self.box_plans.append(_BoxPlan(ep, self.classes))
        if hi == "auto":
            hi = None if ep.meta.source == "sonar" else 10.0
        try:
            reader = ep.frames(depth_min_m=lo, depth_max_m=hi, every=every, on_crc=self.on_crc)
            refs = index_frames(reader)
        except (EpisodeError, BagError) as exc:
            raise DatasetError(f"episode '{ep.path}': {exc}") from None
        for reason, n in reader.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n
        self.access.append(BagAccess(ep.bag_dir, reader.topics, depth_min_m=lo, depth_max_m=hi))
        self.refs.extend((k, r) for r in refs)

    def __len__(self) -> int:
        return len(self.refs)

    def _load(self, index: int) -> Sample:
        k, ref = self.refs[index]
        ep = self.episodes[k]
        rgb, depth, valid = self.access[k].read(ref)
        boxes = self.box_plans[k].of(ref.stamp_ns)
        meta: dict[str, Any] = {
            "source": self.source,
            "index": index,
            "episode_id": ep.episode_id,
            "stamp_ns": ref.stamp_ns,
            "log_time_ns": ref.log_time_ns,
            "path": str(ep.path),
        }
        if ref.K is not None:
            meta["K"] = np.asarray(ref.K, np.float64).reshape(3, 3)
        return Sample(
            rgb=rgb,
            labels=self.label_vectors[k].copy(),
            depth=depth,
            valid=valid,
            boxes=list(boxes),
            meta=meta,
        )
