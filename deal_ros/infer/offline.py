"""``deal infer``: a bundle over recorded frames, written as PNGs (the node's code path, offline).

Sources are dataset specs of ``deal_ros.data.registry.build_dataset`` (episodes, ``bag:``,
``folder:``, ``scene:`` ...); a bare folder of images, a bag folder or ``.mcap`` file and a
single image file are recognised without a prefix. Per frame ``<name>_overlay.png`` (rgb8),
``<name>_mask.png`` (8-bit class ids, 0 = background) and ``<name>_cam.png`` (the CAM heat
map in colour) are written, plus one JSON line in ``results.jsonl``; with ``cloud`` also a
class-coloured ``<name>_cloud.ply`` (needs depth + intrinsics: episodes, bags, RGB-D datasets;
see :mod:`deal_ros.infer.cloud_export`).
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

from deal_ros.data.sample import Sample
from deal_ros.errors import DealError
from deal_ros.infer.postprocess import heat_to_rgb
from deal_ros.infer.runtime import InferenceResult, Runtime

__all__ = ["SAVE_KINDS", "OfflineSummary", "iter_frames", "resolve_source", "run_offline"]

SAVE_KINDS = ("overlay", "mask", "cam", "cloud")
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


def _save(
    out: Path, name: str, sample: Sample, runtime: Runtime, result: InferenceResult, save: set
) -> None:
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if "cloud" in save:
        from deal_ros.infer.cloud_export import write_frame_ply
        from deal_ros.infer.objects import CloudCleaner

        names = runtime.bundle.class_names
        try:
            write_frame_ply(
                f"{target}_cloud.ply",
                sample,
                result.mask,
                class_names=names,
                cleaner=CloudCleaner(),
            )
        except DealError as exc:
            raise DealError(f"frame {name}: no cloud: {exc}") from None
    if "overlay" in save and result.overlay is not None:
        Image.fromarray(result.overlay).save(f"{target}_overlay.png")
    if "mask" in save:
        Image.fromarray(result.mask, mode="L").save(f"{target}_mask.png")
    if "cam" in save and result.cam is not None:
        Image.fromarray(heat_to_rgb(result.cam)).save(f"{target}_cam.png")


def run_offline(
    runtime: Runtime,
    frames: Iterable[tuple[str, Sample]],
    out: str | Path,
    save: Iterable[str] = SAVE_KINDS,
    progress: Any = None,
) -> OfflineSummary:
    """Segment every frame; write the chosen files and ``results.jsonl`` into ``out``."""
    save = set(save)
    unknown = save - set(SAVE_KINDS)
    if unknown:
        raise DealError(f"save: unknown kinds {sorted(unknown)} (known: {', '.join(SAVE_KINDS)})")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    summary = OfflineSummary(out=out, provider=runtime.provider)
    with open(out / "results.jsonl", "w", encoding="utf-8") as log:
        for name, sample in frames:
            result = runtime.segment(sample.rgb, cam="cam" in save, overlay="overlay" in save)
            _save(out, name, sample, runtime, result, save)
            log.write(json.dumps(_record(name, runtime, result)) + "\n")
            summary.frames += 1
            summary.run_ms.append(result.timings["run"] * 1000)
            summary.total_ms.append(sum(result.timings.values()) * 1000)
            if progress is not None:
                progress.update(1)
    return summary
