"""The generated deal_ros messages and services, used through real rclpy."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.serialization import deserialize_message, serialize_message

from deal_ros.msg import EpisodeStatus, Segmentation
from deal_ros.srv import StartEpisode, StopEpisode

from rosutil import spin_until, wait_for_subscribers


def test_segmentation_message_round_trips_through_cdr():
    msg = Segmentation()
    msg.header.frame_id = "camera_color_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    msg.class_names = ["background", "mug"]
    msg.class_scores = [0.1, 0.9]
    msg.mask.height, msg.mask.width, msg.mask.encoding, msg.mask.step = 2, 3, "mono8", 3
    msg.mask.data = bytes([0, 1, 1, 0, 0, 1])

    back = deserialize_message(serialize_message(msg), Segmentation)

    assert back.header.frame_id == "camera_color_optical_frame"
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (12, 345)
    assert list(back.class_names) == ["background", "mug"]
    np.testing.assert_allclose(back.class_scores, [0.1, 0.9], rtol=1e-6)
    assert bytes(back.mask.data) == bytes([0, 1, 1, 0, 0, 1])


def test_episode_status_constants_and_fields():
    status = EpisodeStatus(
        episode_id="mug-001", labels=["mug"], state=EpisodeStatus.STATE_RECORDING
    )
    status.frames, status.dropped, status.bytes = 120, 3, 2**40
    back = deserialize_message(serialize_message(status), EpisodeStatus)
    assert back.state == "recording"
    assert {EpisodeStatus.STATE_IDLE, EpisodeStatus.STATE_ERROR} == {"idle", "error"}
    assert (back.frames, back.dropped, back.bytes) == (120, 3, 2**40)
    assert list(back.labels) == ["mug"]


def test_status_topic_and_services_between_two_nodes(ros_context):
    import rclpy

    server = rclpy.create_node("deal_recorder", context=ros_context)
    client_node = rclpy.create_node("operator", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(server)
    executor.add_node(client_node)
    state = {"labels": None}

    def start(request, response):
        state["labels"] = list(request.labels)
        response.success, response.episode_id = True, request.name or "ep-1"
        response.message = f"recording {', '.join(request.labels)}"
        return response

    def stop(_request, response):
        response.success, response.episode_id, response.frames = True, "ep-1", 42
        response.path = "/tmp/episodes/ep-1"
        return response

    server.create_service(StartEpisode, "~/start_episode", start)
    server.create_service(StopEpisode, "~/stop_episode", stop)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    status_pub = server.create_publisher(EpisodeStatus, "~/status", latched)
    received: list[EpisodeStatus] = []
    client_node.create_subscription(
        EpisodeStatus, "/deal_recorder/status", received.append, latched
    )
    start_client = client_node.create_client(StartEpisode, "/deal_recorder/start_episode")
    stop_client = client_node.create_client(StopEpisode, "/deal_recorder/stop_episode")
    try:
        assert start_client.wait_for_service(timeout_sec=10.0)
        future = start_client.call_async(StartEpisode.Request(labels=["mug", "box"], name="demo"))
        assert spin_until(executor, future.done)
        assert future.result().success and future.result().episode_id == "demo"
        assert state["labels"] == ["mug", "box"]

        assert wait_for_subscribers(executor, status_pub)
        status_pub.publish(EpisodeStatus(episode_id="demo", state="recording", frames=7))
        assert spin_until(executor, lambda: bool(received))
        assert received[-1].frames == 7 and received[-1].episode_id == "demo"

        future = stop_client.call_async(StopEpisode.Request())
        assert spin_until(executor, future.done)
        assert (future.result().frames, future.result().path) == (42, "/tmp/episodes/ep-1")
    finally:
        executor.shutdown()
        server.destroy_node()
        client_node.destroy_node()


@pytest.mark.parametrize("name", ["deal", "deal-recorder", "deal-segmenter", "deal-sonar-adapter"])
def test_console_scripts_are_declared(name, repo_root):
    import tomllib

    scripts = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["scripts"]
    assert name in scripts
    assert (repo_root / "scripts" / name).exists(), f"scripts/{name} (installed by CMake) missing"
