"""Box-supervised training: ``main_from_config(cfg) -> (run_dir, BoxFitResult)``.

    from deal_ros.instance.config import load_box_config
    from deal_ros.instance.train import main_from_config
    run_dir, result = main_from_config(load_box_config("box", ["data=scene:n=64"]))

Steps: open the data (boxes + depth; ``pseudo_depth=`` fills depth from an ONNX model), build
CondInst, then for ``train.max_steps`` (or ``train.epochs``) steps minimise the loss of
``objective.py``; from ``distill.start`` on an EMA teacher supplies depth-matched pseudo
masks (``distill.py``). The run folder (``runs/<name>-NNN``) gets config.yaml
(``stage: box``), classes.txt, instance_net.safetensors, checkpoints/box-last.pt (resume with
``resume=runs/<name>-NNN``), metrics.jsonl, eval.json (when ``val`` is set), overlays/ and
train_summary.json.

The loop is the engine's (:mod:`deal_ros.engine.loop`, the one DEAL's stages run on): the
method is a ``Stage("box", CondInst, ..., BoxObjective, items)`` plus hooks: the engine's
``EMAHook`` (the teacher, saved in the checkpoint), ``SkippedBoxes`` and ``StepTimer``. So box
training has what every stage has: AMP with a GradScaler (``amp=fp16``), DDP under
``torchrun``, a checkpoint on Ctrl-C, and a bit-exact resume on CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from deal_ros.data.torch_dataset import TorchSampleDataset, collate_samples
from deal_ros.engine.ddp import DistEnv
from deal_ros.engine.device import resolve_device, seed_everything
from deal_ros.engine.ema import EMAHook, EMATeacher
from deal_ros.engine.loop import FitResult, Trainer
from deal_ros.engine.runfolder import find_resume_dir, prepare_run
from deal_ros.engine.stage import Stage
from deal_ros.errors import DealError
from deal_ros.instance.condinst import CondInst
from deal_ros.instance.config import (
    BoxTrainConfig,
    apply_box_overrides,
    box_config_from_dict,
    load_box_config,
)
from deal_ros.instance.data import (
    BOX_PROBLEMS,
    EpochItems,
    box_items,
    box_order,
    clean_boxes,
    open_box_dataset,
)
from deal_ros.instance.hooks import SkippedBoxes, StepTimer
from deal_ros.instance.objective import BoxObjective

WEIGHTS = "instance_net.safetensors"
CHECKPOINT = "checkpoints/box-last.pt"


@dataclass
class BoxFitResult(FitResult):
    step_time_s: float = 0.0  # median compute time of a training step (StepTimer)
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


def box_stage(
    cfg: BoxTrainConfig, model: CondInst, items: TorchSampleDataset, objective: BoxObjective,
    world: int = 1,
) -> Stage:  # fmt: skip
    """The box method as an engine Stage (the batch is at most each rank's share of the data,
    the epoch order the box method's own, DDP tolerant of a step without positives)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return Stage(
        "box", model, [{"params": params, "lr_mult": 1.0}], objective, EpochItems(items),
        collate=collate_samples, batch_size=min(cfg.train.batch_size, -(-len(items) // world)),
        permutation=box_order, find_unused_parameters=True,
        nonfinite_hint="check the boxes/depth",
    )  # fmt: skip


class BoxTrainer:
    """The box method on the engine (see the module docstring).

    ``fit(start_step=None) -> BoxFitResult`` (a second call continues); ``step_terms(batch,
    step)`` is one step's losses; ``teacher`` the EMA teacher (None before ``distill.start``);
    ``engine`` the :class:`~deal_ros.engine.loop.Trainer` that runs it."""

    def __init__(
        self,
        cfg: BoxTrainConfig,
        model: CondInst,
        items: TorchSampleDataset,
        run_dir: Path | None,
        device: torch.device,
        progress: bool = True,
        env: DistEnv | None = None,
    ) -> None:
        self.cfg, self.model, self.items, self.run_dir = cfg, model, items, run_dir
        env = env or DistEnv()
        self.ema = EMAHook(None, cfg.distill.ema)
        self.objective = BoxObjective(cfg, self.ema)
        self.boxes, self.timer = SkippedBoxes(), StepTimer()
        stage = box_stage(cfg, model, items, self.objective, env.world)
        self.engine = Trainer(cfg, stage, run_dir, env, device, progress,
                              hooks=[self.boxes, self.ema, self.timer])  # fmt: skip
        self.total = self.engine.total_steps
        self.ema.start = distill_start(cfg, self.total)
        self.objective.schedule(self.total)

    @property
    def teacher(self) -> EMATeacher | None:
        return self.ema.teacher

    @teacher.setter
    def teacher(self, teacher: EMATeacher | None) -> None:
        self.ema.teacher = teacher

    @property
    def start_distill(self) -> int | None:
        return self.ema.start

    @start_distill.setter
    def start_distill(self, step: int | None) -> None:
        self.ema.start = step

    @property
    def gen(self) -> torch.Generator:
        """The generator that samples the positive locations of each step."""
        return self.objective.gen

    def optimizer(self) -> torch.optim.Optimizer:
        return self.engine.optimizer

    def step_terms(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        return self.objective(self.model, batch, step)

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, torch.Tensor]:
        """One optimiser step (and EMA update) on ``batch`` as step ``step``, outside ``fit``."""
        self.engine.step = step
        terms = self.engine.run_step(batch)
        if self.teacher is not None:
            self.teacher.update(self.model)
        return terms

    def fit(self, start_step: int | None = None) -> BoxFitResult:
        result = self.engine.fit(start_step)
        return BoxFitResult(
            **asdict(result),
            step_time_s=self.timer.median(),
            box_skipped=dict(self.boxes.skipped),
            samples_seen=len(self.boxes.seen),
        )


# ------------------------------------------------------------------ entry points
def resolve_config(source: str | None, overrides: list[str]) -> BoxTrainConfig:
    """``load_box_config``; with ``resume=`` the run's saved config + these overrides."""
    from deal_ros.engine.runfolder import resumed_overrides, saved_config

    cfg = load_box_config(source, overrides)
    if not cfg.resume:
        return cfg
    run_dir = find_resume_dir(cfg, "box")
    data = apply_box_overrides(saved_config(run_dir), resumed_overrides(overrides, run_dir))
    return box_config_from_dict(data, where=str(run_dir / "config.yaml"))


def main_from_config(cfg: BoxTrainConfig, progress: bool = True) -> tuple[Path, BoxFitResult]:
    """Train (or resume) a box-supervised run; evaluate on ``val`` and draw overlays."""
    cfg.validate()
    env = DistEnv.from_env(cfg.device)
    try:
        return _train(cfg, env, progress)
    finally:
        env.close()


def _train(cfg: BoxTrainConfig, env: DistEnv, progress: bool) -> tuple[Path, BoxFitResult]:
    from deal_ros.nets.weights import save_weights

    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    if device.type == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    data = open_box_dataset(cfg, cfg.data)
    classes = list(data.classes)
    check_has_boxes(data, len(classes))
    cfg.model.num_classes = len(classes)
    run_dir = prepare_run(cfg, env, classes, "box")
    model = build_model(cfg, len(classes), load_pretrained=not cfg.resume)
    items = box_items(
        data, (cfg.input.height, cfg.input.width), cfg.input.fit, cfg.augment, cfg.seed
    )
    trainer = BoxTrainer(cfg, model, items, run_dir, device, progress, env)
    result = trainer.fit()
    if env.is_main:
        save_weights(model, run_dir / WEIGHTS)
        _finish(cfg, model, data, run_dir, result, trainer.engine.device, progress)
    env.barrier()
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
