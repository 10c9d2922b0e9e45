"""The demo's own rclpy node: talks to the camera and the recorder like an operator would.

``DemoClient`` owns a private rclpy context, node and executor; every wait spins it and
watches the child processes, so a node that dies ends the wait with one line naming its log.
``CameraControl`` switches the camera's take (parameter ``show``) and reads its status;
``RecorderControl`` calls ``~/start_episode`` / ``~/stop_episode`` and follows ``~/status``.

A service reply can be lost: Fast DDS drops a response when the server's response writer has
not matched the client's reader within 100 ms ("failed to send response (timeout): client
will not receive response" in the server's log), although the client already sees the
service as ready; on a loaded machine the first call after start-up hits it. ``call`` then
sends the request again after ``resend_s``; for a request that is not idempotent the caller
passes ``landed``, which tells from the server's status whether the lost one took effect.
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

    def wait_until(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Spin until ``predicate()`` (True) or ``seconds`` pass (False); a dead child raises."""
        deadline = time.monotonic() + seconds
        while not predicate():
            self.children.check()
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Spin until ``predicate()``; a dead child or ``timeout`` raises one clear line."""
        if not self.wait_until(predicate, timeout):
            raise DealError(f"timed out after {timeout:.0f} s waiting for {what}")

    def call(
        self,
        client: Any,
        request: Any,
        what: str,
        timeout: float = 60.0,
        resend_s: float = 5.0,
        landed: Callable[[], Any] | None = None,
    ) -> Any:
        """The reply to ``request``. When none came within ``resend_s`` (a lost reply, see the
        module docstring), ``landed()`` may return a reply built from the server's status (the
        lost request took effect); if it returns None the request is sent again. Every request
        sent stays awaited: the first reply to any of them is the answer, unless it refuses a
        resent request (``success`` false) that ``landed()`` shows took effect before."""
        self.wait(client.service_is_ready, timeout, f"service {client.srv_name}")
        deadline = time.monotonic() + timeout
        futures: list[Any] = []
        while True:
            futures.append(client.call_async(request))
            window = min(resend_s, max(deadline - time.monotonic(), 0.0))
            if self.wait_until(lambda: any(f.done() for f in futures), window):
                reply = _result(next(f for f in futures if f.done()), what)
                if len(futures) > 1 and landed is not None and not getattr(reply, "success", True):
                    reply = landed() or reply  # refused because the lost request took effect
                return reply
            reply = landed() if landed is not None else None
            if reply is not None:
                return reply
            if time.monotonic() >= deadline:
                raise DealError(
                    f"timed out after {timeout:.0f} s waiting for the reply of {what} "
                    f"({len(futures)} requests sent)"
                )

    def close(self) -> None:
        import rclpy

        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)


def _result(future: Any, what: str) -> Any:
    if future.exception() is not None:
        raise DealError(f"{what} failed: {future.exception()}")
    return future.result()


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
    """``deal_recorder`` seen from the demo: services and ``~/status``. A lost reply (module
    docstring) is told apart from a lost request by the status: a started episode shows as
    recording, a stopped one as the recorder gone idle after it."""

    def __init__(self, client: DemoClient, name: str = "deal_recorder") -> None:
        from deal_ros.msg import EpisodeStatus
        from deal_ros.srv import StartEpisode, StopEpisode

        self.client, self.name = client, name
        self.last: Any = None
        self.recording: Any = None  # the latest status while an episode was recording
        client.node.create_subscription(
            EpisodeStatus, f"/{name}/status", self._on_status, _latched(10)
        )
        self.start_cli = client.node.create_client(StartEpisode, f"/{name}/start_episode")
        self.stop_cli = client.node.create_client(StopEpisode, f"/{name}/stop_episode")

    def _on_status(self, msg: Any) -> None:
        self.last = msg
        if msg.state == msg.STATE_RECORDING and msg.episode_id:
            self.recording = msg

    def wait_ready(self, timeout: float) -> None:
        """Until both services are ready and the first status came (the recorder has
        discovered this node too)."""
        self.client.wait(
            lambda: (
                self.start_cli.service_is_ready()
                and self.stop_cli.service_is_ready()
                and self.last is not None
            ),
            timeout,
            f"the services and status of {self.name}",
        )

    def started(self, labels: list[str], name: str = "") -> Any:
        """A StartEpisode reply from the status when an episode of ``labels`` (named ``name``)
        is recording, else None."""
        from deal_ros.srv import StartEpisode

        st = self.last
        if st is None or st.state != st.STATE_RECORDING or list(st.labels) != list(labels):
            return None
        if name and st.episode_id != name:
            return None
        return StartEpisode.Response(
            success=True, message=f"recording to {st.path}", episode_id=st.episode_id
        )

    def stopped(self, episode_id: str) -> Any:
        """A StopEpisode reply from the status when ``episode_id`` was recording and the
        recorder is idle since, else None."""
        from deal_ros.srv import StopEpisode

        st, rec = self.last, self.recording
        if st is None or rec is None or rec.episode_id != episode_id:
            return None
        if st.state != st.STATE_IDLE:
            return None
        return StopEpisode.Response(
            success=True,
            message=f"episode '{episode_id}' closed",
            episode_id=episode_id,
            frames=st.frames,
            path=rec.path,
            dropped=st.dropped,
            upstream_loss=st.upstream_loss,
        )

    def start(self, labels: list[str], name: str = "") -> str:
        """StartEpisode; returns the episode id (a refusal is one line with the reason)."""
        from deal_ros.srv import StartEpisode

        request = StartEpisode.Request(labels=list(labels), name=name)
        what = f"{self.name}/start_episode"
        reply = self.client.call(
            self.start_cli, request, what, landed=lambda: self.started(labels, name)
        )
        if not reply.success:
            raise DealError(f"{what} refused: {reply.message}")
        return reply.episode_id

    def stop(self, episode_id: str) -> Any:
        """StopEpisode of ``episode_id``; returns the reply (episode_id, frames, path)."""
        from deal_ros.srv import StopEpisode

        what = f"{self.name}/stop_episode"
        reply = self.client.call(
            self.stop_cli, StopEpisode.Request(), what, landed=lambda: self.stopped(episode_id)
        )
        if not reply.success:
            raise DealError(f"{what} failed: {reply.message}")
        return reply

    def frames(self, episode_id: str) -> int:
        """Frames of ``episode_id`` in the latest status (0 before the first one)."""
        last = self.last
        if last is None or last.episode_id != episode_id:
            return 0
        return int(last.frames)
