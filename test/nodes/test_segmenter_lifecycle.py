"""deal_segmenter as a lifecycle node, driven over real rclpy services from a client node
(lifecycle_msgs ChangeState / GetState, as `ros2 lifecycle set` and Nav2's manager do), and its
health on /diagnostics."""

from __future__ import annotations

import json

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from deal_ros.core.image_codec import numpy_to_image
from deal_ros.msg import Segmentation
from deal_ros.nodes.segmenter import SegmenterNode

from deploy_fixtures import cam_bundle, copy_bundle, scene_images
from rosutil import spin_until

NODE = "/deal_segmenter"
SIZE = (120, 160)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class Supervisor:
    """A client node that drives the segmenter's lifecycle over its services and watches it."""

    def __init__(self, context, **params):
        params.setdefault("threads", 1)
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = SegmenterNode(context=context, parameter_overrides=overrides)
        self.client = rclpy.create_node("lifecycle_manager", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.change = self.client.create_client(ChangeState, f"{NODE}/change_state")
        self.get = self.client.create_client(GetState, f"{NODE}/get_state")
        self.got: dict[str, list] = {"segmentation": [], "class_names": [], "diagnostics": []}
        self.client.create_subscription(Segmentation, f"{NODE}/segmentation",
                                        self.got["segmentation"].append, RELIABLE)  # fmt: skip
        self.client.create_subscription(DiagnosticArray, "/diagnostics",
                                        self.got["diagnostics"].append, RELIABLE)  # fmt: skip
        self.camera = None
        assert self.spin_until(
            lambda: self.change.service_is_ready() and self.get.service_is_ready()
        )

    def spin_until(self, predicate, timeout: float = 20.0) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def call(self, client, request):
        future = client.call_async(request)
        assert self.spin_until(future.done), "no service response"
        return future.result()

    def state(self) -> str:
        return self.call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        return self.call(
            self.change, ChangeState.Request(transition=Transition(id=transition_id))
        ).success

    def watch_class_names(self) -> None:
        self.got["class_names"] = []
        self.client.create_subscription(String, f"{NODE}/class_names",
                                        self.got["class_names"].append, LATCHED)  # fmt: skip

    def start_camera(self) -> None:
        self.camera = self.client.create_publisher(
            Image, "/camera/camera/color/image_raw", RELIABLE
        )

    def frame(self, sec: int) -> Segmentation | None:
        """Send frame ``sec`` (the segmenter subscribed) and wait for its segmentation."""
        msg = numpy_to_image(scene_images(1, SIZE, seed=sec)[0], "rgb8")
        msg.header.stamp.sec = sec
        self.camera.publish(msg)
        ok = self.spin_until(
            lambda: any(m.header.stamp.sec == sec for m in self.got["segmentation"])
        )
        assert ok, f"no segmentation for {sec}: {self.node.stats_snapshot()}"

    def subscribed(self, count: int) -> bool:
        """The camera sees ``count`` subscriptions (the graph caught up)."""
        return self.spin_until(lambda: self.camera.get_subscription_count() == count)

    def diagnostic(self, predicate) -> DiagnosticStatus:
        """The first /diagnostics status of the segmenter satisfying ``predicate``."""

        def found():
            for array in self.got["diagnostics"]:
                for status in array.status:
                    if status.name == "deal_segmenter: segmentation" and predicate(status):
                        return status
            return None

        assert self.spin_until(lambda: found() is not None), [
            (s.level, s.message) for a in self.got["diagnostics"] for s in a.status
        ]
        return found()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.client.destroy_node()


@pytest.fixture
def supervisor_factory(ros_context):
    made: list[Supervisor] = []

    def make(**params) -> Supervisor:
        made.append(Supervisor(ros_context, **params))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_the_model_loads_before_the_camera_starts_then_every_transition(supervisor_factory):
    s = supervisor_factory(model=str(cam_bundle().path), autostart=False, stats_period=0.2)
    assert s.state() == "unconfigured" and s.node.runtime is None
    s.diagnostic(lambda st: st.level == DiagnosticStatus.STALE and "unconfigured" in st.message)

    assert s.transition(Transition.TRANSITION_CONFIGURE)  # the model loads, no camera yet
    assert s.state() == "inactive" and s.node.runtime is not None
    s.watch_class_names()  # latched once configured
    assert s.spin_until(lambda: s.got["class_names"])
    assert json.loads(s.got["class_names"][-1].data)["class_names"] == ["background", "mug", "box"]
    status = s.diagnostic(lambda st: "inactive" in st.message)
    assert status.level == DiagnosticStatus.OK and _values(status)["model"] == str(
        cam_bundle().path
    )

    s.start_camera()  # the camera comes up while the node is inactive: not consumed
    assert s.subscribed(0)
    assert s.transition(Transition.TRANSITION_ACTIVATE)
    assert s.state() == "active" and s.subscribed(1)
    s.frame(1)
    s.frame(2)
    status = s.diagnostic(lambda st: st.message.startswith("processing"))
    values = _values(status)
    assert status.level == DiagnosticStatus.OK and values["provider"] == "CPUExecutionProvider"
    assert int(values["processed"]) >= 2 and float(values["processed Hz"]) >= 0
    assert values["image topic"] == "/camera/camera/color/image_raw"

    assert s.transition(Transition.TRANSITION_DEACTIVATE)  # stop: unsubscribed, model kept
    assert s.state() == "inactive" and s.subscribed(0) and s.node.runtime is not None
    assert s.transition(Transition.TRANSITION_ACTIVATE)  # and again
    assert s.subscribed(1)
    s.frame(3)

    assert s.transition(Transition.TRANSITION_DEACTIVATE)
    assert s.transition(Transition.TRANSITION_CLEANUP)  # the model is unloaded
    assert s.state() == "unconfigured" and s.node.runtime is None and s.node.pubs == {}
    assert s.spin_until(lambda: s.client.count_publishers(f"{NODE}/class_names") == 0)
    assert s.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert s.state() == "finalized"
    stats = s.node.stats_snapshot()
    assert stats["processed"] == 3 and stats["errors"]["failed"] == 0


def test_configure_fails_on_a_bad_model_and_succeeds_once_it_is_fixed(supervisor_factory, tmp_path):
    broken = copy_bundle(cam_bundle().path, tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"\0" * 1000)
    s = supervisor_factory(model=str(broken), autostart=False, stats_period=0.2)
    assert not s.transition(Transition.TRANSITION_CONFIGURE)
    assert s.state() == "unconfigured" and s.node.runtime is None
    status = s.diagnostic(lambda st: st.level == DiagnosticStatus.ERROR)
    assert "configure failed: no model loaded" in status.message and "model.onnx" in status.message
    # unconfigured: the parameter is only stored (configure loads it; no autostart retry)
    assert s.node.set_parameters([Parameter("model", value=str(cam_bundle().path))])[0].successful
    assert s.state() == "unconfigured"
    assert s.transition(Transition.TRANSITION_CONFIGURE) and s.state() == "inactive"
    assert s.transition(Transition.TRANSITION_ACTIVATE)
    s.start_camera()
    assert s.subscribed(1)
    s.frame(5)


def test_shutdown_from_active_stops_everything(supervisor_factory):
    s = supervisor_factory(model=str(cam_bundle().path))  # autostart: active at once
    assert s.state() == "active"
    s.start_camera()
    assert s.subscribed(1)
    s.frame(7)
    assert s.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert s.state() == "finalized" and s.subscribed(0)
    assert s.node.runtime is None and s.node.worker is None
