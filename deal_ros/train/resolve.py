"""The config a ``deal train`` call runs with (torch-free, so config errors come fast)."""

from __future__ import annotations

from collections.abc import Sequence

from deal_ros.train.config import (
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    parse_override,
)


def resume_config(
    source: str | None, overrides: Sequence[str], stage_hint: str | None = None
) -> TrainConfig:
    """The config of a resumed run: the run's saved config (``config.yaml``, or
    ``config_seg.yaml`` for the seg stage) + this call's ``overrides``; without ``resume`` it is
    ``load_config(source, overrides)``."""
    from deal_ros.engine.runfolder import find_resume_dir, read_yaml

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
    saved = {k: v for k, v in read_yaml(run_dir / name, "run config").items() if k != "meta"}
    if isinstance(saved.get("train"), dict):
        saved["train"].pop("stop_after", None)  # a one-shot interruption, not a setting
    keys = {parse_override(o)[0] for o in overrides}
    extra = [f"run={run_dir}"] if "run" not in keys else []
    data = apply_overrides(saved, [*overrides, *extra])
    return from_dict(data, where=str(run_dir / name)).validate()
