"""Sonar geometry (ROS-free), the adapter node feeding the recorder over real rclpy, and the
adapter as a lifecycle node driven over its services, with its /diagnostics."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_client import RELIABLE, LifecycleClient, Transition, values
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from deal_ros.core.errors import DepthFormatError
from deal_ros.core.image_codec import image_to_numpy, numpy_to_image
from deal_ros.core.sonar import (
    SonarGeometry,
    Waterfall,
    depth_like_along_range,
    fan_maps,
    range_bins,
    sonar_to_rgbd,
)
from deal_ros.episodes.store import Episode
from deal_ros.nodes.sonar_adapter import SonarAdapterNode

from rosutil import spin_until


def beam_profile(n: int = 60) -> np.ndarray:
    """Water column (0-9), seabed (10-19), an object (20-22), its shadow (23-34), seabed
    again (35-49), nothing back (50-59)."""
    beam = np.zeros(n, np.uint8)
    beam[10:50] = 100
    beam[20:23] = 220
    beam[23:35] = 5
    return beam


def test_echoes_keep_their_range_shadows_take_the_occluders():
    ranges = range_bins(60, 0.0, 6.0)
    assert np.allclose(ranges[:2], [0.05, 0.15])
    depth, valid = depth_like_along_range(
        beam_profile()[:, None], ranges, threshold=40, smooth_bins=1
    )
    depth, valid = depth[:, 0], valid[:, 0]
    assert not valid[:10].any() and not valid[50:].any()  # water column, nothing back
    assert valid[10:50].all()
    assert np.allclose(depth[10:23], ranges[10:23])  # echoes: own range
    assert np.allclose(depth[23:35], ranges[22])  # shadow: the object's range (a plateau)
    assert np.allclose(depth[35:50], ranges[35:50])  # seabed again: a depth edge at 35
    smooth, _ = depth_like_along_range(beam_profile()[:, None], ranges, 40, smooth_bins=3)
    assert np.all(smooth[25:33, 0] == smooth[25, 0])  # smoothing keeps a plateau, one bin
    assert smooth[25, 0] in (ranges[22], ranges[23])  # longer (the echo's smeared edge)


def test_polar_layouts_agree():
    rng = np.random.default_rng(0)
    image = np.repeat(beam_profile()[:, None], 8, axis=1)
    image = np.clip(image + rng.integers(0, 10, image.shape), 0, 255).astype(np.uint8)
    rows = SonarGeometry(mode="polar", range_max_m=6.0, layout="range_rows")
    cols = SonarGeometry(mode="polar", range_max_m=6.0, layout="range_cols")
    _, d_rows, v_rows = sonar_to_rgbd(image, rows)
    _, d_cols, v_cols = sonar_to_rgbd(np.ascontiguousarray(image.T), cols)
    assert np.array_equal(d_rows, d_cols.T) and np.array_equal(v_rows, v_cols.T)


def test_fan_geometry():
    g = SonarGeometry(mode="fan", range_max_m=10.0, fov_deg=90.0, threshold=40, smooth_bins=1)
    h, w = 100, 200
    maps = fan_maps(h, w, g)
    assert maps.inside[50, 100] and maps.inside[0, 100]  # straight ahead, 5 m and 10 m
    assert not maps.inside[99, 0] and not maps.inside[10, 5]  # beyond 45 degrees
    assert maps.ranges[maps.range_index[49, 100]] == pytest.approx(5.05, abs=0.06)
    ys, xs = np.mgrid[0:h, 0:w]
    r = np.hypot((xs + 0.5 - w / 2) * 0.1, (h - ys - 0.5) * 0.1)
    image = np.where(maps.inside & (r > 4.0), 90, 0).astype(np.uint8)  # seabed from 4 m on
    image[(r > 6.0) & (r < 6.5) & (np.abs(xs - w / 2) < 10)] = 250  # an object at 6 m ahead
    image[(r >= 6.5) & (r < 8.0) & (np.abs(xs - w / 2) < 10)] = 0  # and its shadow
    intensity, depth, valid = sonar_to_rgbd(image, g)
    assert intensity is image or np.array_equal(intensity, image)
    assert not valid[~maps.inside].any() and not valid[r < 3.8].any()
    seabed = maps.inside & (r > 4.3) & (np.abs(xs - w / 2) > 30)
    assert valid[seabed].all() and np.allclose(depth[seabed], r[seabed], atol=0.2)
    shadow = maps.inside & (r > 6.8) & (r < 7.7) & (np.abs(xs - w / 2) < 6)
    assert valid[shadow].all() and np.allclose(depth[shadow], 6.45, atol=0.2)


def test_sidescan_waterfall():
    fall = Waterfall(rows=4)
    ping = np.concatenate([beam_profile()[::-1], beam_profile()])  # port | starboard
    for k in range(6):
        image = fall.push((ping // (k + 1)).astype(np.uint8))
    assert image.shape == (4, 120) and fall.count == 6
    assert image[0, 60 + 15] == 100 // 6 and image[3, 60 + 15] == 100 // 3  # newest on top
    g = SonarGeometry(mode="sidescan", range_max_m=6.0, threshold=10, smooth_bins=1)
    _, depth, valid = sonar_to_rgbd(image, g)
    assert np.array_equal(valid[:, :60], valid[:, 60:][:, ::-1])
    assert np.array_equal(depth[:, :60], depth[:, 60:][:, ::-1])  # both sides alike
    ranges = range_bins(60, 0.0, 6.0)
    assert np.allclose(depth[3, 60 + 23 : 60 + 35], ranges[22])  # starboard shadow plateau
    with pytest.raises(DepthFormatError, match="ping width 7 != 120"):
        fall.push(np.zeros(7, np.uint8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "cone"}, "mode 'cone'"),
        ({"range_min_m": 5.0, "range_max_m": 2.0}, "range_min_m < range_max_m"),
        ({"fov_deg": 0.0}, "fov_deg"),
        ({"threshold": 300}, "threshold"),
    ],
)
def test_geometry_is_validated(kwargs, match):
    with pytest.raises(DepthFormatError, match=match):
        SonarGeometry(**kwargs)


def test_adapter_feeds_the_recorder_underwater(ros_context, tmp_path):
    from deal_ros.nodes.recorder import RecorderNode

    tag = uuid.uuid4().hex[:8]
    adapter = SonarAdapterNode(
        context=ros_context,
        cli_args=["--ros-args", "-r", f"__node:=son_{tag}"],
        parameter_overrides=[
            Parameter("input_topic", value=f"/s{tag}/image"),
            Parameter("mode", value="polar"),
            Parameter("range_max_m", value=6.0),
            Parameter("smooth_bins", value=1),
            Parameter("qos.reliability", value="reliable"),
        ],
    )
    recorder = RecorderNode(
        context=ros_context,
        cli_args=["--ros-args", "-r", f"__node:=rec_{tag}"],
        parameter_overrides=[
            Parameter("episodes_dir", value=str(tmp_path)),
            Parameter("rgb_topic", value=f"/son_{tag}/image"),
            Parameter("depth_topic", value=f"/son_{tag}/depth"),
            Parameter("camera_info_topic", value=""),
            Parameter("source", value="sonar"),
            Parameter("slop_ms", value=1.0),
            Parameter("min_free_mb", value=0.0),
        ],
    )
    sonar = ros_context_node(ros_context, f"sonar_{tag}")
    pub = sonar.create_publisher(Image, f"/s{tag}/image", 10)
    outputs: list[Image] = []
    sonar.create_subscription(Image, f"/son_{tag}/depth", outputs.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (adapter, recorder, sonar):
        executor.add_node(node)
    try:
        assert spin_until(executor, lambda: pub.get_subscription_count() >= 1)
        ok, message, episode_id = recorder.start_episode(["anchor"], "")
        assert ok, message
        image = np.repeat(beam_profile()[:, None], 16, axis=1)
        sent = []
        t0 = time.time_ns()  # a driver stamps with its clock (the recorder refuses 1970)
        for i in range(6):
            msg = numpy_to_image(image, "mono8")
            msg.header.frame_id = "sonar"
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t0 + i * 50_000_000, 10**9)
            pub.publish(msg)
            sent.append(msg.header)
            assert spin_until(executor, lambda n=i: len(outputs) > n)
        assert [o.header for o in outputs] == sent  # the input header, copied
        depth = image_to_numpy(outputs[0])
        assert outputs[0].encoding == "32FC1" and np.isnan(depth[:10]).all()
        assert np.allclose(depth[23:35], range_bins(60, 0, 6.0)[22])
        # every image and depth message reached the recorder's pairer (the last pair waits
        # there for a possibly closer partner until stop flushes it)
        pairer = recorder._session.pairer
        assert spin_until(executor, lambda: pairer.stats.pushed == {"rgb": 6, "depth": 6})
        changed = adapter.set_parameters([Parameter("range_max_m", value=3.0)])[0]
        refused = adapter.set_parameters([Parameter("range_min_m", value=5.0)])[0]
        assert changed.successful and adapter._geometry.range_max_m == 3.0
        assert not refused.successful and "range_min_m < range_max_m" in refused.reason
        ok, message, meta = recorder.stop_episode()
        assert ok and meta.frames == 6 and meta.encodings == {"rgb": "mono8", "depth": "32FC1"}
    finally:
        for node in (adapter, recorder, sonar):
            node.destroy_node()
        executor.shutdown()
    episode = Episode(tmp_path / episode_id)
    assert episode.meta.source == "sonar" and episode.labels == ["anchor"]
    frames = list(episode.frames())
    assert len(frames) == 6 and frames[0].rgb.shape == (60, 16, 3)
    assert np.array_equal(frames[0].rgb[:, :, 0], image)
    assert not frames[0].valid[:10].any() and frames[0].valid[10:50].all()


def ros_context_node(context, name: str):
    import rclpy

    return rclpy.create_node(name, context=context)


# ----------------------------------------------------------------------------- lifecycle


class SonarRig(LifecycleClient):
    """A SonarAdapterNode on unique topics, its lifecycle manager, a sonar publishing there
    and a subscriber of the adapter's depth output."""

    def __init__(self, context, **params) -> None:
        tag = uuid.uuid4().hex[:8]
        self.topic = f"/s{tag}/image"
        values_ = {"input_topic": self.topic, "mode": "polar", "range_max_m": 6.0,
                   "smooth_bins": 1, "qos.reliability": "reliable", "qos.depth": 50,
                   "stats_period": 0.1, **params}  # fmt: skip
        node = SonarAdapterNode(
            context=context,
            cli_args=["--ros-args", "-r", f"__node:=son_{tag}"],
            parameter_overrides=[Parameter(k, value=v) for k, v in values_.items()],
        )
        super().__init__(context, node, name=f"manager_{tag}")
        self.name = f"son_{tag}: sonar"
        self.pub = self.client.create_publisher(Image, self.topic, RELIABLE)
        self.depths: list[Image] = []
        self.client.create_subscription(Image, f"/son_{tag}/depth", self.depths.append, RELIABLE)
        self.t0 = time.time_ns()
        self.sent = 0

    def publish(self, n: int, encoding: str = "mono8") -> None:
        """``n`` pings at 10 Hz stamps, without spinning the adapter (they wait in its
        subscription)."""
        for _ in range(n):
            image = np.repeat(beam_profile()[:, None], 16, axis=1)
            if encoding == "mono8":
                msg = numpy_to_image(image, "mono8")
            else:  # e.g. a yuv422 rendering the adapter cannot read
                msg = numpy_to_image(np.zeros((60, 16, 2), np.uint8), encoding)
            stamp = self.t0 + self.sent * 100_000_000
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
            self.pub.publish(msg)
            self.sent += 1

    def subscribed(self, count: int) -> bool:
        return self.spin_until(lambda: self.pub.get_subscription_count() == count)


@pytest.fixture
def sonar_rig(ros_context):
    made: list[SonarRig] = []

    def make(**params) -> SonarRig:
        made.append(SonarRig(ros_context, **params))
        return made[-1]

    yield make
    for rig in made:
        rig.close()


def test_adapter_lifecycle_over_its_services(sonar_rig):
    rig = sonar_rig(autostart=False)
    assert rig.state() == "unconfigured" and rig.subscribed(0)
    stale = rig.diagnostic(rig.name, lambda s: s.level == DiagnosticStatus.STALE)
    assert stale.message == "unconfigured: waiting for configure"
    assert rig.transition(Transition.TRANSITION_CONFIGURE)
    assert rig.state() == "inactive" and rig.subscribed(0)
    assert rig.transition(Transition.TRANSITION_ACTIVATE)
    assert rig.state() == "active" and rig.subscribed(1)
    rig.publish(5)
    assert rig.spin_until(lambda: len(rig.depths) == 5)
    # a report that has seen all 5 (one made after 4 came in a loaded CI run)
    status = rig.diagnostic(
        rig.name,
        lambda s: s.message.startswith("converting") and values(s).get("published") == "5",
    )
    assert status.level == DiagnosticStatus.OK

    rig.publish(8)  # waiting in the subscription when deactivate comes: still converted
    assert rig.transition(Transition.TRANSITION_DEACTIVATE)
    assert rig.state() == "inactive" and rig.subscribed(0)
    assert rig.spin_until(lambda: len(rig.depths) == 13)
    assert [m.header.stamp for m in rig.depths] == sorted(
        (m.header.stamp for m in rig.depths), key=lambda t: (t.sec, t.nanosec)
    )
    assert rig.transition(Transition.TRANSITION_CLEANUP)
    assert rig.state() == "unconfigured" and rig.node._image_pub is None
    assert rig.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert rig.state() == "finalized"


def test_adapter_configure_fails_on_a_bad_geometry_and_reports_drops(sonar_rig):
    rig = sonar_rig(range_min_m=5.0, range_max_m=2.0)  # autostart: configure fails
    assert rig.state() == "unconfigured"
    status = rig.diagnostic(rig.name, lambda s: s.level == DiagnosticStatus.ERROR)
    assert status.message.startswith("unconfigured: configure failed: ")
    assert "range_min_m < range_max_m" in status.message
    assert rig.node.set_parameters([Parameter("range_max_m", value=8.0)])[0].successful
    assert rig.transition(Transition.TRANSITION_CONFIGURE)
    assert rig.transition(Transition.TRANSITION_ACTIVATE) and rig.subscribed(1)
    rig.publish(3)
    rig.publish(2, encoding="8UC2")
    rig.publish(1)
    assert rig.spin_until(lambda: len(rig.depths) == 4)
    status = rig.diagnostic(rig.name, lambda s: "dropped since the last report" in s.message)
    assert status.level == DiagnosticStatus.WARN
    # the totals once a report has seen all 6 (the WARN one may have come after 5 of them)
    status = rig.diagnostic(rig.name, lambda s: values(s).get("received") == "6")
    v = values(status)
    assert v["dropped bad_image"] == "2" and v["dropped bad_geometry"] == "0"
    assert v["published"] == "4" and v["input missing"] == "0"
