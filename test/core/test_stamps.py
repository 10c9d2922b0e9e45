"""core.stamp_gate and core.stream_loss: what a stream's stamps decide, frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from deal_ros.core.stamp_gate import DEFAULT_CONFIRM, StampGate
from deal_ros.core.stream_loss import StreamLoss, robust_period_ns

MS = 1_000_000
NS = 1_000_000_000
T0 = 1_700_000_000 * NS
PERIOD = NS // 30


def _run(gate, stamps, latency=5 * MS):
    """Offer frame i stamped ``stamps[i]``, arriving at its true time plus ``latency``;
    returns (accepted indexes, {index: reason} dropped, steps)."""
    kept, dropped, steps = [], {}, []
    for i, stamp in enumerate(stamps):
        result = gate.offer(stamp, T0 + i * PERIOD + latency, i)
        kept += [item for _, item in result.accepted]
        dropped.update({item: reason for _, item, reason, _d, _e in result.dropped})
        if result.step_ns:
            steps.append(result.step_ns)
    result = gate.flush()
    dropped.update({item: reason for _, item, reason, _d, _e in result.dropped})
    return kept, dropped, steps


def _stamps(n, changes=None):
    changes = changes or {}
    return [T0 + i * PERIOD + changes.get(i, 0) for i in range(n)]


@pytest.mark.parametrize("jump", [3600 * NS, -3600 * NS, 400 * MS, -10 * NS])
def test_one_glitch_costs_one_frame(jump):
    kept, dropped, steps = _run(StampGate(), _stamps(60, {30: jump}))
    assert dropped == {30: "stamp_jump"} and kept == [i for i in range(60) if i != 30]
    assert steps == []


def test_a_burst_of_glitches_shorter_than_confirm_is_dropped():
    burst = dict.fromkeys(range(20, 20 + DEFAULT_CONFIRM - 1), 3600 * NS)
    kept, dropped, steps = _run(StampGate(), _stamps(60, burst))
    assert set(dropped) == set(burst) and len(kept) == 60 - len(burst) and steps == []


@pytest.mark.parametrize("step", [3600 * NS, -10 * NS, -3600 * NS])
def test_a_clock_step_releases_every_held_frame(step):
    changes = {i: step for i in range(25, 60)}
    kept, dropped, steps = _run(StampGate(), _stamps(60, changes))
    assert kept == list(range(60)) and dropped == {}
    assert steps == [step + PERIOD]


def test_small_steps_back_are_out_of_order_and_backlogs_are_fine():
    stamps = _stamps(40, {10: -2 * PERIOD})  # frame 10 stamped before frame 9
    gate = StampGate()
    _kept, dropped, _ = _run(gate, stamps)
    assert dropped == {10: "out_of_order"}
    gate = StampGate()
    late = [gate.offer(T0 + i * PERIOD, T0 + 2 * NS, i) for i in range(30)]  # a 2 s backlog
    assert all(r.accepted and not r.dropped for r in late)


def test_implausible_stamps_are_refused_only_with_a_clock_check():
    stamps = _stamps(20, {5: -T0 + 3 * NS, 9: 5 * 365 * 86_400 * NS})
    kept, dropped, _ = _run(StampGate(), stamps)
    assert dropped == {5: "implausible", 9: "implausible"} and len(kept) == 18
    kept, dropped, _ = _run(StampGate(max_clock_offset_ns=None), stamps)
    assert set(dropped) == {5, 9} and all(r == "stamp_jump" for r in dropped.values())


def test_a_camera_stall_is_not_a_jump():
    stamps = [s for i, s in enumerate(_stamps(90)) if not 30 <= i < 60]  # 1 s with no frame
    gate = StampGate()
    for n, s in enumerate(stamps):
        i = n if n < 30 else n + 30
        result = gate.offer(s, T0 + i * PERIOD + 5 * MS, i)
        assert result.accepted and not result.dropped


def test_stream_loss_counts_gaps_and_restarts_on_a_step():
    loss = StreamLoss()
    for i in [*range(0, 40), *range(43, 100)]:  # frames 40-42 lost
        loss.add(T0 + i * PERIOD + (i % 3) * MS)  # jitter
    assert (loss.received, loss.missing) == (97, 3) and round(loss.fraction, 2) == 0.03
    loss.restart()
    loss.add(T0 + 3600 * NS)
    assert loss.missing == 3


def test_robust_period_survives_heavy_loss():
    rng = np.random.default_rng(0)
    kept = np.flatnonzero(rng.random(600) > 0.7)  # 70 % lost
    intervals = np.diff(kept * PERIOD)
    assert abs(robust_period_ns(intervals) - PERIOD) < MS
    assert np.median(intervals) >= 2 * PERIOD  # what a plain median would say
    assert robust_period_ns([PERIOD] * 5) is None  # too few
