"""The EMA teacher of self-distillation (Tarvainen & Valpola, 2017; paper: decay 0.999).

    theta_teacher <- d * theta_teacher + (1 - d) * theta_student      (every training step)

Floating-point buffers (BatchNorm running statistics) follow the same average; integer
buffers (``num_batches_tracked``) are copied (our choice). The teacher is a deep copy made
when distillation starts, kept in eval mode, never trained.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


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
