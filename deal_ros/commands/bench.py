"""``deal bench train [seeds=0,1,2] [preset=scene] [mode=multi] [eval_split=val] [key=value ...]``
(DEAL on vs off, ``deal_ros.train.compare``), and ``deal bench <name> [args]`` =
``python bench/bench_<name>.py [args]`` from a source checkout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  deal bench                                  # list the benchmarks
  deal bench train                            # DEAL vs baseline, scene preset, seeds 0,1,2
  deal bench train seeds=0,1 crf=false        # (each run ~10 CPU-minutes; seconds on a GPU)
  deal bench train mode=multi                 # the hard multi-object benchmark, held-out scenes
  deal bench train data=voc:DIR data_options.split=train data_options.depth=DIR/depth \
      data_options.vocabulary=[a,b,c,d] data_options.labels_from=masks eval_split=val
  deal bench train --help                     # the keys of the DEAL comparison
  deal bench throughput --quick               # bench/bench_train.py: trainer vs bare loop
  deal bench codec                            # bench/bench_codec.py
"""
ALIASES = {"throughput": "train"}  # 'deal bench throughput' runs bench/bench_train.py


def bench_dir() -> Path:
    import deal_ros

    return Path(deal_ros.__file__).resolve().parents[1] / "bench"


def scripts() -> dict[str, Path]:
    folder = bench_dir()
    if not folder.is_dir():
        return {}
    found = {p.stem[len("bench_") :]: p for p in sorted(folder.glob("bench_*.py"))}
    for alias, name in ALIASES.items():
        if name in found:
            found[alias] = found[name]
    found.pop("train", None)  # 'train' is the built-in DEAL comparison
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("name", nargs="?", help="train, or a script of bench/ (see the list)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="key=value (train) or script args")


def run(args: argparse.Namespace) -> int:
    from deal_ros.errors import DealError

    if args.name is None:
        print("benchmarks: train (DEAL vs baseline), " + ", ".join(scripts()))
        return 0
    if args.name == "train":
        return bench_train(args.rest)
    found = scripts()
    if args.name not in found:
        known = ", ".join(["train", *found]) if found else "train (no bench/ folder here)"
        raise DealError(f"bench '{args.name}': unknown (known: {known})")
    import subprocess

    return subprocess.call([sys.executable, str(found[args.name]), *args.rest])


TRAIN_HELP = """\
usage: deal bench train [key=value ...]

DEAL vs the same recipe without it (deal.weight=0): for every seed both arms train with the
same preset, seed and schedule; the CAMs are scored against the ground-truth masks (CAM mIoU
at the best threshold, at the preset's labeling.bg_threshold, and the pseudo labels: CAM ->
threshold -> dense CRF). Prints each seed, then mean, std and the paired DEAL - baseline
difference per seed.

keys of the comparison:
  seeds=0,1,2        seeds (each trains both arms)
  preset=scene       the training preset (a name or a YAML path)
  mode=multi         the hard multi-object benchmark: 160 training scenes of scene:mode=multi
                     at 240x320, scored on 60 held-out scenes of another generator seed
  eval_split=NAME    score on the training data with data_options.split=NAME (e.g. val of a
                     voc: folder) instead of the training images
  crf=true|false     refine the pseudo labels with the dense CRF (default true)
  limit=N            score the first N images only
  out=DIR            keep the runs there (default: a temporary folder)
any other key=value is a config override of both arms (data=..., train.max_steps=..., ...);
bare labeling keys (bg_threshold=0.4, scales=...) become labeling.* overrides.
"""


def bench_train(rest: list[str]) -> int:
    from deal_ros.commands.pseudo import split_settings
    from deal_ros.errors import DealError
    from deal_ros.train.compare import MULTI, compare_deal, format_summary, held_out

    if any(r in ("-h", "--help", "help") for r in rest):
        print(TRAIN_HELP, end="")
        return 0
    own = ("seeds", "preset", "crf", "limit", "out", "mode", "eval_split")
    mine, overrides = split_settings(rest, own)
    # labeling keys are config overrides here too: split_settings prefixed them
    seeds = [int(s) for s in mine.get("seeds", "0,1,2").split(",") if s.strip()]
    preset = mine.get("preset", "scene")
    evaluate = None
    if mine.get("mode"):
        if mine["mode"] != "multi":
            raise DealError(f"bench train: mode={mine['mode']!r}: the only mode is multi")
        overrides = [f"data={MULTI['train']}", *overrides]
        evaluate = (MULTI["eval"], {})
    if mine.get("eval_split"):
        evaluate = held_out(preset, overrides, mine["eval_split"])
    result = compare_deal(
        seeds=seeds,
        preset=preset,
        overrides=overrides,
        out=mine.get("out"),
        crf=mine.get("crf", "true").lower() != "false",
        limit=int(mine["limit"]) if mine.get("limit") else None,
        evaluate=evaluate,
    )
    print(format_summary(result))
    return 0
