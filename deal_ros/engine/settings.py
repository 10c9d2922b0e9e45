"""The config sections the engine reads, shared by every method's schema: ``optim`` and
``train`` (the loop), the ``amp`` modes, and the checks on them (one place for all methods).

    @dataclass
    class MyConfig:                       # a method's schema (see deal_ros.engine.config)
        stage: str = "mine"; seed: int = 0; device: str = "auto"; amp: str = "auto"; ...
        optim: OptimConfig = field(default_factory=OptimConfig)
        train: LoopConfig = field(default_factory=LoopConfig)

        def validate(self):
            raise_first([*my_checks, *engine_checks(self)])
            return self
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deal_ros.engine.config import ConfigError

AMP_MODES = ("auto", "bf16", "fp16", "off")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "cosine", "constant")

Check = tuple[Any, str]  # (condition, the one-line message when it is false)


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    head_lr_mult: float = 10.0  # new layers learn faster than the pretrained backbone
    schedule: str = "poly"  # poly | cosine | constant
    power: float = 0.9
    warmup_steps: float = 0  # linear LR ramp: steps, or < 1 a fraction of the run's steps
    grad_clip: float = 0.0  # max gradient norm, 0 = off


@dataclass
class LoopConfig:
    epochs: int = 10
    max_steps: int | None = None  # total optimiser steps; overrides epochs when set
    batch_size: int = 8
    num_workers: int = 2
    log_every: int = 10
    checkpoint_every: int = 0  # steps; 0 = at the end of every epoch
    stop_after: int | None = None  # stop (as if interrupted) after this many steps; resumable
    sync_bn: bool = False  # SyncBatchNorm under DDP


def engine_checks(cfg: Any) -> list[Check]:
    """The checks of what the engine reads: ``amp``, ``train.batch_size``, ``train.epochs``,
    ``optim.name``, ``optim.schedule``."""
    t, o = cfg.train, cfg.optim
    return [
        (cfg.amp in AMP_MODES, f"amp: expected one of {', '.join(AMP_MODES)}, got {cfg.amp!r}"),
        (t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}"),
        (t.epochs >= 1 or t.max_steps, f"train.epochs must be >= 1, got {t.epochs}"),
        (o.name in OPTIMIZERS, f"optim.name: expected sgd or adamw, got {o.name!r}"),
        (o.schedule in SCHEDULES,
         f"optim.schedule: expected poly, cosine or constant, got {o.schedule!r}"),
    ]  # fmt: skip


def scale_range_check(scale: Sequence[float], key: str = "augment.scale") -> Check:
    """A random-scale range ``[low, high]`` with 0 < low <= high."""
    ok = len(scale) == 2 and 0 < scale[0] <= scale[1]
    return ok, f"{key}: expected [low, high] with 0 < low <= high, got {scale}"


def raise_first(checks: Iterable[Check]) -> None:
    """ConfigError with the message of the first failing check."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
