"""Input checks shared by the losses: one clear ValueError naming the argument at fault."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_ndim(name: str, t: torch.Tensor, ndim: int, layout: str) -> None:
    """Raise unless ``t`` is a tensor with ``ndim`` dimensions (``layout`` e.g. "(B,K,H,W)")."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor {layout}, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected {layout} ({ndim} dims), got shape {tuple(t.shape)}")


def check_same(name_a: str, a: Sequence[int], name_b: str, b: Sequence[int], what: str) -> None:
    """Raise unless two size tuples agree (``what`` names the compared dimensions)."""
    if tuple(a) != tuple(b):
        raise ValueError(f"{name_a} and {name_b}: {what} differ, {tuple(a)} vs {tuple(b)}")


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")


def check_labels(labels: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Dense labels (B,H,W): integer dtype, values in [0, num_classes) or ``ignore_index``."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels: expected an integer tensor of class ids, got {labels.dtype}")
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        value = int(labels[bad][0])
        raise ValueError(
            f"labels: class id {value} outside [0, {num_classes}) and not ignore_index "
            f"({ignore_index})"
        )


def check_seg_inputs(scores: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> None:
    """Logits/probas (B,C,H,W) against labels (B,H,W) (any number of trailing spatial dims)."""
    if not isinstance(scores, torch.Tensor) or scores.dim() < 2:
        raise ValueError("logits/probas: expected a tensor (B,C,...) with a class dimension")
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels: expected a torch.Tensor, got {type(labels).__name__}")
    expected = (scores.shape[0], *scores.shape[2:])
    check_same("logits/probas", expected, "labels", labels.shape, "batch/spatial sizes")
    check_labels(labels, scores.shape[1], ignore_index)


def as_instance_maps(name: str, t: torch.Tensor) -> torch.Tensor:
    """Per-instance maps as (N,1,H,W): accepts (N,H,W) or (N,1,H,W)."""
    if isinstance(t, torch.Tensor) and t.dim() == 3:
        t = t.unsqueeze(1)
    check_ndim(name, t, 4, "(N,1,H,W) or (N,H,W)")
    if t.shape[1] != 1:
        raise ValueError(f"{name}: expected one channel per instance, got {tuple(t.shape)}")
    return t
