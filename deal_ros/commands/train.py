"""``deal train --config PRESET|FILE [key=value ...]``: train a stage (cam or seg)."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  deal train --config onboarding data=./episodes              # CAM + DEAL on episodes
  deal train --config onboarding data=./episodes deal.weight=0   # the baseline
  deal train --config onboarding data=bag:./my_bag rgb_topic=/cam/color \\
      depth_topic=/cam/depth labels=labels.yaml
  deal train --config seg pseudo=runs/mug-001/pseudo loss=lovasz
  deal train --config scene train.max_steps=200                # the generated benchmark
  deal train --config box data=coco:./train.json depth=./depth    # boxes -> instance masks
  deal train --config box data=./episodes_with_boxes val=coco:./val.json
  deal train resume=runs/mug-001                               # continue an interrupted run
  deal train resume=true                        # the newest cam run (a box run when newer)
  torchrun --nproc-per-node 4 -m deal_ros.cli train --config onboarding data=./episodes

presets: onboarding, seg, scene, demo, box (deal_ros/train/configs/), or a YAML path;
'stage: box' configs and resumed box runs go to box-supervised instance training
(deal_ros.instance).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument(
        "--config",
        "-c",
        metavar="PRESET|FILE",
        default=None,
        help="a preset name or a YAML file (default: built-in defaults)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, dotted keys (optim.lr=0.003)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import yaml

    from deal_ros.commands.pseudo import take_flags

    flags = {"--no-progress": "no_progress", "--print-config": "print_config"}
    take_flags(args, "overrides", flags, {"--config": "config", "-c": "config"})
    from deal_ros.commands._methods import BOX, train_method

    if train_method(args.config, args.overrides) == BOX:  # box-supervised instances
        from deal_ros.instance.cli import train_command

        return train_command(args.config, args.overrides, progress=not args.no_progress,
                             print_config=args.print_config)  # fmt: skip

    from deal_ros.train.config import to_dict
    from deal_ros.train.resolve import resume_config

    cfg = resume_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None), end="")
        return 0
    from deal_ros.train.pipeline import train

    run_dir, result = train(cfg, progress=not args.no_progress)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        state = "done" if result.completed else "stopped (resume with resume=true)"
        print(f"deal train: {cfg.stage} {state} at step {result.steps}/{result.total_steps}, "
              f"{result.images_per_s:.1f} images/s -> {run_dir}")  # fmt: skip
    return 0
