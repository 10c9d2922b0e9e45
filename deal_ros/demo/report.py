"""What ``deal demo`` leaves behind to read: ``metrics.json``, ``report.md``, contact sheets.

``metrics.json`` holds plain numbers (NaN never appears: a per-class IoU of a class absent from
both ground truth and prediction is ``null``); ``report.md`` tells the same story for a person,
with the pictures next to it.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from deal_ros import __version__

__all__ = ["HEADLINE", "contact_sheet", "verdict", "write_metrics", "write_report"]

# metrics.json keys shown in the summary and the report: (dotted key, label, kind)
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("recording.frames_recorded", "frames recorded", "int"),
    ("recording.frames_dropped", "frames dropped by the recorder", "int"),
    ("pseudo_labels.episodes.label_purity", "recorded frames showing their episode's label", "pct"),
    ("pseudo_labels.episodes.miou", "pseudo-label mIoU, recorded frames (threshold + CRF)", "pct"),
    ("pseudo_labels.heldout.miou", "pseudo-label mIoU, held-out scenes (threshold + CRF)", "pct"),
    ("heldout.cam_best_miou", "CAM mIoU at the best threshold, held-out scenes", "pct"),
    ("heldout.mask_miou", "mask mIoU of the ONNX bundle, held-out scenes", "pct"),
    ("heldout.all_background_miou", "  (all-background baseline on the same scenes)", "pct"),
    ("segmenter.mask_miou", "mask mIoU of deal-segmenter on the replay", "pct"),
    ("segmenter.frames_processed_fraction", "replayed frames the segmenter processed", "pct"),
    ("segmenter.stamp_match_fraction", "segmenter outputs stamped like their input", "pct"),
    ("segmenter.latency_ms.p50", "segmenter latency p50 (replay publish -> ~/overlay), ms", "ms"),
    ("segmenter.latency_ms.p95", "segmenter latency p95, ms", "ms"),
    ("segmenter.node.run.p50_ms", "ONNX Runtime session.run p50 in the node, ms", "ms"),
)


def lookup(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "pct":
        return f"{100 * float(value):.1f} %"
    if kind == "ms":
        return f"{float(value):.1f}"
    return str(int(value)) if kind == "int" else str(value)


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars -> Python, NaN/inf -> None, paths -> str."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_metrics(path: Path, metrics: dict[str, Any]) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(metrics), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def _font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str],
    labels: Sequence[str] = (),
    legend: Sequence[tuple[str, Sequence[int]]] = (),
    min_width: int = 256,
) -> Image.Image:
    """A grid of equally sized RGB cells with column titles, optional row labels and an
    optional colour legend (name, rgb) below; cells narrower than ``min_width`` are enlarged
    (nearest neighbour, pixels stay visible)."""
    if not rows:
        return Image.new("RGB", (320, 40), "white")
    h, w = rows[0][0].shape[:2]
    if w < min_width:
        h, w = round(h * min_width / w), min_width
    gap, top, bottom = 4, 20, 22 if legend else 0
    cols = max(len(r) for r in rows)
    size = (cols * (w + gap) + gap, top + len(rows) * (h + gap) + bottom)
    sheet = Image.new("RGB", size, "white")
    draw, font = ImageDraw.Draw(sheet), _font()
    for c, title in enumerate(titles[:cols]):
        draw.text((gap + c * (w + gap), 3), title, fill=(0, 0, 0), font=font)
    for r, row in enumerate(rows):
        y = top + r * (h + gap)
        for c, cell in enumerate(row):
            image = Image.fromarray(np.ascontiguousarray(cell)).convert("RGB")
            if image.size != (w, h):
                image = image.resize((w, h), Image.NEAREST)
            sheet.paste(image, (gap + c * (w + gap), y))
        if r < len(labels):
            draw.text(
                (gap + 3, y + 3),
                labels[r],
                fill=(255, 255, 255),
                font=font,
                stroke_width=2,
                stroke_fill=(0, 0, 0),
            )
    x, y = gap, size[1] - bottom + 3
    for name, rgb in legend:
        draw.rectangle((x, y + 2, x + 12, y + 14), fill=tuple(int(v) for v in rgb), outline=0)
        draw.text((x + 16, y), name, fill=(0, 0, 0), font=font)
        x += 16 + int(draw.textlength(name, font=font)) + 14
    return sheet


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines


def _episodes(m: dict[str, Any]) -> list[str]:
    rows = []
    for e in lookup(m, "recording.episodes") or []:
        drops = ", ".join(f"{k} {v}" for k, v in (e.get("dropped") or {}).items() if v) or "none"
        rows.append(
            [e["label"], f"`{e['episode_id']}`", e["frames"], drops, f"{e.get('fps', 0):.1f}"]
        )
    return _table(["class", "episode", "frames", "dropped", "frames/s"], rows)


def _per_class(m: dict[str, Any]) -> list[str]:
    sources = (
        ("pseudo labels, recorded", "pseudo_labels.episodes.iou_by_class"),
        ("pseudo labels, held-out", "pseudo_labels.heldout.iou_by_class"),
        ("bundle, held-out", "heldout.mask_iou_by_class"),
        ("node, replay", "segmenter.mask_iou_by_class"),
    )
    found = [(label, lookup(m, key) or {}) for label, key in sources]
    names: list[str] = []
    for _, ious in found:
        names += [n for n in ious if n not in names]
    rows = [[n, *[fmt(ious.get(n), "pct") for _, ious in found]] for n in names]
    return _table(["class (IoU)", *[label for label, _ in found]], rows)


def verdict(m: dict[str, Any]) -> str:
    """One honest sentence: does the bundle beat an all-background prediction on the held-out
    scenes (by at least 1 mIoU point)?"""
    ours, base = lookup(m, "heldout.mask_miou"), lookup(m, "heldout.all_background_miou")
    if not isinstance(ours, (int, float)) or not isinstance(base, (int, float)):
        return "No held-out score was computed, so nothing can be said about localisation."
    gap = 100 * (ours - base)
    text = f"mask mIoU {100 * ours:.1f} % vs {100 * base:.1f} % for an all-background prediction"
    if gap >= 1.0:
        return (
            f"On the held-out scenes the exported model localises the objects better than "
            f"predicting background everywhere ({text}, +{gap:.1f} points); the per-class IoUs "
            f"below show how far from exact masks a few CPU minutes of training are."
        )
    return (
        f"On the held-out scenes the exported model does NOT beat predicting background "
        f"everywhere ({text}): it does not localise the objects reliably."
    )


def _phase_row(m: dict[str, Any], phase: str) -> list[str]:
    logs = ", ".join(f"`{q}`" for q in m.get("logs", {}).get(phase, []))
    return [phase, f"{m['timing_s'][phase]:.1f}", logs]


def write_report(out: Path, m: dict[str, Any], pictures: dict[str, str]) -> Path:
    """``report.md`` in ``out`` from the metrics ``m`` and {caption: relative PNG path}."""
    s = m["settings"]
    total = m["timing_s"]["total"]
    lines = [
        "# deal demo",
        "",
        f"deal_ros {__version__}, {'quick' if s['quick'] else 'full'} run, "
        f"{os.cpu_count()} CPU cores ({platform.machine()}), no camera, no GPU, no download. "
        f"Total {total:.0f} s.",
        "",
        f"The built-in scene generator played the camera ({s['camera_size']} at "
        f"{s['rate_hz']:g} Hz on the RealSense topics, a close-up lens: zoom "
        f"{s.get('zoom', 1.0):g}); `deal-recorder` recorded one onboarding "
        f"episode per class ({', '.join(s['classes'])}, {s['frames']} frames each, shown in "
        f"{s.get('rooms', 1)} room(s)), labelled "
        f"with the class name only. `deal train` trained a CAM net with DEAL on them for "
        f"{s['steps']} steps on the CPU, `deal pseudo` made pseudo labels (CAM -> threshold -> "
        f"CRF), `deal export` wrote the ONNX bundle `model/`, and `deal-segmenter` ran on a "
        f"replay of the episodes. Scores use the generator's exact masks; held-out scenes "
        f"come from other rooms with 1-3 objects, seen through the same lens. A few CPU "
        f"minutes of training make this a smoke test of the whole loop, not a benchmark.",
        "",
        "## Metrics",
        "",
        *_table(
            ["metric", "value"],
            [[label, fmt(lookup(m, key), kind)] for key, label, kind in HEADLINE],
        ),
        "",
        verdict(m),
        "",
        *_per_class(m),
        "",
        "## Recording",
        "",
        *_episodes(m),
        "",
        "## Phases",
        "",
        *_table(["phase", "seconds", "log"], [_phase_row(m, p) for p in m["phases"]]),
        "",
        f"Training report: [`training/report.html`](training/report.html). "
        f"Model bundle: `model/` ({lookup(m, 'export.model_bytes') or 0} bytes of ONNX). "
        f"Segmenter outputs: `overlays/`, `cams/`, `masks/` (mask PNGs hold the class ids).",
        "",
    ]
    for caption, path in pictures.items():
        lines += [f"### {caption}", "", f"![{caption}]({path})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
