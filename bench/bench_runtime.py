"""ONNX Runtime vs torch eager on the same model, and the runtime's pre/post-processing cost.

One mobilenet_v2 CAMNet (untrained; the cost does not depend on the weights) is exported to a
bundle; then, side by side, one call of each in turn, on the same preprocessed input:

* torch eager: ``DeployModule(net)(x)`` under ``torch.no_grad()`` (what the bundle holds);
* ONNX Runtime: ``session.run`` of the bundle (``--providers``, CPU by default);
* the whole ``Runtime.segment`` on a 640x480 rgb8 image (resize + normalise, run, CAM -> mask,
  heat map, overlay at 640x480).

Printed: torch / ORT (> 1: ORT is faster) and segment / run per model input size, medians.
Both libraries get the same thread count (``--threads``; default: torch's default).

Run: ``.venv/bin/python bench/bench_runtime.py [--quick|--full] [--providers cpu]``
(``--quick``, the default: 240x320 input; ``--full``: also 480x640, more repeats).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from deal_ros.export import DeployModule, export_model
from deal_ros.infer import Runtime
from deal_ros.nets import CAMNet
from deal_ros.scene.generator import SceneGenerator

IMAGE = (480, 640)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_size(
    net: CAMNet, size: tuple[int, int], root: Path, args: argparse.Namespace
) -> dict[str, float]:
    bundle = root / f"{size[0]}x{size[1]}"
    export_model(net, ["object"], bundle, input_size=size, parity_count=1, tensorrt=False)
    rt = Runtime(bundle, providers=args.providers, threads=args.threads, fp16=args.fp16)
    module = DeployModule(net).eval()
    rgb = SceneGenerator(classes=("mug",), size=IMAGE, seed=0).sample(0).rgb
    x = rt.preprocess(rgb)
    xt = torch.from_numpy(x)

    def eager() -> None:
        with torch.no_grad():
            module(xt)

    for _ in range(2):  # warm-up
        eager()
        rt.run(x)
        rt.segment(rgb)
    t_torch, t_ort, t_seg = [], [], []
    for _ in range(args.repeat):  # one call of each in turn: load drift hits all alike
        t_torch += timed(eager, 1)
        t_ort += timed(lambda: rt.run(x), 1)
        t_seg += timed(lambda: rt.segment(rgb), 1)
    return {
        "provider": rt.provider,
        "torch": statistics.median(t_torch) * 1000,
        "ort": statistics.median(t_ort) * 1000,
        "segment": statistics.median(t_seg) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="240x320 input (default)")
    mode.add_argument("--full", action="store_true", help="240x320 and 480x640, more repeats")
    parser.add_argument("--providers", default="cpu", help="cpu | cuda | tensorrt | auto")
    parser.add_argument("--fp16", action="store_true", help="TensorRT fp16")
    parser.add_argument("--threads", type=int, default=0, help="threads for both (0: torch's)")
    parser.add_argument("--repeat", type=int, default=0, help="timed calls per variant")
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (30 if args.full else 12)
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    sizes = [(240, 320), (480, 640)] if args.full else [(240, 320)]
    torch.manual_seed(0)
    net = CAMNet("mobilenet_v2", num_classes=1, pretrained=None).eval()
    print(f"mobilenet_v2 CAMNet, {args.threads} threads, image {IMAGE[1]}x{IMAGE[0]}, medians")
    print(f"{'input':>8} {'provider':>22} {'torch':>9} {'ORT run':>9} {'torch/ORT':>9} "
          f"{'segment':>9} {'segment/run':>11}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="deal-bench-") as tmp:
        for size in sizes:
            r = bench_size(net, size, Path(tmp), args)
            print(f"{size[0]:>4}x{size[1]:<3} {r['provider']:>22} {r['torch']:7.1f}ms "
                  f"{r['ort']:7.1f}ms {r['torch'] / r['ort']:9.2f} {r['segment']:7.1f}ms "
                  f"{r['segment'] / r['ort']:11.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
