"""The box method's hooks on the engine (besides the engine's ``EMAHook``).

* :class:`SkippedBoxes`: the bad boxes the data skipped (``data.BOX_PROBLEMS``), counted once
  per sample, and how many samples training saw (``train_summary.json``).
* :class:`StepTimer`: the compute time of each step (forward, backward, update, EMA update;
  the device synchronised on CUDA), whose median ``train_summary.json`` reports.
"""

from __future__ import annotations

import statistics
import time

import torch

from deal_ros.engine.hooks import HookBase
from deal_ros.instance.data import BOX_PROBLEMS


class SkippedBoxes(HookBase):
    def __init__(self) -> None:
        self.skipped = dict.fromkeys(BOX_PROBLEMS, 0)
        self.seen: set[int] = set()

    def before_step(self) -> None:
        batch = self.trainer.inputs
        for idx, meta in zip(batch["index"].tolist(), batch["meta"]):
            if idx not in self.seen:
                self.seen.add(idx)
                for k, v in meta.get("box_skipped", {}).items():
                    self.skipped[k] = self.skipped.get(k, 0) + int(v)


class StepTimer(HookBase):
    """Register it after the hooks whose step work it should include (the EMA update)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def _sync(self) -> None:
        if self.trainer.device.type == "cuda":
            torch.cuda.synchronize(self.trainer.device)

    def before_step(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def after_step(self) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._t0)

    def median(self) -> float:
        return float(statistics.median(self.times)) if self.times else 0.0
