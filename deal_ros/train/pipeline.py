"""``train(cfg)``: run the stage a config names (``deal train`` calls this).

    from deal_ros.train.config import load_config
    from deal_ros.train.pipeline import train
    run_dir, result = train(load_config("scene", ["train.max_steps=50"]))

Under ``torchrun`` every process calls it; the process group is joined here and left at the
end. Resume (``resume=true`` / a path) starts from the run's saved ``config.yaml`` with this
call's command-line overrides applied on top (``deal_ros.train.resolve.resume_config``).
"""

from __future__ import annotations

from pathlib import Path

from deal_ros.engine.ddp import DistEnv
from deal_ros.engine.loop import FitResult
from deal_ros.train.config import TrainConfig


def train(cfg: TrainConfig, progress: bool = True) -> tuple[Path, FitResult]:
    """Train the stage of ``cfg``; returns (run folder, fit summary)."""
    import torch

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    # deterministic: same seed, same result (cuDNN picks fixed algorithms); else autotune
    torch.backends.cudnn.deterministic = bool(cfg.deterministic)
    torch.backends.cudnn.benchmark = not cfg.deterministic
    env = DistEnv.from_env(cfg.device)
    try:
        if cfg.stage == "cam":
            from deal_ros.train.stages.cam import train_cam

            return train_cam(cfg, env, progress=progress)
        from deal_ros.train.stages.seg import train_seg

        return train_seg(cfg, env, progress=progress)
    finally:
        env.close()
