"""``deal demo [--out demo-out] [--quick] [--classes mug,box,ball] [--frames N] [--steps N]
[--keep]``: the whole loop on the embedded default scene (no camera, no GPU, no download)."""

from __future__ import annotations

import argparse

EPILOG = """\
what it does (each phase prints a line with its time; logs in <out>/logs/):
  1 record   a scene-generator camera node (RealSense topic names) and deal-recorder run as
             processes on a private ROS domain; one onboarding episode per class is recorded
             through /deal_recorder/start_episode and stop_episode
  2 train    deal train --config demo on those episodes (CAM net + DEAL, CPU)
  3 pseudo   deal pseudo (CAM -> threshold -> CRF)
  4 eval     deal eval on held-out generated scenes
  5 export   deal export -> <out>/model (ONNX bundle)
  6 segment  deal-segmenter on a replay of the episodes; ~/overlay, ~/cam, ~/mask collected,
             stamps checked against the inputs
  7 report   <out>/report.md and metrics.json (mIoU against the generator's ground truth,
             frames recorded/dropped, node latency), PNGs of the outputs

examples:
  deal demo                       # under 8 minutes on 2 CPU cores
  deal demo --quick --out /tmp/d  # the reduced CI form, 1-2 minutes
  deal demo --classes mug,can,bottle --frames 100 --steps 200 --keep
"""


def _classes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--out", default="demo-out", help="output folder [default: demo-out]")
    parser.add_argument(
        "--quick", action="store_true", help="the reduced form for CI: small images, few steps"
    )
    parser.add_argument(
        "--classes",
        type=_classes,
        default=None,
        help="objects to onboard, comma separated (mug, box, ball, can, bottle) "
        "[default: mug,box,ball]",
    )
    parser.add_argument(
        "--frames",
        type=_positive,
        default=None,
        help="frames recorded per class [default: 64, quick 24]",
    )
    parser.add_argument(
        "--steps", type=_positive, default=None, help="training steps [default: 90, quick 12]"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep <out>/work (episodes, run folder, ground truth) after the demo",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deal_ros.demo.pipeline import run_demo
    from deal_ros.demo.settings import DemoSettings

    settings = DemoSettings.preset(
        args.quick,
        out=Path(args.out),
        classes=args.classes,
        frames=args.frames,
        steps=args.steps,
        keep=args.keep or None,
    )
    run_demo(settings)
    return 0
