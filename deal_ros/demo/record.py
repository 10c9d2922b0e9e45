"""Phase ``record``: the demo camera and ``deal-recorder`` as real processes, one onboarding
episode per class recorded through the recorder's services (StartEpisode labels=[class])."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from deal_ros.demo.children import Children
from deal_ros.demo.client import CameraControl, DemoClient, RecorderControl
from deal_ros.demo.settings import DemoSettings
from deal_ros.episodes.store import Episode
from deal_ros.errors import DealError

__all__ = ["camera_command", "record_episodes", "recorder_command"]

LATE_FRAMES_S = 5.0  # after a take ended, how long frames still in flight are waited for


def _params(params: dict[str, Any]) -> list[str]:
    out = ["--ros-args"]
    for key, value in params.items():
        out += ["-p", f"{key}:={value}"]
    return out


def camera_command(s: DemoSettings, gt_dir: Path) -> list[str]:
    h, w = s.camera_size
    return [
        sys.executable,
        "-m",
        "deal_ros.demo.camera",
        *_params(
            {
                "classes": "[" + ", ".join(s.classes) + "]",
                "height": h,
                "width": w,
                "rate_hz": float(s.rate_hz),
                "frames": s.frames,
                "seed": s.seed,
                "episode_seed": s.seed,
                "zoom": float(s.zoom),
                "rooms": s.rooms,
                "once": True,
                "gt_dir": str(gt_dir),
            }
        ),
    ]


def recorder_command(episodes_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deal_ros.nodes.recorder",
        *_params(
            {
                "episodes_dir": str(episodes_dir),
                "source": "generator",
                "status_period_s": 0.2,
                "min_free_mb": 20.0,
            }
        ),
    ]


def _episode(
    client: DemoClient,
    camera: CameraControl,
    recorder: RecorderControl,
    label: str,
    s: DemoSettings,
    say,
) -> dict[str, Any]:
    """Record the take of ``label`` once, whole: the episode starts first, then the camera
    plays frames 0 .. n-1 (``once``) and the episode stops when the recorder holds them all,
    or a few seconds after the take ended (the frames it lost are in the episode's drop
    ledger). Every run records the same frames, so training sees the same data."""
    episode_id = recorder.start([label], name=f"{label}-demo")
    t0 = time.monotonic()
    camera.show(label)
    timeout = 30.0 + 4.0 * s.frames / s.rate_hz
    with tqdm(
        total=s.frames,
        desc=f"record {label}",
        unit="frame",
        file=sys.stderr,
        disable=None,
        leave=False,
    ) as bar:
        ended_at: list[float] = []

        def done() -> bool:
            n = min(recorder.frames(episode_id), s.frames)
            bar.update(n - bar.n)
            if n >= s.frames:
                return True
            if not ended_at and camera.take_ended(label):
                ended_at.append(time.monotonic())
            return bool(ended_at) and time.monotonic() - ended_at[0] > LATE_FRAMES_S

        client.wait(done, timeout, f"{s.frames} frames of episode '{episode_id}'")
    reply = recorder.stop(episode_id)
    camera.show("")
    seconds = time.monotonic() - t0
    meta = Episode(Path(reply.path)).meta
    dropped = {k: int(v) for k, v in (meta.dropped or {}).items()}
    info = {
        "label": label,
        "episode_id": reply.episode_id,
        "path": reply.path,
        "frames": int(reply.frames),
        "dropped": dropped,
        "state": meta.state,
        "seconds": round(seconds, 2),
        "fps": _fps(meta),
    }
    say(
        f"      {label}: episode '{reply.episode_id}', {reply.frames} of {s.frames} frames, "
        f"{sum(dropped.values())} dropped, {info['fps']:.1f} frames/s"
    )
    return info


def _fps(meta: Any) -> float:
    first, last = meta.first_stamp_ns, meta.last_stamp_ns
    if not first or not last or last <= first or meta.frames < 2:
        return 0.0
    return round((meta.frames - 1) / ((last - first) / 1e9), 2)


def record_episodes(
    s: DemoSettings,
    children: Children,
    client: DemoClient,
    episodes_dir: Path,
    gt_dir: Path,
    say,
) -> dict[str, Any]:
    """Record one episode per class; returns the ``recording`` metrics."""
    camera_proc = children.start("camera", camera_command(s, gt_dir))
    recorder_proc = children.start("recorder", recorder_command(episodes_dir))
    camera = CameraControl(client)
    recorder = RecorderControl(client)
    recorder.wait_ready(90.0)
    camera.wait_ready(90.0 + 1.0 * s.frames * len(s.classes))
    episodes = [_episode(client, camera, recorder, label, s, say) for label in s.classes]
    published = int(camera.status.get("published", 0))
    children.stop(camera_proc)
    code = children.stop(recorder_proc)
    if code not in (0, None):
        raise DealError(f"deal-recorder exited with code {code}; log: {recorder_proc.log}")
    for e in episodes:
        state = Episode(Path(e["path"])).state
        if state != "complete":
            raise DealError(f"episode '{e['episode_id']}' is {state}, not complete")
    return {
        "episodes": episodes,
        "frames_recorded": sum(e["frames"] for e in episodes),
        "frames_dropped": sum(sum(e["dropped"].values()) for e in episodes),
        "camera_frames_published": published,
    }
