"""``deal infer``: a bundle over recorded frames, written as PNGs (the node's code path, offline).

Sources are dataset specs of ``deal_ros.data.registry.build_dataset`` (episodes, ``bag:``,
``folder:``, ``scene:`` ...); a bare folder of images, a bag folder or ``.mcap`` file and a
single image file are recognised without a prefix. Per frame ``<name>_overlay.png`` (rgb8),
``<name>_mask.png`` (8-bit class ids, 0 = background) and ``<name>_cam.png`` (the CAM heat
map in colour) are written, plus one JSON line in ``results.jsonl``; with ``cloud`` also a
class-coloured ``<name>_cloud.ply`` (needs depth + intrinsics: episodes, bags, RGB-D datasets;
see :mod:`deal_ros.infer.cloud_export`).

With an instance bundle (``task: instance``): ``<name>_overlay.png`` (instances tinted, boxes,
"name score"), ``<name>_mask.png`` (8-bit instance ids: 0 = none, i = the i-th instance of
the frame's ``instances`` list in results.jsonl, best score first) and per frame one JSON line
with the instances' class, score and box (image pixels, x0 y0 x1 y1); with ``cloud`` the
PLY's points carry class ids and there is one 3-D object per instance.

With ``cloud``, each JSON line also lists the frame's ``objects`` (metres, the depth camera's
optical frame): class, class id, ``instance`` (instance bundles: its 1-based index in
``instances``), centroid, oriented box centre and size, cleaned point count.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deal_ros.core.cloud_cleaner import CloudCleaner, ObjectInfo
from deal_ros.data.sample import Sample
from deal_ros.errors import DealError
from deal_ros.infer.instances import InstanceResult
from deal_ros.infer.postprocess import heat_to_rgb
from deal_ros.infer.runtime import InferenceResult, Runtime

__all__ = [
    "INSTANCE_SAVE_KINDS",
    "SAVE_KINDS",
    "OfflineSummary",
    "default_save",
    "iter_frames",
    "resolve_source",
    "run_offline",
]

SAVE_KINDS = ("overlay", "mask", "cam", "cloud")
INSTANCE_SAVE_KINDS = ("overlay", "mask", "cloud")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
_PREFIX = re.compile(r"^[a-z_]+:")


def resolve_source(text: str) -> str | Path:
    """A dataset spec for ``text``; a single image file comes back as a Path."""
    if _PREFIX.match(text) and not Path(text).exists():
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise DealError(f"input '{text}': no such file or folder")
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return path
        if path.suffix == ".mcap" or path.suffix == ".db3":
            return f"bag:{path}"
        raise DealError(f"input '{text}': not an image, .mcap or .db3 file")
    if (path / "episode.yaml").is_file() or any(path.glob("*/episode.yaml")):
        return str(path)
    if (path / "metadata.yaml").is_file() or any(path.glob("*.mcap")):
        return f"bag:{path}"
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        return f"folder:{path}"
    raise DealError(
        f"input '{text}': no episode.yaml, bag or images in it (or give a spec such as "
        "folder:DIR, bag:PATH, scene:n=10)"
    )


def _name(meta: dict[str, Any], index: int) -> str:
    parts = []
    if meta.get("episode_id"):
        parts.append(str(meta["episode_id"]))
    if meta.get("stamp_ns") is not None:
        parts.append(str(meta["stamp_ns"]))
    elif meta.get("path") and Path(str(meta["path"])).suffix.lower() in IMAGE_SUFFIXES:
        parts.append(Path(str(meta["path"])).stem)
    else:
        parts.append(f"{index:06d}")
    return "/".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", p) for p in parts)


def iter_frames(
    source: str | Path, every: int = 1, limit: int = 0, options: dict[str, Any] | None = None
) -> tuple[int, Iterator[tuple[str, Sample]]]:
    """(number of frames, iterator of (name, sample)) for a source from :func:`resolve_source`."""
    if isinstance(source, Path):
        rgb = np.asarray(Image.open(source).convert("RGB"))
        return 1, iter([(source.stem, Sample(rgb=rgb, labels=np.zeros(0, np.float32)))])
    from deal_ros.data.registry import build_dataset

    dataset = build_dataset(source, **(options or {}))
    indices = range(0, len(dataset), max(1, every))
    if limit > 0:
        indices = indices[:limit]

    def frames() -> Iterator[tuple[str, Sample]]:
        for i in indices:
            sample = dataset[i]
            yield _name(sample.meta, i), sample

    return len(indices), frames()


@dataclass
class OfflineSummary:
    frames: int = 0
    out: Path | None = None
    provider: str = ""
    run_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        if not self.frames:
            return f"no frames; nothing written to {self.out}"
        run = statistics.median(self.run_ms)
        total = statistics.median(self.total_ms)
        return (
            f"{self.frames} frames -> {self.out} ({self.provider}; median session.run "
            f"{run:.1f} ms, whole frame {total:.1f} ms)"
        )


def _record(name: str, runtime: Runtime, result: InferenceResult) -> dict[str, Any]:
    names = runtime.bundle.class_names
    return {
        "name": name,
        "scores": {c: round(float(s), 5) for c, s in zip(runtime.bundle.classes, result.scores)},
        "present": [names[k + 1] for k in np.flatnonzero(result.present)],
        "cam_class": names[result.cam_class] if result.cam_class else None,
        "foreground": round(float(np.count_nonzero(result.mask)) / result.mask.size, 5),
        "ms": {k: round(v * 1000, 3) for k, v in result.timings.items()},
    }


def _cloud(
    target: Path,
    name: str,
    sample: Sample,
    runtime: Runtime,
    labels: np.ndarray,
    cleaner: CloudCleaner,
    instance_classes: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Write ``<target>_cloud.ply`` for ``labels`` (class ids, or instance ids with
    ``instance_classes``); the frame's objects as JSON records."""
    from deal_ros.infer.cloud_export import write_frame_ply

    try:
        written = write_frame_ply(
            f"{target}_cloud.ply",
            sample,
            labels,
            class_names=runtime.bundle.class_names,
            cleaner=cleaner,
            instance_classes=instance_classes,
        )
    except DealError as exc:
        raise DealError(f"frame {name}: no cloud: {exc}") from None
    return [_object_record(o) for o in written.objects]


def _object_record(obj: ObjectInfo) -> dict[str, Any]:
    def metres(v):
        return [round(float(x), 4) for x in v]

    record = {"class": obj.class_name, "class_id": int(obj.class_id)}
    if obj.instance_id:
        record["instance"] = int(obj.instance_id)
    record.update(centroid=metres(obj.centroid), box_center=metres(obj.center),
                  box_size=metres(obj.size), points=int(obj.point_count))  # fmt: skip
    return record


def _save(
    out: Path,
    name: str,
    sample: Sample,
    runtime: Runtime,
    result: InferenceResult,
    save: set,
    cleaner: CloudCleaner | None,
) -> list[dict[str, Any]] | None:
    """Write the semantic frame's files; its 3-D objects with ``cloud`` (else None)."""
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    objects = None
    if cleaner is not None:
        objects = _cloud(target, name, sample, runtime, result.mask, cleaner)
    if "overlay" in save and result.overlay is not None:
        Image.fromarray(result.overlay).save(f"{target}_overlay.png")
    if "mask" in save:
        Image.fromarray(result.mask, mode="L").save(f"{target}_mask.png")
    if "cam" in save and result.cam is not None:
        Image.fromarray(heat_to_rgb(result.cam)).save(f"{target}_cam.png")
    return objects


def _instance_record(name: str, runtime: Runtime, result: InstanceResult) -> dict[str, Any]:
    names = runtime.bundle.class_names
    return {
        "name": name,
        "instances": [
            {
                "class": names[int(c)],
                "class_id": int(c),
                "score": round(float(s), 5),
                "box": [round(float(v), 2) for v in b],
                "pixels": int(np.count_nonzero(m)),
            }
            for b, s, c, m in zip(result.boxes, result.scores, result.classes, result.masks)
        ],
        "ms": {k: round(v * 1000, 3) for k, v in result.timings.items()},
    }


def _save_instances(
    out: Path,
    name: str,
    sample: Sample,
    runtime: Runtime,
    result: InstanceResult,
    save: set,
    cleaner: CloudCleaner | None,
) -> list[dict[str, Any]] | None:
    """Write the instance frame's files; its 3-D objects with ``cloud`` (else None)."""
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if "overlay" in save and result.overlay is not None:
        Image.fromarray(result.overlay).save(f"{target}_overlay.png")
    ids = result.id_image()
    if "mask" in save:
        Image.fromarray(ids, mode="L").save(f"{target}_mask.png")
    if cleaner is None:
        return None
    classes = result.classes[:255]
    return _cloud(target, name, sample, runtime, ids, cleaner, instance_classes=classes)


def default_save(runtime: Runtime) -> tuple[str, ...]:
    """What ``deal infer`` writes when ``save`` is not given."""
    return ("overlay", "mask") if runtime.task == "instance" else ("overlay", "mask", "cam")


def _check_save(runtime: Runtime, save: set) -> None:
    unknown = save - set(SAVE_KINDS)
    if unknown:
        raise DealError(f"save: unknown kinds {sorted(unknown)} (known: {', '.join(SAVE_KINDS)})")
    if runtime.task == "instance" and save - set(INSTANCE_SAVE_KINDS):
        bad = ", ".join(sorted(save - set(INSTANCE_SAVE_KINDS)))
        raise DealError(
            f"save={bad}: model bundle '{runtime.bundle.path}' is an instance bundle; it writes "
            f"{', '.join(INSTANCE_SAVE_KINDS)}"
        )


def _one_frame(
    runtime: Runtime,
    out: Path,
    name: str,
    sample: Sample,
    save: set,
    cleaner: CloudCleaner | None,
):
    """Run one frame, write its files; (JSON record, timings)."""
    if runtime.task == "instance":
        inst = runtime.detect(sample.rgb, overlay="overlay" in save)
        objects = _save_instances(out, name, sample, runtime, inst, save, cleaner)
        record, timings = _instance_record(name, runtime, inst), inst.timings
    else:
        result = runtime.segment(sample.rgb, cam="cam" in save, overlay="overlay" in save)
        objects = _save(out, name, sample, runtime, result, save, cleaner)
        record, timings = _record(name, runtime, result), result.timings
    if objects is not None:
        record["objects"] = objects
    return record, timings


def run_offline(
    runtime: Runtime,
    frames: Iterable[tuple[str, Sample]],
    out: str | Path,
    save: Iterable[str] | None = None,
    progress: Any = None,
) -> OfflineSummary:
    """Run every frame; write the chosen files and ``results.jsonl`` into ``out``.
    ``save``: None = :func:`default_save` (semantic: overlay, mask, cam)."""
    save = set(default_save(runtime) if save is None else save)
    _check_save(runtime, save)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    summary = OfflineSummary(out=out, provider=runtime.provider)
    cleaner = CloudCleaner() if "cloud" in save else None  # one per run: says its backend once
    with open(out / "results.jsonl", "w", encoding="utf-8") as log:
        for name, sample in frames:
            record, timings = _one_frame(runtime, out, name, sample, save, cleaner)
            log.write(json.dumps(record) + "\n")
            summary.frames += 1
            summary.run_ms.append(timings["run"] * 1000)
            summary.total_ms.append(sum(timings.values()) * 1000)
            if progress is not None:
                progress.update(1)
    return summary
