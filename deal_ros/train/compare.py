"""DEAL on vs off: the same recipe, seed and schedule, two CAM nets, pseudo-label mIoU of both.

``deal bench train`` runs this on the generated benchmark (``scene`` preset): for each seed it
trains with the preset's DEAL weight and with ``deal.weight=0``, then scores the CAMs of the
training images against the ground-truth masks: the CAM threshold sweep (best threshold), the
mIoU at the configured threshold, and the refined pseudo labels (threshold + dense CRF).
Pseudo-label quality on the training images is the standard WSSS measure of a CAM stage.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deal_ros.train.config import load_config
from deal_ros.train.data import open_dataset
from deal_ros.train.evaluate import evaluate_cams
from deal_ros.train.pipeline import train
from deal_ros.train.run import load_run

METRICS = (
    ("cam_best_miou", "CAM mIoU (best thr)"),
    ("cam_miou_at_threshold", "CAM mIoU (cfg thr)"),
    ("pseudo_miou", "pseudo mIoU (CRF)"),
)


def run_arm(preset: str, overrides: Sequence[str], out: Path, crf: bool, limit: int | None,
            progress: bool) -> dict[str, Any]:  # fmt: skip
    cfg = load_config(preset, [*overrides, f"out={out}", "report=false"])
    run_dir, _ = train(cfg, progress=progress)
    cfg = load_run(run_dir).config
    data = open_dataset(cfg.data, cfg)
    return evaluate_cams(load_run(run_dir).cam_net(), data, cfg, crf=crf, limit=limit)


def compare_deal(
    seeds: Sequence[int] = (0, 1, 2),
    preset: str = "scene",
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    crf: bool = True,
    limit: int | None = None,
    progress: bool = False,
    echo=print,
) -> dict[str, Any]:
    """Train both arms per seed; returns per-seed results and mean deltas (mIoU in [0, 1])."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="deal-bench-") as tmp:
        folder = Path(out) if out else Path(tmp)
        for seed in seeds:
            arms = {}
            for arm, extra in (("deal", []), ("baseline", ["deal.weight=0"])):
                ov = [*overrides, f"seed={seed}", f"name={arm}-s{seed}", *extra]
                arms[arm] = run_arm(preset, ov, folder, crf, limit, progress)
            row = {"seed": seed, "deal": arms["deal"], "baseline": arms["baseline"]}
            rows.append(row)
            echo(format_row(row))
    summary = {}
    for key, _ in METRICS:
        deltas = [r["deal"][key] - r["baseline"][key] for r in rows]
        summary[key] = {
            "deal": statistics.fmean(r["deal"][key] for r in rows),
            "baseline": statistics.fmean(r["baseline"][key] for r in rows),
            "delta": statistics.fmean(deltas),
            "delta_std": statistics.stdev(deltas) if len(deltas) > 1 else math.nan,
        }
    return {"rows": rows, "summary": summary}


def format_row(row: dict[str, Any]) -> str:
    parts = [f"seed {row['seed']}:"]
    for key, title in METRICS:
        d, b = 100 * row["deal"][key], 100 * row["baseline"][key]
        parts.append(f"{title} DEAL {d:5.2f} / base {b:5.2f} ({d - b:+5.2f})")
    return "  ".join(parts)


def format_summary(result: dict[str, Any]) -> str:
    n = len(result["rows"])
    lines = [f"DEAL vs baseline, {n} seed(s), mIoU in %:",
             f"  {'metric':<22} {'DEAL':>7} {'base':>7} {'delta':>7} {'std':>6}"]  # fmt: skip
    for key, title in METRICS:
        s = result["summary"][key]
        std = "-" if math.isnan(s["delta_std"]) else f"{100 * s['delta_std']:6.2f}"
        lines.append(f"  {title:<22} {100 * s['deal']:7.2f} {100 * s['baseline']:7.2f} "
                     f"{100 * s['delta']:+7.2f} {std:>6}")  # fmt: skip
    return "\n".join(lines)
