"""Phase ``segment``: ``deal-segmenter`` (a real process) on a replay of the recorded episodes.

The replay publishes each episode's frames on the topics they were recorded from, with their
original headers, at the recorded pace; the segmenter's ``image`` is remapped to the colour
topic; the demo collects ``~/mask``, ``~/cam``, ``~/overlay`` and ``~/segmentation`` and
checks every output against the input frames (:mod:`deal_ros.demo.replay`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from deal_ros.demo.children import Children
from deal_ros.demo.client import DemoClient
from deal_ros.demo.replay import EpisodeReplay, OutputCollector, SentFrame
from deal_ros.episodes.store import Episode
from deal_ros.errors import DealError
from deal_ros.infer.bundle import read_bundle
from deal_ros.infer.postprocess import palette_array

__all__ = ["SegmentResult", "segment_replay", "segmenter_command"]

NODE = "deal_segmenter"
SETTLE_S = 2.0  # after the last frame: wait this long without a new output


@dataclass
class SegmentResult:
    summary: dict[str, Any]
    masks: dict[int, np.ndarray]  # segmenter masks by input stamp
    saved: dict[str, list[Path]]
    # the saved frames: input stamp -> (episode id, rgb)
    inputs: dict[int, tuple[str, np.ndarray]] = field(default_factory=dict)
    palette: np.ndarray | None = None


def segmenter_command(bundle: Path, image_topic: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deal_ros.nodes.segmenter",
        "--ros-args",
        "-p",
        f"model:={bundle}",
        "-p",
        "stats_period:=0.5",
        "-r",
        f"image:={image_topic}",
    ]


def _source_topics(episode: Episode) -> dict[str, str]:
    topics = dict(episode.meta.source_topics or {})
    if not topics.get("rgb"):
        raise DealError(f"episode '{episode.path}': episode.yaml names no source rgb topic")
    return topics


def _pick(n: int, k: int) -> set[int]:
    """``k`` indices spread over ``range(n)``."""
    return {int(i) for i in np.linspace(0, n - 1, num=min(n, k))} if k > 0 else set()


def _wait_model(client: DemoClient, collector: OutputCollector, log: Path) -> None:
    client.wait(lambda: collector.label_info is not None, 90.0, "deal-segmenter to load the model")
    info = collector.label_info or {}
    if not info.get("model"):
        raise DealError(f"deal-segmenter loaded no model: {info.get('error')}; log: {log}")


def _replay_episode(
    client: DemoClient,
    replay: EpisodeReplay,
    collector: OutputCollector,
    episode: Episode,
    keep: int,
    inputs: dict[int, tuple[str, np.ndarray]],
    bar: tqdm,
) -> None:
    frames = list(episode.frames())
    chosen = _pick(len(frames), keep)
    t0, first = time.perf_counter(), frames[0].stamps["rgb"]
    for j, frame in enumerate(frames):
        due = t0 + (frame.stamps["rgb"] - first) / 1e9
        client.spin_for(due - time.perf_counter())
        sent_at = time.perf_counter()
        stamp, frame_id = replay.publish(frame)
        collector.expect(SentFrame(stamp, frame_id, sent_at, episode.episode_id, j in chosen))
        if j in chosen:
            inputs[stamp] = (episode.episode_id, frame.rgb)
        bar.update(1)


def _settle(client: DemoClient, collector: OutputCollector) -> None:
    last_sent = time.perf_counter()

    def quiet() -> bool:
        latest = max(collector.last_arrival, last_sent)
        return collector.pending() == 0 or time.perf_counter() - latest > SETTLE_S

    client.wait(quiet, 60.0, "the segmenter's last outputs")
    client.spin_for(0.6)  # one more ~/stats message


def segment_replay(
    bundle: Path,
    episode_dirs: list[Path],
    children: Children,
    client: DemoClient,
    out: Path,
    keep_per_episode: int,
) -> SegmentResult:
    """Run the phase (module docstring); raises when no output came back."""
    episodes = [Episode(p) for p in episode_dirs]
    topics = _source_topics(episodes[0])
    palette = palette_array(read_bundle(bundle).palette)
    proc = children.start("segmenter", segmenter_command(bundle, topics["rgb"]))
    collector = OutputCollector(client.node, NODE, out, palette)
    replay = EpisodeReplay(client.node, topics)
    _wait_model(client, collector, proc.log)
    client.wait(
        lambda: replay.rgb.get_subscription_count() >= 1 and collector.connected(),
        30.0,
        "deal-segmenter's topics to connect",
    )
    client.spin_for(0.5)
    inputs: dict[int, tuple[str, np.ndarray]] = {}
    total = sum(len(e) for e in episodes)
    with tqdm(
        total=total, desc="replay", unit="frame", file=sys.stderr, disable=None, leave=False
    ) as bar:
        for episode in episodes:
            _replay_episode(client, replay, collector, episode, keep_per_episode, inputs, bar)
    _settle(client, collector)
    children.stop(proc)
    summary = collector.summary()
    node_keys = ("received", "processed", "dropped", "latency", "run", "provider")
    summary["node"] = {k: collector.stats.get(k) for k in node_keys}
    if summary["frames_with_all_outputs"] == 0:
        raise DealError(
            f"deal-segmenter published no outputs for the {summary['frames_sent']} replayed "
            f"frames; log: {proc.log}"
        )
    return SegmentResult(summary, dict(collector.masks), collector.saved, inputs, palette)
