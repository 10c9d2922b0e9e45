"""Approximate-time pairing throughput on synthetic 30 Hz stamps with jitter and losses.

For 2 and 3 streams: ``ApproxTimePairer`` pairs/s and its cost per push as a ratio to the
floor of any pure-Python streaming pairer run on the same pushes in the same run: one
``deque.append`` per message plus one ``popleft`` per stream per set.

Run: ``.venv/bin/python bench/bench_pairing.py [--quick|--full] [--frames N]``.
"""

from __future__ import annotations

import argparse
import time
from collections import deque

import numpy as np

from deal_ros.core.pairing import ApproxTimePairer

PERIOD_NS = 33_333_333
JITTER_NS = 2_000_000
SLOP_NS = 15_000_000


def synthetic_pushes(streams: tuple[str, ...], frames: int, seed: int = 0) -> list[tuple]:
    """Every stream sees every frame stamp plus Gaussian jitter; 3% of non-first-stream
    messages are lost (like colour frames missing from RealSense framesets); arrival order
    within a frame is shuffled."""
    rng = np.random.default_rng(seed)
    pushes = []
    for i in range(frames):
        t = 1_700_000_000 * 10**9 + i * PERIOD_NS
        frame = [
            (name, t + int(rng.normal(0, JITTER_NS)), i)
            for k, name in enumerate(streams)
            if k == 0 or rng.random() > 0.03
        ]
        rng.shuffle(frame)
        pushes += frame
    return pushes


def floor_run(streams: tuple[str, ...], pushes: list[tuple]) -> int:
    """Cheapest conceivable streaming loop: queue each message, pop a set when all have one."""
    queues = {name: deque() for name in streams}
    sets = 0
    for stream, stamp, item in pushes:
        queues[stream].append((stamp, item))
        if all(queues.values()):
            for q in queues.values():
                q.popleft()
            sets += 1
    return sets


def pairer_run(streams: tuple[str, ...], pushes: list[tuple]) -> int:
    pairer = ApproxTimePairer(streams, slop_ns=SLOP_NS, queue_size=30)
    sets = 0
    for stream, stamp, item in pushes:
        sets += len(pairer.push(stream, stamp, item))
    return sets + len(pairer.flush())


def best_time(fn, *args, repeat: int) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true", help="1 round")
    speed.add_argument("--full", action="store_true", help="15 rounds")
    parser.add_argument("--frames", type=int, default=10_000, help="frames per stream")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else 15 if args.full else 5
    print(f"{args.frames} frames, 30 Hz, jitter sd {JITTER_NS / 1e6:.0f} ms, slop 15 ms")
    print(f"{'streams':<8} {'pushes':>7} {'sets':>6} {'pairs/s':>10} {'us/push':>8} {'x floor':>8}")
    per_push = {}
    for streams in (("rgb", "depth"), ("rgb", "depth", "ir")):
        pushes = synthetic_pushes(streams, args.frames)
        floor_s, _ = best_time(floor_run, streams, pushes, repeat=repeat)
        seconds, sets = best_time(pairer_run, streams, pushes, repeat=repeat)
        per_push[len(streams)] = seconds / len(pushes)
        print(
            f"{len(streams):<8} {len(pushes):>7} {sets:>6} {sets / seconds:>10.0f} "
            f"{seconds / len(pushes) * 1e6:>8.2f} {seconds / floor_s:>8.2f}"
        )
    print(f"cost per push, 3 streams / 2 streams: {per_push[3] / per_push[2]:.2f}")


if __name__ == "__main__":
    main()
