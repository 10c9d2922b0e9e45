"""RecordingSession without a node: serialized images in, a real episode out; pairs, every drop
by its reason and warning key, writer back-pressure and keyframes."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from deal_ros.episodes.keyframes import KeyframeSelector
from deal_ros.episodes.meta import DROP_KEYS, load_meta
from deal_ros.episodes.recording import RecordingSession
from deal_ros.episodes.store import AsyncEpisodeWriter, Episode, EpisodeStore

from mcap_fixtures import NS, frame_arrays, frame_bytes, image_bytes, info_bytes, stamp_of

TOPICS = {"rgb": "/cam/rgb", "depth": "/cam/depth"}
MS = 1_000_000


class Recording:
    """A session on a fresh episode, its warnings collected as (key, line)."""

    def __init__(self, tmp_path, *, max_queue: int = 1024, start: bool = True, **options):
        # The streams here are pushed as fast as Python goes, not at a camera's rate: a queue
        # of 64 filled on a loaded machine (writer_behind: 1-13 of 100 in full-suite runs).
        # Back-pressure itself is tested with max_queue=2.
        store = EpisodeStore(tmp_path / "episodes")
        self.writer = AsyncEpisodeWriter(store.create(["mug"], name="rec"), max_queue)
        if start:
            self.writer.start()
        self.warnings: list[tuple[str, str]] = []
        self.session = RecordingSession(
            self.writer, TOPICS, warn=lambda key, line: self.warnings.append((key, line)), **options
        )

    def pair(self, rgb, depth) -> None:
        self.session.on_image("rgb", rgb)
        self.session.on_image("depth", depth)

    def good(self, i: int, depth_offset_ns: int = 2 * MS) -> None:
        rgb, depth = frame_arrays(i)
        self.pair(
            image_bytes(rgb, "rgb8", stamp_of(i)),
            image_bytes(depth, "16UC1", stamp_of(i) + depth_offset_ns),
        )

    def finish(self):
        meta = self.session.finish()
        return meta, Episode(self.writer.writer.directory)

    def keys(self) -> list[str]:
        return [key for key, _ in self.warnings]


def test_pairs_are_written_with_their_original_bytes(tmp_path):
    rec = Recording(tmp_path)
    rec.session.on_camera_info(info_bytes(stamp_of(0)))
    sent = []
    for i in range(8):
        rgb, depth = frame_bytes(i, stamp_ns=stamp_of(i))
        depth = image_bytes(frame_arrays(i)[1], "16UC1", stamp_of(i) + 3 * MS)  # within slop
        rec.pair(rgb, depth)
        sent.append((bytes(rgb), bytes(depth)))
    meta, episode = rec.finish()
    assert meta.state == "complete" and meta.frames == 8 and rec.warnings == []
    assert meta.size == {"height": 12, "width": 16}
    assert meta.encodings == {"rgb": "rgb8", "depth": "16UC1"}
    assert meta.depth_valid_fraction == 0.9375  # the zero first column of 16, every pixel counted
    assert meta.dropped == dict.fromkeys(DROP_KEYS, 0)
    frames = list(episode.frames())
    assert [f.stamp_ns for f in frames] == [stamp_of(i) for i in range(8)]  # the colour stamp
    assert [int(f.rgb[0, 0, 0]) for f in frames] == list(range(8))
    assert all(f.camera_info is not None for f in frames)
    with Reader(episode.bag_dir) as reader:
        raw = {(c.topic.rsplit("/", 1)[-1], t): bytes(d) for c, t, d in reader.messages()}
    assert [(raw["rgb", stamp_of(i)], raw["depth", stamp_of(i)]) for i in range(8)] == sent


def test_bad_messages_are_dropped_by_reason_and_recording_goes_on(tmp_path):
    rec = Recording(tmp_path)
    rgb0, _ = frame_arrays(0)
    for i in range(6):
        rec.good(i)
        if i == 1:
            rec.session.on_image("rgb", b"\x00\x01\x00\x00 not an image")
        if i == 2:  # step 20 < a row of 16 rgb8 pixels (48 bytes)
            rec.session.on_image("rgb", image_bytes(rgb0, "rgb8", stamp_of(2) + MS, step=20))
        if i == 3:
            rec.session.on_image("depth", image_bytes(rgb0, "rgb8", stamp_of(3) + 5 * MS))
        if i == 4:  # an older stamp than the last colour frame
            rec.session.on_image("rgb", image_bytes(rgb0, "rgb8", stamp_of(1)))
    meta, episode = rec.finish()
    assert meta.frames == 6 and len(list(episode.frames())) == 6
    assert meta.invalid == {
        "malformed": 2, "encoding": 1, "size": 0, "depth_all_invalid": 0, "stamp": 0
    }  # fmt: skip
    assert meta.dropped == {**dict.fromkeys(DROP_KEYS, 0), "invalid": 3, "out_of_order": 1}
    assert rec.keys() == ["rgb:malformed", "rgb:layout_step", "depth:encoding", "rgb:backwards"]
    lines = dict(rec.warnings)
    assert lines["rgb:layout_step"] == (
        "dropped rgb frame: image '/cam/rgb': rgb8 expects step >= 48 bytes "
        "(width 16 x 3 bytes), got 20"
    )
    assert (
        "encoding 'rgb8' is not supported; expected one of 16UC1, mono16, 32FC1"
        in (lines["depth:encoding"])
    )
    assert "stamps going backwards" in lines["rgb:backwards"]
    assert all("\n" not in line and ("/cam/" in line) for _, line in rec.warnings)


def test_bad_pairs_are_dropped_by_reason(tmp_path):
    rec = Recording(tmp_path)
    for i in range(9):
        rgb, depth = frame_arrays(i)
        t = stamp_of(i)
        if i == 3:  # depth not aligned to colour
            depth = depth[::2, ::2]
        if i == 5:  # both a different size than the episode's
            rgb, depth = frame_arrays(i, 24, 32)
        rgb_encoding = "bgr8" if i == 6 else "rgb8"  # allowed, but not this episode's
        if i == 7:
            depth = np.zeros_like(depth)
        rec.pair(image_bytes(rgb, rgb_encoding, t), image_bytes(depth, "16UC1", t + MS))
    meta, episode = rec.finish()
    assert meta.frames == 5
    assert [int(f.rgb[0, 0, 0]) for f in episode.frames()] == [0, 1, 2, 4, 8]
    assert meta.invalid == {
        "malformed": 0, "encoding": 1, "size": 2, "depth_all_invalid": 1, "stamp": 0
    }  # fmt: skip
    assert meta.dropped["invalid"] == 4 and meta.dropped_total == 4
    keys = ["pair:size", "pair:episode_size", "pair:episode_encoding", "pair:depth_invalid"]
    assert rec.keys() == keys
    lines = dict(rec.warnings)
    assert "rgb is 16x12 but depth is 8x6 (depth must be aligned to colour)" in lines["pair:size"]
    assert "size 32x24 differs from this episode's 16x12" in lines["pair:episode_size"]
    assert "has no valid pixel (all 0/NaN)" in lines["pair:depth_invalid"]


def test_all_invalid_depth_can_be_kept(tmp_path):
    rec = Recording(tmp_path, drop_invalid_depth=False)
    rgb, depth = frame_arrays(0)
    rec.pair(image_bytes(rgb, "rgb8", stamp_of(0)), image_bytes(depth * 0, "16UC1", stamp_of(0)))
    rec.good(1)
    meta, _episode = rec.finish()
    assert meta.frames == 2 and meta.dropped_total == 0
    assert meta.depth_valid_fraction == round((0 + 0.9375) / 2, 4)  # stored to 4 places


def test_pairing_drops_of_one_stream_are_counted_per_message(tmp_path):
    rec = Recording(tmp_path, pair_queue_size=3)
    rgb, _ = frame_arrays(0)
    rec.session.on_image("rgb", image_bytes(rgb, "rgb8", stamp_of(0)))  # no depth partner
    rec.good(1)
    for i in range(2, 6):  # colour only: rgb 2 to 5 wait for partners in a queue of 3
        rec.session.on_image("rgb", image_bytes(rgb, "rgb8", stamp_of(i)))
    rec.good(6)  # rgb 6 overflows the queue again, depth 6 outdates rgb 4 and 5
    meta, _episode = rec.finish()
    assert meta.frames == 2  # frames 1 and 6
    # no_match: rgb 0, 4, 5 (no partner within the slop); queue_full: rgb 2 and 3
    assert meta.dropped == {**dict.fromkeys(DROP_KEYS, 0), "no_match": 3, "queue_full": 2}
    assert rec.warnings == []  # pairing drops are counted, not warned one by one


def test_a_full_writer_queue_counts_writer_behind(tmp_path):
    rec = Recording(tmp_path, max_queue=2, start=False)  # nothing drains until finish
    for i in range(6):
        rec.good(i)
    meta, episode = rec.finish()  # the last pair comes out of the pairer here: behind too
    assert meta.frames == 2 and meta.dropped["writer_behind"] == 4
    assert [int(f.rgb[0, 0, 0]) for f in episode.frames()] == [0, 1]
    assert load_meta(episode.path).dropped["writer_behind"] == 4


def test_keyframes_skip_a_still_scene(tmp_path):
    rec = Recording(tmp_path, keyframes=KeyframeSelector(min_change=0.03, max_interval_s=1.0))
    still_rgb, still_depth = frame_arrays(0)
    stamps = [stamp_of(i) for i in range(10)]  # a third of a second, nothing moves
    stamps += [stamp_of(10)]  # the scene changes
    stamps += [stamp_of(10) + NS + k * NS // 30 for k in range(3)]  # still, 1 s later
    for n, t in enumerate(stamps):
        rgb = 255 - still_rgb if n >= 10 else still_rgb
        rec.pair(image_bytes(rgb, "rgb8", t), image_bytes(still_depth, "16UC1", t + MS))
    meta, episode = rec.finish()
    # kept: the first, the change, the first frame a max interval after it
    assert meta.frames == 3 and meta.dropped["keyframe_skip"] == len(stamps) - 3
    assert [f.stamp_ns for f in episode.frames()] == [stamps[0], stamps[10], stamps[11]]
    assert rec.warnings == []


def test_issue_14_small_items_lines_and_depth_fraction(tmp_path):
    """NaN in every other column: half the depth counts as valid (a subsampled view read 0);
    yuv422 lists what the recorder takes (not the codec's rgba8); a zero-size image says so."""
    rec = Recording(tmp_path)
    rgb, _ = frame_arrays(0)
    depth = np.full((12, 16), 0.8, np.float32)
    depth[:, ::2] = np.nan
    depth[:4, 1::2] = np.nan  # and a third of the rows of the others: 1/3 valid in all
    rec.pair(image_bytes(rgb, "rgb8", stamp_of(0)), image_bytes(depth, "32FC1", stamp_of(0)))
    yuv = np.zeros((12, 16, 2), np.uint8)
    rec.session.on_image("rgb", image_bytes(yuv, "yuv422", stamp_of(1)))
    rec.session.on_image("rgb", image_bytes(rgb[:0], "rgb8", stamp_of(1) + MS))
    meta, _episode = rec.finish()
    assert meta.frames == 1 and meta.depth_valid_fraction == round(1 / 3, 4)
    lines = dict(rec.warnings)
    assert lines["rgb:encoding"].endswith(
        "encoding 'yuv422' is not supported; expected one of rgb8, bgr8, mono8"
    )
    assert "rgba8" not in lines["rgb:encoding"]
    assert "zero size (height=0, width=16); both must be > 0" in lines["rgb:layout"]
    assert "step >= 0" not in lines["rgb:layout"]


def test_drops_are_counted_per_pair(tmp_path):
    """60 colour frames with a bad encoding: 60 lost pairs (not 120: the depth partner each
    leaves alone is the same lost frame)."""
    rec = Recording(tmp_path)
    yuv = np.zeros((12, 16, 2), np.uint8)
    for i in range(80):
        rgb, depth = frame_arrays(i)
        bad = 10 <= i < 70
        colour = image_bytes(yuv, "yuv422", stamp_of(i)) if bad else None
        colour = colour or image_bytes(rgb, "rgb8", stamp_of(i))
        rec.pair(colour, image_bytes(depth, "16UC1", stamp_of(i) + MS))
    meta, _ = rec.finish()
    assert meta.frames == 20 and meta.invalid["encoding"] == 60
    assert meta.dropped["no_match"] == 0 and meta.dropped_total == 60


class Clock:
    """The node clock the session reads: set before each message (a sim-time clock)."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def _stream(rec, clock, stamps, *, rgb_only=(), latency=5 * MS, skip=()):
    """Push frame ``i`` stamped ``stamps[i]`` (colour and depth), the clock at each arrival
    ``latency`` after the frame's true time (``stamp_of(i)``)."""
    for i, t in enumerate(stamps):
        if i in skip:
            continue
        clock.now = stamp_of(i) + latency
        rgb, depth = frame_arrays(i)
        rec.session.on_image("rgb", image_bytes(rgb, "rgb8", t))
        td = t if i not in rgb_only else stamp_of(i)
        rec.session.on_image("depth", image_bytes(depth, "16UC1", td + MS))


def test_a_stamp_glitch_costs_its_own_frame(tmp_path):
    """One frame stamped an hour ahead (both streams, then colour alone) is dropped alone,
    counted as stamp_jump, one line per stream; every other frame is kept (before: 7 of 119)."""
    clock = Clock()
    rec = Recording(tmp_path, clock=clock, check_clock=True)
    hour = 3600 * NS
    stamps = [stamp_of(i) + (hour if i in (20, 60) else 0) for i in range(120)]
    _stream(rec, clock, stamps, rgb_only=(60,))
    meta, episode = rec.finish()
    assert meta.frames == 118 and meta.dropped == {**dict.fromkeys(DROP_KEYS, 0), "stamp_jump": 2}
    assert _red(episode) == [i % 256 for i in range(120) if i not in (20, 60)]
    jumps = [line for key, line in rec.warnings if key.endswith(":stamp_jump")]
    assert len(jumps) == 3 and all("+3600.0 s off the stream's recent stamps" in j for j in jumps)
    assert "a stamp glitch, dropped alone; the episode goes on" in jumps[0]
    assert meta.clock_steps == 0 and meta.upstream["rgb"]["missing"] == 0


def _red(episode) -> list[int]:
    return [int(f.rgb[0, 0, 0]) for f in episode.frames()]


def test_stamps_in_1970_or_years_ahead_are_refused(tmp_path):
    clock = Clock()
    rec = Recording(tmp_path, clock=clock, check_clock=True)
    years = 5 * 365 * 86_400 * NS
    stamps = [stamp_of(i) for i in range(30)]
    stamps[5], stamps[15] = 3 * NS, stamp_of(15) + years  # 1970-01-01T00:00:03, 2028
    _stream(rec, clock, stamps)
    meta, _ = rec.finish()
    assert meta.frames == 28 and meta.invalid["stamp"] == 2 and meta.dropped_total == 2
    lines = [line for key, line in rec.warnings if key.endswith(":stamp_implausible")]
    assert len(lines) == 4  # colour and depth of both frames
    expected = "stamp 3.000 s is -19675.9 days from the node clock (more than max_clock_offset_s"
    assert f"{expected}=86400)" in lines[0]
    assert "+1825.0 days from the node clock" in lines[2]


@pytest.mark.parametrize("step_s", [3600, -10])
def test_a_clock_step_loses_no_frame(tmp_path, step_s):
    """A driver restart or an NTP step: every later stamp moved by the same amount (forward an
    hour, or back 10 s, where the pairer starts over). Nothing is lost; one line per stream."""
    clock = Clock()
    rec = Recording(tmp_path, clock=clock, check_clock=True)
    stamps = [stamp_of(i) + (step_s * NS if i >= 40 else 0) for i in range(100)]
    _stream(rec, clock, stamps)
    meta, episode = rec.finish()
    assert meta.frames == 100 and meta.dropped_total == 0, meta.dropped
    assert meta.clock_steps == 2
    steps = [line for key, line in rec.warnings if key.endswith(":clock_step")]
    assert len(steps) == 2 and f"stepped by {step_s + 1 / 30:+.3f} s" in steps[0]
    assert sorted(_red(episode)) == sorted(i % 256 for i in range(100))
    assert meta.upstream["rgb"]["missing"] == 0 and meta.upstream["depth"]["missing"] == 0
    assert min(stamps) == meta.first_stamp_ns < meta.last_stamp_ns == max(stamps)  # the span


def test_a_camera_stall_is_upstream_loss_not_a_jump(tmp_path):
    """Frames 30-44 never sent (stamps and clock both move on): no drop, no step; 15 frames
    missing upstream on each stream, 15 of 100 = 15 %."""
    clock = Clock()
    rec = Recording(tmp_path, clock=clock, check_clock=True)
    _stream(rec, clock, [stamp_of(i) for i in range(100)], skip=range(30, 45))
    meta, _ = rec.finish()
    assert meta.frames == 85 and meta.dropped_total == 0 and meta.clock_steps == 0
    assert meta.upstream["rgb"] == {"received": 85, "missing": 15, "loss": 0.15,
                                    "period_ms": 33.333}  # fmt: skip


def test_upstream_loss_uses_camera_infos_period(tmp_path):
    """70 % of the colour frames lost at random: the colour intervals alone would mislead
    the period; camera_info (every frame) gives it."""
    rng = np.random.default_rng(3)
    rec = Recording(tmp_path)
    lost = set(rng.choice(np.arange(1, 199), size=140, replace=False).tolist())
    for i in range(200):
        rgb, depth = frame_arrays(i)
        rec.session.on_camera_info(info_bytes(stamp_of(i)))
        if i not in lost:
            rec.session.on_image("rgb", image_bytes(rgb, "rgb8", stamp_of(i)))
        rec.session.on_image("depth", image_bytes(depth, "16UC1", stamp_of(i) + MS))
    meta, _ = rec.finish()
    assert meta.upstream["rgb"]["missing"] == 140 and meta.upstream["rgb"]["loss"] == 0.7
    assert meta.upstream["depth"]["missing"] == 0
    assert meta.frames == 60 and meta.dropped["no_match"] == 140  # depth alone, per pair


def test_an_implausible_stamp_after_a_stall_is_one_lost_frame(tmp_path):
    """The recorder stalled (a busy CPU) for three periods before colour frame 40, whose stamp
    is in 1970: it is still the one frame lost with its depth partner (the arrival-time
    estimate alone filed it three periods on and counted 2 of 1 in a full-suite run)."""
    clock = Clock()
    rec = Recording(tmp_path, clock=clock, check_clock=True)
    for i in range(80):
        rgb, depth = frame_arrays(i)
        clock.now = stamp_of(i) + 5 * MS + (3 * stamp_of(1) - 3 * stamp_of(0) if i == 40 else 0)
        rec.session.on_image("rgb", image_bytes(rgb, "rgb8", 3 * NS if i == 40 else stamp_of(i)))
        rec.session.on_image("depth", image_bytes(depth, "16UC1", stamp_of(i) + MS))
    meta, _ = rec.finish()
    assert meta.frames == 79 and meta.invalid["stamp"] == 1 and meta.dropped_total == 1


def test_while_closing_pairs_wait_for_the_writer_instead_of_dropping(tmp_path):
    """The recorder's deactivate takes what its subscriptions still hold and closes the
    episode: no new frame can come in, so those pairs wait for room in the writer's queue
    (closing_wait_s) rather than being dropped as writer_behind (2 of 40 in a loaded run)."""
    import threading

    rec = Recording(tmp_path, max_queue=2, start=False)  # full after 2 pairs until it starts
    rec.session.closing_wait_s = 10.0
    threading.Timer(0.3, rec.writer.start).start()
    for i in range(12):
        rec.good(i)
    meta, _ = rec.finish()
    assert meta.frames == 12 and meta.dropped["writer_behind"] == 0
