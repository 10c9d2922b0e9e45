"""Dataset adapters on an episode: random access per frame, as ratios measured in one run.

An episode of 640x480 rgb8 + 16UC1 frames is written with the recorder's EpisodeWriter into a
temporary folder, then, interleaved round by round:

- ``access``: one random frame through :class:`BagAccess` (one rosbags reader kept open);
- ``window``: the same frame through ``Episode.frames(start_ns, stop_ns)`` (the streaming
  reader opens the bag for each call) -- why the adapters keep a reader open;
- ``dataset``: ``EpisodesDataset[i]`` (access + Sample);
- ``torch``: ``TorchSampleDataset[i]`` at 240x320 (access + resize + tensors);

and once: building the dataset (the index pass) per frame against one plain sequential pass
of ``Episode.frames()``.

Run: ``.venv/bin/python bench/bench_datasets.py [--quick|--full]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

from deal_ros.data.registry import build_dataset
from deal_ros.data.torch_dataset import TorchSampleDataset
from deal_ros.episodes.meta import EpisodeMeta
from deal_ros.episodes.store import Episode
from deal_ros.episodes.writer import EpisodeWriter

H, W = 480, 640
T0 = 1_700_000_000_000_000_000


def _image(ts, stamp: int, arr: np.ndarray, encoding: str):
    T = ts.types
    sec, nsec = divmod(stamp, 1_000_000_000)
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="camera"
    )
    data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    return T["sensor_msgs/msg/Image"](
        header=header,
        height=arr.shape[0],
        width=arr.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=data.size // arr.shape[0],
        data=data,
    )


def write_episode(root: Path, frames: int) -> Path:
    ts = get_typestore(Stores.ROS2_JAZZY)
    rng = np.random.default_rng(0)
    writer = EpisodeWriter(root / "bench-1", EpisodeMeta("bench-1", ["mug"])).open()
    for i in range(frames):
        stamp = T0 + i * 33_333_333
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        mm = rng.integers(300, 3000, (H, W), dtype=np.uint16)
        mm[:20] = 0
        writer.write_pair(
            stamp,
            bytes(ts.serialize_cdr(_image(ts, stamp, rgb, "rgb8"), "sensor_msgs/msg/Image")),
            bytes(ts.serialize_cdr(_image(ts, stamp, mm, "16UC1"), "sensor_msgs/msg/Image")),
        )
    writer.close()
    return root / "bench-1"


def timed_interleaved(fns: list[Callable[[int], object]], picks: list[int], repeat: int):
    """Best mean seconds per call of each function over ``repeat`` rounds; every round runs
    all functions on the same random frames, in turn."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            for i in picks:
                fn(i)
            best[k] = min(best[k], (time.perf_counter() - start) / len(picks))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 frames (default)")
    parser.add_argument("--full", action="store_true", help="300 frames")
    args = parser.parse_args()
    frames = 300 if args.full else 40
    tmp = Path(tempfile.mkdtemp(prefix="deal-bench-"))
    try:
        path = write_episode(tmp, frames)
        ep = Episode(path)
        start = time.perf_counter()
        n = sum(1 for _ in ep.frames())
        sequential = (time.perf_counter() - start) / n
        start = time.perf_counter()
        ds = build_dataset(str(path))
        build = (time.perf_counter() - start) / len(ds)
        tds = TorchSampleDataset(ds, size=(240, 320))
        refs = [r for _, r in ds.refs]
        access = ds.access[0]

        def window(i: int) -> object:
            t = refs[i].log_time_ns
            return next(iter(ep.frames(start_ns=t, stop_ns=t + 1)))

        picks = list(np.random.default_rng(1).integers(0, len(ds), 8 if args.full else 5))
        t_access, t_window, t_ds, t_torch = timed_interleaved(
            [lambda i: access.read(refs[i]), window, ds.__getitem__, tds.__getitem__],
            picks,
            repeat=3,
        )
        print(f"episode: {len(ds)} frames {W}x{H} rgb8 + 16UC1 (MCAP)")
        print(f"random frame, reader kept open : {t_access * 1e3:7.2f} ms   (1.00)")
        print(
            f"random frame, window read      : {t_window * 1e3:7.2f} ms   "
            f"({t_window / t_access:.1f}x the open reader)"
        )
        print(f"EpisodesDataset[i]             : {t_ds * 1e3:7.2f} ms   ({t_ds / t_access:.2f}x)")
        print(
            f"TorchSampleDataset[i] 240x320  : {t_torch * 1e3:7.2f} ms   "
            f"({t_torch / t_access:.2f}x)"
        )
        print(
            f"building the dataset, per frame: {build * 1e3:7.2f} ms   "
            f"({build / sequential:.2f}x one sequential Episode.frames() pass, "
            f"{sequential * 1e3:.2f} ms/frame)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
