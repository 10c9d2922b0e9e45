"""The fault battery of issue 14, "nothing lost silently": every fault below is tried on a real
``deal-recorder`` process fed by a camera driver process (real rclpy, Fast DDS across
processes, 848x480 rgb8 + 16UC1 at 30 Hz unless said) or on real bags on disk, each bounded in
time. docs/bad_inputs.md has the table: what each bad input gets (the line, the counter, the
frames kept).

Stamps
  - one frame stamped an hour ahead (both streams; colour alone), one in 1970, one five
    years ahead: each costs its own frame, with one line and its own counter
  - the camera clock steps an hour forward or 10 s back (a driver restart, an NTP step):
    no frame lost, one line per stream
Images
  - yuv422 colour, depth of another size, all-zero depth, a 0x0 image, a step under a row,
    data shorter than step*height, bytes that are no CDR message, stamps going backwards:
    one line each, one drop each (per pair), recording goes on
  - a 3x flood (90 Hz into a 30 Hz-sized pipeline) with bad frames in it: counted, not fatal
Transport
  - frames missing upstream (every 5th colour frame never sent): reported as a fraction with
    a hint in the status, the stop reply, episode.yaml and ``deal episodes info``
  - keep-last QoS across processes with and without the shipped DDS profile: whatever the
    transport loses, the recorder's count of it matches what the driver sent
Crashes and the disk
  - kill -9 mid-episode, then ``deal episodes repair``: all but the last second kept
  - a full disk: the episode is closed with what was written, new ones refused until space
    returns
Names and links
  - episode names that would leave the episodes folder are refused in one line
  - ``repair`` of an episode whose bag file is a link leading outside refuses, the linked file
    is untouched
Bags
  - bytes flipped in 3 of 60 recorded frames: ``deal episodes info`` names the chunks, training
    reads the 57 others, ``on_crc=stop`` stops in one line
  - a recorded bag cut in half and given as ``bag:``: what is readable is read, one line says
    how much and names ``deal episodes repair --bag``, which then makes it valid

Transport as users run it (recorder_process.py): the recorder sets the shipped Fast DDS profile
itself, a driver has none unless its test says why it needs it. ``DEAL_TEST_DDS_PROFILE=driver``
gives every driver the shipped profile, ``=none`` none at all; ``DEAL_FAULTS_REPORT=FILE``
appends each fault's figures (frames sent, kept, the counters, whether the driver had the
profile) to FILE as JSON lines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from deal_ros.cli import main as deal
from deal_ros.data.registry import build_dataset
from deal_ros.episodes.bag_io import BagError
from deal_ros.episodes.meta import load_meta
from deal_ros.episodes.store import Episode
from deal_ros.srv import StartEpisode

from mcap_fixtures import chunk_groups, rosbags_messages
from recorder_process import driver, driver_has_profile, finish, go, manifest, recorder_factory

W, H = "848", "480"


@pytest.fixture
def recorders(ros_context, tmp_path):
    yield from recorder_factory(ros_context, tmp_path)


def figure(fault: str, dds_profile: bool = False, **numbers) -> None:
    """Print a fault's figures; append them to $DEAL_FAULTS_REPORT as one JSON line.
    ``dds_profile``: what the test asked for its driver (the record says what it got)."""
    record = {"fault": fault, "driver_profile": driver_has_profile(dds_profile), **numbers}
    print(json.dumps(record))
    path = os.environ.get("DEAL_FAULTS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def record(recorders, tmp_path, *args: str, count: int = 120, name: str = "fault", **params):
    """Record ``count`` frames of a KEEP_ALL driver (no transport loss, so every count is
    exact) with ``args``; returns (stop reply, episode.yaml, recorder log, manifest)."""
    rec = recorders(**{"qos.depth": 100, **params})
    cam = driver(rec, tmp_path, "--keep-all", "--count", str(count), "--width", W,
                 "--height", H, *args)  # fmt: skip
    try:
        assert rec.start(["mug"], name=name).success
        go(cam)
        assert finish(cam) == 0
    finally:
        cam.kill()
        cam.wait(10)
    # every frame reached the recorder once its status accounts for it (the last pair may
    # wait for the stop, and a frame the stamp gate holds for the next one)
    rec.wait_status(lambda s: s.state == "recording" and s.frames + s.dropped >= count - 2)
    reply = rec.stop()
    assert reply.success, reply.message
    rec.close()
    return reply, load_meta(reply.path), rec.output(), manifest(rec, tmp_path)


# ----------------------------------------------------------------------------- stamps


def test_stamp_glitches_cost_one_frame_each(recorders, tmp_path):
    reply, meta, log, _sent = record(
        recorders, tmp_path, "--inject", "ahead:20,colour_ahead:50,epoch:70,future:90"
    )
    figure("stamp glitches (4 of 120)", sent=120, kept=meta.frames, dropped=meta.dropped,
           invalid=meta.invalid)  # fmt: skip
    assert meta.frames == 116 and reply.frames == 116
    assert meta.dropped["stamp_jump"] == 2 and meta.invalid["stamp"] == 2
    assert meta.dropped_total == 4 == reply.dropped  # per pair: 4 frames, not 7 messages
    assert "+3600.0 s off the stream's recent stamps" in log
    assert "a stamp glitch, dropped alone; the episode goes on" in log
    assert "days from the node clock (more than max_clock_offset_s=86400)" in log
    assert meta.upstream["rgb"]["missing"] == 0 == meta.upstream["depth"]["missing"]


@pytest.mark.parametrize("step", ["step_ahead", "step_back"])
def test_a_camera_clock_step_loses_no_frame(recorders, tmp_path, step):
    reply, meta, log, _sent = record(recorders, tmp_path, "--inject", f"{step}:40")
    figure(f"camera clock {step} at frame 40 of 120", sent=120, kept=meta.frames,
           dropped=meta.dropped, clock_steps=meta.clock_steps)  # fmt: skip
    assert meta.frames == 120 and meta.dropped_total == 0, meta.dropped
    assert meta.clock_steps == 2 and "followed 2 camera clock step(s)" in reply.message
    assert log.count("the camera clock stepped by") == 2
    assert len(list(Episode(Path(reply.path)).frames())) == 120


# ----------------------------------------------------------------------------- images

BAD_IMAGES = {
    "encoding:10": "encoding '8UC2' is not supported; expected one of rgb8, bgr8, mono8",
    "size:20": "rgb is 848x480 but depth is 424x240 (depth must be aligned to colour)",
    "invalid_depth:30": "has no valid pixel (all 0/NaN)",
    "zero_size:40": "zero size (height=0, width=0); both must be > 0",
    "short_step:50": "rgb8 expects step >= 2544 bytes (width 848 x 3 bytes), got 848",
    "short_data:60": "data holds 610560 bytes, expected step*height = 2544*480 = 1221120",
    "not_cdr:70": "not a CDR-serialized message",
    "backwards:80": "a stamp glitch, dropped alone",
}


def test_bad_images_cost_one_frame_each_with_one_line(recorders, tmp_path):
    _reply, meta, log, _sent = record(recorders, tmp_path, "--inject", ",".join(BAD_IMAGES))
    figure("bad images (8 kinds, 1 each, of 120)", sent=120, kept=meta.frames,
           dropped=meta.dropped, invalid=meta.invalid)  # fmt: skip
    assert meta.frames == 112 and meta.dropped_total == 8, meta.dropped
    assert meta.invalid == {"malformed": 4, "encoding": 1, "size": 1, "depth_all_invalid": 1,
                            "stamp": 0}  # fmt: skip
    assert meta.dropped["stamp_jump"] == 1 and meta.dropped["no_match"] == 0
    for line in BAD_IMAGES.values():
        assert line in log, line
    assert "rgba8" not in log
    assert meta.upstream["rgb"]["missing"] == 0  # the frame that was no CDR message arrived


def test_bad_input_and_a_3x_flood_are_counted_not_fatal(recorders, tmp_path):
    rec = recorders()
    bad = "encoding:10,size:20,backwards:30,invalid_depth:40"
    cam = driver(rec, tmp_path, "--count", "180", "--rate", "90", "--width", "320",
                 "--height", "240", "--jitter-ms", "1", "--inject", bad)  # fmt: skip
    try:
        assert rec.start(["mug"], name="flood").success
        go(cam)
        assert finish(cam) == 0
    finally:
        cam.kill()
        cam.wait(10)
    # what reached the recorder is accounted for before the stop, less the last pair
    rec.wait_status(lambda s: s.state == "recording" and s.frames + s.dropped >= 170)
    reply = rec.stop()
    assert reply.success, reply.message
    meta = load_meta(reply.path)
    assert meta.invalid == {"malformed": 0, "encoding": 1, "size": 1, "depth_all_invalid": 1,
                            "stamp": 0}  # fmt: skip
    assert meta.dropped["stamp_jump"] == 1
    # 180 instants: kept or dropped (per pair), or both messages lost on the way (at most
    # the smaller of the two streams' upstream losses)
    both_lost = min(meta.upstream[s]["missing"] for s in ("rgb", "depth"))
    assert meta.frames + meta.dropped_total <= 180 <= meta.frames + meta.dropped_total + both_lost
    figure("3x flood (90 Hz 320x240, 4 bad of 180)", sent=180, kept=meta.frames,
           dropped=meta.dropped, upstream=meta.upstream)  # fmt: skip
    assert reply.dropped == meta.dropped_total
    assert rec.wait_status(lambda s: s.state == "idle").dropped == meta.dropped_total
    assert rec.start(["mug"], name="after").success  # still alive and recording
    assert rec.stop().success
    rec.close()
    for line in BAD_IMAGES["encoding:10"], "(depth must be aligned to colour)":
        assert line in rec.output()


# ----------------------------------------------------------------------------- transport


def test_frames_missing_upstream_are_reported_with_a_hint(recorders, tmp_path, capsys):
    """Every 5th colour frame never sent (a lossy link): 20 % of the colour stream missing,
    counted from the stamps against camera_info's period, in every report."""
    rec = recorders(**{"qos.depth": 100})
    cam = driver(rec, tmp_path, "--keep-all", "--count", "150", "--width", W, "--height", H,
                 "--drop-color-every", "5", "--info-topic", rec.topics["info"])  # fmt: skip
    try:
        assert rec.start(["mug"], name="lossy").success
        go(cam)
        assert finish(cam) == 0
    finally:
        cam.kill()
        cam.wait(10)
    live = rec.wait_status(lambda s: s.frames >= 119 and "upstream loss rgb" in s.message)
    assert 0.19 <= live.upstream_loss <= 0.21
    assert "check the QoS" in live.message and "FASTRTPS_DEFAULT_PROFILES_FILE" in live.message
    reply = rec.stop()
    meta = load_meta(reply.path)
    figure("every 5th colour frame missing upstream (150)", sent=150, kept=meta.frames,
           upstream=meta.upstream, status_message=live.message)  # fmt: skip
    assert meta.frames == 120 and meta.dropped["no_match"] == 30  # the depths left alone
    assert meta.upstream["rgb"]["missing"] == 29  # the 150th is after the last one received
    assert meta.upstream["depth"]["missing"] == 0
    assert "upstream loss rgb 19.5% (29 of 149), depth 0.0% (0 of 150)" in reply.message
    assert abs(reply.upstream_loss - 0.195) < 1e-3
    capsys.readouterr()
    assert deal(["episodes", "info", "--quick", reply.path]) == 0
    assert "upstream  rgb 19.5% (29 of 149)" in capsys.readouterr().out


def _settled(statuses, since: int) -> bool:
    """Two status messages after ``since`` counting the same frames and drops."""
    late = [(s.frames, s.dropped) for s in statuses[since:]]
    return len(late) >= 2 and late[-1] == late[-2]


def test_keep_last_transport_loss_is_counted_as_it_happens(recorders, tmp_path):
    """The driver's default keep-last reliable QoS (depth 10) and the recorder's defaults,
    across processes: whatever the transport loses (with the shipped profile usually nothing,
    without it often much), the recorder's upstream count matches what the driver sent."""
    rec = recorders()
    cam = driver(rec, tmp_path, "--count", "300", "--width", W, "--height", H,
                 "--info-topic", rec.topics["info"])  # fmt: skip
    try:
        assert rec.start(["mug"], name="transport").success
        go(cam)
        assert finish(cam) == 0
        # the driver had every frame acknowledged (in the recorder's queue or replaced there):
        # the recorder has taken them once two status messages in a row count the same
        n = len(rec.statuses)
        rec.wait_status(lambda s: _settled(rec.statuses, n), timeout=30)
        reply = rec.stop()
    finally:
        cam.kill()
        cam.wait(10)
    meta, sent = load_meta(reply.path), manifest(rec, tmp_path)
    figure("transport, keep-last reliable depth 10, 300 frames 30 Hz 848x480",
           sent=len(sent["depth"]), kept=meta.frames, dropped=meta.dropped,
           upstream=meta.upstream, stop_message=reply.message)  # fmt: skip
    for stream in ("rgb", "depth"):
        up = meta.upstream[stream]
        seen = up["received"] + up["missing"]  # from the first to the last frame received
        assert seen <= len(sent[stream]) and (
            up["received"] == 0 or seen >= 0.9 * len(sent[stream])
        )
    worst = max(s["loss"] for s in meta.upstream.values())
    assert ("upstream loss" in reply.message) == any(
        s["received"] + s["missing"] > 0 for s in meta.upstream.values()
    )
    assert ("check the QoS" in reply.message) == (worst > 0.02)


# ----------------------------------------------------------------------------- crashes, disk


def test_kill9_mid_episode_then_repair(recorders, tmp_path, capsys):
    rec = recorders()
    cam = driver(rec, tmp_path, "--count", "400", "--width", "160", "--height", "120")
    try:
        assert rec.start(["cup"], name="crash").success
        go(cam)
        status = rec.wait_status(lambda s: s.frames >= 45, timeout=30)
        os.kill(rec.proc.pid, signal.SIGKILL)
        rec.proc.wait(10)
    finally:
        cam.kill()
        cam.wait(10)
    episode = Episode(rec.episodes_dir / "crash")
    assert episode.state == "interrupted"
    assert deal(["episodes", "repair", str(episode.path)]) == 0
    assert "crash: repaired, kept" in capsys.readouterr().out
    meta = load_meta(episode.path)
    figure("kill -9 mid-episode + repair", status_frames=status.frames, kept=meta.frames)
    assert status.frames - 30 <= meta.frames  # at most ~1 s at 30 Hz lost
    assert len(list(Episode(episode.path).frames())) == meta.frames
    assert meta.encodings == {"rgb": "rgb8", "depth": "16UC1"}  # restored from the bag
    assert meta.size == {"height": 120, "width": 160} and meta.depth_valid_fraction > 0.9


@pytest.fixture
def tiny_disk(tmp_path):
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


def test_disk_full_closes_episode_and_refuses_until_space_is_back(recorders, tmp_path, tiny_disk):
    rec = recorders(tiny_disk, min_free_mb=2.0, reserve_kb=128)
    cam = driver(rec, tmp_path, "--count", "300", "--width", "160", "--height", "120")
    try:
        assert rec.start(["mug"], name="full").success
        go(cam)
        error = rec.wait_status(lambda s: s.state == "error", timeout=30)
    finally:
        cam.kill()
        cam.wait(10)
    assert error.message.startswith("disk full: episode 'full' closed with")
    assert "No space left on device" in error.message and error.episode_id == "full"
    meta = load_meta(tiny_disk / "full")
    figure("disk full (3 MB tmpfs)", kept=meta.frames, stop_reason=meta.stop_reason)
    assert meta.state == "complete" and meta.stop_reason == "disk_full" and meta.frames > 5
    assert len(list(Episode(tiny_disk / "full").frames())) == meta.frames
    refused = rec.start(["mug"], name="next")
    assert not refused.success and "not enough free space" in refused.message
    n = len(rec.statuses)
    rec.wait_status(lambda s: rec.statuses.index(s) >= n and s.state == "error")  # alive
    subprocess.run(["rm", "-rf", str(tiny_disk / "full")], check=True)
    assert rec.start(["mug"], name="next").success  # space is back
    assert rec.wait_status(lambda s: s.state == "recording").message == ""
    assert rec.stop().success
    assert "disk full: episode 'full' closed" in rec.output()


# ----------------------------------------------------------------------------- names, links


def test_names_and_links_never_lead_outside(recorders, tmp_path, capsys):
    rec = recorders()
    for name in ("../escape", "/tmp/abs", ".hidden", "a/b", "x" * 200):
        reply = rec.call(rec.start_cli, StartEpisode.Request(labels=["mug"], name=name))
        assert not reply.success and "is not allowed" in reply.message, name
        assert "\n" not in reply.message
    assert not (tmp_path / "escape").exists() and not list(rec.episodes_dir.glob("*"))
    cam = driver(rec, tmp_path, "--count", "400", "--width", "160", "--height", "120")
    try:
        assert rec.start(["mug"], name="linked").success
        go(cam)
        rec.wait_status(lambda s: s.frames >= 20, timeout=30)
        os.kill(rec.proc.pid, signal.SIGKILL)
        rec.proc.wait(10)
    finally:
        cam.kill()
        cam.wait(10)
    episode = rec.episodes_dir / "linked"
    mcap = next((episode / "bag").glob("*.mcap"))
    victim = tmp_path / "elsewhere.mcap"
    shutil.move(mcap, victim)
    mcap.symlink_to(victim)
    before = victim.read_bytes()
    assert deal(["episodes", "repair", str(episode)]) == 1
    err = capsys.readouterr().err
    assert f"'{mcap}' is a link to '{victim}', outside the episode folder" in err
    assert victim.read_bytes() == before  # not truncated, not rewritten
    figure("repair of a bag linked outside the episode", refused=True, target_untouched=True)


# ----------------------------------------------------------------------------- bags


def test_corrupted_bytes_never_reach_training(recorders, tmp_path, capsys):
    reply, meta, _log, _sent = record(recorders, tmp_path, count=60, name="flipped")
    assert meta.frames == 60
    episode = Episode(Path(reply.path))
    mcap = next(episode.bag_dir.glob("*.mcap"))
    groups = chunk_groups(mcap)  # one frame per chunk at 848x480
    data = bytearray(mcap.read_bytes())
    for k in (10, 30, 50):
        data[groups[k][0] - 400_000] ^= 0x40  # inside the frame's depth pixels
    mcap.write_bytes(bytes(data))
    assert deal(["episodes", "info", str(episode.path)]) == 0
    info = capsys.readouterr().out
    assert "crc       3 of 60 chunks FAIL their CRC" in info
    ds = build_dataset(f"episodes:{episode.path}")
    figure("3 of 60 recorded frames with a flipped byte", frames=60, trained_on=len(ds))
    assert len(ds) == 57
    with pytest.raises(BagError, match="fails its CRC"):
        list(episode.frames(strict=True))


def test_a_truncated_bag_is_read_up_to_its_tear_and_repaired(recorders, tmp_path, capsys, caplog):
    reply, _meta, _log, _sent = record(recorders, tmp_path, count=60, name="cut")
    bag = tmp_path / "copy"
    shutil.copytree(Episode(Path(reply.path)).bag_dir, bag)
    (bag / "metadata.yaml").unlink()  # what a copy cut short leaves: no summary, no metadata
    mcap = next(bag.glob("*.mcap"))
    groups = chunk_groups(mcap)
    mcap.write_bytes(mcap.read_bytes()[: groups[29][0] + 1000])  # 30 frames and a bit
    with caplog.at_level("WARNING"):
        ds = build_dataset(f"bag:{bag}", labels="mug", pair_by="log_time")
    (line,) = [r.getMessage() for r in caplog.records if "not closed" in r.getMessage()]
    figure("a 60-frame bag cut after 30 frames, as bag:", frames=60, read=len(ds))
    assert len(ds) == 30 and f"'deal episodes repair --bag {bag}' makes it a valid bag" in line
    assert deal(["episodes", "repair", "--bag", str(bag)]) == 0
    assert "repaired, kept 60 messages" in capsys.readouterr().out  # 30 x (rgb, depth)
    assert len(rosbags_messages(bag)) == 60
