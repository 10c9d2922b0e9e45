"""A ``deal-recorder`` process and a camera driver process for the tests that drive the
recorder through its real services (nodes/test_recorder.py, faults/test_recorder.py).

Transport, as users run it: the recorder process gets the test's environment unchanged, so it
sets the shipped Fast DDS profile itself (deal_ros.nodes.transport), and a driver process is a
user's camera driver, WITHOUT the profile, unless the test asks for it (``driver(...,
dds_profile=True)``, with the reason at the call). ``DEAL_TEST_DDS_PROFILE`` overrides that for
every driver, to collect the fault battery's figures both ways: ``driver`` gives each driver the
shipped profile (the setup the README asks for), ``none`` gives none even where a test asks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile

from deal_ros.msg import EpisodeStatus
from deal_ros.srv import StartEpisode, StopEpisode

from rosutil import spin_until

__all__ = [
    "Recorder",
    "driver",
    "driver_has_profile",
    "finish",
    "go",
    "manifest",
    "process_env",
    "recorder_factory",
]

TEST_DIR = Path(__file__).parent


SHIPPED_PROFILE = TEST_DIR.parent / "config" / "fastdds_shm.xml"


def process_env(dds_profile: bool = False) -> dict[str, str]:
    """The environment of a driver process (module doc): the shipped Fast DDS profile only
    with ``dds_profile`` (or ``DEAL_TEST_DDS_PROFILE=driver``; never with ``=none``)."""
    env = dict(os.environ)
    mode = env.get("DEAL_TEST_DDS_PROFILE", "")
    if mode == "driver" or (dds_profile and mode != "none"):
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(SHIPPED_PROFILE)
    return env


def driver_has_profile(dds_profile: bool = False) -> bool:
    return "FASTRTPS_DEFAULT_PROFILES_FILE" in process_env(dds_profile)


class Recorder:
    """A ``deal-recorder`` process with a unique node name and topics, and a client node in the
    test process for its services and status."""

    def __init__(self, context, tmp_path: Path, episodes_dir: Path, **params) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.name = f"rec_{self.tag}"
        self.topics = {k: f"/t{self.tag}/{k}" for k in ("rgb", "depth", "info")}
        self.episodes_dir = episodes_dir
        self.log = tmp_path / f"{self.name}.log"
        args = {
            "episodes_dir": str(episodes_dir),
            "rgb_topic": self.topics["rgb"],
            "depth_topic": self.topics["depth"],
            "camera_info_topic": self.topics["info"],
            "min_free_mb": 1.0,
            **params,
        }
        cmd = [sys.executable, "-m", "deal_ros.nodes.recorder", "--ros-args"]
        cmd += ["-r", f"__node:={self.name}"]
        for key, value in args.items():
            cmd += ["-p", f"{key}:={value}"]
        self._log_file = self.log.open("w")
        # the recorder chooses its transport itself, as `deal-recorder` does for a user
        self.proc = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
        import rclpy

        self.node = rclpy.create_node(f"client_{self.tag}", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.statuses: list[EpisodeStatus] = []
        qos = QoSProfile(depth=50, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(
            EpisodeStatus, f"/{self.name}/status", self.statuses.append, qos
        )
        self.start_cli = self.node.create_client(StartEpisode, f"/{self.name}/start_episode")
        self.stop_cli = self.node.create_client(StopEpisode, f"/{self.name}/stop_episode")
        self._closed = False
        self._called: set = set()

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text()

    def call(self, client, request, timeout: float = 30.0):
        assert client.wait_for_service(timeout_sec=30), self.output()
        if client not in self._called:
            # the service is ready for us before the recorder has matched our reply reader;
            # Fast DDS drops a reply it cannot send within 100 ms (deal_ros.demo.client)
            spin_until(self.executor, lambda: False, 0.5)
            self._called.add(client)
        future = client.call_async(request)
        assert spin_until(self.executor, future.done, timeout), "service call timed out"
        return future.result()

    def start(self, labels=("mug",), name: str = ""):
        return self.call(self.start_cli, StartEpisode.Request(labels=list(labels), name=name))

    def stop(self):
        return self.call(self.stop_cli, StopEpisode.Request())

    def wait_status(self, predicate, timeout: float = 20.0) -> EpisodeStatus:
        found: list[EpisodeStatus] = []

        def check() -> bool:
            found[:] = [s for s in self.statuses if predicate(s)]
            return bool(found)

        assert spin_until(self.executor, check, timeout), [self.statuses[-3:], self.output()]
        return found[-1]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()
        self.executor.shutdown()
        self.node.destroy_node()


def recorder_factory(context, tmp_path: Path):
    """A generator for a ``recorders`` fixture: yields ``make(episodes_dir=None, **params)``
    that starts a :class:`Recorder`; every recorder made is closed after the test."""
    made: list[Recorder] = []

    def make(episodes_dir: Path | None = None, **params) -> Recorder:
        rec = Recorder(context, tmp_path, episodes_dir or tmp_path / "episodes", **params)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close()


def driver(
    rec: Recorder, tmp_path: Path, *args: str, dds_profile: bool = False
) -> subprocess.Popen:
    """Start a camera driver process now (it starts up while the recorder does); it publishes
    once :func:`go` is called. ``dds_profile``: give it the shipped Fast DDS profile (a test
    that needs it says why; module doc)."""
    cmd = [sys.executable, str(TEST_DIR / "recorder_driver.py"), "--node-name", f"d{rec.tag}"]
    cmd += ["--rgb-topic", rec.topics["rgb"], "--depth-topic", rec.topics["depth"]]
    cmd += ["--manifest", str(tmp_path / f"manifest_{rec.tag}.json"), "--wait-go", *args]
    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=process_env(dds_profile),
    )  # fmt: skip


def go(cam: subprocess.Popen) -> None:
    assert cam.stdout.readline().strip() == "ready", "the driver found no subscriber"
    cam.stdin.write("go\n")
    cam.stdin.flush()


def finish(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def manifest(rec: Recorder, tmp_path: Path) -> dict:
    return json.loads((tmp_path / f"manifest_{rec.tag}.json").read_text())
