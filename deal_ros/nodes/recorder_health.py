"""The recorder's health on ``/diagnostics`` and the check of its episodes folder (configure).

One ``DiagnosticStatus`` named ``deal_recorder: recording`` (the node's name) per
``status_period_s``, in every lifecycle state:

* level and message: STALE while unconfigured or finalized (ERROR with the line of a failed
  configure), ERROR after a full disk or a write error (new episodes refused), WARN when a
  stream lost over 2 % of its frames upstream (the hint of :func:`deal_ros.episodes.meta.
  upstream_line`), when frames were dropped since the last report (keyframe skips are a choice,
  not a loss), when nothing arrives while recording, or when the disk is under ``min_free_mb``;
  OK otherwise ("recording 'mug-1': 29.8 Hz written", "idle: ready for start_episode",
  "inactive: not recording");
* values: lifecycle and episode state, episode id and labels, Hz received per stream, Hz
  written and dropped (since the last report), the episode's frames, bytes and drops by reason
  (``dropped <reason>`` and ``invalid <reason>``, per pair, as in ``episode.yaml``), upstream
  loss, missing and expected frames per stream, clock steps, the free space of
  ``episodes_dir`` (``episodes disk free MB`` ...) and ``min_free_mb``, the input topics.
  While idle the numbers are the last episode's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deal_ros.episodes.meta import UPSTREAM_HINT_FRACTION, EpisodeError, upstream_line
from deal_ros.msg import EpisodeStatus
from deal_ros.nodes.diagnostics import Diagnostics, RateMeter, disk_values

__all__ = ["TASK", "RecorderHealth", "check_episodes_dir"]

TASK = "recording"
_NOT_A_LOSS = ("keyframe_skip",)  # drops the operator asked for
_MIN_EXPECTED = 30  # fewer expected frames make a noisy loss fraction (as the status hint)


def check_episodes_dir(value: str) -> Path:
    """``episodes_dir`` as given, once it is (or can be made in) a folder this process can
    write; :class:`~deal_ros.episodes.meta.EpisodeError` (one line) otherwise. Nothing is
    created here: the folder is made at the first episode."""
    path = Path(value)
    if not str(value).strip():
        raise EpisodeError("parameter episodes_dir is empty: give the folder for the episodes")
    where = path
    while not where.exists() and where.parent != where:
        where = where.parent
    if where == path and not path.is_dir():
        raise EpisodeError(f"episodes_dir '{path}' is not a folder")
    if not where.is_dir():
        raise EpisodeError(f"episodes_dir '{path}' cannot be made: '{where}' is not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        what = "" if where == path else f" (it would be made in '{where}')"
        raise EpisodeError(f"episodes_dir '{path}' is not writable by this process{what}")
    return path


class RecorderHealth:
    """``/diagnostics`` of a :class:`~deal_ros.nodes.recorder.RecorderNode` (module doc)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.diagnostics = Diagnostics(node)
        self._rates = RateMeter()
        self._episode = ""
        self._dropped_before = 0  # counted drops (losses) at the last report

    def restart(self) -> None:
        """A new rate window (activation)."""
        self._rates.reset(self._counters())

    def _counters(self) -> dict[str, int]:
        node = self.node
        status = node.status()
        return {
            "received rgb": node.received["rgb"],
            "received depth": node.received["depth"],
            "written": int(status.frames),
            "dropped": int(status.dropped),
        }

    def publish(self) -> None:
        level, message, values = self.report()
        self.diagnostics.publish(self.diagnostics.status(TASK, level, message, values))

    def report(self) -> tuple[str, str, dict[str, Any]]:
        """``(level, message, values)`` (module doc); rates since the last call."""
        node = self.node
        status = node.status()
        episode = status.episode_id
        drops, invalid, upstream, steps = _episode_counts(node)
        losses = sum(v for k, v in drops.items() if k not in _NOT_A_LOSS)
        if episode != self._episode:  # a new episode counts from 0; after one, from its end
            self._episode = episode
            new = {"written": 0, "dropped": 0} if episode else {}
            self._rates.reset({**self._counters(), **new})
            self._dropped_before = 0 if episode else losses
        rates = self._rates.rates(self._counters())
        values: dict[str, Any] = {
            "lifecycle state": node.lifecycle_state,
            "episode state": status.state,
            "episode": episode,
            "labels": ",".join(status.labels),
            "received rgb Hz": rates["received rgb"],
            "received depth Hz": rates["received depth"],
            "written Hz": rates["written"],
            "dropped Hz": rates["dropped"],
            "received rgb": node.received["rgb"],
            "received depth": node.received["depth"],
            "frames": status.frames,
            "dropped": status.dropped,
            "bytes": status.bytes,
            **{f"dropped {k}": v for k, v in drops.items()},
            **{f"invalid {k}": v for k, v in invalid.items()},
        }
        for stream, up in upstream.items():
            values[f"upstream loss {stream}"] = float(up.get("loss", 0.0))
            values[f"upstream missing {stream}"] = int(up.get("missing", 0))
            values[f"upstream expected {stream}"] = _expected(up)
        values["clock steps"] = steps
        values.update(disk_values(node.get_parameter("episodes_dir").value, "episodes disk"))
        min_free = float(node.get_parameter("min_free_mb").value)
        values["min free MB"] = min_free
        values["rgb topic"] = node._topics["rgb"]
        values["depth topic"] = node._topics["depth"]
        new_drops, self._dropped_before = losses - self._dropped_before, losses
        level, line = self._level(status, rates, upstream, new_drops, values, min_free)
        return level, line, values

    def _level(self, status, rates, upstream, new_drops, values, min_free) -> tuple[str, str]:
        node = self.node
        state = node.lifecycle_state
        if state == "unconfigured":
            if node.transition_error:
                return "error", f"unconfigured: {node.transition_error}"
            return "stale", "unconfigured: waiting for configure"
        if state == "finalized":
            return "stale", "finalized"
        if status.state == EpisodeStatus.STATE_ERROR:
            return "error", status.message
        free = values.get("episodes disk free MB")
        low = free is not None and float(free) < min_free
        disk = f"; only {free} MB free (min_free_mb={min_free:g})" if low else ""
        if status.state != EpisodeStatus.STATE_RECORDING:
            if state != "active":
                return ("warn" if low else "ok"), f"{state}: not recording{disk}"
            return ("warn" if low else "ok"), f"idle: ready for start_episode{disk}"
        line = f"recording '{status.episode_id}': {rates['written']:.1f} Hz written"
        if rates["received rgb"] == 0 and rates["received depth"] == 0:
            return "warn", f"{line}; nothing received on '{node._topics['rgb']}'{disk}"
        counted = [u for u in upstream.values() if _expected(u) >= _MIN_EXPECTED]
        worst = max((float(u.get("loss", 0.0)) for u in counted), default=0.0)
        if worst > UPSTREAM_HINT_FRACTION:
            return "warn", f"{line}; {upstream_line(upstream)}{disk}"
        if new_drops > 0:
            return "warn", f"{line}; {new_drops} frames dropped since the last report{disk}"
        return ("warn" if low else "ok"), line + disk


def _expected(upstream: dict[str, Any]) -> int:
    return int(upstream.get("received", 0)) + int(upstream.get("missing", 0))


def _episode_counts(node: Any) -> tuple[dict, dict, dict, int]:
    """Drops and invalid frames by reason, upstream loss per stream and clock steps of the
    episode in progress, else of the last one (empty before the first)."""
    session, meta = node._session, node._meta
    if session is not None:
        return session.dropped(), session.invalid, session.upstream_loss(), session.clock_steps
    if meta is not None:
        return dict(meta.dropped), dict(meta.invalid), dict(meta.upstream), meta.clock_steps
    return {}, {}, {}, 0
