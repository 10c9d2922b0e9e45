"""A tiny registry of the segmentation losses, by name (for configs and the CLI).

All modules share one call: ``loss(logits (B,C,H,W), labels (B,H,W))``.
"ce+lovasz" is L = CE + lovasz_weight * Lovász-Softmax (weight 1.0 by default, our choice).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from .cross_entropy import CrossEntropyLoss
from .focal import FocalLoss
from .lovasz import LovaszSoftmaxLoss


class WeightedSum(nn.Module):
    """sum_i w_i * loss_i(logits, labels) over named terms."""

    def __init__(self, terms: dict[str, tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = {name: float(w) for name, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({name: m for name, (_, m) in terms.items()})

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sum(self.weights[n] * m(logits, labels) for n, m in self.terms.items())


def _accepted(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _make(cls: type, kw: dict, name: str) -> nn.Module:
    unknown = set(kw) - _accepted(cls)
    if unknown:
        raise ValueError(
            f"seg loss {name!r}: unknown option(s) {sorted(unknown)}; "
            f"accepted: {sorted(_accepted(cls))}"
        )
    return cls(**kw)


def _ce_lovasz(**kw) -> nn.Module:
    w = float(kw.pop("lovasz_weight", 1.0))
    ce_keys, lv_keys = _accepted(CrossEntropyLoss), _accepted(LovaszSoftmaxLoss)
    unknown = set(kw) - ce_keys - lv_keys
    if unknown:
        raise ValueError(
            f"seg loss 'ce+lovasz': unknown option(s) {sorted(unknown)}; accepted: "
            f"{sorted(ce_keys | lv_keys | {'lovasz_weight'})}"
        )
    ce = CrossEntropyLoss(**{k: v for k, v in kw.items() if k in ce_keys})
    lv = LovaszSoftmaxLoss(**{k: v for k, v in kw.items() if k in lv_keys})
    return WeightedSum({"ce": (1.0, ce), "lovasz": (w, lv)})


SEG_LOSSES = {
    "ce": lambda **kw: _make(CrossEntropyLoss, kw, "ce"),
    "focal": lambda **kw: _make(FocalLoss, kw, "focal"),
    "lovasz": lambda **kw: _make(LovaszSoftmaxLoss, kw, "lovasz"),
    "ce+lovasz": _ce_lovasz,
}


def build_seg_loss(name: str, **kw) -> nn.Module:
    """Build a segmentation loss module by name: "ce", "focal", "lovasz" or "ce+lovasz"."""
    key = str(name).strip().lower()
    if key not in SEG_LOSSES:
        raise ValueError(
            f"seg loss: unknown name {name!r}; expected one of {', '.join(SEG_LOSSES)}"
        )
    return SEG_LOSSES[key](**kw)
