"""Resume checkpoints: ``checkpoints/<stage>-last.pt`` in the run folder (the CAM stage's is
``checkpoints/last.pt``, its name since the first release; ``seg-last.pt``, ``box-last.pt``).

A checkpoint is a plain dict of tensors and plain values, loadable with
``torch.load(path, weights_only=True)``: model and optimiser state dicts, the GradScaler
state, the step / epoch / batch counters, the torch RNG states (CPU and CUDA), and what the
stage's objective and the hooks add (e.g. ``teacher``: the EMA teacher, :mod:`.ema`). Data
order and augmentation need no saved state: they are functions of (seed, epoch, index).
Writes are atomic (temporary file + fsync + rename), so an interrupted save never leaves a
half-written ``last.pt``. A missing or unreadable checkpoint is one ``DealError`` line.
(torch is imported lazily, so the run-folder helpers stay light.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deal_ros.errors import DealError

FORMAT = 1
# the stages of the shipped methods (DEAL: cam, seg; box-supervised: box); any other stage
# name gets <stage>-last.pt
NAMES = {"cam": "last.pt", "seg": "seg-last.pt", "box": "box-last.pt"}
REQUIRED = ("format", "stage", "step", "epoch", "batch", "model", "optimizer")
_STAGE = re.compile(r"^[a-z][a-z0-9_]*$")


def checkpoint_name(stage: str) -> str:
    """The file name of ``stage``'s checkpoint; a name that is not a word is one DealError."""
    if not _STAGE.match(stage):
        raise DealError(
            f"checkpoint: '{stage}' is not a stage name (lower-case letters, digits, _)"
        )
    return NAMES.get(stage, f"{stage}-last.pt")


def checkpoint_path(run_dir: Path, stage: str) -> Path:
    """``<run_dir>/checkpoints/<the stage's file>``."""
    return Path(run_dir) / "checkpoints" / checkpoint_name(stage)


def _stage_of_file(name: str) -> str | None:
    if name == NAMES["cam"]:
        return "cam"
    stem = name[: -len("-last.pt")] if name.endswith("-last.pt") else ""
    return stem if _STAGE.match(stem) else None


def newest_checkpoint(run_dirs: Iterable[Path]) -> tuple[Path, str] | None:
    """(run folder, stage) of the most recently written checkpoint of any stage among
    ``run_dirs``; None when none holds one."""
    found = [
        (path.stat().st_mtime, str(run), stage)
        for run in run_dirs
        if (Path(run) / "checkpoints").is_dir()
        for path in sorted((Path(run) / "checkpoints").glob("*.pt"))
        if path.is_file() and (stage := _stage_of_file(path.name))
    ]
    if not found:
        return None
    _, run, stage = max(found)
    return Path(run), stage


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise DealError(f"checkpoint {path}: cannot be written ({exc.strerror})") from exc
    return path


def load_checkpoint(path: Path, stage: str | None = None) -> dict[str, Any]:
    """Read a checkpoint (``weights_only``); absent, corrupt or foreign files -> DealError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DealError(f"checkpoint {path}: not found (nothing to resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, pickled objects ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DealError(
            f"checkpoint {path}: corrupt or not a deal_ros checkpoint ({first})"
        ) from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
        raise DealError(
            f"checkpoint {path}: not a deal_ros checkpoint (missing {', '.join(missing)})"
        )
    if int(state["format"]) > FORMAT:
        raise DealError(
            f"checkpoint {path}: format {state['format']} is newer than this deal_ros reads "
            f"({FORMAT}); upgrade deal_ros"
        )
    if stage is not None and state["stage"] != stage:
        raise DealError(f"checkpoint {path}: holds stage '{state['stage']}', not '{stage}'")
    return state
