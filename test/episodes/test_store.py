"""The episode store without ROS nodes: real rosbags MCAP files, real crashes, a real full disk."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader, breakup_chunk
from rosbags.rosbag2 import Reader

from deal_ros.episodes.meta import (
    BAG_TOPICS,
    EpisodeError,
    EpisodeMeta,
    load_meta,
    save_meta,
    validate_episode_id,
    validate_labels,
)
from deal_ros.episodes.store import (
    AsyncEpisodeWriter,
    Episode,
    EpisodeStore,
    repair_episode,
)

from paths import TEST_DIR
from recorder_driver import serialized_info, serialized_pair

NS = 1_000_000_000
H, W = 24, 32
BASE = 1_700_000_000 * NS


def write_episode(store: EpisodeStore, n: int, *, info: bool = False, **kw) -> EpisodeMeta:
    writer = store.create(["mug", "cup"], **kw)
    for i in range(n):
        stamp = BASE + i * NS // 30
        rgb, depth = serialized_pair(i, H, W, stamp)
        writer.write_pair(stamp, rgb, depth, serialized_info(stamp, H, W) if info else None)
    return writer.close()


def mcap_messages(path: Path) -> dict[str, list[int]]:
    """Log times per topic, read with the official `mcap` reader."""
    out: dict[str, list[int]] = {}
    with path.open("rb") as f:
        for _schema, channel, message in make_reader(f).iter_messages():
            out.setdefault(channel.topic, []).append(message.log_time)
    return out


def test_roundtrip_frames_labels_and_camera_info(tmp_path):
    store = EpisodeStore(tmp_path / "episodes")
    meta = write_episode(store, 12, info=True)
    assert meta.state == "complete" and meta.frames == 12
    episode = store.open(meta.episode_id)
    assert episode.state == "complete" and len(episode) == 12
    frames = list(episode.frames())
    assert [f.index for f in frames] == list(range(12))
    for i, f in enumerate(frames):
        assert f.labels == ("mug", "cup")
        assert f.stamp_ns == BASE + i * NS // 30 == f.log_time_ns
        assert f.rgb.shape == (H, W, 3) and np.all(f.rgb[..., 0] == i)
        assert f.valid[:, 0].sum() == 0 and f.valid[:, 2:].all()  # the zero band is invalid
        assert np.allclose(f.depth_m[f.valid], (500 + i) / 1000)
        assert f.camera_info is not None and f.camera_info.header.stamp.sec == f.stamp_ns // NS
    # readable by rosbags and by the official mcap reader, topics and counts intact
    with Reader(episode.bag_dir) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts == {BAG_TOPICS["rgb"]: 12, BAG_TOPICS["depth"]: 12, BAG_TOPICS["camera_info"]: 12}
    logged = mcap_messages(next(episode.bag_dir.glob("*.mcap")))
    assert logged[BAG_TOPICS["rgb"]] == logged[BAG_TOPICS["depth"]] == [f.stamp_ns for f in frames]
    assert load_meta(episode.path).labels == ["mug", "cup"]


@pytest.mark.parametrize(
    "bad", ["../evil", "/abs", "a/b", "..", ".hidden", "x" * 200, "a b", "-lead", "a\x00b", "é"]
)
def test_episode_ids_cannot_escape_the_store(tmp_path, bad):
    store = EpisodeStore(tmp_path / "episodes")
    with pytest.raises(EpisodeError, match="not allowed"):
        store.create(["mug"], name=bad)
    with pytest.raises(EpisodeError):
        store.open(bad)
    outside = [p for p in tmp_path.rglob("*") if p != store.root]
    assert outside == [], outside  # nothing was written anywhere
    with pytest.raises(EpisodeError, match="not allowed"):
        validate_episode_id(bad)


def test_names_are_unique_and_labels_checked(tmp_path):
    store = EpisodeStore(tmp_path)
    a = store.create(["mug"], name="demo")
    a.close()
    with pytest.raises(EpisodeError, match="exists already"):
        store.create(["mug"], name="demo")
    first, second = store.create(["a/b c"]), store.create(["a/b c"])  # same second: suffixed
    assert first.directory.parent == second.directory.parent == tmp_path
    assert first.meta.episode_id.startswith("a_b_c-") and first.directory != second.directory
    first.close(), second.close()
    for labels, why in (([], "at least one"), (["x", "x"], "twice"), ([" "], "not allowed")):
        with pytest.raises(EpisodeError, match=why):
            store.create(labels)
    assert validate_labels([" mug "]) == ["mug"]
    with pytest.raises(EpisodeError, match="not allowed"):
        validate_episode_id("")  # an empty name means "make one" in StartEpisode, never an id


def test_episode_yaml_is_replaced_atomically_and_versioned(tmp_path):
    meta = EpisodeMeta(episode_id="e1", labels=["mug"])
    save_meta(tmp_path, meta)
    meta.frames = 7
    save_meta(tmp_path, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode.yaml"]  # no temp file left
    assert load_meta(tmp_path).frames == 7
    data = yaml.safe_load((tmp_path / "episode.yaml").read_text())
    data.update(format=2, future_key=1)
    (tmp_path / "episode.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(EpisodeError, match="format 2 is newer than this deal_ros reads"):
        load_meta(tmp_path)
    data["format"] = 1
    (tmp_path / "episode.yaml").write_text(yaml.safe_dump(data))
    loaded = load_meta(tmp_path)
    save_meta(tmp_path, loaded)  # unknown keys of a newer minor writer survive
    assert yaml.safe_load((tmp_path / "episode.yaml").read_text())["future_key"] == 1


def _chunk_groups(mcap: Path) -> list[tuple[int, set[tuple[str, int]]]]:
    """(end offset of chunk + message indexes, {(topic, log_time)}) per chunk, from the
    official mcap library (the oracle for what a cut file can still hold)."""
    data = mcap.read_bytes()
    with mcap.open("rb") as f:
        summary = make_reader(f).get_summary()
    topics = {cid: ch.topic for cid, ch in summary.channels.items()}
    groups = []
    for ci in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
        start = ci.chunk_start_offset
        raw = data[start : start + ci.chunk_length]
        records = StreamReader(io.BytesIO(raw), skip_magic=True, emit_chunks=True).records
        chunk = next(iter(records))
        msgs = {
            (topics[r.channel_id], r.log_time)
            for r in breakup_chunk(chunk)
            if type(r).__name__ == "Message"
        }
        groups.append((start + ci.chunk_length + ci.message_index_length, msgs))
    return groups


def _crash_copy(src: Episode, dst: Path, data: bytes) -> Path:
    dst.mkdir()
    (dst / "bag").mkdir()
    (dst / "bag" / "bag.mcap").write_bytes(data)  # no metadata.yaml, no summary: a crash
    meta = load_meta(src.path)
    meta.episode_id, meta.state = dst.name, "recording"
    save_meta(dst, meta)
    return dst


def test_repair_keeps_exactly_the_complete_chunks_of_a_torn_file(tmp_path):
    store = EpisodeStore(tmp_path / "episodes")
    meta = write_episode(store, 24, sync_interval_s=1e-4)  # a checkpoint (chunk) per frame
    episode = store.open(meta.episode_id)
    mcap = next(episode.bag_dir.glob("*.mcap"))
    data, groups = mcap.read_bytes(), _chunk_groups(mcap)
    assert len(groups) >= 20
    rgb, depth = BAG_TOPICS["rgb"], BAG_TOPICS["depth"]
    previous = -1
    cuts = [g[0] for g in groups[::6]] + [g[0] + 5 for g in groups[1::7]] + [groups[2][0] - 2]
    for n, cut in enumerate(sorted(set(cuts))):
        tail = b"\0" * 64 if n % 2 else b""  # power loss: a zero-filled tail
        crashed = _crash_copy(episode, tmp_path / f"crash{n}", data[:cut] + tail)
        assert Episode(crashed).state == "interrupted"
        report = repair_episode(crashed)
        kept = set().union(*(msgs for end, msgs in groups if end <= cut))
        pairs = {t for topic, t in kept if topic == rgb} & {
            t for topic, t in kept if topic == depth
        }
        assert report.frames_kept == len(pairs), (cut, report)
        repaired = Episode(crashed)
        assert repaired.state == "repaired" and repaired.meta.frames == len(pairs)
        logged = mcap_messages(next(repaired.bag_dir.glob("*.mcap")))
        assert {(topic, t) for topic, ts in logged.items() for t in ts} == kept
        assert [f.log_time_ns for f in repaired.frames()] == sorted(pairs)
        with Reader(repaired.bag_dir) as reader:
            assert sum(c.msgcount for c in reader.connections) == len(kept)
        assert len(pairs) >= previous or tail  # more bytes never keep fewer frames
        previous = len(pairs)
        assert repair_episode(crashed).already_valid


_CRASH_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {test_dir!r})
    from recorder_driver import serialized_pair
    from deal_ros.episodes.store import EpisodeStore
    writer = EpisodeStore({root!r}).create(["mug"], name="crash", sync_interval_s=0.2)
    base = 1_700_000_000 * 10**9
    i = 0
    while True:
        stamp = base + i * 10**9 // 30
        writer.write_pair(stamp, *serialized_pair(i, 48, 64, stamp))
        i += 1
        if writer.durable_bytes != getattr(writer, "_seen", None):
            writer._seen = writer.durable_bytes
            print("durable", i, flush=True)
        time.sleep(1 / 30)  # pacing at a camera rate
    """
)


def test_kill9_while_writing_loses_at_most_one_sync_interval(tmp_path):
    """A real writer process killed with SIGKILL: repair keeps every frame that was
    checkpointed (at most ~0.2 s + the pending chunk are lost)."""
    script = _CRASH_WRITER.format(test_dir=str(TEST_DIR), root=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    durable = 0
    try:
        deadline = time.monotonic() + 30
        while durable < 30 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("durable"):
                durable = int(line.split()[1])
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert durable >= 30, "the writer made no progress"
    episode = Episode(tmp_path / "crash")
    assert episode.state == "interrupted"
    report = repair_episode(episode.path)
    assert durable <= report.frames_kept <= durable + 12  # 30 Hz x (0.2 s + scheduling slack)
    assert len(list(Episode(episode.path).frames())) == report.frames_kept


def test_repair_refuses_an_episode_being_recorded(tmp_path):
    store = EpisodeStore(tmp_path)
    writer = store.create(["mug"], name="live")
    try:
        assert Episode(writer.directory).state == "recording"
        with pytest.raises(EpisodeError, match="being recorded"):
            repair_episode(writer.directory)
    finally:
        writer.close()
    assert repair_episode(writer.directory).already_valid


def test_writer_queue_is_bounded_and_counts_what_it_drops(tmp_path):
    writer = EpisodeStore(tmp_path).create(["mug"], name="q")
    async_writer = AsyncEpisodeWriter(writer, max_queue=4)  # not started: nothing drains
    accepted = []
    for i in range(9):
        stamp = BASE + i * NS
        accepted.append(async_writer.submit(stamp, *serialized_pair(i, H, W, stamp)))
    assert accepted == [True] * 4 + [False] * 5 and async_writer.writer_behind == 5
    async_writer.update_counts({"no_match": 2})
    meta = async_writer.stop()
    assert meta.frames == 4 and meta.dropped["writer_behind"] == 5
    assert meta.dropped["no_match"] == 2 and len(list(Episode(writer.directory).frames())) == 4
    assert not async_writer.submit(BASE, b"", b"")  # closed


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MB tmpfs (we are root here); skipped where mounting is not permitted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_closes_the_episode_cleanly(tiny_disk):
    store = EpisodeStore(tiny_disk / "episodes")
    writer = store.create(["mug"], name="full", reserve_bytes=128 * 1024, sync_interval_s=0.05)
    closed = []
    async_writer = AsyncEpisodeWriter(writer, 8, on_closed=lambda m, e: closed.append((m, e)))
    async_writer.start()
    for i in range(200):  # 200 x 96 KB = 19 MB into 3 MB
        stamp = BASE + i * NS // 30
        async_writer.submit(stamp, *serialized_pair(i, 120, 160, stamp))
        if not async_writer.running:
            break
        time.sleep(0.002)  # pacing: a producer at 500 Hz, faster than the disk
    meta = async_writer.stop()
    assert closed and closed[0][1] is not None and closed[0][0] is meta
    assert meta.state == "complete" and meta.stop_reason == "disk_full"
    assert "No space left" in meta.error
    assert 10 <= meta.frames < 40
    episode = Episode(writer.directory)
    frames = list(episode.frames())
    assert len(frames) == meta.frames and [f.rgb[0, 0, 0] for f in frames] == list(
        range(meta.frames)
    )
    with Reader(episode.bag_dir) as reader:
        assert {c.topic: c.msgcount for c in reader.connections}[BAG_TOPICS["rgb"]] >= meta.frames
    with pytest.raises(EpisodeError, match="not enough free space"):
        store.check_space(2_000_000)
    for path in sorted(episode.path.rglob("*"), reverse=True):  # space is back
        path.rmdir() if path.is_dir() else path.unlink()
    episode.path.rmdir()
    store.check_space(2_000_000)
    assert store.create(["mug"], name="again").close().state == "complete"


def test_free_bytes_of_a_store_whose_folders_are_not_made_yet(tmp_path):
    """The store's folders are made at the first episode: before that the free space is the
    free space of the nearest folder that exists (the demo's recorder configures on
    `demo-out/work/episodes` before `demo-out/work` exists)."""
    import shutil

    store = EpisodeStore(tmp_path / "not" / "made" / "yet")
    assert not (tmp_path / "not").exists()
    free = store.free_bytes()
    assert abs(free - shutil.disk_usage(tmp_path).free) < 64 * 2**20
    assert not (tmp_path / "not").exists(), "asking for the free space made a folder"
