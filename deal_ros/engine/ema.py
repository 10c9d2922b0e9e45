"""The EMA teacher (Tarvainen & Valpola, 2017; the box method's self-distillation: decay 0.999).

    theta_teacher <- d * theta_teacher + (1 - d) * theta_student      (every training step)

Floating-point buffers (BatchNorm running statistics) follow the same average; integer
buffers (``num_batches_tracked``) are copied (our choice). The teacher is a deep copy made
when distillation starts, kept in eval mode, never trained.

:class:`EMAHook` runs it on the engine: the teacher is made before the first step at or after
``start``, updated after every optimiser step, and saved in the checkpoint (key ``teacher``),
so a resumed run continues with the very teacher it had.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from deal_ros.engine.ddp import unwrap
from deal_ros.engine.hooks import HookBase


class EMATeacher:
    """``EMATeacher(student, decay)``; ``update(student)`` after each optimiser step."""

    def __init__(self, student: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(student).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        d = self.decay
        t_state, s_state = self.model.state_dict(), student.state_dict()
        for name, t in t_state.items():
            s = s_state[name].detach()
            if t.dtype.is_floating_point:
                t.mul_(d).add_(s.to(t.dtype), alpha=1.0 - d)
            else:
                t.copy_(s)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


class EMAHook(HookBase):
    """An :class:`EMATeacher` of the trained model from step ``start`` on (None: never);
    ``teacher`` is None until then. The stage's objective reads ``hook.teacher``."""

    KEY = "teacher"

    def __init__(self, start: int | None, decay: float = 0.999) -> None:
        self.start, self.decay = start, float(decay)
        self.teacher: EMATeacher | None = None

    def before_step(self) -> None:
        t = self.trainer
        if self.teacher is None and self.start is not None and t.step >= self.start:
            self.teacher = EMATeacher(unwrap(t.model), self.decay)

    def after_step(self) -> None:
        if self.teacher is not None:
            self.teacher.update(unwrap(self.trainer.model))

    def state_dict(self) -> dict[str, Any]:
        return {self.KEY: self.teacher.state_dict()} if self.teacher is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.KEY in state:
            self.teacher = EMATeacher(unwrap(self.trainer.model), self.decay)
            self.teacher.load_state_dict(state[self.KEY])
