"""DEAL on vs off: the same recipe, seed and schedule, two CAM nets, pseudo-label mIoU of both.

``deal bench train`` runs this: for each seed it trains with the preset's DEAL weight and with
``deal.weight=0``, then scores the CAMs against the ground-truth masks: the CAM threshold sweep
(best threshold), the mIoU at the configured threshold, and the refined pseudo labels
(threshold + dense CRF).

Where the scores come from (``evaluate``):

* ``None`` (default): the training images (pseudo-label quality on the training set, the
  standard WSSS measure of a CAM stage);
* ``(spec, options)``: held-out data, e.g. ``("scene:n=60,seed=1000,mode=multi", {})`` or the
  val split of the training VOC folder (``eval_split=val``: the training data's options with
  ``split`` replaced).

``mode="multi"`` (``deal bench train mode=multi``) is the hard multi-object benchmark of the
``scene`` preset: 160 training scenes of ``scene:mode=multi`` at 240x320 and 60 held-out
scenes of another generator seed (``MULTI``), scored on the held-out ones.

The summary holds, per metric, the mean and standard deviation of each arm over the seeds,
the paired difference DEAL - baseline of every seed, their mean and standard deviation, and
whether DEAL is ahead on every seed.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deal_ros.train.config import load_config
from deal_ros.train.data import dataset_options, open_dataset
from deal_ros.train.evaluate import evaluate_cams
from deal_ros.train.pipeline import train
from deal_ros.train.run import load_run

METRICS = (
    ("cam_best_miou", "CAM mIoU (best thr)"),
    ("cam_miou_at_threshold", "CAM mIoU (cfg thr)"),
    ("pseudo_miou", "pseudo mIoU (CRF)"),
)
MULTI = {
    "train": "scene:n=160,seed=0,size=240x320,mode=multi",
    "eval": "scene:n=60,seed=1000,size=240x320,mode=multi",
}


def run_arm(
    preset: str,
    overrides: Sequence[str],
    out: Path,
    crf: bool,
    limit: int | None,
    progress: bool,
    evaluate: tuple[str, dict] | None = None,
) -> dict[str, Any]:
    cfg = load_config(preset, [*overrides, f"out={out}", "report=false"])
    run_dir, _ = train(cfg, progress=progress)
    run = load_run(run_dir)
    cfg = run.config
    if evaluate is None:
        spec, data = str(cfg.data), open_dataset(cfg.data, cfg)
    else:
        spec = evaluate[0] + "".join(f" {k}={v}" for k, v in evaluate[1].items())
        data = open_dataset(evaluate[0], cfg, classes=run.classes, options=evaluate[1])
    scores = evaluate_cams(run.cam_net(), data, cfg, crf=crf, limit=limit)
    return {**scores, "scored_on": spec, "run": str(run_dir)}


def held_out(preset: str, overrides: Sequence[str], split: str) -> tuple[str, dict]:
    """The training data of ``preset`` + ``overrides`` with ``data_options.split`` = split."""
    cfg = load_config(preset, list(overrides))
    return str(cfg.data), {**dataset_options(cfg), "split": split}


def compare_deal(
    seeds: Sequence[int] = (0, 1, 2),
    preset: str = "scene",
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    crf: bool = True,
    limit: int | None = None,
    progress: bool = False,
    echo=print,
    evaluate: tuple[str, dict] | None = None,
) -> dict[str, Any]:
    """Train both arms per seed; returns per-seed results and the summary (mIoU in [0, 1])."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="deal-bench-") as tmp:
        folder = Path(out) if out else Path(tmp)
        for seed in seeds:
            arms = {}
            for arm, extra in (("deal", []), ("baseline", ["deal.weight=0"])):
                ov = [*overrides, f"seed={seed}", f"name={arm}-s{seed}", *extra]
                arms[arm] = run_arm(preset, ov, folder, crf, limit, progress, evaluate)
            row = {"seed": seed, "deal": arms["deal"], "baseline": arms["baseline"]}
            rows.append(row)
            echo(format_row(row))
    return {"rows": rows, "summary": summarise(rows)}


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else math.nan


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric: mean/std of each arm, the paired differences and their mean/std."""
    summary = {}
    for key, _ in METRICS:
        deal = [r["deal"][key] for r in rows]
        base = [r["baseline"][key] for r in rows]
        deltas = [d - b for d, b in zip(deal, base)]
        summary[key] = {
            "deal": statistics.fmean(deal),
            "deal_std": _std(deal),
            "baseline": statistics.fmean(base),
            "baseline_std": _std(base),
            "deltas": deltas,
            "delta": statistics.fmean(deltas),
            "delta_std": _std(deltas),
            "ahead_every_seed": all(x > 0 for x in deltas),
        }
    return summary


def format_row(row: dict[str, Any]) -> str:
    parts = [f"seed {row['seed']}:"]
    for key, title in METRICS:
        d, b = 100 * row["deal"][key], 100 * row["baseline"][key]
        parts.append(f"{title} DEAL {d:5.2f} / base {b:5.2f} ({d - b:+5.2f})")
    return "  ".join(parts)


def _pct(x: float, width: int = 6) -> str:
    return "-".rjust(width) if math.isnan(x) else f"{100 * x:{width}.2f}"


def format_summary(result: dict[str, Any]) -> str:
    rows = result["rows"]
    seeds = ",".join(str(r["seed"]) for r in rows)
    scored = rows[0]["deal"].get("scored_on", "the training data") if rows else "-"
    lines = [
        f"DEAL vs baseline, {len(rows)} seed(s) [{seeds}] (baseline: deal.weight=0), mIoU in %,",
        f"  scored on {scored}:",
        f"  {'metric':<22} {'DEAL':>7} {'base':>7} {'delta':>7} {'std':>6} {'DEALsd':>6} "
        f"{'basesd':>6}  paired delta per seed",
    ]
    for key, title in METRICS:
        s = result["summary"][key]
        per_seed = " ".join(f"{100 * d:+.2f}" for d in s["deltas"])
        mark = "  (ahead on every seed)" if s["ahead_every_seed"] else ""
        lines.append(
            f"  {title:<22} {100 * s['deal']:7.2f} {100 * s['baseline']:7.2f} "
            f"{100 * s['delta']:+7.2f} {_pct(s['delta_std'])} {_pct(s['deal_std'])} "
            f"{_pct(s['baseline_std'])}  {per_seed}{mark}"
        )
    return "\n".join(lines)
