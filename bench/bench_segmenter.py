"""Segmenter node overhead: message arrival -> last publish, over the bare ``session.run``.

The same model (a mobilenet_v2 CAMNet bundle, untrained: weights do not change the cost), the
same 640x480 rgb8 image, measured side by side in one process, one of each in turn:

* bare:  ``runtime.run(x)`` on the node's own ONNX Runtime session (x preprocessed once);
* node:  a real rclpy ``deal_segmenter`` with a subscriber on every output (so all are
         computed); one frame at a time (no queueing), the node's own arrival -> published time.

Printed: the ratio node / bare (target <= 1.10) and where the rest goes (pre-, post-processing,
hand-off to the worker thread, encoding + publishing 4 messages), and frames/s of both.
``--instance``: the same for an instance bundle (an untrained mobilenet_v2 CondInst, box preset
sizes, exported with score threshold 0 and 10 detections per image, so every frame carries 10
instances through NMS, mask upsampling, overlay and ``~/instances``). An untrained model's
masks are mostly empty or whole-image, so a second line times the mask step alone on 10
object-sized masks (blobs of ~4 % of the image): resizing only near above-threshold cells
(``threshold_on_image``) over the whole resize + threshold.
``--providers cuda`` / ``--providers tensorrt --fp16`` do the same on a GPU.

``--transport``: frames the ``deal-segmenter`` executable processes of a 30 Hz 848x480 rgb8 +
16UC1 stream from a camera-driver process (test/ros_image_publisher.py, reliable, depth 10) that
has no Fast DDS profile, as a user's driver would: the segmenter started with no profile
variable (so it sets the shipped one itself: the real path) versus with a profile file holding
Fast DDS's defaults (what it did before). A tiny 64x96 model, so the transport, not the
inference, limits what is processed. Runs alternate; ``--repeats`` each.

Run: ``.venv/bin/python bench/bench_segmenter.py [--quick|--full] [--providers cpu]``
(``--quick``, the default: model input 480x640; ``--full``: also 240x320, more frames).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm.xml"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from deal_ros.core.image_codec import numpy_to_image  # noqa: E402
from deal_ros.msg import InstanceArray, Segmentation  # noqa: E402
from deal_ros.nodes.segmenter import SegmenterNode  # noqa: E402

IMAGE = (480, 640)
SEMANTIC = {"mask": Image, "cam": Image, "overlay": Image, "segmentation": Segmentation}
INSTANCE = {"mask": Image, "overlay": Image, "segmentation": Segmentation,
            "instances": InstanceArray}  # fmt: skip
INSTANCES_PER_FRAME = 10


def make_bundle(root: Path, size: tuple[int, int]) -> Path:
    """Export an untrained mobilenet_v2 CAMNet (1 class) at ``size`` into ``root``."""
    import torch

    from deal_ros.export import export_model
    from deal_ros.nets import CAMNet

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = CAMNet("mobilenet_v2", num_classes=1, pretrained=None)
    out = root / f"bench-{size[0]}x{size[1]}"
    export_model(net, ["object"], out, input_size=size, parity_count=1, tensorrt=False)
    return out


def make_instance_bundle(root: Path, size: tuple[int, int]) -> Path:
    """Export an untrained mobilenet_v2 CondInst (1 class) at ``size``: every frame gives
    ``INSTANCES_PER_FRAME`` instances (score threshold 0)."""
    import torch

    from deal_ros.export.instance_bundle import export_instance_model
    from deal_ros.instance.condinst import CondInst
    from deal_ros.instance.config import BoxModelConfig

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = CondInst(1, BoxModelConfig(pretrained=None)).eval()
    out = root / f"bench-instance-{size[0]}x{size[1]}"
    export_instance_model(model, ["object"], out, input_size=size, fit="pad", parity_count=1,
                          score_threshold=0.0, max_detections=INSTANCES_PER_FRAME,
                          tensorrt=False)  # fmt: skip
    return out


def test_image() -> np.ndarray:
    from deal_ros.scene.generator import SceneGenerator

    return SceneGenerator(classes=("mug",), size=IMAGE, seed=0).sample(0).rgb


class Bench:
    def __init__(self, model: Path, providers: str, fp16: bool, threads: int) -> None:
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        params = [Parameter("model", value=str(model)), Parameter("providers", value=providers),
                  Parameter("fp16", value=fp16), Parameter("threads", value=threads),
                  Parameter("stats_period", value=0.0)]  # fmt: skip
        self.node = SegmenterNode(context=self.context, parameter_overrides=params)
        if self.node.runtime is None:
            raise SystemExit(f"model did not load: {self.node.model_error}")
        self.client = rclpy.create_node("bench_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.outputs = INSTANCE if self.node.runtime.bundle.is_instance else SEMANTIC
        self.seen: dict[str, int] = dict.fromkeys(self.outputs, -1)
        for name, kind in self.outputs.items():
            self.client.create_subscription(
                kind, f"/deal_segmenter/{name}",
                lambda m, n=name: self.seen.__setitem__(n, m.header.stamp.sec), qos,
            )  # fmt: skip
        self.pub = self.client.create_publisher(Image, self.node.topics["image"], qos)
        self.stamp = 0

    def wait(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.25)
        return predicate()

    def ready(self) -> None:
        ok = self.wait(lambda: all(
            self.node.pubs[n].get_subscription_count() > 0 for n in self.outputs
        ) and self.pub.get_subscription_count() > 0)  # fmt: skip
        if not ok:
            raise SystemExit("discovery did not complete")

    def node_frame(self, rgb: np.ndarray) -> float:
        """One frame through the node; its arrival -> published seconds."""
        self.stamp += 1
        msg = numpy_to_image(rgb, "rgb8")
        msg.header.stamp.sec = self.stamp
        before = self.node.stats.processed
        self.pub.publish(msg)
        if not self.wait(lambda: all(v == self.stamp for v in self.seen.values())):
            raise SystemExit(f"frame {self.stamp} lost: {self.node.stats_snapshot()}")
        self.wait(lambda: self.node.stats.processed > before)
        return self.node.stats.latency[-1]

    def timings(self, rgb: np.ndarray) -> dict[str, float]:
        """The runtime's own pre-/post-processing times for ``rgb`` (outside the node)."""
        rt = self.node.runtime
        if rt.bundle.is_instance:
            return rt.detect(rgb).timings
        return rt.segment(rgb, cam=True, overlay=True).timings

    def bare_run(self, x: np.ndarray) -> float:
        t0 = time.perf_counter()
        self.node.runtime.run(x)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.client.destroy_node()
        rclpy.shutdown(context=self.context)


def measure(bench: Bench, rgb: np.ndarray, frames: int) -> dict[str, float]:
    rt = bench.node.runtime
    x = rt.preprocess(rgb)
    for _ in range(3):  # warm-up: ORT allocations, first publishes, discovery of readers
        bench.node_frame(rgb)
        bench.bare_run(x)
    node, bare, wait, pre, post, inner = [], [], [], [], [], []
    for _ in range(frames):  # one of each in turn: load drift hits both alike
        bare.append(bench.bare_run(x))
        node.append(bench.node_frame(rgb))
        wait.append(bench.node.stats.wait[-1])
        inner.append(bench.node.stats.run[-1])
        timings = bench.timings(rgb)
        pre.append(timings["preprocess"])
        post.append(timings["postprocess"])
    med = {k: statistics.median(v) * 1000 for k, v in
           (("node", node), ("bare", bare), ("wait", wait), ("pre", pre), ("post", post),
            ("inner", inner))}  # fmt: skip
    med["publish"] = med["node"] - med["wait"] - med["pre"] - med["inner"] - med["post"]
    return med


def mask_step_ratio(image: tuple[int, int] = IMAGE, repeats: int = 20) -> tuple[float, float]:
    """Median ms of thresholding 10 blob masks on the image: (windowed, whole resize)."""
    from deal_ros.core.placement import placement
    from deal_ros.infer.postprocess import threshold_on_image, unplace, upsample

    rng = np.random.default_rng(0)
    grid = (image[0] // 4, image[1] // 4)
    yy, xx = np.mgrid[: grid[0], : grid[1]]
    planes = []
    for _ in range(10):  # an object of ~4 % of the image: a soft elliptic blob
        cy, cx = rng.uniform(0.2, 0.8) * grid[0], rng.uniform(0.2, 0.8) * grid[1]
        d = ((yy - cy) / (0.11 * grid[0])) ** 2 + ((xx - cx) / (0.11 * grid[1])) ** 2
        planes.append((1 / (1 + np.exp(4 * (d - 1)))).astype(np.float32))
    where = placement(image, image, "pad")
    timings: dict[str, list[float]] = {"window": [], "whole": []}
    for _ in range(repeats):  # one of each in turn
        t0 = time.perf_counter()
        for p in planes:
            threshold_on_image(p, image, where, 0.5)
        t1 = time.perf_counter()
        for p in planes:
            _ = unplace(upsample(p, image), where) > np.float32(0.5)
        t2 = time.perf_counter()
        timings["window"].append(t1 - t0)
        timings["whole"].append(t2 - t1)
    return tuple(statistics.median(v) * 1000 for v in (timings["window"], timings["whole"]))


DEFAULTS_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"><profiles>
  <participant profile_name="fastdds_defaults" is_default_profile="true"><rtps/></participant>
</profiles></dds>
"""


def _child_env(profile: str | None) -> dict[str, str]:
    """This environment without a Fast DDS profile, or with ``profile``."""
    env = {k: v for k, v in os.environ.items() if k != "FASTRTPS_DEFAULT_PROFILES_FILE"}
    if profile:
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = profile
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "test"), env.get("PYTHONPATH")]))
    return env


def transport_run(
    model: Path, profile: str | None, frames: int, reliability: str, driver_profile: str | None
) -> dict:
    """One segmenter process + one driver process; the segmenter's last ~/stats."""
    import json
    import subprocess

    from std_msgs.msg import String

    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("transport_bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stats: list[dict] = []
    node.create_subscription(String, "/deal_segmenter/stats",
                             lambda m: stats.append(json.loads(m.data)), 10)  # fmt: skip
    segmenter = subprocess.Popen(
        [sys.executable, "-m", "deal_ros.nodes.segmenter", "--ros-args", "-p", f"model:={model}",
         "-p", "use_depth:=true", "-p", "threads:=1", "-p", "stats_period:=0.5",
         "-p", f"qos.reliability:={reliability}"],
        env=_child_env(profile), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not stats and time.monotonic() < deadline:  # the node is up and configured
            executor.spin_once(timeout_sec=0.2)
        driver = subprocess.run(
            [sys.executable, str(REPO / "test" / "ros_image_publisher.py"), "--count",
             str(frames), "--width", "848", "--height", "480", "--wait-subscribers", "60"],
            env=_child_env(driver_profile), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if driver.returncode != 0:
            raise SystemExit(f"driver failed: {driver.stdout}{driver.stderr}")
        settled, last = 0, None  # the counters stop moving: every frame in flight is in
        while settled < 3 and time.monotonic() < deadline + 300:
            n = len(stats)
            while len(stats) == n:
                executor.spin_once(timeout_sec=0.2)
            now = (stats[-1]["received"], stats[-1]["processed"])
            settled = settled + 1 if now == last else 0
            last = now
        return stats[-1]
    finally:
        segmenter.send_signal(2)
        out = segmenter.communicate(timeout=60)[0]
        if "transport: using the shipped" in out:
            stats[-1]["log"] = "shipped profile set by the node"
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def transport(frames: int, repeats: int, reliability: str, driver_profile: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="deal-bench-") as tmp:
        model = make_bundle(Path(tmp), (64, 96))
        defaults = Path(tmp) / "fastdds_defaults.xml"
        defaults.write_text(DEFAULTS_PROFILE)
        from deal_ros.nodes.transport import find_fastdds_profile

        driver = str(find_fastdds_profile()) if driver_profile else None
        print(f"deal-segmenter, {frames} frames of 848x480 rgb8 + 16UC1 at 30 Hz from a driver "
              f"process {'WITH the shipped' if driver else 'without a'} profile; segmenter "
              f"qos.reliability {reliability}")  # fmt: skip
        print(f"{'segmenter profile':>26} {'received':>9} {'processed':>10} {'depth':>6}")
        results: dict[str, list[int]] = {"shipped": [], "none": []}
        for _ in range(repeats):
            for name, profile in (("shipped", None), ("none", str(defaults))):
                snap = transport_run(model, profile, frames, reliability, driver)
                results[name].append(snap["processed"])
                label = "shipped (set by the node)" if name == "shipped" else "Fast DDS defaults"
                if name == "shipped" and snap.get("log") is None:
                    label = "shipped (NOT set?)"
                print(f"{label:>26} {snap['received']:9d} {snap['processed']:10d} "
                      f"{snap.get('depth_received', 0):6d}")  # fmt: skip
        for name, counts in results.items():
            print(f"{name}: processed {counts} of {frames} (median {statistics.median(counts)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="model input 480x640 (default)")
    mode.add_argument("--full", action="store_true", help="also 240x320, more frames")
    parser.add_argument("--providers", default="cpu", help="cpu | cuda | tensorrt | auto")
    parser.add_argument("--fp16", action="store_true", help="TensorRT fp16")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: all)")
    parser.add_argument("--model", type=Path, help="use this bundle instead of exporting one")
    parser.add_argument("--frames", type=int, default=0, help="frames per size (default 24/60)")
    parser.add_argument(
        "--instance",
        action="store_true",
        help=f"an instance bundle ({INSTANCES_PER_FRAME} instances per frame)",
    )
    parser.add_argument(
        "--transport",
        action="store_true",
        help="frames processed from a driver process, with / without profile",
    )
    parser.add_argument("--repeats", type=int, default=3, help="--transport: runs of each")
    parser.add_argument(
        "--driver-profile",
        action="store_true",
        help="--transport: the driver uses the shipped profile too",
    )
    parser.add_argument("--reliability", default="best_effort",
                        help="--transport: the segmenter's qos.reliability")  # fmt: skip
    args = parser.parse_args(argv)
    if args.transport:
        return transport(args.frames or 150, args.repeats, args.reliability, args.driver_profile)
    sizes = [(480, 640), (240, 320)] if args.full else [(480, 640)]
    frames = args.frames or (60 if args.full else 24)
    rgb = test_image()
    print(f"deal_segmenter overhead, image {IMAGE[1]}x{IMAGE[0]} rgb8, {frames} frames per model")
    print(f"{'model input':>12} {'provider':>22} {'bare run':>9} {'node':>9} {'ratio':>6} | "
          f"{'wait':>6} {'pre':>6} {'run':>8} {'post':>6} {'publish':>7} | "
          f"{'bare fps':>8} {'node fps':>8}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="deal-bench-") as tmp:
        make = make_instance_bundle if args.instance else make_bundle
        models = [args.model] if args.model else [make(Path(tmp), s) for s in sizes]
        for model in models:
            bench = Bench(model, args.providers, args.fp16, args.threads)
            try:
                bench.ready()
                m = measure(bench, rgb, frames)
                rt = bench.node.runtime
                size = f"{rt.input_size[0]}x{rt.input_size[1]}"
                provider = rt.provider + (" fp16" if args.fp16 else "")
                print(f"{size:>12} {provider:>22} {m['bare']:7.1f}ms {m['node']:7.1f}ms "
                      f"{m['node'] / m['bare']:6.3f} | {m['wait']:4.1f}ms {m['pre']:4.1f}ms "
                      f"{m['inner']:6.1f}ms {m['post']:4.1f}ms {m['publish']:5.1f}ms | "
                      f"{1000 / m['bare']:8.1f} {1000 / m['node']:8.1f}")  # fmt: skip
            finally:
                bench.close()
    if args.instance:
        window, whole = mask_step_ratio()
        print(f"instance mask step, 10 object-sized masks on {IMAGE[1]}x{IMAGE[0]}: windowed "
              f"{window:.1f} ms / whole resize {whole:.1f} ms = {window / whole:.3f}")  # fmt: skip
    outputs = ", ".join(INSTANCE if args.instance else SEMANTIC)
    print("ratio = node (arrival -> last of 4 publishes) / bare session.run, medians, same run;")
    print("node breakdown: wait = hand-off to the worker, run = session.run inside the node,")
    print(f"publish = the rest (encoding + publishing {outputs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
