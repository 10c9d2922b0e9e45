"""Coloured PLY clouds from recorded frames: ``deal episodes export --format ply`` and
``deal infer ... --cloud`` (numpy only; no rclpy, no torch).

A frame is either a :class:`deal_ros.episodes.bag_io.Frame` (episodes, bags: ``depth_m``,
``valid``, ``rgb`` and the recorded ``camera_info``) or a :class:`deal_ros.data.sample.Sample`
(datasets: ``depth``, ``valid``, ``rgb`` and ``meta["K"]``); both are read duck-typed.

    # deal episodes export ./episodes/<id> --format ply
    episode = Episode(path)
    export_episode_ply(episode.frames(), out_dir, class_names=["background", *episode.labels])

    # deal infer ... --cloud: per frame, after runtime.segment(rgb)
    write_frame_ply(out / f"{name}_cloud.ply", sample, result.mask,
                    class_names=runtime.bundle.class_names, cleaner=CloudCleaner())

Without a mask every valid depth pixel is written with class 0 (the whole scene); with a mask
only classes > 0 (``include_background=True`` adds the rest as class 0). With a ``cleaner``
the object points are down-sampled and cleaned (:mod:`deal_ros.core.cloud_cleaner`) and the
summaries come back; background points are never cleaned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.core.cloud import Cloud, CloudError, Intrinsics, backproject
from deal_ros.core.cloud_cleaner import CleanResult, CloudCleaner, ObjectInfo, as_instances
from deal_ros.core.ply import write_ply
from deal_ros.errors import DealError

__all__ = [
    "PlyExportSummary",
    "PlyWrite",
    "export_episode_ply",
    "frame_intrinsics",
    "write_cloud_ply",
    "write_frame_ply",
]

_logger = logging.getLogger(__name__)


@dataclass
class PlyWrite:
    """One written file: its path, point count, and the object summaries (with a cleaner)."""

    path: Path
    points: int
    objects: list[ObjectInfo] = field(default_factory=list)
    backend: str = ""


@dataclass
class PlyExportSummary:
    """What :func:`export_episode_ply` did."""

    out_dir: Path
    written: int = 0
    points: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def line(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()) if n)
        return f"{self.written} PLY files ({self.points} points) -> {self.out_dir}" + (
            f"; skipped: {skipped}" if skipped else ""
        )


def _names_dict(class_names: Sequence[str] | Mapping[int, str]) -> dict[int, str]:
    if isinstance(class_names, Mapping):
        return {int(k): str(v) for k, v in class_names.items()}
    return {i: str(n) for i, n in enumerate(class_names)}


def write_cloud_ply(
    path: str | Path,
    depth_m: np.ndarray,
    intrinsics: Intrinsics | Any,
    mask: np.ndarray | None = None,
    *,
    valid: np.ndarray | None = None,
    rgb: np.ndarray | None = None,
    class_names: Sequence[str] | Mapping[int, str] = (),
    cleaner: CloudCleaner | None = None,
    include_background: bool = False,
    ignore_index: int | None = 255,
    stride: int = 1,
    comments: Sequence[str] = (),
    instance_classes: Sequence[int] | None = None,
) -> PlyWrite:
    """Back-project one frame and write it as PLY (binary, x y z red green blue class).

    ``intrinsics``: an :class:`Intrinsics` or a ``sensor_msgs/CameraInfo`` (rclpy or rosbags).
    ``mask``: class ids (None: every valid pixel, class 0); pixels holding ``ignore_index``
    (255, the pseudo-label "ignore") are left out. ``cleaner``: clean the classes > 0 and
    return their summaries. ``instance_classes``: ``mask`` holds instance ids (1..n) and
    these are their class ids: one summary per instance, points written with class ids
    (:func:`deal_ros.core.cloud_cleaner.as_instances`). Parent folders are created."""
    if not isinstance(intrinsics, Intrinsics):
        intrinsics = Intrinsics.from_camera_info(intrinsics)
    if instance_classes is not None:
        ignore_index = None  # instance ids: 255 is an instance, not "ignore"
    keep_background = include_background or mask is None
    classes = None
    if mask is not None:
        present = np.unique(np.asarray(mask))
        classes = [int(c) for c in present if c != ignore_index and (c > 0 or keep_background)]
    cloud = backproject(
        depth_m,
        intrinsics,
        mask,
        valid=valid,
        rgb=rgb,
        classes=classes,
        include_background=keep_background,
        stride=stride,
    )
    objects: list[ObjectInfo] = []
    backend = ""
    if cleaner is not None and mask is not None:
        result = cleaner(cloud, class_names)
        if instance_classes is not None:
            result = as_instances(result, instance_classes, class_names)
        objects, backend = result.objects, result.backend
        background = cloud.subset(cloud.class_ids == 0) if keep_background else None
        cloud = Cloud.concat(
            [background, result.cloud] if background is not None else [result.cloud]
        )
    elif instance_classes is not None and mask is not None:
        cloud = as_instances(CleanResult(cloud, [], ""), instance_classes, class_names).cloud
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = list(comments)
    i = intrinsics
    lines.append(
        f"intrinsics fx {i.fx:.6g} fy {i.fy:.6g} cx {i.cx:.6g} cy {i.cy:.6g} {i.width}x{i.height}"
    )
    write_ply(path, cloud, class_names=_names_dict(class_names), comments=lines)
    return PlyWrite(path, len(cloud), objects, backend)


def _depth_of(frame: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    depth = getattr(frame, "depth_m", None)
    if depth is None:
        depth = getattr(frame, "depth", None)
    return depth, getattr(frame, "valid", None)


def frame_intrinsics(frame: Any) -> Intrinsics | None:
    """The intrinsics of a frame: its ``camera_info`` (bag frames) or ``meta["K"]`` (dataset
    samples, taken to belong to the depth image's size); None when it has neither."""
    info = getattr(frame, "camera_info", None)
    if info is not None:
        return Intrinsics.from_camera_info(info)
    k = (getattr(frame, "meta", None) or {}).get("K")
    depth, _ = _depth_of(frame)
    if k is None or depth is None:
        return None
    return Intrinsics.from_matrix(k, depth.shape[1], depth.shape[0])


def _comments(frame: Any) -> list[str]:
    lines = []
    stamp = getattr(frame, "stamp_ns", None)
    if stamp is None:
        stamp = (getattr(frame, "meta", None) or {}).get("stamp_ns")
    if stamp is not None:
        lines.append(f"stamp_ns {int(stamp)}")
    frame_id = (getattr(frame, "frame_ids", None) or {}).get("depth")
    if frame_id:
        lines.append(f"frame_id {frame_id}")
    return lines


def write_frame_ply(
    path: str | Path,
    frame: Any,
    mask: np.ndarray | None = None,
    *,
    class_names: Sequence[str] | Mapping[int, str] = (),
    intrinsics: Intrinsics | None = None,
    cleaner: CloudCleaner | None = None,
    include_background: bool = False,
    stride: int = 1,
    instance_classes: Sequence[int] | None = None,
) -> PlyWrite:
    """:func:`write_cloud_ply` for a bag :class:`Frame` or a dataset ``Sample``.
    ``intrinsics`` overrides the frame's own. :class:`CloudError` when the frame has no
    depth or no intrinsics (the message says which)."""
    depth, valid = _depth_of(frame)
    if depth is None:
        raise CloudError("frame has no depth: a PLY cloud needs depth aligned to colour")
    intr = intrinsics or frame_intrinsics(frame)
    if intr is None:
        raise CloudError(
            "frame has no camera_info / K: record camera_info, or pass intrinsics "
            "(fx, fy, cx, cy of the colour camera)"
        )
    return write_cloud_ply(
        path,
        depth,
        intr,
        mask,
        valid=valid,
        rgb=getattr(frame, "rgb", None),
        class_names=class_names,
        cleaner=cleaner,
        include_background=include_background,
        stride=stride,
        comments=_comments(frame),
        instance_classes=instance_classes,
    )


def export_episode_ply(
    frames: Iterable[Any],
    out_dir: str | Path,
    *,
    class_names: Sequence[str] | Mapping[int, str] = ("background",),
    masks: Callable[[Any], np.ndarray | None] | None = None,
    intrinsics: Intrinsics | None = None,
    cleaner: CloudCleaner | None = None,
    include_background: bool = False,
    stride: int = 1,
    limit: int = 0,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> PlyExportSummary:
    """One ``<index>_<stamp_ns>.ply`` per frame into ``out_dir`` (created).

    ``masks(frame)``: class ids for the frame (e.g. pseudo labels or a model's masks), None
    for the whole scene as class 0. Frames without depth or intrinsics are skipped and
    counted (one log line per reason); :class:`DealError` when no file could be written.
    ``progress(n)`` is called after each frame; ``limit`` > 0 stops after that many files."""
    say = log or _logger.warning
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    summary = PlyExportSummary(out)
    reasons: dict[str, str] = {}
    for i, frame in enumerate(frames):
        index = int(getattr(frame, "index", i))
        stamp = getattr(frame, "stamp_ns", None)
        name = f"{index:06d}" + (f"_{int(stamp)}" if stamp is not None else "") + ".ply"
        try:
            written = write_frame_ply(
                out / name,
                frame,
                masks(frame) if masks is not None else None,
                class_names=class_names,
                intrinsics=intrinsics,
                cleaner=cleaner,
                include_background=include_background,
                stride=stride,
            )
        except CloudError as exc:
            why = str(exc).split(":")[0]
            summary.skipped[why] = summary.skipped.get(why, 0) + 1
            if why not in reasons:
                reasons[why] = str(exc)
                say(f"frame {index} skipped: {exc}")
        else:
            summary.written += 1
            summary.points += written.points
            summary.files.append(written.path)
        if progress is not None:
            progress(1)
        if limit and summary.written >= limit:
            break
    if summary.written == 0:
        detail = "; ".join(reasons.values()) or "no frames"
        raise DealError(f"PLY export to '{out}': nothing written ({detail})")
    return summary
