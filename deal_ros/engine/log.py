"""Training logs: ``metrics.jsonl``, a tqdm progress bar, TensorBoard scalars (optional).

One JSON object per logged step (``{"stage", "step", "epoch", "lr", "loss", <terms>,
"images_per_s", "time"}``) or evaluation (``{"stage", "step", "eval": {...}}``). On resume the
lines past the resumed step are dropped, so the file reads as one uninterrupted run.
TensorBoard (``tb/``) is used when ``torch.utils.tensorboard`` imports (lazily, never
required). Only rank 0 logs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (a torn last line is skipped)."""
    out = []
    if not Path(path).is_file():
        return out
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class RunLog:
    """Progress bar + metrics.jsonl + TensorBoard for one stage of a run."""

    def __init__(
        self,
        run_dir: Path | None,
        stage: str,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        tensorboard: bool = True,
        progress: bool = True,
    ) -> None:
        self.stage, self.enabled = stage, enabled and run_dir is not None
        self.path = Path(run_dir) / "metrics.jsonl" if run_dir is not None else None
        self.tb = None
        self._t0, self._images, self._last = time.perf_counter(), 0, time.perf_counter()
        if self.enabled:
            self._truncate(start_step)
            if tensorboard:
                self.tb = _tensorboard(Path(run_dir) / "tb")
        self.bar = tqdm(
            total=total_steps, initial=start_step, desc=f"train {stage}", unit="step",
            disable=not (enabled and progress), dynamic_ncols=True, leave=True,
        )  # fmt: skip

    def _truncate(self, start_step: int) -> None:
        if not self.path.is_file():
            return
        keep = [
            r for r in read_metrics(self.path)
            if r.get("stage") != self.stage or int(r.get("step", 0)) <= start_step
        ]  # fmt: skip
        self.path.write_text("".join(json.dumps(r) + "\n" for r in keep))

    def tick(self, images: int) -> None:
        self._images += images
        self.bar.update(1)

    def throughput(self) -> float:
        now = time.perf_counter()
        rate = self._images / max(now - self._last, 1e-9)
        self._images, self._last = 0, now
        return rate

    def log(self, step: int, values: dict[str, Any]) -> None:
        record = {"stage": self.stage, "step": step, **values}
        record["time"] = round(time.perf_counter() - self._t0, 3)
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(_clean(record)) + "\n")
            if self.tb is not None:
                for k, v in values.items():
                    if isinstance(v, (int, float)) and k != "epoch":
                        self.tb.add_scalar(f"{self.stage}/{k}", v, step)
        shown = {k: v for k, v in values.items() if k in ("loss", "cls", "deal", "fsl", "seg")}
        post = {k: f"{v:.4f}" for k, v in shown.items() if isinstance(v, float)}
        if "images_per_s" in values:
            post["img/s"] = f"{values['images_per_s']:.1f}"
        self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed (optional)
        return None
    return SummaryWriter(str(folder))
