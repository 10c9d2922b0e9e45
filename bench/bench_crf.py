"""Dense CRF: torch mean-field fallback vs pydensecrf2, side by side in one run.

Same synthetic 320x240 scene (3 classes, noisy coarse probabilities), same parameters
(AffinityNet/SEAM defaults, 10 iterations). Prints median wall times, the torch/pydensecrf
time ratio (torch on 1 thread like pydensecrf; with --full also on torch's default thread
count), the argmax agreement between the backends and each one's mIoU against the synthetic
ground truth.

    .venv/bin/python bench/bench_crf.py            # --quick (default): 320x240, 3 repeats
    .venv/bin/python bench/bench_crf.py --full     # 7 repeats, + 640x480, + default threads
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from deal_ros.refine import dense_crf, pydensecrf_available
from deal_ros.refine.synthetic import synthetic_crf_case


def _miou(pred: np.ndarray, gt: np.ndarray, k: int = 3) -> float:
    return float(np.mean([((pred == c) & (gt == c)).sum() / ((pred == c) | (gt == c)).sum()
                          for c in range(k)]))  # fmt: skip


def _timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _torch_runner(case, threads: int) -> Callable[[], np.ndarray]:
    def run() -> np.ndarray:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return dense_crf(case.image, case.probs, backend="torch")
        finally:
            torch.set_num_threads(before)

    return run


def bench_size(h: int, w: int, repeats: int, all_threads: bool) -> None:
    case = synthetic_crf_case(h, w, seed=0)
    runners: dict[str, Callable[[], np.ndarray]] = {"torch-1thread": _torch_runner(case, 1)}
    if all_threads:  # many small ops: threads help little and stall when cores are shared
        default_threads = torch.get_num_threads()
        runners[f"torch-{default_threads}threads"] = _torch_runner(case, default_threads)
    if pydensecrf_available():
        runners["pydensecrf"] = lambda: dense_crf(case.image, case.probs, backend="pydensecrf")
    for run in runners.values():  # warm-up (torch import, allocator)
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):  # interleaved, so load changes hit every backend alike
        for name, run in runners.items():
            dt, outputs[name] = _timed(run)
            times[name].append(dt)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    raw = _miou(case.probs.argmax(0), case.gt)
    print(f"\n{w}x{h}, 3 labels, 10 iterations, median of {repeats} (interleaved)")
    print(f"  unrefined argmax mIoU vs gt: {raw:.3f}")
    for name in runners:
        print(f"  {name:<18} {1000 * med[name]:8.1f} ms   "
              f"mIoU {_miou(outputs[name].argmax(0), case.gt):.3f}")  # fmt: skip
    if "pydensecrf" not in runners:
        print("  pydensecrf not installed (pip install pydensecrf2): no ratio, no agreement")
        return
    ref = outputs["pydensecrf"]
    for name in runners:
        if name == "pydensecrf":
            continue
        agree = float((outputs[name].argmax(0) == ref.argmax(0)).mean())
        mad = float(np.abs(outputs[name] - ref).mean())
        print(f"  ratio {name}/pydensecrf: {med[name] / med['pydensecrf']:.2f}x   "
              f"argmax agreement {100 * agree:.2f}%   mean |dQ| {mad:.4f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="320x240, torch on 1 thread (default)")
    mode.add_argument("--full", action="store_true", help="also 640x480 and torch default threads")
    args = parser.parse_args(argv)
    bench_size(240, 320, repeats=7 if args.full else 3, all_threads=args.full)
    if args.full:
        bench_size(480, 640, repeats=5, all_threads=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
