"""Training configuration: dataclasses, YAML presets and ``key=value`` overrides.

    cfg = load_config("onboarding", ["data=./episodes", "deal.weight=0", "train.epochs=3"])

* A preset is a YAML file inside the package (``deal_ros/train/configs/<name>.yaml``) or a
  path. A preset may start from another with ``base: <name or path>`` (merged key by key).
* Overrides use dotted keys (``optim.lr=0.003``); values are parsed for the field's type
  (``true``/``false``, numbers, ``none``, lists as ``[a, b]`` or ``a,b``).
* An unknown key, in a file or on the command line, fails with one line naming it and the
  closest known keys (difflib).
* One config describes ONE training stage (``stage: cam`` or ``seg``); ``model``, ``optim`` and
  ``train`` apply to that stage. Pseudo-labelling settings live in ``labeling``.
* The helpers below take the schema (a dataclass with a ``validate()`` method) as an argument,
  default :class:`TrainConfig`; :mod:`deal_ros.instance.config` passes ``BoxTrainConfig``, so
  both stages share one parser, one override syntax and one kind of error line.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from deal_ros.errors import DealError

STAGES = ("cam", "seg")
AMP_MODES = ("auto", "bf16", "fp16", "off")


class ConfigError(DealError, ValueError):
    """A bad config file, key or value: the message names it."""


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


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    head_lr_mult: float = 10.0  # new layers learn faster than the pretrained backbone
    schedule: str = "poly"  # poly | cosine | constant
    power: float = 0.9
    warmup_steps: float = 0  # linear LR ramp: steps, or < 1 a fraction of the run's steps
    grad_clip: float = 0.0  # max gradient norm, 0 = off


@dataclass
class LoopConfig:
    epochs: int = 10
    max_steps: int | None = None  # total optimiser steps; overrides epochs when set
    batch_size: int = 8
    num_workers: int = 2
    log_every: int = 10
    checkpoint_every: int = 0  # steps; 0 = at the end of every epoch
    stop_after: int | None = None  # stop (as if interrupted) after this many steps; resumable
    sync_bn: bool = False  # SyncBatchNorm under DDP


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
        stages, amps = ", ".join(STAGES), ", ".join(AMP_MODES)
        size = f"{self.input.height}x{self.input.width}"
        checks = [
            (self.stage in STAGES, f"stage: expected one of {stages}, got {self.stage!r}"),
            (self.amp in AMP_MODES, f"amp: expected one of {amps}, got {self.amp!r}"),
            (min(self.input.height, self.input.width) >= 16,
             f"input: height and width must be >= 16, got {size}"),
            (self.train.batch_size >= 1,
             f"train.batch_size must be >= 1, got {self.train.batch_size}"),
            (self.train.epochs >= 1 or self.train.max_steps,
             f"train.epochs must be >= 1, got {self.train.epochs}"),
            (self.optim.name in ("sgd", "adamw"),
             f"optim.name: expected sgd or adamw, got {self.optim.name!r}"),
            (self.optim.schedule in ("poly", "cosine", "constant"),
             f"optim.schedule: expected poly, cosine or constant, got {self.optim.schedule!r}"),
            (len(self.augment.scale) == 2 and 0 < self.augment.scale[0] <= self.augment.scale[1],
             f"augment.scale: expected [low, high] with 0 < low <= high, got {self.augment.scale}"),
            (len(self.labeling.scales) >= 1 and min(self.labeling.scales) > 0,
             f"labeling.scales: expected positive scales, got {self.labeling.scales}"),
            (0.0 <= self.labeling.bg_threshold <= 1.0,
             f"labeling.bg_threshold must lie in [0, 1], got {self.labeling.bg_threshold}"),
            (self.rounds >= 0, f"rounds must be >= 0, got {self.rounds}"),
            (self.deal.weight >= 0, f"deal.weight must be >= 0, got {self.deal.weight}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


# ------------------------------------------------------------------ schema helpers
C = TypeVar("C")  # a config schema: a dataclass of fields and sections, with validate()


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def all_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (sections and leaves)."""
    keys = []
    for name, tp in _hints(cls).items():
        key = f"{prefix}{name}"
        keys.append(key)
        if _is_dataclass_type(tp):
            keys += all_keys(tp, key + ".")
    return keys


def _unknown_key(key: str, where: str, schema: type = TrainConfig) -> ConfigError:
    known = all_keys(schema)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if not close:  # also try the last component alone ("epochs" -> "train.epochs")
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in known if k.rsplit(".", 1)[-1] == leaf][:3]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"{where}: unknown config key '{key}'{hint}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Convert a YAML value (or override text) to the field type ``tp``; one line on failure."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        is_none = value is None or (
            isinstance(value, str) and value.strip().lower() in ("none", "null")
        )
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: {key}: bad value {value!r}")
    if tp is Any:
        return value
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            text = value.strip()
            parsed = yaml.safe_load(text) if text.startswith("[") else None
            value = (
                parsed if parsed is not None else [v.strip() for v in text.split(",") if v.strip()]
            )
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{where}: {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}")
        try:
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: {key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: {key}: unsupported type {_type_name(tp)}")


def from_dict(
    data: dict[str, Any],
    cls: type[C] = TrainConfig,
    where: str = "config",
    prefix: str = "",
    root: type | None = None,
) -> C:
    """Build the dataclass ``cls`` from a nested dict; unknown keys and bad values fail
    (an unknown key is matched against the keys of ``root``, default ``cls``)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: {prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}"
        )
    root = root or cls
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in hints:
            raise _unknown_key(key, where, root)
        tp = hints[name]
        if _is_dataclass_type(tp):
            kwargs[name] = from_dict(value or {}, tp, where, key + ".", root)
        else:
            kwargs[name] = _coerce(value, tp, key, where)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML-able data."""
    return dataclasses.asdict(cfg)


# ------------------------------------------------------------------ presets and overrides
def preset_names() -> list[str]:
    """The presets shipped in the package."""
    folder = resources.files("deal_ros.train") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name_or_path: str | Path) -> Path:
    """A config file: an existing path, or the name of a shipped preset."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
    if "/" not in stem and stem in preset_names():
        return Path(str(resources.files("deal_ros.train") / "configs" / f"{stem}.yaml"))
    raise ConfigError(
        f"config '{text}': no such file and no such preset (presets: {', '.join(preset_names())})"
    )


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: keys of ``top`` win; mappings are merged key by key."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _merge(out[k], v) if both else copy.deepcopy(v)
    return out


def read_config_file(
    name_or_path: str | Path, schema: type | None = TrainConfig, _seen: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The raw dict of a config file, with its ``base:`` chain merged in; its keys and values
    are checked against ``schema`` (``None``: not checked, e.g. to peek at its ``stage``)."""
    path = preset_path(name_or_path)
    if str(path) in _seen:
        raise ConfigError(f"config '{path}': 'base:' chain loops ({' -> '.join(_seen)})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" line {line + 1}" if line is not None else ""
        raise ConfigError(
            f"config '{path}'{at}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config '{path}': cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config '{path}': expected a mapping of keys, got {type(data).__name__}")
    base = data.pop("base", None)
    data.pop("meta", None)  # written into a run's config.yaml; not a setting
    if base is not None:
        data = _merge(read_config_file(base, schema, (*_seen, str(path))), data)
    if schema is not None:
        from_dict(data, schema, where=f"config '{path}'")  # fail early, naming the file
    return data


def parse_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key=value (e.g. train.epochs=5)")
    key, value = text.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ConfigError(f"override '{text}': the key is empty")
    return key, value


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], schema: type = TrainConfig
) -> dict[str, Any]:
    """Set dotted keys in the raw dict; every key must exist in ``schema`` (free-form mappings
    such as ``data_options.<name>`` accept any sub-key)."""
    data = copy.deepcopy(data)
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        cls, node = schema, data
        for i, part in enumerate(parts):
            hints = _hints(cls)
            if part not in hints:
                raise _unknown_key(key, "override", schema)
            tp, last = hints[part], i == len(parts) - 1
            if _is_dataclass_type(tp):
                if last:
                    sub = ", ".join(f"{key}.{k}" for k in _hints(tp))
                    raise ConfigError(f"override '{text}': '{key}' is a section; set one of {sub}")
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node, cls = node[part], tp
                continue
            if last:
                node[part] = _coerce(_yaml_scalar(value, tp), tp, key, "override")
            elif typing.get_origin(tp) is dict:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node[part][".".join(parts[i + 1 :])] = _yaml_scalar(value, Any)
            else:
                raise _unknown_key(key, "override", schema)
            break
    return data


def _yaml_scalar(text: str, tp: Any) -> Any:
    """Override text -> value: for fields that may hold a string the text is kept as is (so
    name=001 stays '001'; the type's other arms still parse it: resume=true is a bool);
    other fields go through YAML (numbers, lists, none)."""
    arms = (
        typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    )
    if str in arms:
        return text
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def load_config(
    source: str | Path | None = None, overrides: Sequence[str] = (), schema: type[C] = TrainConfig
) -> C:
    """Preset name or path (or None: the defaults) + ``key=value`` overrides -> a validated
    ``schema`` (default TrainConfig)."""
    data = read_config_file(source, schema) if source else {}
    data = apply_overrides(data, overrides, schema)
    where = f"config '{source}'" if source else "config"
    return from_dict(data, schema, where=where).validate()


def config_from_file_dict(data: dict[str, Any], where: str, schema: type[C] = TrainConfig) -> C:
    """A config read back from a run folder (``meta`` is dropped; not validated)."""
    data = {k: v for k, v in data.items() if k != "meta"}
    return from_dict(data, schema, where=where)
