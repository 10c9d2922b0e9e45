"""Box-supervised training: ``main_from_config(cfg) -> (run_dir, BoxFitResult)``.

    from deal_ros.instance.config import load_box_config
    from deal_ros.instance.train import main_from_config
    run_dir, result = main_from_config(load_box_config("box", ["data=scene:n=64"]))

Steps: open the data (boxes + depth; ``pseudo_depth=`` fills depth from an ONNX model), build
CondInst, then for ``train.max_steps`` (or ``train.epochs``) steps minimise the loss of
``losses.py``; from ``distill.start`` on an EMA teacher (``ema.py``) supplies depth-matched
pseudo masks (``distill.py``). The run folder (``runs/<name>-NNN``) gets config.yaml
(``stage: box``), classes.txt, instance_net.safetensors, checkpoints/box-last.pt (resume with
``resume=runs/<name>-NNN``), metrics.jsonl, eval.json (when ``val`` is set) and overlays/.
The helpers of ``deal_ros.train`` are reused: optimiser + LR schedule, device/AMP choice, run
folder naming, config/classes files, atomic checkpoints and the progress/metrics log.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deal_ros.data.torch_dataset import collate_samples
from deal_ros.engine.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from deal_ros.engine.ema import EMATeacher
from deal_ros.engine.log import RunLog
from deal_ros.engine.loop import (
    amp_dtype,
    build_optimizer,
    lr_factor,
    resolve_device,
    seed_everything,
)
from deal_ros.errors import DealError
from deal_ros.instance.condinst import STRIDES, CondInst
from deal_ros.instance.config import (
    BoxTrainConfig,
    box_config_from_dict,
    load_box_config,
    loss_in_steps,
)
from deal_ros.instance.data import BOX_PROBLEMS, box_items, clean_boxes, open_box_dataset
from deal_ros.instance.distill import pseudo_masks
from deal_ros.instance.losses import detection_losses, distill_loss, mask_losses, sample_positives
from deal_ros.instance.mask_targets import (
    box_masks,
    lab_image,
    nearness,
    normalise_depth,
    pooled_depth,
)
from deal_ros.instance.targets import fcos_targets

WEIGHTS = "instance_net.safetensors"
CHECKPOINT = "checkpoints/box-last.pt"


@dataclass
class BoxFitResult:
    steps: int
    total_steps: int
    completed: bool
    images_per_s: float
    step_time_s: float  # median compute time of a training step (forward + backward + update)
    last: dict[str, float] = field(default_factory=dict)
    box_skipped: dict[str, int] = field(default_factory=dict)
    samples_seen: int = 0
    eval: dict[str, Any] | None = None


def build_model(cfg: BoxTrainConfig, num_classes: int, load_pretrained: bool = True) -> CondInst:
    return CondInst(num_classes, cfg.model, load_pretrained=load_pretrained)


def distill_start(cfg: BoxTrainConfig, total: int) -> int | None:
    """The step at which the teacher is created (None: no distillation)."""
    d = cfg.distill
    if not d.enabled:
        return None
    return round(d.start * total) if d.start < 1 else int(d.start)


def check_has_boxes(dataset, num_classes: int, probe: int = 16) -> None:
    """One line when none of ``probe`` samples (spread over the dataset) has a usable box."""
    n = len(dataset)
    m = min(probe, n)
    picks = sorted({round(i * (n - 1) / max(m - 1, 1)) for i in range(m)})
    totals = dict.fromkeys(BOX_PROBLEMS, 0)
    for i in picks:
        s = dataset[i]
        kept, counts = clean_boxes(s.boxes, *s.rgb.shape[:2], num_classes)
        if kept:
            return
        for k, v in counts.items():
            totals[k] += v
    bad = ", ".join(f"{k} {v}" for k, v in totals.items() if v) or "none given"
    raise DealError(
        f"data '{getattr(dataset, 'source', 'dataset')}': no usable box in {len(picks)} of its "
        f"{n} samples (skipped: {bad}); box-supervised training needs boxes (COCO bbox, "
        "episode.yaml boxes:, scene:)"
    )


class BoxTrainer:
    """The loop (see the module docstring); ``step_terms`` is one step's losses."""

    def __init__(
        self,
        cfg: BoxTrainConfig,
        model: CondInst,
        items,
        run_dir: Path | None,
        device: torch.device,
        progress: bool = True,
    ) -> None:
        self.cfg, self.model, self.items, self.run_dir = cfg, model, items, run_dir
        self.device, self.progress = device, progress
        t = cfg.train
        self.batch_size = min(t.batch_size, len(items))
        self.per_epoch = max(len(items) // self.batch_size, 1)
        self.total = int(t.max_steps) if t.max_steps else t.epochs * self.per_epoch
        self.start_distill = distill_start(cfg, self.total)
        self.loss = loss_in_steps(cfg.loss, self.total)  # fractions of the run -> steps
        self.teacher: EMATeacher | None = None
        self.dtype = amp_dtype(cfg.amp, device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.skipped = dict.fromkeys(BOX_PROBLEMS, 0)
        self.seen: set[int] = set()

    # ------------------------------------------------------------------ data
    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        perm = np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.items))
        bs = self.batch_size
        return [perm[i * bs : (i + 1) * bs].tolist() for i in range(self.per_epoch)]

    def _loader(self, epoch: int, skip: int):
        self.items.set_epoch(epoch)
        workers = self.cfg.train.num_workers
        return torch.utils.data.DataLoader(
            self.items,
            batch_sampler=self._epoch_batches(epoch)[skip:],
            num_workers=workers,
            collate_fn=collate_samples,
            persistent_workers=False,
        )

    def _count(self, batch: dict[str, Any]) -> None:
        for idx, meta in zip(batch["index"].tolist(), batch["meta"]):
            if idx not in self.seen:
                self.seen.add(idx)
                for k, v in meta.get("box_skipped", {}).items():
                    self.skipped[k] = self.skipped.get(k, 0) + int(v)

    # ------------------------------------------------------------------ one step
    def step_terms(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        cfg, lc = self.cfg, self.loss
        images = batch["image"]
        boxes = [b.to(images.device) for b in batch["boxes"]]
        m = self.model
        dense = m(images)
        targets = fcos_targets(
            dense.locations,
            dense.level,
            boxes,
            STRIDES,
            cfg.model.sizes_of_interest,
            cfg.model.center_sample_radius,
        )
        terms = detection_losses(dense, targets, lc)
        total = lc.cls_weight * terms["cls"] + lc.box_weight * terms["box"]
        total = total + lc.centerness_weight * terms["ctr"]
        hw = (images.shape[2] // 4, images.shape[3] // 4)
        depth = None
        if bool(batch["has_depth"].any()):
            depth = normalise_depth(pooled_depth(batch["depth"], batch["valid"]), lc.depth_norm)
        sel = sample_positives(targets, lc.max_instances, self.gen)
        zero = total * 0.0
        mterms = {"proj": zero, "pair": zero, "cons": zero, "depth": zero, "distill": zero}
        if sel.loc.numel():
            logits, dpred = m.masks(dense, sel.loc, sel.image)
            bm = box_masks(targets.gt_boxes[sel.gt], hw)
            d_inst = None if depth is None else depth[sel.image]
            d_target = None
            if d_inst is not None and dpred is not None:
                d_target = self._depth_target(depth, d_inst, bm, sel)
            mt = mask_losses(
                logits, dpred, bm, lab_image(images)[sel.image], d_inst, d_target, step, lc
            )
            total = total + mt.pop("mask_total")
            mterms.update(mt)
            if self.teacher is not None:
                dist = self._distill(images, targets, depth, hw, logits, sel)
                mterms["distill"] = dist
                total = total + dist
        return {"loss": total, **terms, **mterms}

    def _depth_target(self, depth, d_inst, bm, sel) -> tuple[torch.Tensor, torch.Tensor]:
        mode = self.cfg.loss.depth_target
        if mode == "box":
            return nearness(d_inst, bm)
        target = nearness(depth, mode="inverse" if mode == "inverse" else "minmax")[0]
        return target[sel.image], d_inst > 0

    def _distill(self, images, targets, depth, hw, logits, sel) -> torch.Tensor:
        d, lc = self.cfg.distill, self.loss
        per_image = [targets.gt_boxes[targets.gt_image == b] for b in range(images.shape[0])]
        dmap = depth if depth is not None else images.new_zeros((images.shape[0], 1, *hw))
        out = pseudo_masks(
            self.teacher.model, images, per_image, dmap, hw, d, lc.depth_tau, lc.depth_scale
        )
        pseudo = torch.cat([p for p, _ in out])
        scores = torch.cat([s for _, s in out])
        return distill_loss(logits, pseudo[sel.gt], scores[sel.gt], d.tau, d.dice_weight)

    # ------------------------------------------------------------------ the loop
    def fit(self, start_step: int = 0, opt: torch.optim.Optimizer | None = None) -> BoxFitResult:
        cfg, model = self.cfg, self.model
        opt = opt or self.optimizer()
        log = RunLog(self.run_dir, "box", self.total, start_step, progress=self.progress)
        step, times, images_done = start_step, [], 0
        sums: dict[str, float] = {}
        n_sum, last = 0, {}
        t_start = time.perf_counter()
        epoch, skip = divmod(step, self.per_epoch)
        model.train()
        try:
            while step < self.total:
                for batch in self._loader(epoch, skip):
                    if (
                        self.start_distill is not None
                        and step >= self.start_distill
                        and self.teacher is None
                    ):
                        self.teacher = EMATeacher(model, cfg.distill.ema)
                    self._count(batch)
                    t0 = time.perf_counter()
                    terms = self._update(opt, batch, step)
                    times.append(time.perf_counter() - t0)
                    step += 1
                    images_done += int(batch["image"].shape[0])
                    log.tick(int(batch["image"].shape[0]))
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v
                    n_sum += 1
                    if step % max(cfg.train.log_every, 1) == 0 or step == self.total:
                        last = {k: v / n_sum for k, v in sums.items()}
                        self._check_finite(last, step)
                        log.log(
                            step,
                            {
                                "epoch": epoch,
                                "lr": opt.param_groups[0]["lr"],
                                **last,
                                "images_per_s": log.throughput(),
                            },
                        )
                        sums, n_sum = {}, 0
                    every = cfg.train.checkpoint_every
                    if every and step % every == 0:
                        self.save(opt, step)
                    if step >= self.total or (
                        cfg.train.stop_after and step >= cfg.train.stop_after
                    ):
                        break
                if cfg.train.stop_after and step >= cfg.train.stop_after:
                    break
                epoch, skip = epoch + 1, 0
            self.save(opt, step)
        finally:
            log.close()
        elapsed = time.perf_counter() - t_start
        return BoxFitResult(
            steps=step,
            total_steps=self.total,
            completed=step >= self.total,
            images_per_s=images_done / max(elapsed, 1e-9),
            step_time_s=float(np.median(times)) if times else 0.0,
            last=last,
            box_skipped=dict(self.skipped),
            samples_seen=len(self.seen),
        )

    def optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return build_optimizer([{"params": params, "lr_mult": 1.0}], self.cfg)

    def _update(self, opt, batch, step: int) -> dict[str, float]:
        for g in opt.param_groups:
            g["lr"] = self.cfg.optim.lr * g["lr_mult"] * lr_factor(step, self.total, self.cfg)
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(
            self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        ):
            terms = self.step_terms(batch, step)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        opt.step()
        if self.teacher is not None:
            self.teacher.update(self.model)
        return {k: float(v.detach()) for k, v in terms.items()}

    def _check_finite(self, means: dict[str, float], step: int) -> None:
        if all(math.isfinite(v) for v in means.values()):
            return
        shown = ", ".join(f"{k}={v:.4g}" for k, v in means.items())
        raise DealError(
            f"stage box: the loss is not finite near step {step} ({shown}); "
            "lower optim.lr or check the boxes/depth"
        )

    # ------------------------------------------------------------------ checkpoints
    def save(self, opt, step: int) -> None:
        if self.run_dir is None:
            return
        state = {
            "stage": "box",
            "step": step,
            "epoch": step // self.per_epoch,
            "batch": step % self.per_epoch,
            "total_steps": self.total,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "rng": rng_state(),
        }
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        save_checkpoint(self.run_dir / CHECKPOINT, state)

    def resume(self, path: Path) -> tuple[int, torch.optim.Optimizer]:
        state = load_checkpoint(path, "box")
        opt = self.optimizer()
        try:
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            if "teacher" in state:
                self.teacher = EMATeacher(self.model, self.cfg.distill.ema)
                self.teacher.load_state_dict(state["teacher"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise DealError(
                f"checkpoint {path}: does not fit this model/config ({first})"
            ) from None
        set_rng_state(state["rng"])
        return int(state["step"]), opt


# ------------------------------------------------------------------ run folder + entry points
def _run_dir(cfg: BoxTrainConfig, classes: list[str]) -> Path:
    from deal_ros.engine.runfolder import default_name, next_run_dir

    if cfg.run:
        path = Path(cfg.run).expanduser()
    else:
        path = next_run_dir(Path(cfg.out).expanduser(), default_name(cfg, classes))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _resume_dir(cfg: BoxTrainConfig) -> Path:
    from deal_ros.engine.runfolder import numbered_runs

    if isinstance(cfg.resume, str):
        p = Path(cfg.resume).expanduser()
        if p.suffix == ".pt":
            p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
        if not p.is_dir():
            raise DealError(f"resume={cfg.resume}: no such run folder or checkpoint")
        return p
    if cfg.run:
        return Path(cfg.run).expanduser()
    runs = [p for p in numbered_runs(Path(cfg.out).expanduser()) if (p / CHECKPOINT).is_file()]
    if not runs:
        raise DealError(
            f"resume=true: no run in {cfg.out} has {CHECKPOINT}; give resume=runs/<name>"
        )
    return max(runs, key=lambda p: (p / CHECKPOINT).stat().st_mtime)


def resolve_config(source: str | None, overrides: list[str]) -> BoxTrainConfig:
    """``load_box_config``; with ``resume=`` the run's saved config + these overrides."""
    from deal_ros.engine.runfolder import read_yaml

    cfg = load_box_config(source, overrides)
    if not cfg.resume:
        return cfg
    run_dir = _resume_dir(cfg)
    saved = read_yaml(run_dir / "config.yaml", "run config")
    from deal_ros.instance.config import apply_box_overrides

    data = apply_box_overrides(
        {k: v for k, v in saved.items() if k != "meta"}, [*overrides, f"run={run_dir}"]
    )
    return box_config_from_dict(data, where=str(run_dir / "config.yaml"))


def main_from_config(cfg: BoxTrainConfig, progress: bool = True) -> tuple[Path, BoxFitResult]:
    """Train (or resume) a box-supervised run; evaluate on ``val`` and draw overlays."""
    from deal_ros.engine.runfolder import write_classes, write_config
    from deal_ros.nets.weights import save_weights

    cfg.validate()
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    if device.type == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    data = open_box_dataset(cfg, cfg.data)
    classes = list(data.classes)
    check_has_boxes(data, len(classes))
    cfg.model.num_classes = len(classes)
    run_dir = _resume_dir(cfg) if cfg.resume else _run_dir(cfg, classes)
    write_config(run_dir, cfg)
    write_classes(run_dir, classes)
    model = build_model(cfg, len(classes), load_pretrained=not cfg.resume).to(device)
    items = box_items(
        data, (cfg.input.height, cfg.input.width), cfg.input.fit, cfg.augment, cfg.seed
    )
    trainer = BoxTrainer(cfg, model, items, run_dir, device, progress)
    step, opt = trainer.resume(run_dir / CHECKPOINT) if cfg.resume else (0, None)
    if step == 0:
        torch.manual_seed(cfg.seed * 1000)
    result = trainer.fit(step, opt)
    save_weights(model, run_dir / WEIGHTS)
    _finish(cfg, model, data, run_dir, result, device, progress)
    return run_dir, result


def _finish(cfg, model, data, run_dir: Path, result: BoxFitResult, device, progress) -> None:
    from deal_ros.instance.evaluate import evaluate_model, write_overlays

    model.eval()
    val = open_box_dataset(cfg, cfg.val, classes=list(data.classes)) if cfg.val else None
    if val is not None:
        result.eval = evaluate_model(model, val, cfg, device, progress=progress)
        (run_dir / "eval.json").write_text(json.dumps(result.eval, indent=2))
    if cfg.overlays > 0:
        write_overlays(model, val or data, cfg, run_dir / "overlays", cfg.overlays, device)
    summary = {
        "steps": result.steps,
        "box_skipped": result.box_skipped,
        "samples_seen": result.samples_seen,
        "step_time_s": result.step_time_s,
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
