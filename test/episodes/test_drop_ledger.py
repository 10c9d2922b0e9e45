"""PairDropLedger: message-level drops of two streams become one count per lost instant."""

from __future__ import annotations

from deal_ros.episodes.drop_ledger import PairDropLedger

MS = 1_000_000
PERIOD = 33 * MS


def test_a_bad_colour_frame_and_its_lonely_depth_are_one_drop():
    ledger = PairDropLedger(tolerance_ns=PERIOD // 2)
    ledger.drop("rgb", 10 * PERIOD, "invalid.encoding")
    ledger.drop("depth", 10 * PERIOD + 2 * MS, "no_match")
    assert ledger.counts == {"invalid.encoding": 1} and ledger.messages == 2


def test_drops_of_the_same_stream_or_far_apart_stay_apart():
    ledger = PairDropLedger(tolerance_ns=PERIOD // 2)
    ledger.drop("rgb", 10 * PERIOD, "invalid.size")
    ledger.drop("rgb", 11 * PERIOD, "invalid.size")  # the same stream: another frame
    ledger.drop("depth", 13 * PERIOD, "no_match")  # two periods away from both
    assert ledger.counts == {"invalid.size": 2, "no_match": 1}


def test_a_frame_without_a_usable_stamp_matches_its_partner_anywhere_in_its_span():
    """A colour frame whose stamp was implausible, reached after the recorder stalled three
    periods: by the cadence it is the frame after the last one (stamp 11 periods) or, by the
    time since, 13 periods. Its depth partner carries 11 periods: one lost frame (a filing
    under the time-based 13 alone counted two)."""
    ledger = PairDropLedger(tolerance_ns=PERIOD // 2)
    ledger.drop("rgb", 11 * PERIOD, "invalid.stamp", span=(11 * PERIOD, 13 * PERIOD))
    ledger.drop("depth", 11 * PERIOD + MS, "no_match")
    assert ledger.counts == {"invalid.stamp": 1}


def test_both_streams_without_a_usable_stamp_merge_and_the_nearest_start_wins():
    ledger = PairDropLedger(tolerance_ns=PERIOD // 2)
    ledger.drop("depth", 20 * PERIOD, "no_match")
    ledger.drop("depth", 21 * PERIOD, "no_match")
    ledger.drop("rgb", 20 * PERIOD, "stamp_jump", span=(20 * PERIOD, 22 * PERIOD))
    ledger.drop("depth", 22 * PERIOD, "stamp_jump", span=(22 * PERIOD, 22 * PERIOD))
    # rgb's glitch took the depth drop at 20 (nearest its span's start); the depth glitch at
    # 22 is another instant (rgb has been taken there)
    assert ledger.counts == {"no_match": 1, "stamp_jump": 2}
