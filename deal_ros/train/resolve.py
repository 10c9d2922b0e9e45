"""The config a ``deal train`` call runs with (torch-free, so config errors come fast)."""

from __future__ import annotations

from collections.abc import Sequence

from deal_ros.train.config import (
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
)


def resume_config(
    source: str | None, overrides: Sequence[str], stage_hint: str | None = None
) -> TrainConfig:
    """The config of a resumed run: the run's saved config (``config.yaml``, or
    ``config_seg.yaml`` for the seg stage) + this call's ``overrides``; without ``resume`` it is
    ``load_config(source, overrides)``."""
    from deal_ros.engine.runfolder import find_resume_dir, resumed_overrides, saved_config

    cfg = load_config(source, overrides)
    if not cfg.resume:
        return cfg
    run_dir = find_resume_dir(cfg, stage_hint or cfg.stage)
    name = (
        "config_seg.yaml"
        if (run_dir / "config_seg.yaml").is_file() and cfg.stage == "seg"
        else "config.yaml"
    )
    if not (run_dir / name).is_file():
        return cfg
    data = apply_overrides(saved_config(run_dir, name), resumed_overrides(overrides, run_dir))
    return from_dict(data, where=str(run_dir / name)).validate()
