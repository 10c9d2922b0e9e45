"""The ``deal`` command.

Each subcommand lives in its own module ``deal_ros.commands.<name>`` exposing
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
subcommand runs, so ``deal --help`` stays fast and never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from deal_ros import __version__
from deal_ros.errors import DealError

# name -> (one-line help, module). A module that does not exist yet means the capability
# has not landed: the subcommand exits 2 with one line saying so.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "episodes": ("list, inspect, repair and export onboarding episodes", "episodes"),
    "train": ("train a CAM net with DEAL (or a stage-2 segmenter) from a config", "train"),
    "pseudo": ("make pseudo labels from a trained CAM run (CAM -> threshold -> CRF)", "pseudo"),
    "export": ("export a run to a model bundle (ONNX, optional TensorRT engine)", "export"),
    "eval": ("evaluate a run or bundle: mIoU, per-class IoU, multiclass-only mIoU", "eval"),
    "infer": ("run a bundle offline on a bag, an episode or an image folder", "infer"),
    "bench": ("benchmarks that print ratios measured side by side", "bench"),
    "demo": ("the whole loop on the embedded default scene (no camera, no GPU)", "demo"),
}

EPILOG = """\
examples:
  deal episodes list ./episodes
  deal train --config onboarding data=./episodes
  deal pseudo run=runs/mug-001
  deal export run=runs/mug-001 out=models/mug
  deal infer model=models/mug input=./episodes/<id> out=./overlays

Run 'deal <command> --help' for the options of one command.
"""


def _load(module: str):
    try:
        return importlib.import_module(f"deal_ros.commands.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"deal_ros.commands.{module}":
            return None
        raise


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the module of the command named in ``argv`` is imported."""
    parser = argparse.ArgumentParser(
        prog="deal",
        description="deal_ros: weakly supervised segmentation with the Depth Edge Alignment Loss.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"deal_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (help_text, module) in SUBCOMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(_module=module)
        mod = _load(module) if name in argv[:1] else None
        if mod is not None:
            mod.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SUBCOMMANDS and _load(SUBCOMMANDS[argv[0]][1]) is None:
        print(f"deal {argv[0]}: not available in this release yet", file=sys.stderr)
        return 2
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    mod = _load(args._module)
    try:
        return int(mod.run(args) or 0)
    except DealError as exc:
        print(f"deal {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deal {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
