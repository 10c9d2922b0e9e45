"""What ``deal train`` and ``deal eval`` call for box-supervised runs.

Wiring (``deal_ros/commands/train.py`` / ``eval.py`` choose the method with
``deal_ros.commands._methods``, before their own config loading):

    if train_method(args.config, args.overrides) == BOX:
        return train_command(args.config, args.overrides, progress=not args.no_progress,
                             print_config=args.print_config)
    ...
    if run_method(run_dir) == BOX:           # deal eval run=...
        return eval_command(args.settings, progress=not args.no_progress)

``deal eval`` keys for box runs: run (required), data (default: the run's val, else its
data), limit, out (default <run>/eval.json), device, overlays (PNG count, default 8, into
<run>/overlays/), plus config overrides (``infer.score_threshold=0.1``, ``cpu_threads=1``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from deal_ros.errors import DealError
from deal_ros.eval.results_text import format_ap as format_results
from deal_ros.instance.config import (
    apply_box_overrides,
    box_config_from_dict,
    is_box_config,
    is_box_run,
)

__all__ = ["eval_command", "is_box_config", "is_box_run", "load_box_run", "train_command"]


def train_command(
    config: str | None, overrides: Sequence[str], progress: bool = True, print_config: bool = False
) -> int:
    """``deal train --config box ...``: train, print one summary line; 0 on success."""
    import yaml

    from deal_ros.instance.config import box_config_to_dict
    from deal_ros.instance.train import main_from_config, resolve_config

    cfg = resolve_config(config, list(overrides))
    if print_config:
        print(
            yaml.safe_dump(box_config_to_dict(cfg), sort_keys=False, default_flow_style=None),
            end="",
        )
        return 0
    run_dir, result = main_from_config(cfg, progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun: rank 0 reports
        return 0
    state = "done" if result.completed else "stopped (resume with resume=true)"
    skipped = sum(result.box_skipped.values())
    note = f", skipped {skipped} bad boxes {result.box_skipped}" if skipped else ""
    ap = ""
    if result.eval and result.eval.get("segm", {}).get("AP") is not None:
        ap = f", val mask AP {100 * result.eval['segm']['AP']:.1f}"
    print(
        f"deal train: box {state} at step {result.steps}/{result.total_steps}, "
        f"{result.images_per_s:.1f} images/s{ap}{note} -> {run_dir}"
    )
    return 0


def load_box_run(run_dir: str | Path, overrides: Sequence[str] = (), device: str = "cpu"):
    """(config, classes, model in eval mode) of a box run folder."""
    from deal_ros.engine.runfolder import read_classes, read_yaml
    from deal_ros.instance.train import WEIGHTS, build_model
    from deal_ros.nets.weights import load_weights

    path = Path(run_dir).expanduser()
    if not (path / "config.yaml").is_file():
        raise DealError(f"run {path}: config.yaml not found (not a deal_ros run folder?)")
    saved = read_yaml(path / "config.yaml", "run config")
    data = apply_box_overrides({k: v for k, v in saved.items() if k != "meta"}, list(overrides))
    cfg = box_config_from_dict(data, where=str(path / "config.yaml"))
    classes = read_classes(path)
    if not (path / WEIGHTS).is_file():
        raise DealError(
            f"run {path}: {WEIGHTS} not found (training did not finish? resume it "
            f"with: deal train resume={path})"
        )
    model = build_model(cfg, len(classes), load_pretrained=False)
    load_weights(model, path / WEIGHTS)
    return cfg, classes, model.to(device).eval()


def eval_command(settings: Sequence[str], progress: bool = True) -> int:
    """``deal eval run=RUN [data=SPEC] [limit=N] [out=FILE] [overlays=N] [key=value ...]``."""
    import torch

    from deal_ros.engine.device import resolve_device
    from deal_ros.instance.data import open_box_dataset
    from deal_ros.instance.evaluate import evaluate_model, write_overlays

    own = ("run", "data", "limit", "out", "device", "overlays")
    mine: dict[str, str] = {}
    overrides: list[str] = []
    for s in settings:
        key, eq, value = s.partition("=")
        if not eq:
            raise DealError(f"eval: expected key=value, got {s!r}")
        if key in own:
            mine[key] = value
        else:
            overrides.append(s)
    if "run" not in mine:
        raise DealError("eval: give run=runs/<name> (a folder written by 'deal train')")
    device = resolve_device(mine.get("device", "cpu"))
    cfg, classes, model = load_box_run(mine["run"], overrides, str(device))
    if device.type == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    spec = mine.get("data") or cfg.val or cfg.data
    data = open_box_dataset(cfg, spec, classes=classes)
    limit = int(mine["limit"]) if mine.get("limit") else None
    results = {
        "run": str(mine["run"]),
        "data": spec,
        **evaluate_model(model, data, cfg, device, limit, progress),
    }
    n = int(mine.get("overlays", 8))
    if n > 0:
        write_overlays(model, data, cfg, Path(mine["run"]) / "overlays", n, device)
    print(format_results(results))
    out = Path(mine.get("out") or Path(mine["run"]) / "eval.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"deal eval: -> {out}")
    return 0
