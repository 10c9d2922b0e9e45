"""The deal_segmenter node over real rclpy: outputs, stamps, overload, model swap, bad input."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from deal_ros.core.image_codec import image_to_numpy, numpy_to_image
from deal_ros.infer import Runtime
from deal_ros.infer.instances import class_id_image, instance_id_image
from deal_ros.msg import InstanceArray, Segmentation
from deal_ros.nodes.segmenter import SegmenterNode

from deploy_fixtures import cam_bundle, copy_bundle, scene_images, seg_bundle
from rosutil import spin_until, wait_for_subscribers

OUT = "/deal_segmenter"
SIZE = (120, 160)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class Harness:
    """A segmenter node plus a test node publishing ``image`` and recording every output."""

    def __init__(self, context, **params):
        params.setdefault("threads", 1)
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = SegmenterNode(context=context, parameter_overrides=overrides)
        self.test = rclpy.create_node("segmenter_test", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.test)
        self.got: dict[str, list] = {}
        for name, kind in (("mask", Image), ("cam", Image), ("overlay", Image),
                           ("segmentation", Segmentation), ("instances", InstanceArray),
                           ("stats", String)):  # fmt: skip
            self._record(kind, f"{OUT}/{name}", name, RELIABLE)
        # the node's inputs: the RealSense topics by default (image_topic / depth_topic)
        self.image_pub = self.test.create_publisher(Image, self.node.topics["image"], RELIABLE)
        self.depth_pub = self.test.create_publisher(Image, self.node.topics["depth"], RELIABLE)
        if self.node.is_active:
            assert wait_for_subscribers(self.executor, self.image_pub)

    def _record(self, kind, topic, key, qos):
        self.got[key] = []
        self.test.create_subscription(kind, topic, lambda m: self.got[key].append(m), qos)

    def watch_class_names(self):
        self._record(String, f"{OUT}/class_names", "class_names", LATCHED)

    def logged(self, text: str, lines=None) -> list[str]:
        """The depth gate's lines (or ``lines``) holding ``text``: every line the node logs
        through its BurstLog / ThrottledLog is also kept there, in order."""
        source = self.node.gate.bursts.lines if lines is None else lines
        return [line for line in list(source) if text in line]

    def send_depth(self, depth, sec: int, encoding="16UC1"):
        """Publish a depth image and wait until the node holds it as its newest."""
        self.send(depth, sec, encoding=encoding, pub=self.depth_pub)
        assert self.spin_until(lambda: self.newest_depth_at(sec)), "the node got no depth image"

    def newest_depth_at(self, sec: int) -> bool:
        newest = self.node.depth_input.newest
        return newest is not None and newest.header.stamp.sec == sec

    def spin_until(self, predicate, timeout=20.0) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def spin_for(self, seconds: float) -> None:
        """Serve callbacks for ``seconds`` (no longer: spin_once waits at most what is left)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=left)

    def send(self, rgb, sec: int, encoding="rgb8", pub=None):
        msg = numpy_to_image(rgb, encoding)
        msg.header.stamp.sec, msg.header.frame_id = sec, "camera_color_optical_frame"
        (pub or self.image_pub).publish(msg)
        return msg

    def send_and_wait(self, rgb, sec: int, key="segmentation"):
        self.send(rgb, sec)
        ok = self.spin_until(lambda: any(m.header.stamp.sec == sec for m in self.got[key]))
        assert ok, f"no {key} for stamp {sec}; stats {self.node.stats_snapshot()}"
        return next(m for m in self.got[key] if m.header.stamp.sec == sec)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.test.destroy_node()


@pytest.fixture
def harness_factory(ros_context):
    made: list[Harness] = []

    def make(**params) -> Harness:
        made.append(Harness(ros_context, **params))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_outputs_carry_the_input_header_encodings_and_sizes(harness_factory):
    tiny = cam_bundle()
    h = harness_factory(model=str(tiny.path))
    frames = scene_images(3, SIZE, seed=11)
    for i, rgb in enumerate(frames):
        h.send_and_wait(rgb, 100 + i)
    assert h.spin_until(lambda: all(len(h.got[k]) == 3 for k in ("mask", "cam", "overlay")))
    reference = Runtime(tiny.path, threads=1)
    for i, rgb in enumerate(frames):
        outs = {k: next(m for m in h.got[k] if m.header.stamp.sec == 100 + i)
                for k in ("mask", "cam", "overlay", "segmentation")}  # fmt: skip
        for m in outs.values():
            assert m.header.frame_id == "camera_color_optical_frame"
        expected = {"mask": ("mono8", np.uint8), "cam": ("32FC1", np.float32),
                    "overlay": ("rgb8", np.uint8)}  # fmt: skip
        for key, (encoding, dtype) in expected.items():
            assert outs[key].encoding == encoding
            assert (outs[key].height, outs[key].width) == SIZE
            assert image_to_numpy(outs[key]).dtype == dtype
        ref = reference.segment(rgb)
        mask = image_to_numpy(outs["mask"])
        np.testing.assert_array_equal(mask, ref.mask)
        np.testing.assert_allclose(image_to_numpy(outs["cam"]), ref.cam, atol=1e-6)
        seg = outs["segmentation"]
        assert list(seg.class_names) == ["background", "mug", "box"]
        np.testing.assert_allclose(seg.class_scores[1:], ref.scores, atol=1e-6)
        np.testing.assert_array_equal(image_to_numpy(seg.mask), mask)
        assert seg.mask.header.stamp.sec == 100 + i
    h.watch_class_names()  # subscribed late: transient local still delivers it
    assert h.spin_until(lambda: h.got["class_names"])
    info = json.loads(h.got["class_names"][-1].data)
    assert info["class_names"] == ["background", "mug", "box"] and len(info["palette"]) == 3


def test_overload_drops_stale_frames_and_keeps_latency_bounded(harness_factory):
    h = harness_factory(model=str(cam_bundle().path))
    frames = scene_images(4, SIZE, seed=12)
    for i in range(6):
        h.send_and_wait(frames[i % 4], 10 + i)
    warm = h.node.stats_snapshot()
    fastest = min(list(h.node.stats.latency)[2:])  # arrival -> published, no queueing
    service = warm["latency"]["p50_ms"] / 1000.0
    interval, count = fastest / 3.0, 45  # at least 3x more frames than the node can process
    received0, processed0 = warm["received"], warm["processed"]
    for i in range(count):
        h.send(frames[i % 4], 100 + i)
        h.spin_for(interval)
    assert h.spin_until(lambda: any(m.header.stamp.sec == 100 + count - 1
                                    for m in h.got["segmentation"]), 20.0)  # fmt: skip
    snap = h.node.stats_snapshot()
    received = snap["received"] - received0
    processed = snap["processed"] - processed0
    assert snap["dropped"] > 0 and processed < received
    assert processed + snap["dropped"] == received  # every frame processed or counted
    stamps = [m.header.stamp.sec for m in h.got["segmentation"] if m.header.stamp.sec >= 100]
    assert stamps == sorted(stamps) and len(stamps) == processed  # newest first, in order
    latencies = list(h.node.stats.latency)[-processed:]
    # A queue would grow: frame n would wait ~ n * 2/3 * service (30 services at the end).
    # Depth 1: at most the frame in progress, then our own processing.
    assert max(latencies) < 4 * service + 0.25, (latencies, service)


def test_model_swap_by_parameter(harness_factory):
    h = harness_factory(model=str(cam_bundle().path))
    h.watch_class_names()
    rgb = scene_images(1, SIZE, seed=13)[0]
    assert list(h.send_and_wait(rgb, 1).class_names) == ["background", "mug", "box"]
    result = h.node.set_parameters([Parameter("model", value=str(seg_bundle().path))])[0]
    assert result.successful, result.reason
    seg = h.send_and_wait(rgb, 2)
    assert list(seg.class_names) == ["background", "mug", "box", "ball"]
    assert len(seg.class_scores) == 4 and image_to_numpy(seg.mask).max() <= 3
    assert h.spin_until(lambda: "ball" in h.got["class_names"][-1].data)
    assert h.node.runtime.bundle.path == seg_bundle().path


def test_corrupt_model_and_bad_input_leave_the_node_running(harness_factory, tmp_path):
    broken = copy_bundle(cam_bundle().path, tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"\0" * 1000)
    h = harness_factory(model=str(cam_bundle().path))
    rgb = scene_images(1, SIZE, seed=14)[0]
    h.send_and_wait(rgb, 1)
    result = h.node.set_parameters([Parameter("model", value=str(broken))])[0]
    assert not result.successful and "model.onnx" in result.reason and str(broken) in result.reason
    assert h.node.get_parameter("model").value == str(cam_bundle().path)
    h.send(np.zeros(SIZE, np.uint16), 2, encoding="16UC1")  # wrong encoding for `image`
    assert h.spin_until(lambda: h.node.errors["bad_input"] == 1)
    h.send(rgb[:, :, 0].copy(), 3, encoding="mono8")
    h.send_and_wait(rgb, 4)  # still running, still the old model
    assert h.node.errors["failed"] == 0


def test_starting_with_a_corrupt_model_fails_configure_reports_and_recovers(
    harness_factory, tmp_path
):
    """Autostart's configure fails on a model that does not load: the node stays unconfigured
    (nothing subscribed), says why on ~/stats; setting a good model retries the autostart."""
    broken = copy_bundle(cam_bundle().path, tmp_path / "broken")
    (broken / "model.yaml").write_text("format: 1\nclasses: [mug\n")
    h = harness_factory(model=str(broken), stats_period=0.2)
    assert h.node.lifecycle_state == "unconfigured" and h.node.runtime is None
    assert "not valid YAML" in h.node.model_error and h.node.autostart_failed
    assert h.node.transition_error.startswith("configure failed: no model loaded: ")
    assert h.image_pub.get_subscription_count() == 0  # the camera is not consumed
    assert h.spin_until(lambda: any("not valid YAML" in m.data and "unconfigured" in m.data
                                    for m in h.got["stats"]))  # fmt: skip
    ok = h.node.set_parameters([Parameter("model", value=str(cam_bundle().path))])[0]
    assert ok.successful and h.node.lifecycle_state == "active"
    assert wait_for_subscribers(h.executor, h.image_pub)
    h.send_and_wait(scene_images(1, SIZE, seed=15)[0], 2)


def test_an_empty_model_configures_and_counts_frames_as_no_model(harness_factory):
    h = harness_factory(stats_period=0.2)  # model "" (ros2 run without -p model:=...)
    assert h.node.lifecycle_state == "active" and h.node.runtime is None
    h.send(scene_images(1, SIZE, seed=15)[0], 1)
    assert h.spin_until(lambda: h.node.errors["no_model"] >= 1)
    assert h.spin_until(lambda: any("parameter 'model' is empty" in m.data for m in h.got["stats"]))
    assert not h.got["segmentation"]
    ok = h.node.set_parameters([Parameter("model", value=str(cam_bundle().path))])[0]
    assert ok.successful
    h.send_and_wait(scene_images(1, SIZE, seed=15)[0], 2)


def test_a_remap_of_the_short_name_still_wins_over_image_topic(ros_context):
    """``-r image:=/my/image`` (how the topic was chosen before image_topic existed, and how
    the demo still does it) keeps working."""
    node = SegmenterNode(context=ros_context, cli_args=["--ros-args", "-r", "image:=/my/image"],
                         parameter_overrides=[Parameter("model", value=str(cam_bundle().path)),
                                              Parameter("threads", value=1)])  # fmt: skip
    try:
        assert node.topics["image"] == "/my/image" and node.image_sub.topic_name == "/my/image"
        assert node.topics["depth"] == "/camera/camera/aligned_depth_to_color/image_raw"
    finally:
        node.destroy_node()


def _at(h: Harness, key: str, sec: int):
    assert h.spin_until(lambda: any(m.header.stamp.sec == sec for m in h.got[key])), key
    return next(m for m in h.got[key] if m.header.stamp.sec == sec)


def _check_instances(h: Harness, reference: Runtime, rgb: np.ndarray, sec: int) -> int:
    """Every output of frame ``sec`` against the runtime's own detect() of ``rgb``."""
    ref = reference.detect(rgb)
    arr = _at(h, "instances", sec)
    outs = {k: _at(h, k, sec) for k in ("mask", "overlay", "segmentation")}
    for m in (arr, arr.mask, *outs.values()):
        assert m.header.frame_id == "camera_color_optical_frame" and m.header.stamp.sec == sec
    names = reference.bundle.class_names
    assert list(arr.class_names) == names and len(arr.instances) == len(ref)
    ids = instance_id_image(ref.masks, rgb.shape[:2])
    np.testing.assert_array_equal(image_to_numpy(arr.mask), ids)
    for i, (item, c, s, b) in enumerate(zip(arr.instances, ref.classes, ref.scores, ref.boxes)):
        assert item.id == i + 1 and item.class_id == c and item.class_name == names[c]
        assert item.score == pytest.approx(float(s), abs=1e-6)
        roi = item.box  # whole pixels around the float box, inside the image
        assert roi.x_offset <= max(b[0], 0) and roi.y_offset <= max(b[1], 0)
        assert roi.x_offset + roi.width >= min(b[2], rgb.shape[1]) - 1e-3
        assert roi.y_offset + roi.height >= min(b[3], rgb.shape[0]) - 1e-3
        assert item.pixel_count == np.count_nonzero(ref.masks[i])
    mask = image_to_numpy(outs["mask"])
    np.testing.assert_array_equal(mask, class_id_image(ids, ref.classes))
    np.testing.assert_array_equal(image_to_numpy(outs["overlay"]), ref.overlay)
    seg = outs["segmentation"]
    best = ref.class_scores(reference.bundle.num_classes)
    np.testing.assert_allclose(seg.class_scores[1:], best, atol=1e-6)
    np.testing.assert_array_equal(image_to_numpy(seg.mask), mask)
    return len(ref)


def test_an_instance_bundle_publishes_instances_with_the_input_header(harness_factory):
    from instance_fixtures import box_bundle

    path = box_bundle().path
    h = harness_factory(model=str(path))
    h.watch_class_names()
    assert h.node.runtime is not None and h.node.model_error == ""
    reference = Runtime(path, threads=1)
    frames = scene_images(3, SIZE, seed=16)
    found = 0
    for i, rgb in enumerate(frames):
        h.send(rgb, 300 + i)
        found += _check_instances(h, reference, rgb, 300 + i)
    assert found > 0  # the comparison is not vacuous
    assert not h.got["cam"]  # no CAMs in an instance model
    assert h.spin_until(lambda: h.got["class_names"])
    info = json.loads(h.got["class_names"][-1].data)
    assert info["task"] == "instance" and "instances_encoding" in info
    assert info["nms_threshold"] == reference.instance.nms_threshold
    # thresholds are live parameters: nothing passes a class probability of 1
    assert h.node.set_parameters([Parameter("score_threshold", value=1.0)])[0].successful
    arr = h.send_and_wait(frames[0], 310, key="instances")
    assert not arr.instances and not image_to_numpy(arr.mask).any()
    assert not image_to_numpy(_at(h, "mask", 310)).any()
    assert h.node.set_parameters([Parameter("score_threshold", value=-1.0)])[0].successful
    h.send(frames[0], 311)
    _check_instances(h, reference, frames[0], 311)
    # swaps both ways between an instance and a semantic bundle
    assert h.node.set_parameters([Parameter("model", value=str(cam_bundle().path))])[0].successful
    h.send_and_wait(frames[1], 320)
    assert h.spin_until(lambda: any(m.header.stamp.sec == 320 for m in h.got["cam"]))
    assert h.node.set_parameters([Parameter("model", value=str(path))])[0].successful
    h.send(frames[1], 321)
    _check_instances(h, reference, frames[1], 321)
    assert h.node.errors == {"bad_input": 0, "no_model": 0, "failed": 0, "depth_size": 0}


def test_the_depth_gate_cuts_instances(harness_factory):
    from instance_fixtures import box_bundle

    path = box_bundle().path
    h = harness_factory(model=str(path), use_depth=True, **{"depth.max_range": 1.0})
    rgb = scene_images(1, SIZE, seed=17)[0]
    reference = Runtime(path, threads=1)
    assert len(reference.detect(rgb)) > 0
    for sec, millimetres in ((400, 3000), (401, 500)):
        h.send(np.full(SIZE, millimetres, np.uint16), sec, encoding="16UC1", pub=h.depth_pub)
        assert h.spin_until(lambda s=sec: h.newest_depth_at(s)), "the node got no depth image"
        h.send(rgb, sec)
        arr = _at(h, "instances", sec)
        if millimetres > 1000:  # everything beyond range: no instance is left
            assert not arr.instances and not image_to_numpy(arr.mask).any()
        else:
            _check_instances(h, reference, rgb, sec)


def test_depth_gate_and_output_switches(harness_factory):
    h = harness_factory(
        model=str(cam_bundle().path), use_depth=True, cam_threshold=0.0, score_threshold=0.0,
        **{"depth.max_range": 1.0, "publish.overlay": False, "publish.cam_per_class": True},
    )  # fmt: skip
    for name in ("mug", "box"):
        h._record(Image, f"{OUT}/cam/{name}", name, RELIABLE)
    assert h.spin_until(lambda: all(p.get_subscription_count() for p in h.node._cam_pubs.values()))
    depth = np.full(SIZE, 3000, np.uint16)
    depth[:, : SIZE[1] // 2] = 500  # left half 0.5 m, right half 3 m
    depth[:10, :10] = 0  # no measurement
    rgb = scene_images(1, SIZE, seed=16)[0]
    h.send(depth, 7, encoding="16UC1", pub=h.depth_pub)
    assert h.spin_until(lambda: h.newest_depth_at(7))
    mask = image_to_numpy(h.send_and_wait(rgb, 7, key="mask"))
    assert mask[:, : SIZE[1] // 2].any() and not mask[:, SIZE[1] // 2 :].any()
    assert not mask[:10, :10].any()
    assert h.spin_until(lambda: h.got["mug"] and h.got["box"])
    for name in ("mug", "box"):
        heat = h.got[name][-1]
        assert heat.encoding == "32FC1" and heat.header.stamp.sec == 7
        assert (heat.height, heat.width) == SIZE
    assert not h.got["overlay"]


def test_parameters_have_descriptors(harness_factory):
    h = harness_factory(model=str(cam_bundle().path))
    names = ["model", "providers", "cam_threshold", "publish.mask", "qos.reliability"]
    for d in h.node.describe_parameters(names):
        assert d.description
    read_only = {d.name: d.read_only for d in h.node.describe_parameters(names)}
    assert read_only["qos.reliability"] and not read_only["model"]
    bad = h.node.set_parameters([Parameter("cam_threshold", value=3.0)])[0]
    assert not bad.successful


def test_node_process_runs_bare_on_the_realsense_topic(ros_context, repo_root):
    """``deal-segmenter -p model:=...`` with the shipped params file and no remap: it
    subscribes the RealSense colour topic the recorder records."""
    node = rclpy.create_node("segmenter_client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    got: list[Segmentation] = []
    node.create_subscription(Segmentation, f"{OUT}/segmentation", got.append, RELIABLE)
    pub = node.create_publisher(Image, "/camera/camera/color/image_raw", RELIABLE)
    cmd = [sys.executable, "-m", "deal_ros.nodes.segmenter", "--ros-args",
           "--params-file", str(repo_root / "config" / "segmenter.yaml"),
           "-p", f"model:={cam_bundle().path}", "-p", "threads:=1"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        assert wait_for_subscribers(executor, pub, timeout=60.0), "node did not start"
        rgb = scene_images(1, SIZE, seed=17)[0]
        deadline = time.monotonic() + 30.0
        while not got and time.monotonic() < deadline:  # the first frames may beat discovery
            msg = numpy_to_image(rgb, "rgb8")
            msg.header.stamp.sec = 42
            pub.publish(msg)
            spin_until(executor, lambda: bool(got), timeout=1.0)
        assert got and got[0].header.stamp.sec == 42
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, out
        assert "model: " + str(Path(cam_bundle().path)) in out
        assert "subscribed: image '/camera/camera/color/image_raw'" in out
        assert out.index("active") < out.index("finalized (shut down)")  # Ctrl-C: shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()


def _flatten(params: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_config_file_and_launch_file_match_the_node(ros_context, repo_root):
    import ast

    path = repo_root / "config" / "segmenter.yaml"
    (key, section), *rest = yaml.safe_load(path.read_text()).items()
    assert not rest and key.endswith("/deal_segmenter")
    wanted = _flatten(section["ros__parameters"])
    node = SegmenterNode(context=ros_context, cli_args=["--ros-args", "--params-file", str(path)])
    try:
        loaded = {
            name: node.get_parameter(name).value for name in node.list_parameters([], 0).names
        }
        assert set(wanted) <= set(loaded), set(wanted) - set(loaded)
        for name, value in wanted.items():
            assert loaded[name] == value, (name, loaded[name], value)
        topics = {node.image_sub.topic_name}
    finally:
        node.destroy_node()
    tree = ast.parse((repo_root / "launch" / "segmentation.launch.py").read_text())
    (call,) = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"
    ]
    kw = {k.arg: k.value for k in call.keywords}
    assert kw["name"].value == "deal_segmenter" and kw["executable"].value == "deal-segmenter"
    given = {k.value for d in kw["parameters"].elts if isinstance(d, ast.Dict) for k in d.keys}
    assert given <= set(loaded)
    # the inputs are parameters (RealSense defaults, the recorder's), not remaps
    assert {"image_topic", "depth_topic", "camera_info_topic", "autostart"} <= given
    assert "remappings" not in kw
    assert topics == {"/camera/camera/color/image_raw"}


@pytest.mark.parametrize("kind", ["semantic", "instance"])
def test_cloud_outputs_from_the_segmenter(harness_factory, kind):
    from sensor_msgs.msg import CameraInfo, PointCloud2

    from deal_ros.core.pointcloud2 import pointcloud2_to_cloud
    from deal_ros.msg import ObjectArray

    if kind == "semantic":
        model = {"model": str(cam_bundle().path), "cam_threshold": 0.0, "score_threshold": 0.0}
    else:
        from instance_fixtures import box_bundle

        model = {"model": str(box_bundle().path)}
    h = harness_factory(
        **model, use_depth=True,
        **{"cloud.enabled": True, "cloud.lazy": False, "cloud.stride": 1},
    )  # fmt: skip
    h._record(PointCloud2, f"{OUT}/object_cloud", "cloud", RELIABLE)
    h._record(ObjectArray, f"{OUT}/objects", "objects", RELIABLE)
    info_pub = h.test.create_publisher(CameraInfo, h.node.topics["camera_info"], RELIABLE)
    assert wait_for_subscribers(h.executor, info_pub)
    info = CameraInfo(height=SIZE[0], width=SIZE[1])
    info.k = [100.0, 0.0, SIZE[1] / 2, 0.0, 100.0, SIZE[0] / 2, 0.0, 0.0, 1.0]
    info_pub.publish(info)
    assert h.spin_until(lambda: h.node.cloud.camera_info is not None, 5.0)
    depth = np.full(SIZE, 800, np.uint16)  # a wall at 0.8 m, every pixel measured
    depth_msg = numpy_to_image(depth, "16UC1")
    depth_msg.header.stamp.sec, depth_msg.header.frame_id = 9, "camera_depth_optical_frame"
    h.depth_pub.publish(depth_msg)
    assert h.spin_until(lambda: h.newest_depth_at(9))
    mask = image_to_numpy(h.send_and_wait(scene_images(1, SIZE, seed=3)[0], 9, key="mask"))
    assert h.spin_until(lambda: h.got["cloud"] and h.got["objects"])
    cloud_msg, objects = h.got["cloud"][-1], h.got["objects"][-1]
    assert cloud_msg.header.stamp.sec == 9
    assert cloud_msg.header.frame_id == "camera_depth_optical_frame"  # the depth header
    cloud = pointcloud2_to_cloud(cloud_msg)
    assert mask.any()  # thresholds at 0: every present class wins some pixels
    assert len(cloud.points) > 0  # labelled pixels became points on the 0.8 m wall
    np.testing.assert_allclose(cloud.points[:, 2], 0.8, atol=1e-3)
    assert set(np.unique(cloud.class_ids)) <= set(np.unique(mask)) - {0}
    assert objects.objects and {o.class_id for o in objects.objects} <= set(np.unique(mask))
    if kind == "semantic":  # one object per class
        assert all(o.instance_id == 0 for o in objects.objects)
        return
    arr = _at(h, "instances", 9)  # one object per instance, with its id and class
    known = {(i.id, i.class_id) for i in arr.instances}
    assert {(o.instance_id, o.class_id) for o in objects.objects} <= known
    assert len(objects.objects) > 1


def _instrument(monkeypatch, module: str, name: str) -> list[dict]:
    """Count the calls of the real function ``module.name`` wherever a deal_ros module bound
    it (instrumentation, not a mock: the real function runs). Each call's bound arguments are
    kept, so the arrays and messages stay alive and their ids unique."""
    original = getattr(importlib.import_module(module), name)
    signature = inspect.signature(original)
    calls: list[dict] = []

    def counted(*args, **kwargs):
        calls.append(signature.bind(*args, **kwargs).arguments)
        return original(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("deal_ros") and (
            getattr(mod, name, None) is original
        ):
            monkeypatch.setattr(mod, name, counted)
    return calls


@pytest.mark.parametrize("kind", ["semantic", "instance"])
def test_each_input_is_decoded_once_and_each_output_converted_once(
    harness_factory, monkeypatch, kind
):
    """Every output wanted, the depth gate and the 3-D outputs on (both read the depth):
    per frame one decode of the image, one of the depth, one input check in the runtime,
    and one sensor_msgs/Image per output array (~/segmentation's mask is ~/mask's image)."""
    from sensor_msgs.msg import CameraInfo

    if kind == "semantic":
        model = {"model": str(cam_bundle().path), "cam_threshold": 0.0, "score_threshold": 0.0,
                 "publish.cam_per_class": True}  # fmt: skip
        # mask, cam, overlay and the class CAM of the class that is not ~/cam's
        outputs, per_frame = ("mask", "cam", "overlay", "segmentation"), 4
    else:
        from instance_fixtures import box_bundle

        model = {"model": str(box_bundle().path)}
        outputs, per_frame = ("mask", "overlay", "segmentation", "instances"), 3  # + the id map
    h = harness_factory(**model, use_depth=True, **{
        "depth.max_range": 5.0, "cloud.enabled": True, "cloud.lazy": False, "cloud.stride": 1,
    })  # fmt: skip
    info_pub = h.test.create_publisher(CameraInfo, h.node.topics["camera_info"], RELIABLE)
    assert h.spin_until(lambda: all(h.node.pubs[k].get_subscription_count() for k in outputs))
    assert wait_for_subscribers(h.executor, info_pub)
    info = CameraInfo(height=SIZE[0], width=SIZE[1])
    info.k = [100.0, 0.0, SIZE[1] / 2, 0.0, 100.0, SIZE[0] / 2, 0.0, 0.0, 1.0]
    info_pub.publish(info)
    assert h.spin_until(lambda: h.node.cloud.camera_info is not None)

    decodes = _instrument(monkeypatch, "deal_ros.core.image_codec", "image_to_numpy")
    conversions = _instrument(monkeypatch, "deal_ros.core.image_codec", "numpy_to_image")
    checks = _instrument(monkeypatch, "deal_ros.infer.preprocess", "to_rgb_array")
    stamps = [600, 601, 602]
    for i, (sec, rgb) in enumerate(zip(stamps, scene_images(len(stamps), SIZE, seed=18))):
        depth = numpy_to_image(np.full(SIZE, 800 + 100 * i, np.uint16), "16UC1")
        depth.header.stamp.sec, depth.header.frame_id = sec, "camera_depth_optical_frame"
        h.depth_pub.publish(depth)
        assert h.spin_until(lambda s=sec: h.newest_depth_at(s))
        processed = h.node.stats.processed
        h.send(rgb, sec)
        assert h.spin_until(lambda p=processed: h.node.stats.processed > p)  # all published
    assert h.node.cloud.published == len(stamps) and h.node.cloud.errors == 0
    for key in outputs:
        assert sorted(m.header.stamp.sec for m in _all_at(h, key, stamps)) == stamps, key

    decoded = sorted((a["msg"].header.frame_id, a["msg"].header.stamp.sec) for a in decodes)
    assert decoded == sorted(
        [
            (f, s)
            for s in stamps
            for f in ("camera_color_optical_frame", "camera_depth_optical_frame")
        ]
    )  # each message once: the gate and the cloud share the depth decode
    assert len(checks) == len(stamps)  # the runtime's one check, none in the preprocessor
    for sec in stamps:
        made = [c for c in conversions if c["header"].stamp.sec == sec]
        assert len({id(c["arr"]) for c in made}) == len(made) == per_frame, [
            (c["encoding"], c["arr"].shape) for c in made
        ]
    seg = _all_at(h, "segmentation", stamps)[-1]
    np.testing.assert_array_equal(
        image_to_numpy(seg.mask), image_to_numpy(_all_at(h, "mask", stamps)[-1])
    )


def _all_at(h: Harness, key: str, stamps: list[int]) -> list:
    assert h.spin_until(lambda: {m.header.stamp.sec for m in h.got[key]} >= set(stamps)), key
    return sorted((m for m in h.got[key] if m.header.stamp.sec in stamps),
                  key=lambda m: m.header.stamp.sec)  # fmt: skip


def test_depth_of_another_size_is_refused_for_the_gate_never_stretched(harness_factory):
    h = harness_factory(model=str(cam_bundle().path), use_depth=True, **{"depth.max_range": 1.0})
    rgb = scene_images(1, SIZE, seed=19)[0]
    wide = np.full((SIZE[0], SIZE[1] + 40), 500, np.uint16)  # 200x120 depth, 160x120 image
    for i, sec in enumerate((30, 31, 32)):
        h.send_depth(wide, sec)
        h.send(rgb, sec)
        assert h.spin_until(lambda n=i + 1: h.node.errors["depth_size"] == n)
    h.send_depth(np.full(SIZE, 500, np.uint16), 33)
    h.send_and_wait(rgb, 33)  # aligned depth again: processed
    assert h.spin_until(lambda: h.logged("sizes agree again (after 3 frames)"))
    (line,) = h.logged("but image")  # one line for the burst of three
    assert "depth '/camera/camera/aligned_depth_to_color/image_raw' is 200x120" in line
    assert "image '/camera/camera/color/image_raw' is 160x120" in line
    assert "never stretched" in line and "aligned_depth_to_color" in line
    assert {m.header.stamp.sec for m in h.got["segmentation"]} == {33}  # nothing went out ungated
    assert h.node.gate.counts["size"] == 3 and h.node.errors["bad_input"] == 0


def test_depth_without_a_valid_pixel_is_said_once_per_burst(harness_factory):
    h = harness_factory(model=str(cam_bundle().path), use_depth=True, cam_threshold=0.0,
                        score_threshold=0.0, **{"depth.max_range": 5.0})  # fmt: skip
    rgb = scene_images(1, SIZE, seed=20)[0]
    bursts = [(np.zeros(SIZE, np.uint16), "16UC1"), (np.zeros(SIZE, np.uint16), "16UC1"),
              (np.full(SIZE, np.nan, np.float32), "32FC1")]  # fmt: skip
    for sec, (depth, encoding) in enumerate(bursts, start=40):
        h.send_depth(depth, sec, encoding)
        mask = image_to_numpy(h.send_and_wait(rgb, sec, key="mask"))
        assert not mask.any()  # no depth within range: background, as the gate says
    h.send_depth(np.full(SIZE, 800, np.uint16), 43)
    assert image_to_numpy(h.send_and_wait(rgb, 43, key="mask")).any()  # valid: objects back
    assert h.spin_until(lambda: h.logged("valid pixels again (after 3 frames without any)"))
    (line,) = h.logged("has no valid pixel")
    assert "all zero, NaN or outside 0.1-10 m" in line and "every pixel background" in line
    assert h.node.gate.counts["no_valid"] == 3


def test_3d_outputs_say_what_is_missing_when_use_depth_is_already_true(harness_factory):
    from sensor_msgs.msg import CameraInfo

    h = harness_factory(model=str(cam_bundle().path), use_depth=True,
                        **{"cloud.enabled": True, "cloud.lazy": False})  # fmt: skip
    info_pub = h.test.create_publisher(CameraInfo, h.node.topics["camera_info"], RELIABLE)
    assert wait_for_subscribers(h.executor, info_pub)
    info = CameraInfo(height=SIZE[0], width=SIZE[1])
    info.k = [100.0, 0.0, SIZE[1] / 2, 0.0, 100.0, SIZE[0] / 2, 0.0, 0.0, 1.0]
    info_pub.publish(info)
    assert h.spin_until(lambda: h.node.cloud.camera_info is not None)
    h.send_and_wait(scene_images(1, SIZE, seed=21)[0], 50)  # no depth was ever sent
    want = ("3-D outputs skipped for this frame: no depth image received yet on "
            "'/camera/camera/aligned_depth_to_color/image_raw'")  # fmt: skip
    assert h.spin_until(lambda: h.logged(want, h.node.cloud.log_lines)), h.node.cloud.log_lines
    assert not h.logged("use_depth:=true", h.node.cloud.log_lines) and h.node.cloud.notices == []
