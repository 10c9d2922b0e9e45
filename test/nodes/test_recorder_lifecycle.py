"""deal_recorder as a lifecycle node, driven over its real lifecycle services from a client node
(lifecycle_msgs ChangeState / GetState), and its health on /diagnostics.

The recorder spins on an executor of its own (test/lifecycle_client.py): frames published
while it does not spin wait in its subscriptions, so a deactivate can find frames that reached
the node but were not yet taken; none of them is lost.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_client import RELIABLE, LifecycleClient, Transition, values
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from deal_ros.core.image_codec import numpy_to_image
from deal_ros.episodes.meta import load_meta
from deal_ros.episodes.store import Episode
from deal_ros.nodes.recorder import RecorderNode
from deal_ros.srv import StartEpisode, StopEpisode

from recorder_driver import frame

NS = 1_000_000_000
PERIOD = NS // 30
H, W = 60, 80


class Recording(LifecycleClient):
    """A RecorderNode on unique topics, a lifecycle manager, a camera and the services."""

    def __init__(self, context, tmp_path: Path, **params) -> None:
        tag = uuid.uuid4().hex[:8]
        self.topics = {"rgb": f"/l{tag}/rgb", "depth": f"/l{tag}/depth"}
        values_ = {
            "episodes_dir": str(tmp_path / "episodes"),
            "rgb_topic": self.topics["rgb"],
            "depth_topic": self.topics["depth"],
            "camera_info_topic": "",
            "min_free_mb": 0.0,
            "qos.depth": 100,
            "status_period_s": 0.1,
            **params,
        }
        node = RecorderNode(
            context=context,
            cli_args=["--ros-args", "-r", f"__node:=rec_{tag}"],
            parameter_overrides=[Parameter(k, value=v) for k, v in values_.items()],
        )
        super().__init__(context, node, name=f"manager_{tag}")
        self.name = f"rec_{tag}: recording"
        self.pubs = {s: self.client.create_publisher(Image, t, RELIABLE)
                     for s, t in self.topics.items()}  # fmt: skip
        self.start_cli = self.client.create_client(StartEpisode, f"/rec_{tag}/start_episode")
        self.stop_cli = self.client.create_client(StopEpisode, f"/rec_{tag}/stop_episode")
        # stamps follow the wall clock as a camera's do, 2 s in the past: a burst of them is a
        # backlog to the stamp gate, not a jump ahead
        self.next_stamp = time.time_ns() - 2 * NS
        self.sent = 0

    def subscribed(self, count: int) -> bool:
        return self.spin_until(
            lambda: all(p.get_subscription_count() == count for p in self.pubs.values())
        )

    def publish(self, n: int, *, colour_every: int = 1) -> list[int]:
        """Publish ``n`` frames without spinning the recorder (they wait in its
        subscriptions); every ``colour_every``-th colour frame is sent (1: all)."""
        stamps = []
        for _ in range(n):
            rgb, depth = frame(self.sent, H, W)
            stamp, self.next_stamp = self.next_stamp, self.next_stamp + PERIOD
            for stream, arr, enc in (("rgb", rgb, "rgb8"), ("depth", depth, "16UC1")):
                if stream == "rgb" and self.sent % colour_every:
                    continue
                msg = numpy_to_image(arr, enc)
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NS)
                self.pubs[stream].publish(msg)
            stamps.append(stamp)
            self.sent += 1
        return stamps

    def start(self, name: str, labels=("mug",)):
        return self.call(self.start_cli, StartEpisode.Request(labels=list(labels), name=name))

    def stop(self):
        return self.call(self.stop_cli, StopEpisode.Request())

    def recorder(self, predicate) -> DiagnosticStatus:
        return self.diagnostic(self.name, predicate)


@pytest.fixture
def recording(ros_context, tmp_path):
    made: list[Recording] = []

    def make(**params) -> Recording:
        made.append(Recording(ros_context, tmp_path, **params))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _stamps(path: str) -> list[int]:
    return [f.stamp_ns for f in Episode(Path(path)).frames()]


def test_deactivate_during_an_episode_loses_no_frame_received(recording):
    r = recording(lifecycle_autostart=False)
    assert r.state() == "unconfigured" and r.subscribed(0)
    status = r.recorder(lambda s: s.level == DiagnosticStatus.STALE)
    assert status.message == "unconfigured: waiting for configure"
    reply = r.start("early")
    assert not reply.success and "the recorder is unconfigured, not active" in reply.message
    assert "ros2 lifecycle set" in reply.message and "configure" in reply.message

    assert r.transition(Transition.TRANSITION_CONFIGURE)
    assert r.state() == "inactive" and r.subscribed(0)  # the store is open, nothing subscribed
    reply = r.start("early")
    assert not reply.success and "inactive" in reply.message and "activate" in reply.message
    assert not (Path(r.node.get_parameter("episodes_dir").value) / "early").exists()

    assert r.transition(Transition.TRANSITION_ACTIVATE)
    assert r.state() == "active" and r.subscribed(1)
    assert r.start("first").success
    sent = r.publish(40)  # in the recorder's subscriptions, not yet taken
    assert r.transition(Transition.TRANSITION_DEACTIVATE)
    assert r.state() == "inactive" and r.subscribed(0)
    meta = load_meta(Path(r.node.get_parameter("episodes_dir").value) / "first")
    assert meta.state == "complete" and meta.stop_reason == "deactivate"
    assert meta.frames == 40 and meta.dropped_total == 0, meta.dropped
    assert _stamps(str(meta_path(r, "first"))) == sent  # every frame, in order
    assert r.node.drained > 0  # frames still queued at the transition were taken, not lost
    assert r.node.status().state == "idle" and "inactive" in r.node.status().message

    assert r.transition(Transition.TRANSITION_ACTIVATE)  # a new episode after re-activation
    assert r.subscribed(1)
    assert r.start("second").success
    sent = r.publish(10)
    assert r.spin_until(lambda: r.node.status().frames >= 9)
    stop = r.stop()
    assert stop.success and stop.frames == 10 and _stamps(stop.path) == sent
    assert r.transition(Transition.TRANSITION_DEACTIVATE)
    assert r.transition(Transition.TRANSITION_CLEANUP)
    assert r.state() == "unconfigured" and r.node._store is None
    assert r.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert r.state() == "finalized"
    assert r.recorder(lambda s: s.message == "finalized").level == DiagnosticStatus.STALE


def meta_path(r: Recording, name: str) -> Path:
    return Path(r.node.get_parameter("episodes_dir").value) / name


def test_shutdown_while_recording_closes_the_episode(recording):
    """lifecycle_autostart (default) activates at once, autostart starts an episode there (as
    ros2 run and the launch file do); shutdown from active keeps every frame received."""
    r = recording(autostart=True, labels=["mug"])
    assert r.state() == "active" and r.subscribed(1)
    status = r.node.status()
    assert status.state == "recording" and status.labels == ["mug"]
    sent = r.publish(20)
    assert r.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert r.state() == "finalized" and r.subscribed(0)
    episode_id = status.episode_id
    meta = load_meta(meta_path(r, episode_id))
    assert meta.state == "complete" and meta.stop_reason == "shutdown" and meta.frames == 20
    assert _stamps(str(meta_path(r, episode_id))) == sent


def test_configure_fails_on_an_unusable_folder_and_retries_once_it_is_fixed(recording, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    r = recording(episodes_dir=str(not_a_folder / "episodes"))  # lifecycle autostart fails
    assert r.state() == "unconfigured"
    status = r.recorder(lambda s: s.level == DiagnosticStatus.ERROR)
    assert status.message == (
        f"unconfigured: configure failed: episodes_dir '{not_a_folder / 'episodes'}' cannot be "
        f"made: '{not_a_folder}' is not a folder"
    )
    reply = r.start("x")
    assert not reply.success and "configure failed" in reply.message
    good = tmp_path / "good"
    assert r.node.set_parameters([Parameter("episodes_dir", value=str(good))])[0].successful
    assert r.state() == "active"  # the failed autostart was retried
    assert r.start("x").success and r.stop().success
    assert (good / "x" / "episode.yaml").is_file()


def test_diagnostics_report_rates_drops_upstream_loss_and_disk(recording):
    r = recording(nominal_rate_hz=30.0)  # the camera's rate: camera_info would give it
    assert r.state() == "active" and r.subscribed(1)
    status = r.recorder(lambda s: s.message == "idle: ready for start_episode")
    assert status.level == DiagnosticStatus.OK
    v = values(status)
    assert v["lifecycle state"] == "active" and v["episode state"] == "idle"
    assert float(v["episodes disk free MB"]) > 0 and v["rgb topic"] == r.topics["rgb"]

    assert r.start("lossy").success
    r.publish(90, colour_every=5)  # 4 colour frames of 5 never sent: lost upstream
    # once every frame sent was taken (90 depth frames received)
    status = r.recorder(
        lambda s: "upstream loss rgb" in s.message and values(s)["received depth"] == "90"
    )
    v = values(status)
    assert status.level == DiagnosticStatus.WARN and "check the QoS" in status.message
    assert status.message.startswith("recording 'lossy': ")
    assert float(v["upstream loss rgb"]) > 0.5 and float(v["upstream loss depth"]) == 0.0
    assert int(v["upstream missing rgb"]) >= 60 and int(v["dropped no_match"]) >= 60
    assert int(v["received depth"]) == 90 and int(v["frames"]) >= 17
    for key in ("received rgb Hz", "written Hz", "dropped Hz", "invalid malformed", "bytes"):
        assert key in v, key
    stop = r.stop()
    assert stop.success and stop.frames == 18
    r.diagnostics.clear()
    status = r.recorder(lambda s: s.message == "idle: ready for start_episode")
    assert values(status)["frames"] == "18"  # the last episode's numbers while idle
