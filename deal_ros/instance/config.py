"""The configuration of box-supervised instance training (``stage: box``).

    cfg = load_box_config("box", ["data=scene:n=64,size=96x128", "distill.enabled=false"])

This method's own schema (the CondInst model, the FCOS / BoxInst / depth losses and
self-distillation), read by the engine's config helpers (:mod:`deal_ros.engine.config`: one
implementation of the value parsing, the shipped presets, ``base:`` chains, dotted
``key=value`` overrides, one line naming an unknown key with the closest known ones); the
engine's ``OptimConfig`` and ``LoopConfig`` sections and their checks
(:mod:`deal_ros.engine.settings`) are shared with DEAL's schema, ``LoopConfig`` with one change
(``BoxLoopConfig``: loader workers default to what the machine has).
``is_box_config(source, overrides)`` tells the ``deal train`` command to dispatch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deal_ros.engine.config import (
    ConfigError,
    apply_overrides,
    config_from_file_dict,
    load_config,
    parse_override,
    read_config_file,
    to_dict,
)
from deal_ros.engine.runfolder import newest_stage, stage_of_run
from deal_ros.engine.settings import (
    LoopConfig,
    OptimConfig,
    engine_checks,
    loader_workers,
    raise_first,
    scale_range_check,
)

STAGE = "box"
FITS = ("resize", "pad")
DEPTH_TARGETS = ("image", "box", "inverse")
DEPTH_NORMS = ("median", "none")
MATCHES = ("depth", "iou")
PSEUDO_MASKS = ("binary", "soft")


@dataclass
class BoxModelConfig:
    """CondInst on a project backbone. Paper values where it has them (CondInst: 256-channel
    FPN, 4-conv towers, 8 mask channels, 8-channel dynamic layers); the defaults are smaller
    (our choice, for CPU training); ``freeze_backbone`` keeps the ImageNet features fixed
    ("auto": when pretrained weights are loaded; ``validate`` makes it a bool)."""

    backbone: str = "mobilenet_v2"
    pretrained: str | None = "imagenet"
    freeze_backbone: bool | str = False
    fpn_channels: int = 64
    head_convs: int = 2
    mask_branch_channels: int = 64
    mask_branch_convs: int = 2
    mask_channels: int = 8
    dynamic_channels: int = 8
    mask_stride: int = 4  # 4: the branch fuses the stride-4 level; 8: CondInst + 2x upsampling
    depth_guided: bool = True  # DG-MaskHead (mask = sigmoid(M_m(F1) * sigmoid(M_d(F1))))
    controller_grad: float = 1.0  # scale of the mask losses' gradient into the box tower (ours)
    sizes_of_interest: list[float] = field(default_factory=lambda: [64.0, 128.0])
    center_sample_radius: float = 1.5
    num_classes: int | None = None  # filled by the trainer


@dataclass
class BoxInputConfig:
    """Network input (RGB in 0..1; the backbone normalisation is inside the model)."""

    height: int = 240
    width: int = 320
    fit: str = "resize"  # resize | pad (keep the aspect ratio)


@dataclass
class BoxAugmentConfig:
    """Student augmentation (our choices): random scale then random crop/pad back to the input
    size (the paper's multi-scale training), horizontal flip, brightness/contrast jitter."""

    hflip: bool = True
    scale: list[float] = field(default_factory=lambda: [0.8, 1.2])
    color_jitter: float = 0.1


@dataclass
class BoxLossConfig:
    """Loss weights and thresholds. Paper: L = L_fcos + L_proj + L_pair + L_cons + L_depth
    (+ 4 L_m_dice when distilling); tau_d = 0.5; colour threshold 0.3; pairwise warm-up 10k
    iterations. ``pairwise_warmup`` and ``depth_consistency_start`` below 1 are fractions of
    the run's steps (``steps_of``; the paper's 10k of 90k is 0.11), from 1 on step counts."""

    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cls_weight: float = 1.0
    box_weight: float = 1.0
    centerness_weight: float = 1.0
    projection_weight: float = 1.0
    projection_bce_weight: float = 0.0  # > 0: + BCE of the projected logits (ours; 0 = BoxInst)
    pairwise_weight: float = 1.0
    color_threshold: float = 0.3
    pairwise_warmup: float = 10000  # steps (< 1: of the run); also ramps L_cons (our choice)
    depth_consistency_weight: float = 1.0  # 0 = off (the BoxInst baseline)
    depth_consistency_start: float = 0  # step (< 1: of the run) where the L_cons ramp begins
    depth_tau: float = 0.5
    depth_scale: float = 0.01  # S_d = exp(-|d_i - d_j| / depth_scale) on normalised depth
    depth_slope_scale: float = 0.0  # > 0: pairs must also share the depth slope (our addition)
    depth_gate: bool = False  # True: colour pairs across a depth step leave L_pair (ours)
    pairwise_outside: bool = False  # True: L_pair counts colour pairs outside the box too (ours)
    outside_weight: float = 0.0  # > 0: + background BCE outside the box, L_out (ours; 0 = BoxInst)
    outside_norm: str = "outside"  # L_out's normaliser: outside (mean outside) | box (its area)
    projection_inside: bool = False  # True: L_proj projects the mask inside the box only (ours)
    inside_projection_weight: float = 0.0  # > 0: + the in-box projection, BoxInst's kept (ours)
    surround_weight: float = 0.0  # > 0: + L_surf, depth against the box's surround (ours)
    surround_margin: float = 0.01  # L_surf: nearer than the surround by this fraction = object
    surround_ring: float = 0.1  # L_surf: the ring's width, a fraction of the box's longer side
    surround_background: float = 0.0  # L_surf: + this x L_out, background outside the box (ours)
    depth_pairs: str = "all"  # L_cons pairs: all (the paper) | beyond_colour (those L_pair misses)
    depth_norm: str = "median"  # median: depth / per-image median (unit-free); none
    depth_weight: float = 1.0  # L_depth of the DG-MaskHead; 0 = off
    depth_target: str = "inverse"  # nearness: inverse | image | box (see mask_targets)
    max_instances: int = 64  # positive locations sampled per batch for the mask losses

    @property
    def surround_on(self) -> bool:
        """L_surf is trained: its own weight and the depth-consistency weight are both > 0."""
        return self.surround_weight > 0 and self.depth_consistency_weight > 0


def steps_of(value: float, total: int) -> int:
    """A schedule point: ``value`` < 1 is a fraction of ``total`` steps, else a step count."""
    return round(value * total) if value < 1 else int(value)


def loss_in_steps(loss: BoxLossConfig, total: int) -> BoxLossConfig:
    """``loss`` with its warm-up and start points as step counts for a ``total``-step run."""
    return replace(
        loss,
        pairwise_warmup=steps_of(loss.pairwise_warmup, total),
        depth_consistency_start=steps_of(loss.depth_consistency_start, total),
    )


@dataclass
class DistillConfig:
    """Self-distillation for the last part of training (paper: EMA 0.999, teacher input 800
    vs student 640-800, alpha 0.8, beta 0.2, tau_m 0.8, dice weight 4)."""

    enabled: bool = True
    start: float = 0.7  # < 1: a fraction of the steps; >= 1: a step number
    ema: float = 0.999
    teacher_scale: float = 1.25  # teacher input = student input x this
    alpha: float = 0.8
    beta: float = 0.2
    tau: float = 0.8  # reliable masks: matching score > tau
    dice_weight: float = 4.0
    candidates: int = 50  # teacher predictions per image considered for matching
    mask_threshold: float = 0.5  # teacher probabilities -> binary pseudo masks
    # binary: the teacher's probabilities cut at mask_threshold (our reading; the paper does
    # not say); soft: the probabilities themselves are the Dice targets (ours)
    pseudo: str = "binary"
    match: str = "depth"  # depth: S_match (Eq. 9); iou: alpha = 1, beta = 0


@dataclass
class InferConfig:
    """Post-processing (CondInst's values, except ``max_detections`` 100 as in COCO)."""

    score_threshold: float = 0.05
    nms_threshold: float = 0.6
    pre_nms_topk: int = 1000
    max_detections: int = 100
    mask_threshold: float = 0.5
    # ours (CondInst does not crop): each mask is zeroed outside its predicted box widened by
    # box_margin input pixels (-1: no crop). Box supervision says nothing outside the box; a
    # mask spilling past it there (issue 17: the pairwise term pulls a similar-coloured
    # surround in) is an error the box head has already ruled out.
    box_margin: float = -1.0


@dataclass
class BoxLoopConfig(LoopConfig):
    """``LoopConfig`` with ``num_workers: auto`` (the default; ``engine.settings.auto_workers``:
    one per usable CPU but one, at most 4) or a count; ``validate`` makes it a count."""

    num_workers: int | str = "auto"


def _box_optim() -> OptimConfig:
    return OptimConfig(name="sgd", lr=0.01, head_lr_mult=1.0, warmup_steps=100, grad_clip=10.0)


@dataclass
class BoxTrainConfig:
    """Everything a box-supervised run needs (``deal train --config box``)."""

    stage: str = STAGE
    data: str | None = None
    classes: list[str] | None = None
    depth: str | None = None  # a depth folder for coco:/voc: data (adapter option depth=)
    pseudo_depth: str | None = None  # a monocular depth ONNX model for RGB-only data
    data_options: dict[str, Any] = field(default_factory=dict)
    val: str | None = None  # data with instance masks, evaluated at the end (mask AP)
    out: str = "runs"
    name: str | None = None
    run: str | None = None
    resume: bool | str = False
    seed: int = 0
    device: str = "auto"
    cpu_threads: int = (
        0  # torch threads on CPU; 0 = torch's default (1 is much faster on busy machines)
    )
    amp: str = "off"
    overlays: int = 8  # instance overlay PNGs written after training (from val, else data)
    model: BoxModelConfig = field(default_factory=BoxModelConfig)
    input: BoxInputConfig = field(default_factory=BoxInputConfig)
    augment: BoxAugmentConfig = field(default_factory=BoxAugmentConfig)
    optim: OptimConfig = field(default_factory=_box_optim)
    train: BoxLoopConfig = field(default_factory=BoxLoopConfig)
    loss: BoxLossConfig = field(default_factory=BoxLossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    infer: InferConfig = field(default_factory=InferConfig)

    def validate(self) -> BoxTrainConfig:
        """Cross-field checks; returns self."""
        m, lo, d = self.model, self.loss, self.distill
        if m.freeze_backbone == "auto":  # frozen ImageNet features; random weights train
            m.freeze_backbone = m.pretrained not in (None, "none")
        size = f"{self.input.height}x{self.input.width}"
        soi = m.sizes_of_interest
        raise_first([
            (self.stage == STAGE, f"stage: this config is for stage '{STAGE}', got {self.stage!r}"),
            (min(self.input.height, self.input.width) >= 32,
             f"input: height and width must be >= 32, got {size}"),
            (self.input.height % 8 == 0 and self.input.width % 8 == 0,
             f"input: height and width must be multiples of 8, got {size}"),
            (self.input.fit in FITS,
             f"input.fit: expected one of {', '.join(FITS)}, got {self.input.fit!r}"),
            scale_range_check(self.augment.scale),
            (m.mask_stride in (4, 8), f"model.mask_stride: expected 4 or 8, got {m.mask_stride}"),
            (isinstance(m.freeze_backbone, bool),
             f"model.freeze_backbone: expected true, false or auto, got {m.freeze_backbone!r}"),
            (len(soi) == 2 and 0 < soi[0] < soi[1],
             f"model.sizes_of_interest: expected two increasing sizes (P3/P4, P4/P5), got {soi}"),
            (m.controller_grad >= 0,
             f"model.controller_grad must be >= 0 (1 = CondInst), got {m.controller_grad}"),
            (min(m.fpn_channels, m.mask_channels, m.dynamic_channels) >= 1 and m.head_convs >= 0,
             "model: channel counts must be >= 1 and head_convs >= 0"),
            (lo.pairwise_warmup >= 0 and lo.depth_consistency_start >= 0,
             "loss.pairwise_warmup and loss.depth_consistency_start must be >= 0 (< 1: a "
             f"fraction of the steps), got {lo.pairwise_warmup}, {lo.depth_consistency_start}"),
            (lo.depth_tau > 0 and lo.depth_scale > 0,
             f"loss.depth_tau and loss.depth_scale must be > 0, got {lo.depth_tau}, "
             f"{lo.depth_scale}"),
            (lo.depth_slope_scale >= 0,
             f"loss.depth_slope_scale must be >= 0 (0 = off), got {lo.depth_slope_scale}"),
            (lo.depth_pairs in ("all", "beyond_colour"),
             f"loss.depth_pairs: expected all or beyond_colour, got {lo.depth_pairs!r}"),
            (lo.inside_projection_weight >= 0,
             "loss.inside_projection_weight must be >= 0 (0 = off), got "
             f"{lo.inside_projection_weight}"),
            (lo.projection_bce_weight >= 0,
             f"loss.projection_bce_weight must be >= 0 (0 = off), got {lo.projection_bce_weight}"),
            (lo.surround_weight >= 0 and lo.surround_margin > 0 and lo.surround_ring > 0
             and lo.surround_background >= 0,
             "loss.surround_weight and surround_background must be >= 0 (0 = off), "
             "surround_margin and surround_ring > 0, got "
             f"{lo.surround_weight}, {lo.surround_background}, {lo.surround_margin}, "
             f"{lo.surround_ring}"),
            (lo.outside_weight >= 0,
             f"loss.outside_weight must be >= 0 (0 = off), got {lo.outside_weight}"),
            (lo.outside_norm in ("box", "outside"),
             f"loss.outside_norm: expected box or outside, got {lo.outside_norm!r}"),
            (lo.depth_norm in DEPTH_NORMS,
             f"loss.depth_norm: expected one of {', '.join(DEPTH_NORMS)}, got {lo.depth_norm!r}"),
            (lo.depth_target in DEPTH_TARGETS,
             f"loss.depth_target: expected one of {', '.join(DEPTH_TARGETS)}, got "
             f"{lo.depth_target!r}"),
            (lo.max_instances >= 1, f"loss.max_instances must be >= 1, got {lo.max_instances}"),
            (0 < d.ema < 1, f"distill.ema must lie in (0, 1), got {d.ema}"),
            (d.teacher_scale > 0, f"distill.teacher_scale must be > 0, got {d.teacher_scale}"),
            (d.alpha >= 0 and d.beta >= 0 and d.alpha + d.beta <= 1,
             "distill.alpha, distill.beta: need >= 0 with alpha + beta <= 1, got "
             f"{d.alpha}, {d.beta}"),
            (d.pseudo in PSEUDO_MASKS,
             f"distill.pseudo: expected one of {', '.join(PSEUDO_MASKS)}, got {d.pseudo!r}"),
            (d.match in MATCHES,
             f"distill.match: expected one of {', '.join(MATCHES)}, got {d.match!r}"),
            *engine_checks(self),
        ])  # fmt: skip
        self.train.num_workers = loader_workers(self.train.num_workers)
        return self


# -------------------------------------------------- the engine's config helpers, box schema
def apply_box_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``apply_overrides`` on the box schema: dotted keys (``loss.depth_tau=0.7``) typed for
    their field (``name=001`` stays a string); ``data_options.<name>`` takes any sub-key."""
    return apply_overrides(data, overrides, BoxTrainConfig)


def read_box_file(name_or_path: str | Path) -> dict[str, Any]:
    """The raw dict of a config file with its ``base:`` chain merged; its keys are not
    checked (any stage's file may be read, to look at its ``stage``)."""
    return read_config_file(name_or_path, schema=None)


def box_config_from_dict(data: dict[str, Any], where: str = "config") -> BoxTrainConfig:
    """A checked, typed, validated config from a raw dict (``meta`` ignored)."""
    return config_from_file_dict(data, where, BoxTrainConfig).validate()


def load_box_config(
    source: str | Path | None = None, overrides: Sequence[str] = ()
) -> BoxTrainConfig:
    """Preset name or path (None: the defaults) + ``key=value`` overrides -> BoxTrainConfig."""
    return load_config(source, overrides, BoxTrainConfig)


def box_config_to_dict(cfg: BoxTrainConfig) -> dict[str, Any]:
    return to_dict(cfg)


_BOOL_WORDS = ("true", "yes", "on", "1", "false", "no", "off", "0")  # resume=<bool>, not a path


def is_box_config(source: str | Path | None, overrides: Sequence[str] = ()) -> bool:
    """Whether ``deal train --config SOURCE OVERRIDES`` is a box-supervised run: the file says
    ``stage: box``, an override sets ``stage=box``, ``resume=``/``run=`` names a box run, or
    (no config file, no ``stage=``) ``resume=true`` and the newest checkpoint in ``out`` is a
    box run's."""
    values = dict(parse_override(o) for o in overrides if "=" in o)
    if values.get("stage", "").strip() == STAGE:
        return True
    for key in ("resume", "run"):
        v = values.get(key, "").strip()
        if v and v.lower() not in _BOOL_WORDS and stage_of_run(v) == STAGE:
            return True
    if source is None:
        resume_true = values.get("resume", "").strip().lower() in _BOOL_WORDS[:4]
        no_run = not values.get("run", "").strip()
        if not resume_true or not no_run or "stage" in values:
            return False
        out = values.get("out", "").strip() or "runs"
        return newest_stage(out, values.get("name", "").strip() or None) == STAGE
    try:
        return read_box_file(source).get("stage") == STAGE
    except ConfigError:
        return False


def is_box_run(run_dir: str | Path) -> bool:
    """Whether a run folder was written by box-supervised training (for ``deal eval``)."""
    return stage_of_run(run_dir) == STAGE
