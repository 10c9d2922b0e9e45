"""Phase ``report`` and the closing summary: scores, pictures, ``metrics.json``, ``report.md``.

Runs in the demo's process with ONNX Runtime and numpy only (no torch): the bundle is scored
on held-out scenes with the node's runtime, the pseudo labels and the segmenter's masks
against the camera's ground truth (:mod:`deal_ros.demo.scoring`).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from typing import Any

import numpy as np
from PIL import Image

from deal_ros import __version__
from deal_ros.demo.phases import PHASE_LOGS
from deal_ros.demo.report import HEADLINE, contact_sheet, fmt, lookup, write_metrics, write_report
from deal_ros.demo.run_state import DemoState
from deal_ros.demo.scoring import score_heldout, score_masks, score_pseudo_labels
from deal_ros.demo.takes import GroundTruth
from deal_ros.infer.postprocess import overlay

__all__ = ["assemble_report", "final_summary", "rewrite_timing"]

SHEET_PER_EPISODE = 2


def _settings(run: DemoState) -> dict[str, Any]:
    s = run.s
    return {
        "quick": s.quick,
        "classes": list(s.classes),
        "frames": s.frames,
        "steps": s.steps,
        "batch_size": s.batch_size,
        "camera_size": s.size_text,
        "input_size": f"{s.input_size[0]}x{s.input_size[1]}",
        "rate_hz": s.rate_hz,
        "zoom": s.zoom,
        "rooms": s.rooms,
        "heldout_scenes": s.heldout,
        "heldout_seed": s.heldout_seed,
        "seed": s.seed,
        "ros_domain": run.domain,
    }


def _heldout(run: DemoState, runtime: Any) -> tuple[dict[str, Any], list]:
    s = run.s
    scores, rows = score_heldout(runtime, s.heldout, s.heldout_seed, s.camera_size, zoom=s.zoom)
    ev = run.metrics.get("eval", {})
    out = {
        "images": scores["images"],
        "cam_best_miou": ev.get("cam_best_miou"),
        "cam_best_threshold": ev.get("cam_best_threshold"),
        "mask_miou": scores["miou"],
        "mask_pixel_accuracy": scores["pixel_accuracy"],
        "mask_iou_by_class": scores["iou_by_class"],
        "all_background_miou": scores["all_background_miou"],
    }
    return out, rows


def _segmenter_sheet(run: DemoState, gt: GroundTruth, classes: list[str]) -> list[list]:
    result = run.segment_result
    rows, per_episode = [], {}
    for stamp, (episode_id, rgb) in sorted(result.inputs.items()):
        if per_episode.get(episode_id, 0) >= SHEET_PER_EPISODE:
            continue
        cam = run.out / "cams" / f"{episode_id}_{stamp}.png"
        ov = run.out / "overlays" / f"{episode_id}_{stamp}.png"
        mask = gt.mask(stamp, classes)
        if not (cam.is_file() and ov.is_file()) or mask is None:
            continue
        per_episode[episode_id] = per_episode.get(episode_id, 0) + 1
        truth = overlay(rgb, np.where(mask == 255, 0, mask), result.palette, 0.6)
        rows.append([truth, np.asarray(Image.open(cam)), np.asarray(Image.open(ov))])
    return rows


def _copy_training_report(run: DemoState) -> None:
    dest = run.out / "training"
    dest.mkdir(parents=True, exist_ok=True)
    for path in run.run_dir.iterdir():
        if path.suffix in (".html", ".png") or path.name in ("config.yaml", "metrics.jsonl"):
            shutil.copy2(path, dest / path.name)


def assemble_report(run: DemoState) -> None:
    """Scores, pictures and files of the report phase."""
    from deal_ros.infer.runtime import Runtime

    runtime = Runtime(run.bundle, providers="cpu")
    classes = list(runtime.bundle.classes)
    gt = GroundTruth(run.gt_dir, run.s.classes)
    m = run.metrics
    m["heldout"], heldout_rows = _heldout(run, runtime)
    ev = m.get("eval", {})
    m["pseudo_labels"] = {
        "episodes": score_pseudo_labels(run.run_dir / "pseudo", run.episodes_dir, classes, gt),
        "heldout": {
            "miou": ev.get("pseudo_miou"),
            "iou_by_class": ev.get("pseudo_iou_by_class"),
            "coverage": ev.get("pseudo_coverage"),
            "crf": ev.get("pseudo_crf"),
        },
    }
    masks = score_masks(run.segment_result.masks, gt, classes)
    m["segmenter"].update(
        mask_miou=masks["miou"],
        mask_iou_by_class=masks["iou_by_class"],
        mask_images=masks["images"],
    )
    legend = list(zip(runtime.bundle.class_names[1:], runtime.bundle.palette[1:]))
    titles = ["ground truth", "~/cam (strongest present class)", "~/overlay"]
    sheet = contact_sheet(_segmenter_sheet(run, gt, classes), titles, legend=legend)
    sheet.save(run.out / "segmenter_outputs.png")
    titles = ["held-out scene", "ground truth", "mask of the ONNX bundle"]
    contact_sheet(heldout_rows, titles, legend=legend).save(run.out / "heldout_scenes.png")
    _copy_training_report(run)
    write_outputs(run)


def write_outputs(run: DemoState) -> None:
    """``metrics.json`` and ``report.md`` from what ``run`` holds now."""
    m = run.metrics
    m.update(
        format=1,
        deal_ros=__version__,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        settings=_settings(run),
        phases=[p for p in run.timing if p != "total"],
        timing_s={k: round(v, 2) for k, v in run.timing.items()},
        logs={
            phase: [f"logs/{n}.log" for n in names if (run.logs / f"{n}.log").is_file()]
            for phase, names in PHASE_LOGS.items()
        },
        problems=list(run.problems),
    )
    m["timing_s"].setdefault("total", round(sum(run.timing.values()), 2))
    write_metrics(run.out / "metrics.json", m)
    pictures = {
        "Segmenter outputs on the replay (first frames of each episode)": "segmenter_outputs.png",
        "Held-out scenes: the exported bundle (ONNX Runtime)": "heldout_scenes.png",
    }
    write_report(run.out, m, pictures)


def rewrite_timing(run: DemoState) -> None:
    """After the last phase: the files again, now with every phase's time and the total."""
    if "heldout" in run.metrics:
        write_outputs(run)


def final_summary(run: DemoState) -> list[str]:
    m, out = run.metrics, run.out
    total = run.timing.get("total", 0.0)
    lines = [f"deal demo: done in {int(total // 60)} min {total % 60:.0f} s -> {out}"]
    width = max(len(label) for _, label, _ in HEADLINE)
    for key, label, kind in HEADLINE:
        lines.append(f"  {label.ljust(width)}  {fmt(lookup(m, key), kind)}")
    files = [
        ("report", out / "report.md"),
        ("metrics", out / "metrics.json"),
        ("model", out / "model"),
        ("overlays", out / "overlays"),
        ("CAMs", out / "cams"),
        ("masks", out / "masks"),
        ("pictures", out / "segmenter_outputs.png"),
        ("training", out / "training" / "report.html"),
        ("logs", out / "logs"),
    ]
    for label, path in files:
        count = (
            f" ({len(list(path.glob('*.png')))} PNG)"
            if path.is_dir() and label in ("overlays", "CAMs", "masks")
            else ""
        )
        lines.append(f"  {label:<9} {path}{count}")
    if run.s.keep:
        lines.append(f"  {'work':<9} {run.work} (episodes, run folder, ground truth)")
    return lines
