"""The recorder node in its own process, fed by a camera driver process, driven through its
real services (RealSense-like streams), and in this process (keyframes, operator and detector
boxes). Faults and bad input: faults/test_recorder.py."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rclpy.executors import SingleThreadedExecutor
from rosbags.rosbag2 import Reader

from deal_ros.episodes.meta import BAG_TOPICS, load_meta
from deal_ros.episodes.store import Episode
from deal_ros.srv import StartEpisode

from recorder_process import driver, finish, go, manifest, recorder_factory
from rosutil import spin_until

NS = 1_000_000_000
PACE = 50_000_000  # the in-process tests publish a frame every 50 ms, stamped so


@pytest.fixture
def recorders(ros_context, tmp_path):
    yield from recorder_factory(ros_context, tmp_path)


def test_records_realsense_streams_from_another_process(recorders, tmp_path):
    # KEEP_ALL publisher and a deep subscription queue: on a busy test machine the transport
    # may not lose frames, so the counts below are exact (the bench measures keep-last loss)
    rec = recorders(**{"qos.depth": 100})
    cam = driver(
        rec,
        tmp_path,
        "--keep-all",
        "--count",
        "100",
        "--width",
        "848",
        "--height",
        "480",
        "--drop-color-every",
        "13",
        "--jitter-ms",
        "3",
        "--info-topic",
        rec.topics["info"],
    )
    try:
        reply = rec.start(["mug"], name="mug-1")
        assert reply.success and reply.episode_id == "mug-1", reply.message
        assert rec.wait_status(lambda s: s.state == "recording").labels == ["mug"]
        go(cam)
        assert finish(cam) == 0
    finally:
        cam.kill()
        cam.wait(10)
    sent = manifest(rec, tmp_path)
    expected = {i for i, _ in sent["rgb"]} & {i for i, _ in sent["depth"]}
    assert len(expected) == 93
    # the last pair may wait for a later colour frame (the pairer's rule); stop flushes it
    live = rec.wait_status(lambda s: s.state == "recording" and s.frames >= len(expected) - 1)
    assert live.episode_id == "mug-1" and live.bytes > 93 * 2_000_000
    reply = rec.stop()
    assert reply.success and reply.frames == len(expected), (reply.message, rec.output())
    assert rec.wait_status(lambda s: s.state == "idle").dropped == 7  # the colourless depths

    episode = Episode(Path(reply.path))
    meta = episode.meta
    assert meta.labels == ["mug"] and meta.state == "complete" and meta.stop_reason == "service"
    assert meta.size == {"height": 480, "width": 848}
    assert meta.encodings == {"rgb": "rgb8", "depth": "16UC1"}
    assert meta.dropped["no_match"] == 7 and meta.dropped_total == 7
    assert 0.93 < meta.depth_valid_fraction < 0.95  # the zero band is 1/16 of the width
    stamps = {stamp: i for i, stamp in sent["rgb"]}
    seen = []
    for f in episode.frames():
        i = stamps[f.stamp_ns]
        assert np.all(f.rgb[::97, ::101, 0] == i % 256) and np.allclose(
            f.depth_m[0, 60], (500 + i) / 1e3
        )
        assert f.labels == ("mug",) and f.camera_info.k[0] == 600.0
        seen.append(i)
    assert seen == sorted(expected)
    with Reader(episode.bag_dir) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts[BAG_TOPICS["rgb"]] == counts[BAG_TOPICS["depth"]] == len(expected)
    with next(episode.bag_dir.glob("*.mcap")).open("rb") as f:
        topics = [c.topic for _s, c, _m in make_reader(f).iter_messages()]
    assert topics.count(BAG_TOPICS["depth"]) == len(expected)


class InProcess:
    """A RecorderNode in this process on unique topics, a camera node publishing rgb + depth
    there, and one executor spinning both."""

    def __init__(self, context, tmp_path: Path, **params) -> None:
        import rclpy
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image

        from deal_ros.nodes.recorder import RecorderNode

        self.tag = tag = uuid.uuid4().hex[:8]
        values = {"episodes_dir": str(tmp_path), "rgb_topic": f"/i{tag}/rgb",
                  "depth_topic": f"/i{tag}/depth", "min_free_mb": 0.0, **params}  # fmt: skip
        self.node = RecorderNode(
            context=context,
            cli_args=["--ros-args", "-r", f"__node:=rec_{tag}"],
            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
        )
        self.cam = rclpy.create_node(f"cam_{tag}", context=context)
        self.pubs = [self.cam.create_publisher(Image, values[f"{s}_topic"], 50)
                     for s in ("rgb", "depth")]  # fmt: skip
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.cam)

    def connected(self) -> bool:
        return spin_until(self.executor, lambda: all(p.get_subscription_count() for p in self.pubs))

    def publish(self, rgb: np.ndarray, depth: np.ndarray, stamp_ns: int) -> None:
        """Publish one frame stamped ``stamp_ns`` (stamps follow the wall clock, as a camera's
        do: the recorder refuses 1970 and drops a stamp far ahead of its stream's clock)."""
        from deal_ros.core.image_codec import numpy_to_image

        for pub, msg in zip(
            self.pubs, (numpy_to_image(rgb, "rgb8"), numpy_to_image(depth, "16UC1"))
        ):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS)
            pub.publish(msg)

    def stop_when(self, frames: int):
        """Stop the episode once ``frames`` are written (the last pair may still wait for a
        partner: stop flushes it); ``stop_episode``'s (success, message, meta)."""
        assert spin_until(self.executor, lambda: self.node.status().frames >= frames)
        return self.node.stop_episode()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.cam.destroy_node()


def test_keyframes_skip_a_still_scene_in_the_node(ros_context, tmp_path):
    """In-process: the node's keyframe option drops near-duplicates and counts them."""
    from recorder_driver import frame

    rec = InProcess(ros_context, tmp_path, **{"keyframes.enabled": True})
    node, executor = rec.node, rec.executor
    try:
        assert rec.connected()
        assert node.start_episode(["mug"], "still")[0]
        t0 = time.time_ns()
        for i in range(31):  # 30 identical frames over 0.3 s, then the scene changes
            rgb, depth = frame(0 if i < 30 else 1, 60, 80)
            if i == 30:
                rgb = 255 - rgb  # a real change
            rec.publish(rgb, depth, t0 + i * 10_000_000)
            spin_until(executor, lambda: False, 0.01)  # pacing: spin 10 ms between frames
        done = spin_until(executor, lambda: node._session.dropped()["keyframe_skip"] == 29)
        assert done and spin_until(executor, lambda: node.status().frames == 2)
        ok, _message, meta = node.stop_episode()
    finally:
        rec.close()
    assert ok and meta.frames == 2 and meta.dropped["keyframe_skip"] == 29


def test_operator_boxes_given_at_start_reach_box_training(ros_context, tmp_path):
    """In-process: StartEpisode's boxes land in episode.yaml and on every recorded frame; a
    bad box is refused in one line and nothing is created."""
    from sensor_msgs.msg import RegionOfInterest

    from deal_ros.data.registry import build_dataset
    from deal_ros.msg import LabeledBox

    from recorder_driver import frame

    def box(label, x, y, w, h):
        roi = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)
        return LabeledBox(label=label, box=roi)

    rec = InProcess(ros_context, tmp_path)
    executor = rec.executor
    start = rec.cam.create_client(StartEpisode, f"/rec_{rec.tag}/start_episode")

    def call(**request):
        future = start.call_async(StartEpisode.Request(**request))
        assert spin_until(executor, future.done), "start_episode timed out"
        return future.result()

    try:
        assert spin_until(executor, lambda: start.service_is_ready())
        refused = {
            "'cup' is not one of the episode's ['mug']": box("cup", 1, 2, 10, 8),
            "is empty or not finite": box("mug", 5, 5, 0, 8),
        }
        for text, bad in refused.items():
            reply = call(labels=["mug"], name="bad", boxes=[box("mug", 0, 0, 4, 4), bad])
            assert not reply.success and "boxes[1]" in reply.message and text in reply.message
            assert "\n" not in reply.message
        assert not (tmp_path / "bad").exists()
        reply = call(labels=["mug"], name="boxed", boxes=[box("mug", 10, 20, 30, 25)])
        assert reply.success, reply.message
        assert rec.connected()
        t0 = time.time_ns()
        for i in range(3):
            rec.publish(*frame(i, 60, 80), t0 + i * PACE)
            spin_until(executor, lambda: False, 0.05)  # pacing: spin 50 ms between frames
        ok, _message, meta = rec.stop_when(2)
    finally:
        rec.close()
    assert ok and meta.frames == 3
    expected = {"label": "mug", "x0": 10.0, "y0": 20.0, "x1": 40.0, "y1": 45.0, "frames": "all"}
    assert load_meta(tmp_path / "boxed").boxes == [expected]
    ds = build_dataset(f"episodes:{tmp_path / 'boxed'}")
    assert len(ds) == 3
    for i in range(3):
        (b,) = ds[i].boxes
        assert (b.class_id, b.x0, b.y0, b.x1, b.y1) == (1, 10.0, 20.0, 40.0, 45.0)


def test_detector_boxes_are_stored_per_frame(ros_context, tmp_path):
    """boxes_topic: a detector's InstanceArray (the segmenter's ~/instances) adds the boxes of
    the frame with its stamp; low scores, other classes and empty boxes are counted, not kept."""
    from sensor_msgs.msg import RegionOfInterest

    from deal_ros.data.registry import build_dataset
    from deal_ros.msg import Instance, InstanceArray

    from recorder_driver import frame

    tag = uuid.uuid4().hex[:8]
    rec = InProcess(ros_context, tmp_path, boxes_topic=f"/i{tag}/instances")
    node, executor = rec.node, rec.executor
    det = rec.cam.create_publisher(InstanceArray, f"/i{tag}/instances", 30)

    def found(name, score, x, y, w, h):
        roi = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)
        return Instance(class_name=name, score=score, box=roi)

    try:
        assert rec.connected() and spin_until(executor, lambda: det.get_subscription_count())
        assert node.start_episode(["mug"], "detected")[0]
        t0 = time.time_ns()
        for i in range(3):
            rec.publish(*frame(i, 60, 80), t0 + i * PACE)
            if i == 1:  # the detector saw the second frame
                boxes = InstanceArray()
                boxes.header.stamp.sec, boxes.header.stamp.nanosec = divmod(t0 + PACE, NS)
                boxes.instances = [
                    found("mug", 0.9, 10, 5, 20, 30),  # kept
                    found("mug", 0.3, 0, 0, 9, 9),  # under boxes.min_score
                    found("cup", 0.9, 1, 1, 5, 5),  # not one of the episode's labels
                    found("mug", 0.8, 4, 4, 0, 6),  # empty
                ]
                det.publish(boxes)
            spin_until(executor, lambda: False, 0.05)  # pacing: spin 50 ms between frames
        ok, message, meta = rec.stop_when(2)
    finally:
        rec.close()
    assert ok and meta.frames == 3
    assert "detector boxes: 1 kept, 1 under boxes.min_score, 1 of other classes, 1 empty" in message
    stamp = t0 + PACE
    expected = {"label": "mug", "x0": 10.0, "y0": 5.0, "x1": 30.0, "y1": 35.0, "frames": [stamp]}
    assert load_meta(tmp_path / "detected").boxes == [expected]
    ds = build_dataset(f"episodes:{tmp_path / 'detected'}")
    assert [len(ds[i].boxes) for i in range(3)] == [0, 1, 0]
    assert ds[1].meta["stamp_ns"] == stamp and ds[1].boxes[0].x1 == 30.0
