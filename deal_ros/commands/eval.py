"""``deal eval run=RUN [data=SPEC] [what=cam,seg,pseudo] [limit=N] [out=FILE]``."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  deal eval run=runs/mug-001 data=./val
  deal eval run=runs/scene-001 data=scene:n=50,seed=7 what=cam limit=20
keys: run (required); data (default: the run's val, else its training data); what (any of
cam, seg, pseudo; default: all the run has); limit; out (default <run>/eval.json); device;
crf (true/false: refine the CAM pseudo labels); labeling keys (bg_threshold, scales, ...).
Prints mIoU, per-class IoU, multi-class-only mIoU, pixel accuracy and the pseudo-label mIoU
(CAM threshold sweep, and threshold + CRF).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("settings", nargs=argparse.REMAINDER, metavar="key=value")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from deal_ros.commands.pseudo import set_threads, split_settings, take_flags
    from deal_ros.errors import DealError
    from deal_ros.instance.cli import is_box_run
    from deal_ros.train.config import apply_overrides, from_dict, to_dict
    from deal_ros.train.data import open_dataset
    from deal_ros.train.evaluate import (
        evaluate_cams,
        evaluate_pseudo_dir,
        evaluate_seg,
        format_results,
    )
    from deal_ros.train.loop import resolve_device
    from deal_ros.train.run import load_run

    take_flags(args, "settings", {"--no-progress": "no_progress"})
    runs = [v.split("=", 1)[1] for v in args.settings if v.startswith("run=")]
    if runs and is_box_run(runs[-1]):  # a box-supervised instance run
        from deal_ros.instance.cli import eval_command

        return eval_command(args.settings, progress=not args.no_progress)

    own = ("run", "data", "what", "limit", "out", "device", "crf")
    mine, overrides = split_settings(args.settings, own)
    if "run" not in mine:
        raise DealError("eval: give run=runs/<name> (a folder written by 'deal train')")
    run_ = load_run(mine["run"])
    cfg = from_dict(apply_overrides(to_dict(run_.config), overrides), where="eval").validate()
    set_threads(cfg)
    spec = mine.get("data") or cfg.val or cfg.data
    data = open_dataset(spec, cfg, classes=run_.classes)
    has = {"cam": run_.has_cam, "seg": run_.has_seg,
           "pseudo": (run_.pseudo_dir / "pseudo.yaml").is_file()}  # fmt: skip
    default = [w for w, ok in has.items() if ok]
    what = [w.strip() for w in mine.get("what", ",".join(default)).split(",") if w.strip()]
    bad = [w for w in what if w not in ("cam", "seg", "pseudo")]
    if bad or not what:
        raise DealError(f"eval: what={mine.get('what')!r}: choose from cam, seg, pseudo")
    limit = int(mine["limit"]) if mine.get("limit") else None
    device = resolve_device(mine.get("device", "auto"))
    progress = not args.no_progress
    crf = {"true": True, "false": False}.get(mine.get("crf", "").lower()) if "crf" in mine else None
    results: dict = {"run": str(run_.path), "data": spec}
    if "cam" in what:
        results["cam"] = evaluate_cams(
            run_.cam_net(device), data, cfg, device, progress, limit, crf
        )
    if "seg" in what:
        seg_cfg = run_.seg_config or cfg
        size = (seg_cfg.input.height, seg_cfg.input.width)
        results["seg"] = evaluate_seg(run_.seg_net(device), data, size, device, progress, limit)
    if "pseudo" in what:
        results["pseudo_dir"] = evaluate_pseudo_dir(run_.pseudo_dir, data)
    print(format_results(results))
    out = Path(mine.get("out") or run_.path / "eval.json")
    out.write_text(json.dumps(results, indent=2, default=_json))
    print(f"deal eval: -> {out}")
    return 0


def _json(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
