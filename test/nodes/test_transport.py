"""RGB + depth Images through real rclpy, decoded with the core codec, and the shipped Fast DDS
profile of the node executables.

One test runs publisher and subscriber nodes in one process; one runs the publisher in another
process with the shipped Fast DDS profile (config/fastdds_shm.xml), as on the robot. The node
executables set that profile themselves when the user chose none (deal_ros.nodes.transport):
checked on the variables and, in a real process, on its effect (the shared-memory segment the
process maps), since Fast DDS reads the variable once, when rclpy makes its participant.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from deal_ros.core.depth import depth_to_metres
from deal_ros.core.image_codec import image_to_numpy, numpy_to_image
from deal_ros.nodes.transport import (
    find_fastdds_profile,
    shipped_profile_env,
    use_shipped_profile,
)

from paths import TEST_DIR
from ros_image_publisher import frame
from rosutil import spin_until, wait_for_subscribers

HERE = TEST_DIR  # ros_image_publisher.py lives there
REPO_CONFIG = HERE.parent / "config"
RGB_TOPIC = "/camera/camera/color/image_raw"
DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"


def _collector(node, received: dict[str, dict[int, Image]]):
    qos = QoSProfile(depth=60, reliability=ReliabilityPolicy.RELIABLE)
    for key, topic in (("rgb", RGB_TOPIC), ("depth", DEPTH_TOPIC)):
        received[key] = {}
        node.create_subscription(
            Image,
            topic,
            lambda m, k=key: received[k].__setitem__(m.header.stamp.sec - 1000, m),
            qos,
        )


def _check_frame(i: int, rgb_msg: Image, depth_msg: Image) -> None:
    expected_rgb, expected_depth = frame(i, rgb_msg.height, rgb_msg.width)
    np.testing.assert_array_equal(image_to_numpy(rgb_msg), expected_rgb)
    depth = image_to_numpy(depth_msg)
    np.testing.assert_array_equal(depth, expected_depth)
    metres, valid = depth_to_metres(depth, "16UC1")
    assert not valid[:, :8].any() and valid[:, 8:].all()
    np.testing.assert_allclose(metres[0, 8], (500 + i) / 1000.0, rtol=1e-6)
    assert rgb_msg.header.frame_id == "color" and depth_msg.header.frame_id == "depth"


def test_two_nodes_one_process(ros_context):
    pub_node = rclpy.create_node("fake_camera", context=ros_context)
    sub_node = rclpy.create_node("receiver", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    received: dict[str, dict[int, Image]] = {}
    _collector(sub_node, received)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    rgb_pub = pub_node.create_publisher(Image, RGB_TOPIC, qos)
    depth_pub = pub_node.create_publisher(Image, DEPTH_TOPIC, qos)
    try:
        assert wait_for_subscribers(executor, rgb_pub) and wait_for_subscribers(executor, depth_pub)
        for i in range(5):
            rgb, depth = frame(i, 480, 640)
            for pub, arr, enc, fid in (
                (rgb_pub, rgb, "rgb8", "color"),
                (depth_pub, depth, "16UC1", "depth"),
            ):
                msg = numpy_to_image(arr, enc)
                msg.header.stamp.sec, msg.header.frame_id = 1000 + i, fid
                pub.publish(msg)
            executor.spin_once(timeout_sec=0.01)
        assert spin_until(
            executor, lambda: len(received["rgb"]) == 5 and len(received["depth"]) == 5
        )
        for i in range(5):
            _check_frame(i, received["rgb"][i], received["depth"][i])
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()


def test_two_processes_with_the_shipped_fastdds_profile(ros_context, repo_root):
    count = 45
    node = rclpy.create_node("receiver", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    received: dict[str, dict[int, Image]] = {}
    _collector(node, received)
    env = dict(
        os.environ, FASTRTPS_DEFAULT_PROFILES_FILE=str(repo_root / "config" / "fastdds_shm.xml")
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "ros_image_publisher.py"), "--count", str(count)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        t0 = time.monotonic()
        done = spin_until(
            executor,
            lambda: len(received["rgb"]) == count and len(received["depth"]) == count,
            timeout=60.0,
        )
        out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, out
        assert done, f"got {len(received['rgb'])} rgb / {len(received['depth'])} depth of {count}"
        assert time.monotonic() - t0 < 60.0
        for i in (0, count // 2, count - 1):
            _check_frame(i, received["rgb"][i], received["depth"][i])
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()


SHIPPED_SEGMENT = 64 << 20  # config/fastdds_shm.xml's segment_size
PROFILE_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def _bare_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS}
    env.update(extra)
    return env


def test_the_shipped_profile_is_set_only_when_the_user_chose_none(tmp_path, monkeypatch):
    shipped = find_fastdds_profile()
    assert shipped is not None and shipped.name == "fastdds_shm.xml"
    monkeypatch.chdir(tmp_path)
    env: dict[str, str] = {}
    line = use_shipped_profile(env)
    assert env == {"FASTRTPS_DEFAULT_PROFILES_FILE": str(shipped)}
    assert line.startswith("transport: using the shipped Fast DDS profile") and str(shipped) in line
    env = {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}
    assert use_shipped_profile(env) and env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(shipped)
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    for name in PROFILE_VARS:  # the user's profile (Fast DDS 2 or 3 name) is left alone
        env = {name: str(mine)}
        assert use_shipped_profile(env) == "" and env == {name: str(mine)}
    env = {"FASTRTPS_DEFAULT_PROFILES_FILE": str(tmp_path / "missing.xml")}
    line = use_shipped_profile(env)  # left alone, but said: Fast DDS falls back to defaults
    assert "is not a file" in line and env["FASTRTPS_DEFAULT_PROFILES_FILE"].endswith("missing.xml")
    env = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}  # another RMW: nothing to do
    assert use_shipped_profile(env) == "" and env == {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    (tmp_path / "DEFAULT_FASTRTPS_PROFILES.xml").write_text("<dds/>")  # Fast DDS loads it itself
    env = {}
    assert use_shipped_profile(env) == "" and env == {}


def test_the_profile_for_another_process_keeps_the_users_choice(tmp_path, monkeypatch):
    """shipped_profile_env: what a process that does not set the profile itself (the camera
    driver of onboarding.launch.py camera:=true) gets; the environment given is not changed."""
    shipped = find_fastdds_profile()
    monkeypatch.chdir(tmp_path)
    env = {"ROS_DOMAIN_ID": "7"}
    assert shipped_profile_env(env) == {"FASTRTPS_DEFAULT_PROFILES_FILE": str(shipped)}
    assert env == {"ROS_DOMAIN_ID": "7"}
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    for name in PROFILE_VARS:
        assert shipped_profile_env({name: str(mine)}) == {}  # inherited, not overridden
    assert shipped_profile_env({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) == {}


def _segments(pid: int) -> dict[str, int]:
    """Bytes of every Fast DDS shared-memory segment the process maps (ports left out)."""
    sizes: dict[str, int] = {}
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            parts = line.split()
            name = parts[5] if len(parts) >= 6 else ""
            if name.startswith("/dev/shm/fastrtps_") and "_port" not in name:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                sizes[name] = sizes.get(name, 0) + hi - lo
    return sizes


def _private_domain() -> str:
    """A DDS domain of the child's own (not the test's): nothing else talks to it, so every
    segment it maps is its own (a reader maps its writers' segments too)."""
    return str(1 + (int(os.environ.get("ROS_DOMAIN_ID", "0")) + 37) % 101)


@pytest.mark.parametrize("user_profile", [False, True], ids=["no-profile", "user-profile"])
def test_the_executable_uses_the_shipped_profile_before_its_participant_starts(
    tmp_path, user_profile
):
    """deal-segmenter started without a profile variable maps the shipped profile's 64 MB
    segment (the variable took effect in its participant) and says so in one line; started
    with the user's own profile (a 2 MB segment), it keeps that one and says nothing."""
    import threading

    env = _bare_env(ROS_DOMAIN_ID=_private_domain(), RCUTILS_LOGGING_BUFFERED_STREAM="0")
    if user_profile:
        mine = tmp_path / "mine.xml"
        text = (REPO_CONFIG / "fastdds_shm.xml").read_text()
        mine.write_text(text.replace(f">{SHIPPED_SEGMENT}<", f">{2 << 20}<"))
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(mine)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deal_ros.nodes.segmenter", "--ros-args", "-p", "stats_period:=0.0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    lines: list[str] = []
    active = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.rstrip().endswith("]: active"):
                active.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert active.wait(60.0), "".join(lines)  # the node and its participant exist
        segments = _segments(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(10)
        assert proc.returncode == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert segments, "no Fast DDS shared-memory segment mapped"
    biggest = max(segments.values())
    said = [line for line in lines if "transport:" in line]
    if user_profile:
        assert 2 << 20 <= biggest < SHIPPED_SEGMENT and said == [], (segments, said)
    else:
        assert biggest >= SHIPPED_SEGMENT, segments  # the default would be ~0.5 MB
        assert len(said) == 1 and "using the shipped Fast DDS profile" in said[0]
