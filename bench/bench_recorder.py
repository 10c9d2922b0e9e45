"""Recorder figures, as ratios measured side by side in one run.

1. Sustained recording: a camera driver process publishes 848x480 rgb8 + 16UC1 at 30 Hz to a
   ``deal-recorder`` process; frames dropped / frames sent (target 0) and the recorder's CPU
   use (CPU seconds / wall seconds, from /proc), next to the driver's own.
2. Store write throughput / raw sequential write of the same serialized bytes to the same disk
   (same fsync at the end; the store also fsyncs every 0.5 s), interleaved rounds (target
   >= 0.7).
3. kill -9 of the recorder mid-episode, then repair: frames sent before the kill minus frames
   kept, in seconds of recording (target <= 1 s).
4. Transport (``--transport``, or with ``--full``): the same 848x480 30 Hz driver with its
   default keep-last QoS (depth 10), reliable and best-effort on both sides, each with and
   without ``FASTRTPS_DEFAULT_PROFILES_FILE`` (the shipped profile) for both processes: pairs
   sent, kept, and what the recorder reports (upstream loss per stream, drops, the hint).

Run: ``.venv/bin/python bench/bench_recorder.py [--quick|--full] [--dir DIR]`` (quick by
default: about 40 s; ``--dir`` picks the disk, default a temporary folder under the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm.xml"))

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402

from deal_ros.episodes.store import Episode, EpisodeStore, repair_episode  # noqa: E402
from deal_ros.msg import EpisodeStatus  # noqa: E402
from deal_ros.srv import StartEpisode, StopEpisode  # noqa: E402

from recorder_driver import serialized_pair  # noqa: E402

NS = 1_000_000_000
H, W = 480, 848
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


class Session:
    """A recorder process plus a client node (services, status) in this process."""

    def __init__(
        self,
        context: Context,
        episodes: Path,
        *,
        profile: bool = True,
        reliability: str = "reliable",
    ) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.env = dict(os.environ)
        if not profile:
            self.env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
        self.reliability = reliability
        self.name = f"bench_rec_{self.tag}"
        self.topics = (f"/b{self.tag}/rgb", f"/b{self.tag}/depth")
        cmd = [sys.executable, "-m", "deal_ros.nodes.recorder", "--ros-args"]
        cmd += ["-r", f"__node:={self.name}", "-p", f"episodes_dir:={episodes}"]
        cmd += ["-p", f"rgb_topic:={self.topics[0]}", "-p", f"depth_topic:={self.topics[1]}"]
        cmd += ["-p", "camera_info_topic:=''", "-p", "min_free_mb:=100.0"]
        cmd += ["-p", f"qos.reliability:={reliability}"]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env
        )
        self.node = rclpy.create_node(f"bench_client_{self.tag}", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.status: EpisodeStatus | None = None
        qos = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(EpisodeStatus, f"/{self.name}/status", self._on_status, qos)

    def _on_status(self, msg: EpisodeStatus) -> None:
        self.status = msg

    def call(self, srv, name: str, request):
        client = self.node.create_client(srv, f"/{self.name}/{name}")
        if not client.wait_for_service(timeout_sec=30):
            raise SystemExit(f"bench: recorder service {name} did not appear")
        future = client.call_async(request)
        self.spin_until(future.done, 60)
        return future.result()

    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def driver(self, manifest: Path, count: int) -> subprocess.Popen:
        cmd = [sys.executable, str(REPO / "test" / "recorder_driver.py"), "--wait-go"]
        cmd += ["--node-name", f"bench_cam_{self.tag}", "--count", str(count)]
        cmd += ["--rgb-topic", self.topics[0], "--depth-topic", self.topics[1]]
        cmd += ["--width", str(W), "--height", str(H), "--manifest", str(manifest)]
        cmd += ["--qos", self.reliability]
        return subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.executor.shutdown()
        self.node.destroy_node()


def _go(cam: subprocess.Popen) -> None:
    if cam.stdout.readline().strip() != "ready":
        raise SystemExit("bench: the camera driver found no subscriber")
    cam.stdin.write("go\n")
    cam.stdin.flush()


def _accounted(status: EpisodeStatus | None) -> int:
    return 0 if status is None else status.frames + status.dropped


def sustained(context: Context, root: Path, seconds: float) -> None:
    count = int(seconds * 30)
    session = Session(context, root / "sustained")
    manifest = root / "sustained.json"
    cam = session.driver(manifest, count)
    try:
        reply = session.call(StartEpisode, "start_episode", StartEpisode.Request(labels=["mug"]))
        assert reply.success, reply.message
        _go(cam)
        rec0, cam0, t0 = cpu_times(session.proc.pid), cpu_times(cam.pid), time.monotonic()
        while cam.poll() is None:
            session.executor.spin_once(timeout_sec=0.05)
            cam1 = cpu_times(cam.pid)
        rec1, wall = cpu_times(session.proc.pid), time.monotonic() - t0
        sent = json.loads(manifest.read_text())
        pairs = len(sent["depth"])
        # the recorder has taken every frame the driver sent once its status counts them
        # (recorded or dropped; the last pair waits for the stop), or after 10 s
        session.spin_until(lambda: _accounted(session.status) >= pairs - 1, 10)
        stop = session.call(StopEpisode, "stop_episode", StopEpisode.Request())
    finally:
        cam.kill()
        session.close()
    meta = Episode(Path(stop.path)).meta
    print(f"sustained 30 Hz {W}x{H} rgb8+16UC1, {pairs} pairs over {sent['seconds']:.1f} s:")
    print(
        f"  recorded {meta.frames}, dropped {pairs - meta.frames} "
        f"(ratio {(pairs - meta.frames) / pairs:.4f}, target 0; by reason {meta.dropped})"
    )
    rec_user, rec_sys = rec1[0] - rec0[0], rec1[1] - rec0[1]
    cam_cpu = sum(cam1) - sum(cam0)
    print(
        f"  recorder CPU {(rec_user + rec_sys) / wall:.1%} of one core (user "
        f"{rec_user / wall:.1%}, system {rec_sys / wall:.1%}); the driver publishing the same "
        f"frames: {cam_cpu / wall:.1%} -> recorder/driver = {(rec_user + rec_sys) / cam_cpu:.2f}"
    )
    shutil.rmtree(Path(stop.path), ignore_errors=True)


def _raw_write(path: Path, data: list, pairs: int) -> float:
    start = time.perf_counter()
    with path.open("wb") as f:
        for i in range(pairs):
            a, b = data[i % len(data)]
            f.write(a)
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def _store_write(store: EpisodeStore, name: str, data: list, pairs: int) -> tuple[float, float]:
    """(seconds writing frames incl. the periodic fsyncs, seconds end to end incl. creating
    and closing the episode)."""
    start = time.perf_counter()
    writer = store.create(["mug"], name=name)
    loop = time.perf_counter()
    for i in range(pairs):
        a, b = data[i % len(data)]
        writer.write_pair((1_700_000_000 * NS) + i * NS // 30, a, b)
    writer.checkpoint()  # the frames are on the disk, as after the raw write's fsync
    steady = time.perf_counter() - loop
    writer.close()
    total = time.perf_counter() - start
    shutil.rmtree(writer.directory)
    return steady, total


def throughput(root: Path, pairs: int, rounds: int) -> None:
    data = [serialized_pair(i, H, W, (1_700_000_000 + i) * NS) for i in range(8)]
    total = sum(len(a) + len(b) for a, b in data) * pairs // len(data)
    store = EpisodeStore(root / "store")
    ratios_steady, ratios_total, raw_t, steady_t = [], [], [], []
    for r in range(rounds):  # interleaved, order alternating: a busy neighbour hits both
        if r % 2:
            steady, end_to_end = _store_write(store, f"t{r}", data, pairs)
            raw = _raw_write(root / "raw.bin", data, pairs)
        else:
            raw = _raw_write(root / "raw.bin", data, pairs)
            steady, end_to_end = _store_write(store, f"t{r}", data, pairs)
        raw_t.append(raw)
        steady_t.append(steady)
        ratios_steady.append(raw / steady)
        ratios_total.append(raw / end_to_end)
    raw, steady = statistics.median(raw_t), statistics.median(steady_t)
    print(f"store write, {pairs} pairs of {W}x{H} ({total / 1e6:.0f} MB), {rounds} rounds:")
    print(
        f"  raw sequential write + fsync {total / raw / 1e6:.0f} MB/s; episode store "
        f"{total / steady / 1e6:.0f} MB/s ({pairs / steady:.0f} pairs/s = "
        f"{pairs / steady / 30:.1f}x real time at 30 Hz)"
    )
    print(
        f"  store/raw = {statistics.median(ratios_steady):.2f} (median of per-round ratios, "
        f"range {min(ratios_steady):.2f}-{max(ratios_steady):.2f}; target >= 0.7); "
        f"including episode create + close: {statistics.median(ratios_total):.2f}"
    )


def kill9(context: Context, root: Path, seconds: float) -> None:
    session = Session(context, root / "kill9")
    manifest = root / "kill9.json"
    cam = session.driver(manifest, int(seconds * 30) + 600)
    try:
        reply = session.call(StartEpisode, "start_episode", StartEpisode.Request(labels=["mug"]))
        _go(cam)
        session.spin_until(lambda: session.status is not None and session.status.frames > 0, 30)
        time.sleep(seconds)  # record for this long before the kill (a duration, not a wait)
        os.kill(session.proc.pid, signal.SIGKILL)
        killed_ns = time.time_ns()
        session.proc.wait(10)
        cam.send_signal(signal.SIGINT)
        cam.wait(10)
    finally:
        cam.kill()
        session.close()
    path = root / "kill9" / reply.episode_id
    report = repair_episode(path)
    # the pairs sent before the kill: those the driver published before it (its stamps run
    # behind the wall clock by its start-up handshake; the manifest has the publish times)
    sent_log = json.loads(manifest.read_text())
    before = {i for i, wall_ns in sent_log["published"] if wall_ns < killed_ns}
    pairs = {i for i, _ in sent_log["rgb"]} & {i for i, _ in sent_log["depth"]}
    sent = len(pairs & before)
    lost = max(0, sent - report.frames_kept)
    print(f"kill -9 after {seconds:.0f} s of 30 Hz {W}x{H}, then repair:")
    print(
        f"  {sent} pairs sent before the kill, {report.frames_kept} kept -> lost {lost} = "
        f"{lost / 30:.2f} s of recording (target <= 1 s)"
    )


def transport(context: Context, root: Path, seconds: float) -> list[dict]:
    """Part 4 (module doc): one row per (QoS, profile)."""
    rows = []
    print(f"transport, 30 Hz {W}x{H} rgb8+16UC1 for {seconds:.0f} s, driver keep-last depth 10:")
    for reliability in ("reliable", "best_effort"):
        for profile in (True, False):
            row = _transport_run(context, root, seconds, reliability, profile)
            rows.append(row)
            up = row["upstream"]
            print(
                f"  {reliability:11s} profile {'yes' if profile else 'no ':3s}: "
                f"{row['kept']}/{row['sent']} pairs kept; recorder reports upstream loss "
                f"rgb {up['rgb']['loss']:.1%}, depth {up['depth']['loss']:.1%}, "
                f"{row['dropped']} dropped ({row['drops']}); hint: "
                f"{'yes' if row['hint'] else 'no'}; status upstream_loss "
                f"{row['status_loss']:.3f}"
            )
    return rows


def _transport_run(context, root: Path, seconds: float, reliability: str, profile: bool):
    count = int(seconds * 30)
    session = Session(context, root / "transport", profile=profile, reliability=reliability)
    manifest = root / f"transport_{session.tag}.json"
    cam = session.driver(manifest, count)
    try:
        reply = session.call(StartEpisode, "start_episode", StartEpisode.Request(labels=["mug"]))
        assert reply.success, reply.message
        _go(cam)
        while cam.poll() is None:
            session.executor.spin_once(timeout_sec=0.05)
        # what is still queued reaches the recorder: wait until its status stops moving
        last: list[int] = []

        def settled() -> bool:
            s = session.status
            last.append(_accounted(s))
            return len(last) > 20 and len(set(last[-20:])) == 1  # 1 s without a change

        session.spin_until(settled, 15)
        status_loss = session.status.upstream_loss if session.status else 0.0
        stop = session.call(StopEpisode, "stop_episode", StopEpisode.Request())
    finally:
        cam.kill()
        session.close()
    sent = json.loads(manifest.read_text())
    pairs = len({i for i, _ in sent["rgb"]} & {i for i, _ in sent["depth"]})
    meta = Episode(Path(stop.path)).meta
    shutil.rmtree(Path(stop.path), ignore_errors=True)
    return {
        "qos": reliability,
        "profile": profile,
        "sent": pairs,
        "kept": meta.frames,
        "dropped": meta.dropped_total,
        "drops": {k: v for k, v in meta.dropped.items() if v},
        "upstream": meta.upstream,
        "hint": "check the QoS" in stop.message,
        "status_loss": status_loss,
        "stop_message": stop.message,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about 40 s (default)")
    mode.add_argument("--full", action="store_true", help="60 s streams, bigger writes")
    parser.add_argument("--dir", help="where to write (default: a temp folder in the repo)")
    parser.add_argument(
        "--transport", action="store_true", help="part 4 only: QoS x DDS profile (about 90 s)"
    )
    parser.add_argument("--json", help="write part 4's rows to this file")
    args = parser.parse_args(argv)
    full = args.full
    base = Path(args.dir) if args.dir else REPO
    root = Path(tempfile.mkdtemp(prefix=".bench_recorder_", dir=base))
    context = Context()
    rclpy.init(context=context)
    try:
        if not args.transport:
            throughput(root, 600 if full else 200, 7 if full else 5)
            sustained(context, root, 60 if full else 8)
            kill9(context, root, 10 if full else 3)
        if args.transport or full:
            rows = transport(context, root, 20 if full else 10)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    finally:
        rclpy.shutdown(context=context)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
