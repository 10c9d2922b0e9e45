"""What one run of ``deal demo`` holds: its settings, folders, timings, metrics, problems and
the segmenter's replay result. The phases fill it (:class:`deal_ros.demo.pipeline.DemoRun`
is one), the report reads it (:mod:`deal_ros.demo.summary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deal_ros.demo.rosenv import demo_domain
from deal_ros.demo.settings import DemoSettings

__all__ = ["DemoState"]


class DemoState:
    """The settings ``s`` and what the phases found so far (module doc)."""

    def __init__(self, settings: DemoSettings) -> None:
        self.s = settings
        self.out = Path(settings.out).expanduser().resolve()
        self.work = self.out / "work"
        self.logs = self.out / "logs"
        self.timing: dict[str, float] = {}
        self.metrics: dict[str, Any] = {}
        self.problems: list[str] = []
        self.domain = demo_domain()
        self.segment_result: Any = None  # deal_ros.demo.segment's result, after "segment"

    @property
    def episodes_dir(self) -> Path:
        return self.work / "episodes"

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    @property
    def gt_dir(self) -> Path:
        return self.work / "gt"

    @property
    def bundle(self) -> Path:
        return self.out / "model"
