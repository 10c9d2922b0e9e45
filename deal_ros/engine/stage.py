"""What a method hands the engine: a ``Stage``.

    Stage(name, model, param_groups, loss_fn, items)

* ``name``: the stage (``cam``, ``seg``, ``box``; names the checkpoint and the log records).
* ``param_groups``: ``[{"params": [...], "lr_mult": float}, ...]`` (see :mod:`.optim`).
* ``loss_fn(model, batch, step) -> {"loss": total, <term>: value, ...}``: one step's losses on
  a batch already on the device, inside autocast. When it also has ``state_dict()`` /
  ``load_state_dict(state)`` (e.g. a sampling generator), that state rides in the checkpoint.
* ``items``: a map-style dataset keyed by ``(index, epoch)`` (:mod:`.sampler`); a
  ``prefill()`` method, when present, runs before the loader starts (a cache shared with the
  workers).

Optional: ``collate`` (the DataLoader's ``collate_fn``), ``batch_size`` (default the config's
``train.batch_size``), ``permutation`` (the epoch order, :mod:`.sampler`),
``find_unused_parameters`` (DDP), ``nonfinite_hint`` (the advice of the non-finite-loss error).
Everything else a method needs (an EMA teacher, counters, timers) is a hook (:mod:`.hooks`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deal_ros.engine.sampler import Permutation

LossFn = Callable[[nn.Module, dict[str, Any], int], dict[str, torch.Tensor]]


@dataclass
class Stage:
    name: str
    model: nn.Module
    param_groups: list[dict[str, Any]]  # {"params": [...], "lr_mult": float}
    loss_fn: LossFn
    items: Any  # torch Dataset keyed by (index, epoch)
    collate: Callable[[list[Any]], Any] | None = None
    batch_size: int | None = None
    permutation: Permutation | None = None
    find_unused_parameters: bool = False
    nonfinite_hint: str = "check the data"
