"""The run folder (``runs/<name>-NNN/``, see docs/formats.md): naming, config.yaml, classes.txt.

``config.yaml`` is the fully resolved config plus ``meta``: deal_ros version, git revision
(when the package lives in a git checkout), seed, stage, start time and the command line.
The seg stage writes ``config_seg.yaml`` when it trains into a folder that already holds a
CAM run (so ``config.yaml`` keeps describing the CAM net that ``deal export`` reads).

Every method's config is read through :class:`RunSettings` (``name``, ``stage``, ``out``,
``run``, ``resume``, ``seed``): a dataclass config of any schema fits.
``prepare_run`` picks and fills the folder (rank 0 under DDP); ``stage_of_run`` and
``newest_stage`` tell the ``deal`` commands which method a run folder belongs to.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from deal_ros import __version__
from deal_ros.engine.checkpoints import checkpoint_path, newest_checkpoint
from deal_ros.errors import DealError


class RunSettings(Protocol):
    """What the run folder reads of a config (a dataclass, so ``dataclasses.asdict`` works)."""

    stage: str
    name: str | None
    out: str
    run: str | None
    resume: bool | str
    seed: int


class _Ranks(Protocol):  # engine.ddp.DistEnv (kept torch-free here)
    is_main: bool

    def broadcast(self, obj: Any) -> Any: ...


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def git_revision(path: Path | None = None) -> str | None:
    """``<sha>`` (+ ``-dirty``) of the checkout holding ``path`` (the package); None outside git."""
    where = Path(path or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha or None


def default_name(cfg: RunSettings, classes: Sequence[str]) -> str:
    if cfg.name:
        return _SAFE.sub("-", cfg.name).strip("-") or "run"
    base = "-".join(list(classes)[:3]) if classes else cfg.stage
    return (_SAFE.sub("-", base).strip("-") or "run")[:40]


def numbered_runs(out: Path, name: str | None = None) -> list[Path]:
    """Folders ``out/<name>-NNN`` (any name when None), oldest number first."""
    pattern = re.compile(rf"^{re.escape(name)}-(\d{{3,}})$" if name else r"^.+-(\d{3,})$")
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def next_run_dir(out: Path, name: str) -> Path:
    runs = numbered_runs(out, name)
    n = int(runs[-1].name.rsplit("-", 1)[1]) + 1 if runs else 1
    return out / f"{name}-{n:03d}"


def find_resume_dir(cfg: RunSettings, stage: str) -> Path:
    """The run folder ``resume=`` points at: a checkpoint file, a run folder, or (``true``)
    ``run=`` or else the newest run in ``out`` with a checkpoint of this stage."""
    if isinstance(cfg.resume, str):
        p = Path(cfg.resume).expanduser()
        if p.is_file() or p.suffix == ".pt":
            return p.parent.parent if p.parent.name == "checkpoints" else p.parent
        if not p.is_dir():
            raise DealError(f"resume={cfg.resume}: no such run folder or checkpoint")
        return p
    if cfg.run:
        return Path(cfg.run).expanduser()
    out = Path(cfg.out).expanduser()
    name = default_name(cfg, []) if cfg.name else None
    runs = [p for p in numbered_runs(out, name) if checkpoint_path(p, stage).is_file()]
    if not runs:
        raise DealError(
            f"resume=true: no run in {out} has a checkpoint for stage '{stage}' "
            f"(checkpoints/{checkpoint_path(out, stage).name}); give resume=runs/<name>"
        )
    return max(runs, key=lambda p: checkpoint_path(p, stage).stat().st_mtime)


def resume_checkpoint(cfg: RunSettings, run_dir: Path, stage: str) -> Path:
    if isinstance(cfg.resume, str) and Path(cfg.resume).suffix == ".pt":
        return Path(cfg.resume).expanduser()
    return checkpoint_path(run_dir, stage)


def meta(cfg: RunSettings) -> dict[str, Any]:
    return {
        "deal_ros": __version__,
        "git": git_revision(),
        "seed": cfg.seed,
        "stage": cfg.stage,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)),
    }


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    """Atomic YAML write."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    os.replace(tmp, path)


def write_config(run_dir: Path, cfg: RunSettings, filename: str = "config.yaml") -> Path:
    data = dataclasses.asdict(cfg)
    data["meta"] = meta(cfg)
    path = Path(run_dir) / filename
    write_yaml(path, data)
    return path


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise DealError(f"{what} {path}: not found")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DealError(f"{what} {path}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise DealError(f"{what} {path}: expected a mapping")
    return data


def saved_config(run_dir: Path, name: str = "config.yaml") -> dict[str, Any]:
    """The raw config a run folder was started with, for resuming it: ``meta`` dropped, and
    ``train.stop_after`` (a one-shot interruption, not a setting)."""
    saved = read_yaml(Path(run_dir) / name, "run config")
    saved = {k: v for k, v in saved.items() if k != "meta"}
    if isinstance(saved.get("train"), dict):
        saved["train"].pop("stop_after", None)
    return saved


def resumed_overrides(overrides: Sequence[str], run_dir: Path) -> list[str]:
    """``overrides`` + ``run=<run_dir>`` unless they name a run: the resumed run trains on in
    its folder."""
    keys = {o.split("=", 1)[0].strip().lstrip("-") for o in overrides if "=" in o}
    return [*overrides, *([] if "run" in keys else [f"run={run_dir}"])]


def write_classes(run_dir: Path, classes: Sequence[str]) -> Path:
    path = Path(run_dir) / "classes.txt"
    path.write_text("".join(f"{c}\n" for c in classes))
    return path


def read_classes(run_dir: Path) -> list[str]:
    path = Path(run_dir) / "classes.txt"
    if not path.is_file():
        raise DealError(f"run {run_dir}: classes.txt not found (not a deal_ros run folder?)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def stage_of_run(path: str | Path) -> str | None:
    """The ``stage`` in the config.yaml of a run folder (or of the run a checkpoint file lies
    in); None when there is none to read."""
    p = Path(path).expanduser()
    if p.suffix == ".pt":
        p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    cfg = p / "config.yaml"
    if not cfg.is_file():
        return None
    try:
        data = yaml.safe_load(cfg.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data.get("stage") if isinstance(data, dict) else None


def newest_stage(out: str | Path, name: str | None = None) -> str | None:
    """The stage of the most recently written checkpoint among the runs in ``out`` (named
    ``name`` when given): what ``deal train resume=true`` continues."""
    prefix = (_SAFE.sub("-", name).strip("-") or "run") if name else None
    newest = newest_checkpoint(numbered_runs(Path(out).expanduser(), prefix))
    return newest[1] if newest else None


def prepare_run(
    cfg: RunSettings,
    env: _Ranks,
    classes: Sequence[str],
    stage: str,
    default_dir: Path | None = None,
    config_name: str = "config.yaml",
) -> Path:
    """Pick the run folder (rank 0 decides, every rank learns it), create it and write the
    resolved config and classes.txt (not on resume: the folder keeps its original files)."""
    if env.is_main:
        if cfg.resume:
            run_dir = find_resume_dir(cfg, stage)
            if not run_dir.is_dir():
                raise DealError(f"resume: run folder {run_dir} does not exist")
        elif cfg.run:
            run_dir = Path(cfg.run).expanduser()
        elif default_dir is not None and not getattr(cfg, "name", None):
            # e.g. a seg stage beside the CAM run it learns from; a name= of the user's own
            # makes a folder of its own (two seg runs on one pseudo folder shared one before)
            run_dir = default_dir
        else:
            run_dir = next_run_dir(Path(cfg.out).expanduser(), default_name(cfg, classes))
        run_dir.mkdir(parents=True, exist_ok=True)
        if not cfg.resume:
            existing = run_dir / "classes.txt"
            if existing.is_file():
                old = [c for c in existing.read_text().split() if c]
                if old != list(classes):
                    raise DealError(
                        f"run {run_dir}: holds classes {old}, this data has {list(classes)}; "
                        "use another run= folder"
                    )
            write_config(run_dir, cfg, config_name)
            write_classes(run_dir, classes)
        path = str(run_dir)
    else:
        path = None
    return Path(env.broadcast(path))
