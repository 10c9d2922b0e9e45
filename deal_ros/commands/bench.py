"""``deal bench train [seeds=0,1,2] [preset=scene] [key=value ...]`` (DEAL on vs off), and
``deal bench <name> [args]`` = ``python bench/bench_<name>.py [args]`` from a source checkout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  deal bench                                  # list the benchmarks
  deal bench train                            # DEAL vs baseline, scene preset, seeds 0,1,2
  deal bench train seeds=0,1 crf=false        # (each run ~10 CPU-minutes; seconds on a GPU)
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


def bench_train(rest: list[str]) -> int:
    from deal_ros.commands.pseudo import split_settings
    from deal_ros.train.compare import compare_deal, format_summary

    mine, overrides = split_settings(rest, ("seeds", "preset", "crf", "limit", "out"))
    # labeling keys are config overrides here too: split_settings prefixed them
    seeds = [int(s) for s in mine.get("seeds", "0,1,2").split(",") if s.strip()]
    result = compare_deal(
        seeds=seeds,
        preset=mine.get("preset", "scene"),
        overrides=overrides,
        out=mine.get("out"),
        crf=mine.get("crf", "true").lower() != "false",
        limit=int(mine["limit"]) if mine.get("limit") else None,
    )
    print(format_summary(result))
    return 0
