"""``deal pseudo run=RUN [data=SPEC] [out=DIR] [bg_threshold=0.3 crf=true ...]``."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  deal pseudo run=runs/mug-001                       # -> runs/mug-001/pseudo/
  deal pseudo run=runs/mug-001 bg_threshold=0.25 crf=false out=/tmp/labels
keys: run (required), data, out, device, and any labeling key (scales, flip, bg_threshold,
crf, crf_iterations, min_confidence, ignore_margin, ...; 'labeling.' prefix optional).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("settings", nargs=argparse.REMAINDER, metavar="key=value")


def take_flags(args: argparse.Namespace, field: str, flags: dict[str, str],
               valued: dict[str, str] | None = None) -> None:  # fmt: skip
    """Options written after the first key=value land in ``args.<field>`` (argparse stops at
    the first positional); move the known ones onto ``args``, leave the key=value items."""
    valued = valued or {}
    items, rest = list(getattr(args, field) or []), []
    while items:
        item = items.pop(0)
        if item in flags:
            setattr(args, flags[item], True)
        elif item in valued and items:
            setattr(args, valued[item], items.pop(0))
        elif item.split("=", 1)[0] in valued and "=" in item:
            setattr(args, valued[item.split("=", 1)[0]], item.split("=", 1)[1])
        elif item.startswith("-") and "=" not in item:
            from deal_ros.errors import DealError

            known = ", ".join([*flags, *valued])
            raise DealError(f"unknown option '{item}' (options: {known}; settings are key=value)")
        else:
            rest.append(item)
    setattr(args, field, rest)


def set_threads(cfg) -> None:
    if cfg.threads:
        import torch

        torch.set_num_threads(int(cfg.threads))


def split_settings(settings, own: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """key=value items -> (this command's own keys, config overrides; bare labeling keys get
    their 'labeling.' prefix)."""
    from deal_ros.train.config import LabelingConfig, parse_override

    mine, overrides = {}, []
    labeling = set(LabelingConfig.__dataclass_fields__)
    for text in settings:
        key, value = parse_override(text)
        if key in own:
            mine[key] = value
        elif key in labeling:
            overrides.append(f"labeling.{key}={value}")
        else:
            overrides.append(text)
    return mine, overrides


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deal_ros.engine.device import resolve_device
    from deal_ros.errors import DealError
    from deal_ros.train.config import apply_overrides, from_dict, to_dict
    from deal_ros.train.data import dataset_options, open_dataset
    from deal_ros.train.run import load_run
    from deal_ros.train.stages.pseudo import make_pseudo_labels

    take_flags(args, "settings", {"--no-progress": "no_progress"})
    mine, overrides = split_settings(args.settings, ("run", "data", "out", "device"))
    if "run" not in mine:
        raise DealError("pseudo: give run=runs/<name> (a folder written by 'deal train')")
    run_ = load_run(mine["run"])
    cfg = from_dict(apply_overrides(to_dict(run_.config), overrides), where="pseudo").validate()
    set_threads(cfg)
    device = resolve_device(mine.get("device", "auto"))
    spec = mine.get("data", cfg.data)
    data = open_dataset(spec, cfg, classes=run_.classes)
    if list(data.classes) != run_.classes:
        raise DealError(
            f"pseudo: data classes {list(data.classes)} differ from the run's {run_.classes}"
        )
    out = Path(mine["out"]) if "out" in mine else None
    folder = make_pseudo_labels(
        run_.path, cfg, run_.cam_net(device), data, device, out=out,
        progress=not args.no_progress, data_spec=spec, data_options=dataset_options(cfg),
    )  # fmt: skip
    print(f"deal pseudo: {len(data)} label PNGs -> {folder}")
    return 0
