"""The training loop shared by the stages: optimiser, LR schedule, AMP, DDP, checkpoints, logs.

A stage hands over a ``Stage``: the model, its parameter groups (``lr`` relative factors in
``lr_mult``), the training items and ``loss_fn(model, batch, step) -> {"loss": total, <term>:
value, ...}``. ``Trainer.fit()`` runs it for ``train.max_steps`` (or ``train.epochs``) steps:

    lr(step) = lr * lr_mult * warmup(step) * schedule(step)
    poly:   (1 - step / total) ** power      cosine: (1 + cos(pi step / total)) / 2

Resume (``resume=true``/path) restores model, optimiser, scaler, counters and RNG, and the
data order is a function of (seed, epoch, index), so a resumed run repeats the uninterrupted
one step for step (bit-exact on CPU). ``train.stop_after`` stops early as an interruption would
(a checkpoint is written; the schedule is unchanged). Ctrl-C also writes a checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deal_ros.errors import DealError
from deal_ros.train.checkpoints import (
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from deal_ros.train.config import TrainConfig
from deal_ros.train.data import EpochBatches, TrainItems
from deal_ros.train.ddp import DistEnv, unwrap, wrap_model
from deal_ros.train.log import RunLog

LossFn = Callable[[nn.Module, dict[str, Any], int], dict[str, torch.Tensor]]


@dataclass
class Stage:
    name: str  # "cam" | "seg"
    model: nn.Module
    param_groups: list[dict[str, Any]]  # {"params": [...], "lr_mult": float}
    loss_fn: LossFn
    items: TrainItems


@dataclass
class FitResult:
    steps: int
    total_steps: int
    completed: bool
    images_per_s: float
    last: dict[str, float] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DealError(f"device={name!r}: not a torch device (auto, cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DealError(f"device={name}: CUDA is not available on this machine (use device=cpu)")
    return device


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """auto: bf16 on GPUs that support it, else fp16 on CUDA; off on CPU."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
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


def build_optimizer(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
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


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    """Runs one stage (see the module docstring)."""

    def __init__(
        self,
        cfg: TrainConfig,
        stage: Stage,
        run_dir: Path | None,
        env: DistEnv | None = None,
        device: torch.device | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg, self.stage, self.run_dir = cfg, stage, run_dir
        self.env = env or DistEnv()
        self.device = device or resolve_device(cfg.device)
        self.progress = progress
        t = cfg.train
        self.batches = EpochBatches(
            len(stage.items), t.batch_size, cfg.seed, self.env.rank, self.env.world
        )
        per_epoch = self.batches.batches_per_epoch
        self.total_steps = int(t.max_steps) if t.max_steps else t.epochs * per_epoch
        self.dtype = amp_dtype(cfg.amp, self.device)
        self.extra_state: dict[str, Any] = {}  # plain values stored in the checkpoint

    # ------------------------------------------------------------------ pieces
    def _loader(self) -> torch.utils.data.DataLoader:
        workers = self.cfg.train.num_workers
        if self.stage.items.cache is not None:
            self.stage.items.prefill()
        return torch.utils.data.DataLoader(
            self.stage.items,
            batch_sampler=self.batches,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            generator=torch.Generator(),  # never draws from the global RNG (exact resume)
        )

    def _state(self, model, opt, scaler, step, epoch, batch) -> dict[str, Any]:
        return {
            "stage": self.stage.name,
            "step": step,
            "epoch": epoch,
            "batch": batch,
            "total_steps": self.total_steps,
            "seed": self.cfg.seed,
            "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "rng": rng_state(),
            **self.extra_state,
        }

    def _save(self, *args) -> None:
        if self.env.is_main and self.run_dir is not None:
            save_checkpoint(checkpoint_path(self.run_dir, self.stage.name), self._state(*args))
        self.env.barrier()

    def _resume(self, model, opt, scaler) -> tuple[int, int, int]:
        if not self.cfg.resume or self.run_dir is None:
            return 0, 0, 0
        from deal_ros.train.runfolder import resume_checkpoint

        path = resume_checkpoint(self.cfg, self.run_dir, self.stage.name)
        state = load_checkpoint(path, self.stage.name)
        try:
            unwrap(model).load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise DealError(
                f"checkpoint {path}: does not fit this model/config ({first[:200]})"
            ) from None
        if state.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        step, epoch, batch = int(state["step"]), int(state["epoch"]), int(state["batch"])
        if batch >= self.batches.batches_per_epoch:
            epoch, batch = epoch + 1, 0
        return step, epoch, batch

    # ------------------------------------------------------------------ the loop
    def fit(self) -> FitResult:
        cfg, st = self.cfg, self.stage
        model = st.model.to(self.device)
        opt = build_optimizer(st.param_groups, cfg)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        step, epoch, skip = self._resume(model, opt, scaler)
        if step == 0:  # the training RNG stream (dropout, ISL sampling); restored on resume
            torch.manual_seed(cfg.seed * 1000 + self.env.rank)
        wrapped = wrap_model(model, self.env, self.device, cfg.train.sync_bn)
        log = RunLog(
            self.run_dir if self.env.is_main else None, st.name, self.total_steps, step,
            enabled=self.env.is_main, progress=self.progress,
        )  # fmt: skip
        loader = self._loader()
        stop_at = min(self.total_steps, cfg.train.stop_after or self.total_steps)
        every, ckpt_every = max(1, cfg.train.log_every), cfg.train.checkpoint_every
        sums: dict[str, torch.Tensor] = {}
        last: dict[str, float] = {}
        n_sum, batch_i = 0, skip
        model.train()
        t_start, images_done, saved_at = time.perf_counter(), 0, -1
        try:
            while step < stop_at:
                self.batches.start(epoch, skip)
                batch_i = skip
                for batch in loader:
                    terms = self._step(wrapped, opt, scaler, batch, step)
                    step, batch_i = step + 1, batch_i + 1
                    n_img = int(batch["image"].shape[0])
                    images_done += n_img
                    log.tick(n_img)
                    for k, v in terms.items():
                        sums[k] = sums[k] + v if k in sums else v
                    n_sum += 1
                    if step % every == 0 or step == stop_at:
                        rate = log.throughput() * self.env.world
                        means = {k: float(v) / n_sum for k, v in sums.items()}
                        self._check_finite(means, step)
                        means = self.env.mean(means)
                        lr = opt.param_groups[0]["lr"]
                        log.log(step, {"epoch": epoch, "lr": lr, **means, "images_per_s": rate})
                        last, sums, n_sum = means, {}, 0
                    if ckpt_every and step % ckpt_every == 0:
                        self._save(wrapped, opt, scaler, step, epoch, batch_i)
                        saved_at = step
                    if step >= stop_at:
                        break
                if batch_i >= self.batches.batches_per_epoch:  # epoch done: resume at the next
                    epoch, skip = epoch + 1, 0
                    if not ckpt_every and step < stop_at:
                        self._save(wrapped, opt, scaler, step, epoch, 0)
                        saved_at = step
                else:
                    skip = batch_i
            elapsed = time.perf_counter() - t_start
            if saved_at != step:
                self._save(wrapped, opt, scaler, step, epoch, skip)
        except KeyboardInterrupt:
            self._save(wrapped, opt, scaler, step, epoch, batch_i)
            log.close()
            raise
        log.close()
        return FitResult(
            steps=step,
            total_steps=self.total_steps,
            completed=step >= self.total_steps,
            images_per_s=images_done * self.env.world / max(elapsed, 1e-9),
            last=last,
        )

    def _step(self, model, opt, scaler, batch, step: int) -> dict[str, torch.Tensor]:
        for g in opt.param_groups:
            g["lr"] = self.cfg.optim.lr * g["lr_mult"] * lr_factor(step, self.total_steps, self.cfg)
        batch = to_device(batch, self.device)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):  # fmt: skip
            terms = self.stage.loss_fn(model, batch, step)
        loss = terms["loss"]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip > 0:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), self.cfg.optim.grad_clip)
        scaler.step(opt)
        scaler.update()
        return {k: v.detach().float() for k, v in terms.items()}  # no host sync per step

    def _check_finite(self, means: dict[str, float], step: int) -> None:
        if all(math.isfinite(v) for v in means.values()):
            return
        shown = ", ".join(f"{k}={v:.4g}" for k, v in means.items())
        raise DealError(
            f"stage {self.stage.name}: the loss is not finite near step {step} ({shown}); "
            "lower optim.lr or check the data"
        )
