"""``report.html`` + PNGs in the run folder: training curves, CAM / pseudo-label / segmenter
overlays on training images, evaluation numbers and the resolved config.

Rewritten by every stage from what the folder holds (metrics.jsonl, the PNGs), so one report
covers the CAM stage and the segmenter. Curves come from ``metrics.jsonl``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deal_ros.engine.log import read_metrics
from deal_ros.train.config import TrainConfig
from deal_ros.train.plots import grid, heat, line_chart, overlay_labels

N_EXAMPLES = 6


def curves(records: list[dict[str, Any]], stage: str) -> list:
    """Loss terms and throughput of one stage as PIL images."""
    rows = [r for r in records if r.get("stage") == stage and "loss" in r]
    if not rows:
        return []
    xs = [r["step"] for r in rows]
    keys = [k for k in ("loss", "cls", "deal", "fsl", "seg") if any(k in r for r in rows)]
    losses = {k: (xs, [r.get(k) for r in rows]) for k in keys}
    charts = [line_chart(losses, f"{stage}: training losses")]
    charts.append(line_chart({"images/s": (xs, [r.get("images_per_s") for r in rows]),},
                             f"{stage}: throughput (images/s)"))  # fmt: skip
    charts.append(line_chart({"lr": (xs, [r.get("lr") for r in rows])}, f"{stage}: learning rate"))
    return charts


def _strip(charts: list):
    from PIL import Image

    w = sum(c.width for c in charts)
    out = Image.new("RGB", (w, max(c.height for c in charts)), "white")
    x = 0
    for c in charts:
        out.paste(c, (x, 0))
        x += c.width
    return out


@torch.no_grad()
def cam_examples(net, samples, cfg: TrainConfig, classes, device, n: int = N_EXAMPLES):
    """Rows: image | CAM of the strongest present class | thresholded CAM | refined pseudo label."""
    from deal_ros.train.stages.pseudo import label_from_cams, sample_cams

    picks = [samples[i] for i in range(min(n, len(samples)))]
    cams = sample_cams(net, picks, (cfg.input.height, cfg.input.width), cfg.labeling, device)
    rows = []
    plain = type(cfg.labeling)(**{**cfg.labeling.__dict__, "crf": False})
    for s, c in zip(picks, cams):
        present = np.flatnonzero(np.asarray(s.labels) > 0)
        top = c[present].max(0) if present.size else np.zeros(c.shape[1:], np.float32)
        rows.append([
            s.rgb,
            (s.rgb * 0.4 + heat(top) * 0.6).astype(np.uint8),
            overlay_labels(s.rgb, label_from_cams(s.rgb, c, s.labels, plain)),
            overlay_labels(s.rgb, label_from_cams(s.rgb, c, s.labels, cfg.labeling)),
        ])  # fmt: skip
    captions = ["image", "CAM (present classes)", f"CAM > {cfg.labeling.bg_threshold:g}",
                "pseudo label (CRF)" if cfg.labeling.crf else "pseudo label"]  # fmt: skip
    return grid(rows, captions, scale=_scale(picks), classes=classes)


@torch.no_grad()
def seg_examples(net, items, cfg: TrainConfig, device, n: int = N_EXAMPLES, classes=()):
    """Rows: image | training target (pseudo label) | segmenter prediction."""
    from deal_ros.train.predict import seg_probs

    rows = []
    for i in range(min(n, len(items))):
        s = items.samples[i]
        target = (
            items.targets(i) if items.targets is not None else np.zeros(s.rgb.shape[:2], np.uint8)
        )
        pred = seg_probs(net, s.rgb, (cfg.input.height, cfg.input.width), device).argmax(0)
        rows.append(
            [s.rgb, overlay_labels(s.rgb, target), overlay_labels(s.rgb, pred.astype(np.uint8))]
        )
    return grid(
        rows, ["image", "pseudo label (target)", "segmenter"], scale=_scale([items.samples[0]])
    )


def _scale(samples) -> int:
    h = samples[0].rgb.shape[0]
    return 2 if h <= 128 else 1


def write_report(
    run_dir: Path,
    cfg: TrainConfig,
    net=None,
    seg_net=None,
    items=None,
    classes=None,
    device="cpu",
    evals: dict[str, Any] | None = None,
) -> Path:
    """Draw this stage's pictures, log ``evals`` and rewrite report.html (see module doc)."""
    run_dir = Path(run_dir)
    stage = cfg.stage
    if evals:
        with open(run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"stage": stage, "eval": evals}, default=float) + "\n")
    records = read_metrics(run_dir / "metrics.jsonl")
    charts = curves(records, stage)
    if charts:
        _strip(charts).save(run_dir / f"{stage}_curves.png")
    if net is not None and items is not None:
        cam_examples(net, items.samples, cfg, classes, device).save(run_dir / "cam_overlays.png")
    if seg_net is not None and items is not None:
        seg_examples(seg_net, items, cfg, device, classes=classes or ()).save(
            run_dir / "seg_overlays.png"
        )
    return write_html(run_dir, records)


def _eval_table(evals: dict[str, Any]) -> str:
    rows = []
    for split, res in evals.items():
        for k, v in res.items():
            if isinstance(v, float):
                rows.append(f"<tr><td>{html.escape(split)}</td><td>{html.escape(k)}</td>"
                            f"<td>{v:.4f}</td></tr>")  # fmt: skip
            elif isinstance(v, dict) and k.startswith(("iou_by", "pseudo_iou_by")):
                for name, x in v.items():
                    shown = "-" if x is None or x != x else f"{x:.4f}"
                    rows.append(f"<tr><td>{html.escape(split)}</td><td>{html.escape(k)}: "
                                f"{html.escape(name)}</td><td>{shown}</td></tr>")  # fmt: skip
    return "<table>" + "".join(rows) + "</table>" if rows else ""


def write_html(run_dir: Path, records: list[dict[str, Any]]) -> Path:
    parts = [f"<h1>deal_ros run {html.escape(run_dir.name)}</h1>"]
    for stage, title in (("cam", "Stage cam: CAM net (+ DEAL)"), ("seg", "Stage seg: segmenter")):
        rows = [r for r in records if r.get("stage") == stage and "loss" in r]
        evals = [r["eval"] for r in records if r.get("stage") == stage and "eval" in r]
        pics = [
            p for p in (f"{stage}_curves.png", f"{stage}_overlays.png") if (run_dir / p).is_file()
        ]
        if not rows and not pics:
            continue
        parts.append(f"<h2>{title}</h2>")
        if rows:
            last = rows[-1]
            terms = ", ".join(f"{k} {last[k]:.4f}" for k in ("loss", "cls", "deal", "fsl", "seg")
                              if isinstance(last.get(k), float))  # fmt: skip
            parts.append(f"<p>{last['step']} steps; last logged: {terms}; "
                         f"{last.get('images_per_s', 0):.1f} images/s</p>")  # fmt: skip
        if evals:
            parts.append("<h3>Evaluation</h3>" + _eval_table(evals[-1]))
        for p in pics:
            parts.append(f'<p><img src="{p}" alt="{p}"></p>')
    for name in ("config.yaml", "config_seg.yaml"):
        if (run_dir / name).is_file():
            text = html.escape((run_dir / name).read_text())
            parts.append(f"<details><summary>{name}</summary><pre>{text}</pre></details>")
    style = ("body{font-family:sans-serif;max-width:1800px;margin:1em auto}"
             "table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px 8px}"
             "img{max-width:100%}")  # fmt: skip
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{run_dir.name}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")  # fmt: skip
    path = run_dir / "report.html"
    path.write_text(page)
    return path
