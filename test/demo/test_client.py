"""The demo's rclpy client against real services whose replies are lost.

A server here raises in its callback for the requests it is told to lose, so rclpy sends no
response: to the client that is what a reply Fast DDS dropped looks like (the CI failure of
stop 22: "timed out after 60 s waiting for the reply of deal_recorder/start_episode").
"""

from __future__ import annotations

import contextlib
import threading

import pytest

from deal_ros.demo.children import Children
from deal_ros.demo.client import DemoClient, RecorderControl
from deal_ros.errors import DealError


class _LostReplyError(Exception):
    pass


class LossyServer:
    """``/lossy/stop_episode`` (deal_ros/srv/StopEpisode) in a context and thread of its own;
    the first ``lose`` requests get no reply, the others success unless ``refuse``."""

    def __init__(self, lose: int, refuse: bool = False) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from deal_ros.srv import StopEpisode

        self.lose, self.refuse, self.received = lose, refuse, 0
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("lossy", context=self.context)
        self.node.create_service(StopEpisode, "/lossy/stop_episode", self._serve)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _serve(self, request, response):
        self.received += 1
        if self.received <= self.lose:
            raise _LostReplyError
        response.success, response.episode_id = not self.refuse, f"reply-{self.received}"
        return response

    def _spin(self) -> None:
        while self.running:
            with contextlib.suppress(_LostReplyError):
                self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        import rclpy

        self.running = False
        self.thread.join(5)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def demo_client(tmp_path):
    client = DemoClient(Children(tmp_path), name="lossy_client")
    yield client
    client.close()


@pytest.fixture
def lossy():
    """``lossy(lose)`` starts a :class:`LossyServer`; all are closed after the test."""
    servers: list[LossyServer] = []

    def start(lose: int, refuse: bool = False) -> LossyServer:
        servers.append(LossyServer(lose, refuse))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _stop_client(demo_client):
    from deal_ros.srv import StopEpisode

    return demo_client.node.create_client(StopEpisode, "/lossy/stop_episode"), StopEpisode


def test_a_lost_reply_is_asked_for_again(demo_client, lossy):
    server = lossy(1)
    cli, srv = _stop_client(demo_client)
    reply = demo_client.call(cli, srv.Request(), "lossy/stop_episode", 30.0, resend_s=0.5)
    assert (reply.success, reply.episode_id, server.received) == (True, "reply-2", 2)


def test_a_request_that_landed_is_not_sent_again(demo_client, lossy):
    server = lossy(1)
    cli, srv = _stop_client(demo_client)
    landed = srv.Response(success=True, episode_id="from-status")
    reply = demo_client.call(
        cli,
        srv.Request(),
        "lossy/stop_episode",
        30.0,
        resend_s=0.5,
        landed=lambda: landed if server.received else None,
    )
    assert reply.episode_id == "from-status"
    demo_client.spin_for(0.5)
    assert server.received == 1


def test_a_resent_request_refused_because_the_lost_one_landed_is_read_from_landed(
    demo_client, lossy
):
    server = lossy(1, refuse=True)  # e.g. "not recording": the lost stop had stopped it
    cli, srv = _stop_client(demo_client)
    landed = srv.Response(success=True, episode_id="from-status")
    reply = demo_client.call(
        cli,
        srv.Request(),
        "lossy/stop_episode",
        30.0,
        resend_s=0.5,
        landed=lambda: landed if server.received >= 2 else None,
    )
    assert (reply.episode_id, server.received) == ("from-status", 2)
    no_landed = demo_client.call(cli, srv.Request(), "lossy/stop_episode", 30.0, resend_s=0.5)
    assert (no_landed.success, no_landed.episode_id) == (False, "reply-3")  # a refusal stays one


def test_no_reply_at_all_is_one_line_naming_the_requests(demo_client, lossy):
    server = lossy(100)
    cli, srv = _stop_client(demo_client)
    with pytest.raises(DealError, match=r"reply of lossy/stop_episode \(\d+ requests sent\)"):
        demo_client.call(cli, srv.Request(), "lossy/stop_episode", 1.5, resend_s=0.5)
    assert server.received >= 3


def _status(state: str, episode_id: str = "", labels=(), frames: int = 0, path: str = ""):
    from deal_ros.msg import EpisodeStatus

    return EpisodeStatus(
        state=state, episode_id=episode_id, labels=list(labels), frames=frames, path=path
    )


def test_the_recorder_status_tells_a_started_and_a_stopped_episode(demo_client):
    recorder = RecorderControl(demo_client, name="no_recorder")
    assert recorder.started(["mug"], "mug-demo") is None
    recorder._on_status(_status("idle"))
    assert recorder.stopped("mug-demo") is None  # never seen recording
    recorder._on_status(_status("recording", "mug-demo", ["mug"], 3, "/eps/mug-demo"))
    assert recorder.started(["mug"], "mug-demo").episode_id == "mug-demo"
    assert recorder.started(["box"], "mug-demo") is None
    assert recorder.started(["mug"], "other") is None
    assert recorder.stopped("mug-demo") is None  # still recording
    recorder._on_status(_status("idle", frames=24))
    reply = recorder.stopped("mug-demo")
    assert (reply.episode_id, reply.frames, reply.path) == ("mug-demo", 24, "/eps/mug-demo")
    assert recorder.stopped("box-demo") is None
