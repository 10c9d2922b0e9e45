"""Training configuration of the DEAL method: the schema dataclasses, its presets and
``key=value`` overrides.

    cfg = load_config("onboarding", ["data=./episodes", "deal.weight=0", "train.epochs=3"])

* A preset is a YAML file inside the package (``deal_ros/train/configs/<name>.yaml``) or a
  path. A preset may start from another with ``base: <name or path>`` (merged key by key).
* Overrides use dotted keys (``optim.lr=0.003``); values are parsed for the field's type
  (``true``/``false``, numbers, ``none``, lists as ``[a, b]`` or ``a,b``).
* An unknown key, in a file or on the command line, fails with one line naming it and the
  closest known keys (difflib).
* One config describes ONE training stage (``stage: cam`` or ``seg``); ``model``, ``optim`` and
  ``train`` apply to that stage. Pseudo-labelling settings live in ``labeling``.
* The parsing, presets, overrides and errors are the engine's (:mod:`deal_ros.engine.config`,
  shared with every method's schema); the helpers below are those functions with the schema
  defaulting to :class:`TrainConfig`. ``optim`` and ``train`` are the engine's sections
  (:mod:`deal_ros.engine.settings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from deal_ros.engine import config as _engine
from deal_ros.engine.config import (
    ConfigError,
    parse_override,
    preset_names,
    preset_path,
    to_dict,
)
from deal_ros.engine.settings import (
    AMP_MODES,
    LoopConfig,
    OptimConfig,
    engine_checks,
    raise_first,
    scale_range_check,
)

__all__ = [
    "AMP_MODES",
    "STAGES",
    "AugmentConfig",
    "ConfigError",
    "DealConfig",
    "FSLConfig",
    "ISLConfig",
    "InputConfig",
    "LabelingConfig",
    "LoopConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "all_keys",
    "apply_overrides",
    "config_from_file_dict",
    "from_dict",
    "load_config",
    "parse_override",
    "preset_names",
    "preset_path",
    "read_config_file",
    "to_dict",
]

STAGES = ("cam", "seg")


@dataclass
class ModelConfig:
    """The network of the stage. ``num_classes`` is filled in by the trainer (CAM net: K
    foreground classes; segmenter: K + 1 with background)."""

    backbone: str = "mobilenet_v2"
    output_stride: int = 16
    pretrained: str | None = "imagenet"
    dropout: float = 0.0  # CAM net: Dropout2d before the classifier
    decoder: bool = True  # segmenter: stride-4 decoder
    channels: int = 128  # segmenter: ASPP / decoder width
    num_classes: int | None = None
    cam_decoder: str = "none"  # CAM net: none | s8 | s4 (deal_ros.nets.cam_decoder)
    cam_decoder_channels: int = 64
    cam_align: bool = False  # CAM net: cell centres at stride*j + (stride-1)/2 (see CAMNet)
    # segmenter: where its backbone starts: pretrained (the ``pretrained`` weights) or cam (the
    # backbone of the CAM net that made the pseudo labels; ours)
    init_from: str = "pretrained"


@dataclass
class InputConfig:
    """Network input size; mean/std (on 0..1 RGB) are the backbone's, written by the trainer."""

    height: int = 240
    width: int = 320
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass
class AugmentConfig:
    """Paired RGB-D augmentation (our choices): random scale then crop/pad to the input size,
    horizontal flip, brightness/contrast jitter. Depth and labels follow the geometry."""

    hflip: bool = True
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    color_jitter: float = 0.1
    # share of training items that are a 2 x 2 mosaic of four augmented samples at half size,
    # labels joined (deal_ros.data.mosaic; ours): single-object episodes -> multi-object scenes
    mosaic: float = 0.0


@dataclass
class DealConfig:
    """Depth Edge Alignment Loss (``deal_ros.losses.DEALLoss``); ``weight: 0`` = baseline."""

    weight: float = 1.0
    mu: float = 2.5
    edge_norm: str = "max"
    cam_edge_norm: str | None = None
    depth_transform: str = "log"
    percentile: float = 95.0
    depth_scale: float = 1.0
    cam_scale: float = 0.25
    depth_min_scale: float = 0.1
    cam_min_scale: float = 0.01
    min_support_valid: float = 0.5
    antialias: bool = False
    warmup_steps: int = 0  # linear ramp of the weight from 0 (our choice)
    variant: str = "paper"  # paper|balanced|precision|near|signed (deal_ros.losses.deal_variants)
    direction_weight: float = 1.0  # variant "signed": weight of the depth-order term
    radius: int = 1  # variant "near": band around depth edges, CAM cells
    depth_edges: str = "resample"  # resample (paper: bicubic to CAM size) | pool
    fill: int = 8  # depth_edges=pool: fill holes from the far side, up to this many pixels
    min_cell_valid: float = 0.5  # depth_edges=pool: valid fraction of a CAM cell's pixels


@dataclass
class ISLConfig:
    """Importance sampling loss: ``weight`` is the mix with the GAP loss (0 = plain GAP)."""

    weight: float = 0.0
    num_samples: int = 10


@dataclass
class FSLConfig:
    """Feature similarity loss on the normalised CAMs; ``weight: 0`` = off."""

    weight: float = 0.0
    mu: float = 2.5
    sigma: float = 5.0
    radius: float = 5.0


@dataclass
class LabelingConfig:
    """CAM -> pseudo labels (``deal pseudo``) and the segmenter's self-training labels.

    CAMs from several scales and their flips are averaged; background scores ``bg_threshold``;
    a dense CRF refines the map; pixels whose refined probability is below
    ``min_confidence`` or whose CAM score lies within ``ignore_margin`` of the threshold are
    marked 255 (ignore). Classes absent from the image-level labels are never assigned.
    """

    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 1.5])
    flip: bool = True
    bg_threshold: float = 0.3
    crf: bool = True
    crf_backend: str = "auto"
    crf_iterations: int = 10
    gauss_sxy: float = 3.0
    gauss_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    min_confidence: float = 0.0
    ignore_margin: float = 0.0
    batch_size: int = 8
    out: str | None = None  # default: <run>/pseudo


@dataclass
class TrainConfig:
    """Everything a ``deal train`` run needs (see the module docstring)."""

    stage: str = "cam"
    data: str | None = None
    classes: list[str] | None = None
    labels: str | None = None  # labels file for plain bags
    rgb_topic: str | None = None
    depth_topic: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    val: str | None = None  # data with masks, evaluated at the end of training
    pseudo: str | None = None  # seg stage: a pseudo label folder (with pseudo.yaml)
    out: str = "runs"
    name: str | None = None
    run: str | None = None
    resume: bool | str = False
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # CPU threads of torch (None: torch's default)
    amp: str = "auto"
    deterministic: bool = True  # fixed cuDNN algorithms (false: autotune, faster on GPU)
    cache: bool = False  # keep decoded, resized samples in memory
    make_pseudo: bool = False  # cam stage: write pseudo labels when training ends
    report: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    deal: DealConfig = field(default_factory=DealConfig)
    isl: ISLConfig = field(default_factory=ISLConfig)
    fsl: FSLConfig = field(default_factory=FSLConfig)
    labeling: LabelingConfig = field(default_factory=LabelingConfig)
    loss: str = "ce"  # seg stage: ce | focal | lovasz | ce+lovasz
    loss_options: dict[str, Any] = field(default_factory=dict)
    rounds: int = 0  # seg stage: self-training rounds (regenerate labels from the segmenter)

    def validate(self) -> TrainConfig:
        """Cross-field checks; returns self."""
        size = f"{self.input.height}x{self.input.width}"
        raise_first([
            (self.stage in STAGES,
             f"stage: expected one of {', '.join(STAGES)}, got {self.stage!r}"),
            (min(self.input.height, self.input.width) >= 16,
             f"input: height and width must be >= 16, got {size}"),
            *engine_checks(self),
            scale_range_check(self.augment.scale),
            (0.0 <= self.augment.mosaic <= 1.0,
             f"augment.mosaic must lie in [0, 1] (a share of items), got {self.augment.mosaic}"),
            (len(self.labeling.scales) >= 1 and min(self.labeling.scales) > 0,
             f"labeling.scales: expected positive scales, got {self.labeling.scales}"),
            (0.0 <= self.labeling.bg_threshold <= 1.0,
             f"labeling.bg_threshold must lie in [0, 1], got {self.labeling.bg_threshold}"),
            (self.rounds >= 0, f"rounds must be >= 0, got {self.rounds}"),
            (self.model.init_from in ("pretrained", "cam"),
             f"model.init_from: expected pretrained or cam, got {self.model.init_from!r}"),
            (self.deal.weight >= 0, f"deal.weight must be >= 0, got {self.deal.weight}"),
        ])  # fmt: skip
        return self


# -------------------------------------------------- the engine's config helpers, DEAL schema
C = TypeVar("C")


def all_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (sections and leaves)."""
    return _engine.all_keys(cls, prefix)


def from_dict(
    data: dict[str, Any],
    cls: type[C] = TrainConfig,
    where: str = "config",
    prefix: str = "",
    root: type | None = None,
) -> C:
    """Build the dataclass ``cls`` from a nested dict (unknown keys and bad values fail)."""
    return _engine.from_dict(data, cls, where, prefix, root)


def read_config_file(
    name_or_path: str | Path, schema: type | None = TrainConfig, _seen: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The raw dict of a config file with its ``base:`` chain merged in, checked against
    ``schema`` (``None``: not checked, e.g. to peek at its ``stage``)."""
    return _engine.read_config_file(name_or_path, schema, _seen)


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], schema: type = TrainConfig
) -> dict[str, Any]:
    """Set dotted keys in the raw dict; every key must exist in ``schema``."""
    return _engine.apply_overrides(data, overrides, schema)


def load_config(
    source: str | Path | None = None, overrides: Sequence[str] = (), schema: type[C] = TrainConfig
) -> C:
    """Preset name or path (or None: the defaults) + ``key=value`` overrides -> a validated
    ``schema`` (default TrainConfig)."""
    return _engine.load_config(source, overrides, schema)


def config_from_file_dict(data: dict[str, Any], where: str, schema: type[C] = TrainConfig) -> C:
    """A config read back from a run folder (``meta`` is dropped; not validated)."""
    return _engine.config_from_file_dict(data, where, schema)
