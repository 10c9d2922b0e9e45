"""3-D outputs cost per frame, relative to the model's inference on the same frame.

One 640x480 RGB-D frame of the built-in scene generator (a mug on a table, RealSense-like
depth noise and holes, 16UC1 millimetres as the camera sends it) and its class mask with the
mask dilated by 6 px so that it leaks onto the table and wall behind, as a CAM mask does.
Measured side by side in one process, interleaved in rounds:

* model:  an untrained mobilenet_v2 CAMNet bundle (``deal_ros.export.export_model``,
          pretrained=None: weights do not change the cost) at 480x640 in ONNX Runtime (CPU by
          default): the runtime's ``session.run``, the whole ``runtime.segment``, and the same
          graph in a session with intra-op spinning off (ORT's threads otherwise spin after a
          run and take the CPU from whatever the node does next: the cloud step);
* cloud:  what ``CloudOutputs.publish`` computes: 16UC1 -> metres, back-projection
          (``stride`` 2, the node's default, and 1), cleaning + summaries
          (:class:`deal_ros.core.cloud_cleaner.CloudCleaner`, numpy, and open3d when it imports),
          and the PointCloud2 encoding.

Each cloud step is timed right after a model run, as in the node. Printed: medians and the
ratios cloud / session.run and cloud / segment (target <= 0.2).

Run: ``.venv/bin/python bench/bench_cloud.py [--quick|--full] [--providers cpu]``
(``--quick``, the default: 8 rounds; ``--full``: 30 rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deal_ros.core.cloud import Intrinsics, backproject  # noqa: E402
from deal_ros.core.cloud_cleaner import CloudCleaner, load_open3d  # noqa: E402
from deal_ros.core.depth import depth_to_metres, metres_to_16uc1  # noqa: E402
from deal_ros.core.pointcloud2 import cloud_to_pointcloud2  # noqa: E402

SIZE = (480, 640)


def make_bundle(root: Path) -> Path:
    """An untrained mobilenet_v2 CAMNet (1 class) exported at 480x640 into ``root``."""
    import torch

    from deal_ros.export import export_model
    from deal_ros.nets import CAMNet

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = CAMNet("mobilenet_v2", num_classes=1, pretrained=None)
    out = root / "bench-cloud"
    export_model(net, ["mug"], out, input_size=SIZE, parity_count=1, tensorrt=False)
    return out


def make_frame():
    """rgb, 16UC1 depth, a leaking class mask and the intrinsics of one scene frame."""
    from PIL import Image, ImageFilter

    from deal_ros.scene.generator import SceneGenerator

    scene = SceneGenerator(classes=("mug",), size=SIZE, seed=0).sample(0)
    mask = np.where(scene.mask == 1, 255, 0).astype(np.uint8)
    grown = np.asarray(Image.fromarray(mask).filter(ImageFilter.MaxFilter(13))) > 0
    raw = metres_to_16uc1(scene.depth, scene.depth > 0)
    h, w = SIZE
    return scene.rgb, raw, grown.astype(np.uint8), Intrinsics.from_matrix(scene.K, w, h)


def cloud_step(cleaner: CloudCleaner, raw, mask, rgb, intr, stride: int) -> Callable[[], int]:
    def run() -> int:
        depth, valid = depth_to_metres(raw, "16UC1")
        cloud = backproject(depth, intr, mask, valid=valid, rgb=rgb, stride=stride)
        result = cleaner(cloud, ["background", "mug"])
        cloud_to_pointcloud2(result.cloud)  # rclpy's PointCloud2, as the node
        return len(cloud)

    return run


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def plain_session(model: Path, threads: int, spinning: bool):
    """An ONNX Runtime CPU session on ``model`` with intra-op spinning on (ORT's default, as
    the runtime uses it) or off."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="8 rounds (default)")
    mode.add_argument("--full", action="store_true", help="30 rounds")
    parser.add_argument("--providers", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    rounds = 30 if args.full else 8

    from deal_ros.infer.runtime import Runtime

    rgb, raw, mask, intr = make_frame()
    tmp = tempfile.TemporaryDirectory()
    started = time.perf_counter()
    bundle = make_bundle(Path(tmp.name))
    runtime = Runtime(bundle, providers=args.providers, threads=args.threads)
    print(f"bundle exported and loaded in {time.perf_counter() - started:.1f} s: "
          f"{runtime.describe()}")  # fmt: skip
    batch = runtime.preprocess(rgb)
    feed = {runtime.bundle.input.name: batch}
    no_spin = plain_session(bundle / "model.onnx", args.threads, spinning=False)
    models: dict[str, Callable[[], object]] = {
        "session.run": lambda: runtime.run(batch),
        "session.run, no spinning": lambda: no_spin.run(None, feed),
    }
    clouds: dict[str, Callable[[], int]] = {}
    sizes = {}
    for backend in ["numpy"] + (["open3d"] if load_open3d()[0] is not None else []):
        cleaner = CloudCleaner(backend=backend, log=lambda line: print(f"  ({line})"))
        for stride in (2, 1):
            clouds[f"cloud {backend} stride {stride}"] = step = cloud_step(
                cleaner, raw, mask, rgb, intr, stride
            )
            sizes[stride] = step()
    segment = lambda: runtime.segment(rgb, cam=True, overlay=True)  # noqa: E731
    for fn in (*models.values(), *clouds.values(), segment):  # warm-up
        fn()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):  # every cloud step right after a model run, as in the node
        times.setdefault(("segment", ""), []).append(timed(segment))
        for model, run in models.items():
            for name, cloud in clouds.items():
                times.setdefault((model, ""), []).append(timed(run))
                times.setdefault((model, name), []).append(timed(cloud))
    tmp.cleanup()
    med = {key: statistics.median(v) * 1000 for key, v in times.items()}
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {load} (others' work slows both "
          "sides; the ratio is what to compare)")  # fmt: skip
    print(f"640x480 frame, mask {int(mask.sum())} px (mug dilated 6 px), "
          f"{sizes[2]} / {sizes[1]} points at stride 2 / 1; {rounds} rounds, medians:")  # fmt: skip
    seg = med["segment", ""]
    print(f"  segment (pre + run + post)      {seg:7.1f} ms")
    for model in models:
        run = med[model, ""]
        print(f"\n  after {model} ({run:.1f} ms):")
        print(f"    {'':26s} {'ms':>7s} {'/ session.run':>14s} {'/ segment':>10s}")
        for name in clouds:
            ms = med[model, name]
            print(f"    {name:26s} {ms:7.1f} {ms / run:14.3f} {ms / seg:10.3f}")
    key = ("session.run", "cloud numpy stride 2")
    ratio = med[key] / med["session.run", ""]
    verdict = "meets" if ratio <= 0.2 else "MISSES"
    print(f"\nnode as shipped (spinning runtime, numpy, stride 2): cloud / session.run = "
          f"{ratio:.3f} ({verdict} the <= 0.2 target)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
