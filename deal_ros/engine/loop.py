"""The one training loop: ``Trainer(cfg, stage, run_dir, hooks=...).fit() -> FitResult``.

Every method hands over a :class:`~deal_ros.engine.stage.Stage` (model, parameter groups,
``loss_fn``, items) and the hooks it needs (:mod:`.hooks`); the loop does the rest, the same
way for all: for ``train.max_steps`` (or ``train.epochs``) optimiser steps, over
:class:`~deal_ros.engine.sampler.EpochBatches`,

    lr(step) = lr * lr_mult * warmup(step) * schedule(step)        (engine.optim)
    batch -> device -> autocast(loss_fn) -> GradScaler(backward) -> clip -> step

AMP: ``amp`` auto | bf16 | fp16 | off (fp16 scales the loss with a GradScaler). Multi-GPU:
under ``torchrun`` the model is wrapped in DDP and each rank trains on its shard
(:mod:`.ddp`). The engine's own hooks come after the stage's: :class:`~.hooks.MetricsLog`
(progress bar, ``metrics.jsonl``) and :class:`~.hooks.Checkpointer`.

Resume (``resume=true``/path) restores model, optimiser, scaler, counters, RNG, the
objective's and the hooks' state (e.g. the EMA teacher), and the data order is a function of
(seed, epoch, index), so a resumed run repeats the uninterrupted one step for step (bit-exact
on CPU). ``train.stop_after`` stops early as an interruption would (a checkpoint is written;
the schedule is unchanged). Ctrl-C also writes a checkpoint. A second ``fit()`` continues
where the first stopped (or at ``start_step``).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from deal_ros.engine.checkpoints import (
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from deal_ros.engine.ddp import DistEnv, unwrap, wrap_model
from deal_ros.engine.device import amp_dtype, resolve_device, seed_everything, to_device
from deal_ros.engine.hooks import Checkpointer, HookBase, MetricsLog
from deal_ros.engine.optim import OptimSettings, build_optimizer, lr_factor, set_lr
from deal_ros.engine.sampler import EpochBatches
from deal_ros.engine.stage import LossFn, Stage
from deal_ros.errors import DealError

__all__ = [
    "FitResult",
    "LoopSettings",
    "LossFn",
    "Stage",
    "TrainSettings",
    "Trainer",
    "amp_dtype",
    "build_optimizer",
    "lr_factor",
    "resolve_device",
    "seed_everything",
    "to_device",
]


class LoopSettings(Protocol):
    epochs: int
    max_steps: int | None
    batch_size: int
    num_workers: int
    log_every: int
    checkpoint_every: int
    stop_after: int | None
    sync_bn: bool


class TrainSettings(Protocol):
    """What the loop reads of a config (the DEAL ``TrainConfig`` and the box
    ``BoxTrainConfig`` both fit)."""

    stage: str
    seed: int
    device: str
    amp: str
    resume: bool | str
    run: str | None
    out: str
    name: str | None

    @property
    def optim(self) -> OptimSettings: ...

    @property
    def train(self) -> LoopSettings: ...


@dataclass
class FitResult:
    steps: int
    total_steps: int
    completed: bool
    images_per_s: float
    last: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Runs one stage (see the module docstring).

    State a hook may read: ``step`` (steps done), ``epoch``, ``batch_index`` (batches of the
    epoch done), ``inputs`` (the batch of this step, before it moves to the device),
    ``terms`` (its detached losses), ``batch_images``, ``total_steps``, ``stop_at``,
    ``model`` (DDP-wrapped under torchrun), ``optimizer``, ``outcome``."""

    def __init__(
        self,
        cfg: TrainSettings,
        stage: Stage,
        run_dir: Path | None,
        env: DistEnv | None = None,
        device: torch.device | None = None,
        progress: bool = True,
        hooks: Sequence[HookBase] = (),
    ) -> None:
        self.cfg, self.stage, self.run_dir = cfg, stage, run_dir
        self.env = env or DistEnv()
        self.device = self._device(device or resolve_device(cfg.device))
        self.progress = progress
        t = cfg.train
        self.batches = EpochBatches(
            len(stage.items), stage.batch_size or t.batch_size, cfg.seed, self.env.rank,
            self.env.world, permutation=stage.permutation,
        )  # fmt: skip
        per_epoch = self.batches.batches_per_epoch
        self.total_steps = int(t.max_steps) if t.max_steps else t.epochs * per_epoch
        self.dtype = amp_dtype(cfg.amp, self.device)
        self.extra_state: dict[str, Any] = {}  # plain values stored in the checkpoint
        self.model: nn.Module = stage.model.to(self.device)
        self.optimizer = build_optimizer(stage.param_groups, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.hooks: list[HookBase] = []
        self.register_hooks([*hooks, MetricsLog(), Checkpointer()])
        self.step = self.epoch = self.batch_index = 0
        self.stop_at = self.total_steps
        self.inputs: dict[str, Any] = {}
        self.terms: dict[str, torch.Tensor] = {}
        self.batch_images = 0
        self.last: dict[str, float] = {}
        self.outcome = ""
        self._started = False

    def _device(self, device: torch.device) -> torch.device:
        if self.env.distributed and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.env.local_rank)  # one GPU per rank
        return device

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        for h in hooks:
            h.trainer = weakref.proxy(self)
            self.hooks.append(h)

    def _call(self, event: str) -> None:
        for h in self.hooks:
            getattr(h, event)()

    # ------------------------------------------------------------------ position, state
    def seek(self, step: int) -> None:
        """Continue at ``step`` (every epoch holds the same number of batches)."""
        self.step = int(step)
        self.epoch, self.batch_index = divmod(self.step, self.batches.batches_per_epoch)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "stage": self.stage.name,
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch_index,
            "total_steps": self.total_steps,
            "seed": self.cfg.seed,
            "model": {k: v.detach().cpu() for k, v in unwrap(self.model).state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": rng_state(),
            **self.extra_state,
        }
        if hasattr(self.stage.loss_fn, "state_dict"):
            state["objective"] = self.stage.loss_fn.state_dict()
        for h in self.hooks:
            state.update(h.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any], where: Path | str = "checkpoint") -> None:
        try:
            unwrap(self.model).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if "objective" in state and hasattr(self.stage.loss_fn, "load_state_dict"):
                self.stage.loss_fn.load_state_dict(state["objective"])
            for h in self.hooks:
                h.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise DealError(
                f"checkpoint {where}: does not fit this model/config ({first[:200]})"
            ) from None
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_index = int(state["batch"])
        if self.batch_index >= self.batches.batches_per_epoch:
            self.epoch, self.batch_index = self.epoch + 1, 0

    def save(self) -> None:
        """Write the checkpoint (rank 0; every rank waits for it)."""
        if self.env.is_main and self.run_dir is not None:
            save_checkpoint(checkpoint_path(self.run_dir, self.stage.name), self.state_dict())
        self.env.barrier()

    def _start(self) -> None:
        """Resume (``resume=``) or seed the training RNG stream; wrap the model for DDP."""
        from deal_ros.engine.runfolder import resume_checkpoint

        if self.cfg.resume and self.run_dir is not None:
            path = resume_checkpoint(self.cfg, self.run_dir, self.stage.name)
            self.load_state_dict(load_checkpoint(path, self.stage.name), path)
        if self.step == 0:  # the training RNG stream (dropout, sampling); restored on resume
            torch.manual_seed(self.cfg.seed * 1000 + self.env.rank)
        self.model = wrap_model(
            self.model, self.env, self.device, self.cfg.train.sync_bn,
            self.stage.find_unused_parameters,
        )  # fmt: skip
        self._started = True

    # ------------------------------------------------------------------ the loop
    def _loader(self) -> torch.utils.data.DataLoader:
        items, workers = self.stage.items, self.cfg.train.num_workers
        if hasattr(items, "prefill"):
            items.prefill()  # before workers fork, so they share the cache
        return torch.utils.data.DataLoader(
            items,
            batch_sampler=self.batches,
            num_workers=workers,
            collate_fn=self.stage.collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            generator=torch.Generator(),  # never draws from the global RNG (exact resume)
        )

    def fit(self, start_step: int | None = None) -> FitResult:
        if not self._started:
            self._start()
        if start_step is not None:
            self.seek(start_step)
        stop = self.cfg.train.stop_after
        self.stop_at = min(self.total_steps, stop or self.total_steps)
        loader = self._loader()
        self.model.train()
        self.outcome, images, elapsed = "running", 0, 0.0
        try:
            self._call("before_train")
            t_start = time.perf_counter()  # after the hooks' set-up (the log opens its files)
            while self.step < self.stop_at:
                self.batches.start(self.epoch, self.batch_index)
                for batch in loader:
                    self._one_step(batch)
                    images += self.batch_images
                    if self.step >= self.stop_at:
                        break
                if self.batch_index >= self.batches.batches_per_epoch:  # resume at the next
                    self.epoch, self.batch_index = self.epoch + 1, 0
                    self._call("after_epoch")
            elapsed = time.perf_counter() - t_start
            self.outcome = "done"
        except KeyboardInterrupt:
            self.outcome = "interrupted"
            raise
        finally:
            if self.outcome == "running":
                self.outcome = "failed"
            self._call("after_train")
        return FitResult(
            steps=self.step,
            total_steps=self.total_steps,
            completed=self.step >= self.total_steps,
            images_per_s=images * self.env.world / max(elapsed, 1e-9),
            last=dict(self.last),
        )

    def _one_step(self, batch: dict[str, Any]) -> None:
        self.inputs = batch
        self._call("before_step")
        self.terms = self.run_step(batch)
        self.step, self.batch_index = self.step + 1, self.batch_index + 1
        self.batch_images = int(batch["image"].shape[0])
        self._call("after_step")

    def run_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One optimiser step on ``batch``; returns the detached loss terms."""
        set_lr(self.optimizer, self.step, self.total_steps, self.cfg)
        batch = to_device(batch, self.device)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):  # fmt: skip
            terms = self.stage.loss_fn(self.model, batch, self.step)
        opt, scaler = self.optimizer, self.scaler
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        if self.cfg.optim.grad_clip > 0:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        scaler.step(opt)
        scaler.update()
        return {k: v.detach().float() for k, v in terms.items()}  # no host sync per step

    def check_finite(self, means: dict[str, float]) -> None:
        if all(math.isfinite(v) for v in means.values()):
            return
        shown = ", ".join(f"{k}={v:.4g}" for k, v in means.items())
        raise DealError(
            f"stage {self.stage.name}: the loss is not finite near step {self.step} ({shown}); "
            f"lower optim.lr or {self.stage.nonfinite_hint}"
        )
