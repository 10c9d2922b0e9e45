"""``deal eval run=RUN [data=SPEC] [what=cam,seg,pseudo] [limit=N] [out=FILE]``, or
``deal eval model=BUNDLE data=SPEC [limit=N] [out=FILE] [providers=...] [threads=N]``."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  deal eval run=runs/mug-001 data=./val
  deal eval run=runs/scene-001 data=scene:n=50,seed=7 what=cam limit=20
  deal eval model=models/mug data=./val        # the exported bundle, as the robot runs it
  deal eval run=runs/box-001 data=coco:./val.json   # a box run: COCO mask AP
keys: run (required); data (default: the run's val, else its training data); what (any of
cam, seg, pseudo; default: all the run has); limit; out (default <run>/eval.json); device;
crf (true/false: refine the CAM pseudo labels); labeling keys (bg_threshold, scales, ...).
Prints mIoU, per-class IoU, multi-class-only mIoU, pixel accuracy and the pseudo-label mIoU
(CAM threshold sweep, and threshold + CRF).
model=BUNDLE (instead of run=) scores a bundle through ONNX Runtime on data=SPEC (required):
mIoU etc. of its masks for a semantic bundle, COCO mask/box AP for an instance bundle; keys
data, limit, out (default: print only), providers, threads.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("settings", nargs=argparse.REMAINDER, metavar="key=value")


def run(args: argparse.Namespace) -> int:
    from deal_ros.commands.pseudo import take_flags

    take_flags(args, "settings", {"--no-progress": "no_progress"})
    if any(v.startswith("model=") for v in args.settings):  # before torch is imported
        return _eval_bundle(args.settings, progress=not args.no_progress)
    return _eval_run(args)


def _eval_run(args: argparse.Namespace) -> int:
    """``deal eval run=RUN ...`` (module docstring)."""
    import json
    from pathlib import Path

    from deal_ros.commands._methods import BOX, run_method
    from deal_ros.commands.pseudo import set_threads, split_settings
    from deal_ros.engine.device import resolve_device
    from deal_ros.errors import DealError
    from deal_ros.eval.results_text import format_results
    from deal_ros.train.config import apply_overrides, from_dict, to_dict
    from deal_ros.train.data import open_dataset
    from deal_ros.train.evaluate import (
        evaluate_cams,
        evaluate_pseudo_dir,
        evaluate_seg,
    )
    from deal_ros.train.run import load_run

    runs = [v.split("=", 1)[1] for v in args.settings if v.startswith("run=")]
    if runs and run_method(runs[-1]) == BOX:  # a box-supervised instance run
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


def _eval_bundle(settings: list[str], progress: bool) -> int:
    """``deal eval model=BUNDLE data=SPEC ...`` (module docstring)."""
    import json
    from pathlib import Path

    from deal_ros.commands.pseudo import split_settings
    from deal_ros.data.registry import build_dataset
    from deal_ros.errors import DealError
    from deal_ros.eval.bundle import evaluate_bundle
    from deal_ros.eval.results_text import format_ap, format_results
    from deal_ros.infer.runtime import Runtime

    own = ("model", "data", "limit", "out", "providers", "threads")
    mine, rest = split_settings(settings, own)
    if any(s.startswith("run=") for s in rest):
        raise DealError("eval: give run=RUN (a training run) or model=BUNDLE, not both")
    if rest:
        keys = ", ".join(s.partition("=")[0] for s in rest)
        raise DealError(f"eval model=: unknown keys {keys} (known: {', '.join(own)})")
    if "data" not in mine:
        raise DealError("eval model=: give data=SPEC (labelled data: scene:, voc:, coco:, ...)")
    runtime = Runtime(
        mine["model"], mine.get("providers", "auto"), threads=int(mine.get("threads", 0))
    )
    data = build_dataset(mine["data"], classes=runtime.bundle.classes)
    limit = int(mine["limit"]) if mine.get("limit") else None
    results = {
        "model": str(runtime.bundle.path),
        "provider": runtime.provider,
        "data": mine["data"],
        **evaluate_bundle(runtime, data, limit, progress),
    }
    print(f"{runtime.describe()} on {mine['data']}")
    print(format_ap(results) if runtime.bundle.is_instance else format_results(results))
    if mine.get("out"):
        Path(mine["out"]).write_text(json.dumps(results, indent=2, default=_json))
        print(f"deal eval: -> {mine['out']}")
    return 0


def _json(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
