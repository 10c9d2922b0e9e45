"""What the stages share: choosing and preparing the run folder under DDP."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deal_ros.errors import DealError
from deal_ros.train.config import TrainConfig
from deal_ros.train.ddp import DistEnv
from deal_ros.train.runfolder import (
    default_name,
    find_resume_dir,
    next_run_dir,
    write_classes,
    write_config,
)


def prepare_run(
    cfg: TrainConfig,
    env: DistEnv,
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
        elif default_dir is not None:
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
