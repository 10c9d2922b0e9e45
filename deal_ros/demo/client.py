"""The demo's own rclpy node: talks to the camera and the recorder like an operator would.

``DemoClient`` owns a private rclpy context, node and executor; every wait spins it and
watches the child processes, so a node that dies ends the wait with one line naming its log.
``CameraControl`` switches the camera's take (parameter ``show``) and reads its status;
``RecorderControl`` calls ``~/start_episode`` / ``~/stop_episode`` and follows ``~/status``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from deal_ros.demo.children import Children
from deal_ros.errors import DealError

__all__ = ["CameraControl", "DemoClient", "RecorderControl"]


class DemoClient:
    """A node ``deal_demo`` in a context of its own (see the module docstring)."""

    def __init__(self, children: Children, name: str = "deal_demo") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.children = children
        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Spin until ``predicate()``; a dead child or ``timeout`` raises one clear line."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self.children.check()
            if time.monotonic() > deadline:
                raise DealError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, client: Any, request: Any, what: str, timeout: float = 60.0) -> Any:
        self.wait(client.service_is_ready, timeout, f"service {client.srv_name}")
        future = client.call_async(request)
        self.wait(future.done, timeout, f"the reply of {what}")
        if future.exception() is not None:
            raise DealError(f"{what} failed: {future.exception()}")
        return future.result()

    def close(self) -> None:
        import rclpy

        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)


def _latched(depth: int = 10) -> Any:
    from deal_ros.nodes._common import qos_profile

    return qos_profile("reliable", depth, "transient_local")


class CameraControl:
    """The demo camera seen from the demo (``/<name>/status``, ``/<name>/set_parameters``)."""

    def __init__(self, client: DemoClient, name: str = "deal_demo_camera") -> None:
        from rcl_interfaces.srv import SetParameters
        from std_msgs.msg import String

        self.client, self.name = client, name
        self.status: dict[str, Any] = {}
        client.node.create_subscription(String, f"/{name}/status", self._on_status, _latched(1))
        self.set_cli = client.node.create_client(SetParameters, f"/{name}/set_parameters")

    def _on_status(self, msg: Any) -> None:
        self.status = json.loads(msg.data)

    def wait_ready(self, timeout: float) -> None:
        """Until every take is rendered (a rendering error is one line)."""

        def ready() -> bool:
            if self.status.get("state") == "error":
                raise DealError(f"demo camera: {self.status.get('error')}")
            return self.status.get("state") == "ready"

        self.client.wait(ready, timeout, "the demo camera to render its takes")

    def show(self, class_name: str, timeout: float = 30.0) -> None:
        """Stream the take of ``class_name`` (parameter ``show``) and wait until it does."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=class_name)
        request = SetParameters.Request(parameters=[Parameter(name="show", value=value)])
        reply = self.client.call(self.set_cli, request, f"{self.name} show:={class_name}")
        result = reply.results[0]
        if not result.successful:
            raise DealError(f"demo camera refused show:={class_name}: {result.reason}")
        self.client.wait(
            lambda: self.status.get("showing") == class_name,
            timeout,
            f"the demo camera to show '{class_name}'",
        )

    def take_ended(self, class_name: str) -> bool:
        """Whether a ``once`` take of ``class_name`` has published all its frames."""
        st = self.status
        frames = int(st.get("take_frames", 0))
        return st.get("showing") == class_name and 0 < frames <= int(st.get("take_published", 0))


class RecorderControl:
    """``deal_recorder`` seen from the demo: services and ``~/status``."""

    def __init__(self, client: DemoClient, name: str = "deal_recorder") -> None:
        from deal_ros.msg import EpisodeStatus
        from deal_ros.srv import StartEpisode, StopEpisode

        self.client, self.name = client, name
        self.last: Any = None
        client.node.create_subscription(
            EpisodeStatus, f"/{name}/status", self._on_status, _latched(10)
        )
        self.start_cli = client.node.create_client(StartEpisode, f"/{name}/start_episode")
        self.stop_cli = client.node.create_client(StopEpisode, f"/{name}/stop_episode")

    def _on_status(self, msg: Any) -> None:
        self.last = msg

    def wait_ready(self, timeout: float) -> None:
        self.client.wait(
            lambda: self.start_cli.service_is_ready() and self.stop_cli.service_is_ready(),
            timeout,
            f"the services of {self.name}",
        )

    def start(self, labels: list[str], name: str = "") -> str:
        """StartEpisode; returns the episode id (a refusal is one line with the reason)."""
        from deal_ros.srv import StartEpisode

        request = StartEpisode.Request(labels=list(labels), name=name)
        reply = self.client.call(self.start_cli, request, f"{self.name}/start_episode")
        if not reply.success:
            raise DealError(f"{self.name}/start_episode refused: {reply.message}")
        return reply.episode_id

    def stop(self) -> Any:
        """StopEpisode; returns the reply (episode_id, frames, path)."""
        from deal_ros.srv import StopEpisode

        reply = self.client.call(self.stop_cli, StopEpisode.Request(), f"{self.name}/stop_episode")
        if not reply.success:
            raise DealError(f"{self.name}/stop_episode failed: {reply.message}")
        return reply

    def frames(self, episode_id: str) -> int:
        """Frames of ``episode_id`` in the latest status (0 before the first one)."""
        last = self.last
        if last is None or last.episode_id != episode_id:
            return 0
        return int(last.frames)
