"""Approximate-time pairing: readable examples, then hypothesis properties."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from builtin_interfaces.msg import Time as RclpyTime
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rclpy.time import Time as RclpyClockTime
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import Header as RclpyHeader

from deal_ros.core.errors import PairingError
from deal_ros.core.pairing import (
    DROP_REASONS,
    ApproxTimePairer,
    ns_to_sec_nanosec,
    stamp_to_ns,
)

MS = 1_000_000
PERIOD = 33_333_333  # 30 Hz


def run(pairer: ApproxTimePairer, pushes) -> list:
    """Push everything, flush, return all sets as (stamps, items) tuples."""
    sets = pairer.push_many(pushes) + pairer.flush()
    return [(tuple(s.stamps.values()), tuple(s.items.values())) for s in sets]


# --- stamps --------------------------------------------------------------------------------


def test_stamp_to_ns_for_rclpy_rosbags_headers_and_ints():
    ts = get_typestore(Stores.ROS2_JAZZY)
    bag_time = ts.types["builtin_interfaces/msg/Time"](sec=1_700_000_000, nanosec=5)
    assert stamp_to_ns(bag_time) == 1_700_000_000_000_000_005
    rclpy_time = RclpyTime(sec=2, nanosec=999_999_999)
    assert stamp_to_ns(rclpy_time) == 2_999_999_999
    assert stamp_to_ns(RclpyHeader(stamp=rclpy_time)) == 2_999_999_999
    assert stamp_to_ns(RclpyClockTime(seconds=3, nanoseconds=7)) == 3_000_000_007
    assert stamp_to_ns(42) == 42
    assert ns_to_sec_nanosec(2_999_999_999) == (2, 999_999_999)
    with pytest.raises(PairingError) as err:
        stamp_to_ns(1.5)
    assert str(err.value) == (
        "stamp_to_ns: expected a Time (sec, nanosec), a Header or int nanoseconds, got float"
    )


# --- readable examples ---------------------------------------------------------------------


def test_equal_stamps_pair_immediately_and_stamp_is_the_first_streams():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=5 * MS)
    assert pairer.push("depth", 100 * MS, "d0") == []
    (pair,) = pairer.push("rgb", 100 * MS, "c0")
    assert pair.items == {"rgb": "c0", "depth": "d0"} and pair.spread_ns == 0
    pairer2 = ApproxTimePairer(("rgb", "depth"), slop_ns=5 * MS)
    pairer2.push("rgb", 103 * MS, "c")
    pairer2.push("depth", 101 * MS, "d")
    (pair,) = pairer2.push("depth", 134 * MS, "d'")  # depth's next frame settles it
    assert pair.stamp_ns == 103 * MS and pair.stamps == {"rgb": 103 * MS, "depth": 101 * MS}


def test_waits_for_the_next_message_only_while_a_closer_set_is_possible():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=40 * MS)
    assert pairer.push("rgb", 0, "c0") == []
    assert pairer.push("depth", 30 * MS, "d30") == []  # rgb 33 ms may fit d30 better: wait
    # c33 fits d30 better than c0 does, unless depth's next frame fits c33 better still
    assert pairer.push("rgb", 33 * MS, "c33") == []
    (pair,) = pairer.push("depth", 63 * MS, "d63")  # it does not: c0 loses d30 to c33
    assert pair.items == {"rgb": "c33", "depth": "d30"} and pair.spread_ns == 3 * MS
    assert pairer.stats.dropped["no_match"] == {"rgb": 1, "depth": 0}


def test_a_closer_set_that_would_itself_give_way_does_not_steal_the_partner():
    pairer = ApproxTimePairer(("a", "b"), slop_ns=7)
    pushes = [("a", 192, "a192"), ("b", 199, "b199"), ("a", 205, "a205"), ("b", 206, "b206")]
    sets = pairer.push_many(pushes) + pairer.flush()
    # a205 is closer to b199 than a192 is, but b206 is closer still to a205: two pairs
    assert [s.items for s in sets] == [{"a": "a192", "b": "b199"}, {"a": "a205", "b": "b206"}]


def test_flush_emits_what_was_waiting_and_drops_the_rest():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=10 * MS)
    pairer.push("rgb", 0, "c0")
    pairer.push("depth", 2 * MS, "d0")
    pairer.push("depth", 40 * MS, "d1")
    (pair,) = pairer.flush()
    assert pair.items == {"rgb": "c0", "depth": "d0"}
    assert pairer.pending() == {"rgb": 0, "depth": 0}
    assert pairer.stats.dropped["no_match"]["depth"] == 1


def test_realsense_30hz_with_jitter_and_missing_colour_frames():
    rng = np.random.default_rng(7)
    pushes, missing = [], {3, 4, 17, 40, 41, 42, 99}
    for i in range(120):
        t = 5_000 * 10**9 + i * PERIOD
        frame = [("depth", t + int(rng.normal(0, 1.5 * MS)), ("depth", i))]
        if i not in missing:
            frame.append(("rgb", t + int(rng.normal(0, 1.5 * MS)), ("rgb", i)))
        rng.shuffle(frame)  # either may arrive first
        pushes += frame
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=15 * MS, queue_size=10)
    sets = run(pairer, pushes)
    assert len(sets) == 120 - len(missing)
    for _, (rgb, depth) in sets:
        assert rgb[1] == depth[1]  # always the same frame
    stats = pairer.stats
    assert stats.dropped["no_match"] == {"rgb": 0, "depth": len(missing)}
    assert stats.dropped_total() == len(missing) and stats.emitted == len(sets)


def test_three_streams():
    pairer = ApproxTimePairer(("rgb", "depth", "ir"), slop_ns=10 * MS)
    pushes = []
    for i in range(10):
        t = i * PERIOD
        pushes += [("ir", t + 3 * MS, i), ("rgb", t, i), ("depth", t - 2 * MS, i)]
    pushes.remove(("ir", 5 * PERIOD + 3 * MS, 5))
    sets = run(pairer, pushes)
    assert [items for _, items in sets] == [(i, i, i) for i in range(10) if i != 5]
    assert pairer.stats.dropped["no_match"] == {"rgb": 1, "depth": 1, "ir": 0}


def test_out_of_order_after_emission_is_dropped():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=5 * MS)
    pairer.push("rgb", 100 * MS, "c")
    assert len(pairer.push("depth", 100 * MS, "d")) == 1
    assert pairer.push("rgb", 50 * MS, "late") == []
    assert pairer.push("rgb", 100 * MS, "duplicate") == []
    assert pairer.stats.dropped["out_of_order"] == {"rgb": 2, "depth": 0}
    assert pairer.pending() == {"rgb": 0, "depth": 0}


def test_duplicate_stamps_go_out_once():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=5 * MS)
    pushes = [("rgb", 10, "c"), ("rgb", 10, "c-dup"), ("depth", 10, "d"), ("depth", 10, "d-dup")]
    assert [s.items for s in pairer.push_many(pushes)] == [{"rgb": "c", "depth": "d"}]
    assert pairer.flush() == []
    assert pairer.stats.dropped["out_of_order"] == {"rgb": 1, "depth": 1}


def test_late_message_newer_than_last_emission_is_sorted_in():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=5 * MS)
    pairer.push("rgb", 200 * MS, "c200")
    pairer.push("rgb", 100 * MS, "c100")  # arrives late, still newer than any emission
    sets = pairer.push("depth", 100 * MS, "d100")
    assert [s.items["rgb"] for s in sets] == ["c100"]


def test_queue_full_drops_the_oldest():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=5 * MS, queue_size=3)
    for i in range(5):
        pairer.push("rgb", i * PERIOD, i)
    assert pairer.pending() == {"rgb": 3, "depth": 0}
    assert pairer.stats.dropped["queue_full"] == {"rgb": 2, "depth": 0}
    (pair,) = pairer.push("depth", 2 * PERIOD, "d")  # rgb 0 and 1 are gone; 2 is there
    assert pair.items["rgb"] == 2


def test_a_full_queue_emits_the_set_that_waited_for_a_missing_message():
    """rgb 0 pairs with depth 0 unless rgb's next frame fits depth 0 better, so the pairer
    waits for it; when colour stops (a run of bad colour frames) and depth overflows its
    queue, the set is emitted rather than lost (it was lost as queue_full before)."""
    drops = []
    pairer = ApproxTimePairer(
        ("rgb", "depth"), slop_ns=15 * MS, queue_size=3, on_drop=lambda *d: drops.append(d)
    )
    assert pairer.push("rgb", 0, "c0") == [] and pairer.push("depth", MS, "d0") == []
    for i in range(1, 4):
        sets = pairer.push("depth", i * PERIOD + MS, f"d{i}")
    assert [(s.items["rgb"], s.items["depth"]) for s in sets] == [("c0", "d0")]
    assert drops == []
    pairer.push("depth", 4 * PERIOD + MS, "d4")  # no colour: depth 1 goes, with its stamp
    assert drops == [("depth", PERIOD + MS, "queue_full")]


def test_restart_forgets_the_last_stamps_for_a_clock_step_back():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=5 * MS)
    pairer.push_many([("rgb", 100 * PERIOD, "a"), ("depth", 100 * PERIOD, "b")])
    assert pairer.last_emitted("rgb") == 100 * PERIOD
    assert pairer.push("rgb", 10 * PERIOD, "old") == []  # out of order before the restart
    assert pairer.restart() == [] and pairer.last_emitted("rgb") is None
    (pair,) = pairer.push_many([("rgb", 10 * PERIOD, "c"), ("depth", 10 * PERIOD, "d")])
    assert pair.items == {"rgb": "c", "depth": "d"}
    assert pairer.stats.dropped["out_of_order"]["rgb"] == 1


def test_single_stream_passes_through():
    pairer = ApproxTimePairer(("sonar",), slop_ns=0)
    assert [s.items["sonar"] for s in pairer.push_many([("sonar", 5, "a"), ("sonar", 9, "b")])] == [
        "a",
        "b",
    ]


def test_pairing_errors():
    pairer = ApproxTimePairer(("rgb", "depth"))
    with pytest.raises(PairingError) as err:
        pairer.push("ir", 0, None)
    assert str(err.value) == "pairer: unknown stream 'ir'; streams are ('rgb', 'depth')"
    with pytest.raises(PairingError) as err:
        pairer.push("rgb", 0.5, None)
    assert str(err.value) == "pairer: stamp_ns must be an integer, got float 0.5"
    with pytest.raises(PairingError, match=r"^pairer: slop_ns must be >= 0, got -1$"):
        ApproxTimePairer(slop_ns=-1)
    with pytest.raises(PairingError, match=r"^pairer: queue_size must be >= 1, got 0$"):
        ApproxTimePairer(queue_size=0)
    with pytest.raises(PairingError, match=r"streams must be distinct names, got \('a', 'a'\)"):
        ApproxTimePairer(("a", "a"))


def test_threads_pushing_concurrently_keep_the_books_balanced():
    pairer = ApproxTimePairer(("rgb", "depth"), slop_ns=5 * MS, queue_size=50)
    results: list = []

    def feed(stream: str) -> None:
        for i in range(2000):
            results.extend(pairer.push(stream, i * PERIOD, (stream, i)))

    threads = [threading.Thread(target=feed, args=(s,)) for s in ("rgb", "depth")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results += pairer.flush()
    stats = pairer.stats
    assert stats.emitted == len(results) > 0
    assert 2 * stats.emitted + stats.dropped_total() == 4000
    assert all(s.items["rgb"][1] == s.items["depth"][1] for s in results)


# --- properties ----------------------------------------------------------------------------


@st.composite
def scenarios(draw):
    n = draw(st.integers(2, 3))
    streams = tuple(f"s{k}" for k in range(n))
    pushes = draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 400)), min_size=0, max_size=80)
    )
    slop = draw(st.integers(0, 40))
    queue_size = draw(st.integers(1, 8))
    return streams, [(streams[k], t, i) for i, (k, t) in enumerate(pushes)], slop, queue_size


@settings(max_examples=300, deadline=None)
@given(scenarios())
@example(  # a queued duplicate stamp used to be emitted after its twin
    (("s0", "s1"), [("s0", 0, 0), ("s1", 1, 1), ("s1", 1, 2), ("s0", 0, 3)], 1, 2)
)
def test_properties_on_arbitrary_input(scenario):
    streams, pushes, slop, queue_size = scenario
    pairer = ApproxTimePairer(streams, slop_ns=slop, queue_size=queue_size)
    emitted = []
    for stream, stamp, item in pushes:
        emitted += pairer.push(stream, stamp, item)
        assert all(n <= queue_size for n in pairer.pending().values())  # queue bound
    emitted += pairer.flush()

    seen = [item for s in emitted for item in s.items.values()]
    assert len(seen) == len(set(seen))  # no message emitted twice
    by_item = {item: (stream, stamp) for stream, stamp, item in pushes}
    for s in emitted:
        assert s.spread_ns <= slop  # every set within slop
        assert s.stamp_ns == s.stamps[streams[0]]
        for stream, item in s.items.items():  # items belong to the stream and stamp stated
            assert by_item[item] == (stream, s.stamps[stream])
    for stream in streams:  # per stream, emitted stamps strictly increase
        stamps = [s.stamps[stream] for s in emitted]
        assert stamps == sorted(set(stamps))

    stats = pairer.stats  # every pushed message is accounted for
    assert stats.emitted == len(emitted)
    for stream in streams:
        assert stats.pushed[stream] == sum(1 for p in pushes if p[0] == stream)
        assert stats.pushed[stream] == stats.emitted + sum(
            stats.dropped[r][stream] for r in DROP_REASONS
        )

    again = ApproxTimePairer(streams, slop_ns=slop, queue_size=queue_size)  # determinism
    assert run(again, pushes) == [
        (tuple(s.stamps.values()), tuple(s.items.values())) for s in emitted
    ]
    assert again.stats == stats


@settings(max_examples=100, deadline=None)
@given(
    gaps=st.lists(st.integers(21, 60), min_size=1, max_size=40),
    n=st.integers(2, 3),
    jitter=st.lists(st.integers(-5, 5), min_size=120, max_size=120),
    lost=st.lists(st.booleans(), min_size=120, max_size=120),
    order=st.randoms(use_true_random=False),
)
def test_frames_present_on_every_stream_are_all_paired(gaps, n, jitter, lost, order):
    """Frames >= 21 apart, each stream's copy within +-5 of it (some copies lost), slop 10:
    any interleaving that keeps each stream's order pairs exactly the frames seen by every
    stream, each with itself, and drops every other message as no_match."""
    frames = np.cumsum(gaps).tolist()
    streams = tuple(f"s{k}" for k in range(n))
    seen = [[not lost[(i * n + k) % 120] for i in range(len(frames))] for k in range(n)]
    per_stream = [
        [(s, t + jitter[(i * n + k) % 120], (s, i)) for i, t in enumerate(frames) if seen[k][i]]
        for k, s in enumerate(streams)
    ]
    pushes = []
    while any(per_stream):  # random interleaving that keeps each stream's order
        k = order.choice([k for k, q in enumerate(per_stream) if q])
        pushes.append(per_stream[k].pop(0))
    pairer = ApproxTimePairer(streams, slop_ns=10, queue_size=len(frames) + 1)
    sets = run(pairer, pushes)
    complete = [i for i in range(len(frames)) if all(seen[k][i] for k in range(n))]
    assert [tuple(item[1] for item in items) for _, items in sets] == [(i,) * n for i in complete]
    stats = pairer.stats
    assert stats.dropped_total() == stats.dropped_total("no_match") == len(pushes) - n * len(sets)
