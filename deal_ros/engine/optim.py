"""Optimiser and learning-rate schedule from a config's ``optim`` section (:class:`OptimSettings`).

    lr(step) = optim.lr * lr_mult * warmup(step) * schedule(step)
    warmup:  min(1, (step + 1) / ramp), ramp = warmup_steps (< 1: a fraction of the run)
    poly:    (1 - step / total) ** power      cosine: (1 + cos(pi step / total)) / 2

Each parameter group carries its ``lr_mult`` (new layers may learn faster than a pretrained
backbone), so the schedule can set every group's rate at every step.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch


class OptimSettings(Protocol):
    name: str  # sgd | adamw
    lr: float
    momentum: float
    weight_decay: float
    schedule: str  # poly | cosine | constant
    power: float
    warmup_steps: float
    grad_clip: float


class HasOptim(Protocol):
    @property
    def optim(self) -> OptimSettings: ...


def lr_factor(step: int, total: int, cfg: HasOptim) -> float:
    o = cfg.optim
    ramp = o.warmup_steps * total if o.warmup_steps < 1 else o.warmup_steps  # < 1: a fraction
    warm = min(1.0, (step + 1) / ramp) if ramp > 0 else 1.0
    t = min(step / max(total, 1), 1.0)
    if o.schedule == "poly":
        sched = (1.0 - t) ** o.power
    elif o.schedule == "cosine":
        sched = 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        sched = 1.0
    return warm * sched


def build_optimizer(groups: list[dict[str, Any]], cfg: HasOptim) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [
        {
            "params": g["params"],
            "lr": o.lr * g.get("lr_mult", 1.0),
            "lr_mult": g.get("lr_mult", 1.0),
        }
        for g in groups
    ]
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def set_lr(opt: torch.optim.Optimizer, step: int, total: int, cfg: HasOptim) -> None:
    """Every group's rate for ``step`` (the module docstring's formula)."""
    factor = lr_factor(step, total, cfg)
    for g in opt.param_groups:
        g["lr"] = cfg.optim.lr * g["lr_mult"] * factor
