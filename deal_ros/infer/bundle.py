"""The model bundle on disk: ``model.onnx`` + ``model.yaml`` (+ ``engine/``), read and validated.

Torch-free and ROS-free: the segmenter node, ``deal infer`` and ``deal export`` share it.
``read_bundle(path)`` checks everything that can be checked without ONNX Runtime (files,
YAML, types, ranges, the ``model.onnx`` checksum); the graph itself (input size, class count)
is checked against this spec by :class:`deal_ros.infer.runtime.Runtime` when it loads.
Every failure is ONE :class:`BundleError` line naming the bundle and what is wrong; a key no
reader knows (``postprocess.cam_thresold``) is one, naming the closest known key, since it
would otherwise be ignored and a default used silently.

``model.yaml`` (format 1; see docs/formats.md)::

    format: 1
    software: deal_ros 0.1.0
    created: '2026-11-22T03:20:00Z'
    model: model.onnx
    model_sha256: 3f1c...            # checked at load: a changed or truncated file fails
    classes: [mug, box]              # foreground; class id = index + 1, 0 = background
    background: background
    input: {name: image, layout: NCHW, color: rgb, height: 240, width: 320,
            dynamic_batch: true, dynamic_size: false, resize: bilinear,
            mean: [0, 0, 0], std: [1, 1, 1],          # the runtime feeds (rgb/255 - mean)/std
            graph_normalisation: {mean: [...], std: [...]}}   # informational: done in the graph
    outputs:
      scores: {shape: [N, K], meaning: ...}
      cams: {shape: [N, K, h, w], stride: 16, meaning: ...}
      seg_logits: {shape: [N, K+1, H, W], meaning: ...}      # only with a stage-2 model
    postprocess: {mask_source: cams, cam_threshold: 0.26, score_threshold: 0.5,
                  overlay_alpha: 0.5}
    palette: [[0, 0, 0], [230, 25, 75], ...]                 # RGB per class id (K+1 rows)
    training: {run: runs/mug-001, backbone: mobilenet_v2, output_stride: 16, ...}
    export: {opset: 17, torch: ..., onnxruntime: ..., parity: {...}}

An instance bundle (``deal export`` of a box run, format 2) says ``task: instance``; its
outputs are ``scores, classes, boxes, masks, class_probs`` (``deal_ros.instance.export``),
``instance: {topk, mask_stride}``, ``input.fit`` may be ``pad`` (letterbox, ``pad_value``
RGB) and ``postprocess`` holds ``score_threshold, nms_threshold, max_detections,
mask_threshold, overlay_alpha``. A bundle without ``task`` is a semantic one (as before).
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deal_ros.core.palette import default_palette
from deal_ros.errors import DealError

__all__ = [
    "BUNDLE_FORMAT",
    "ENGINE_DIR",
    "INSTANCE_OUTPUTS",
    "MODEL_FILE",
    "OUTPUT_NAMES",
    "SPEC_FILE",
    "TASKS",
    "Bundle",
    "BundleError",
    "InputSpec",
    "InstanceSpec",
    "PostprocessSpec",
    "default_palette",
    "file_sha256",
    "read_bundle",
    "write_spec",
]

BUNDLE_FORMAT = 2  # the newest format this deal_ros reads
SEMANTIC_FORMAT = 1  # semantic bundles are still written as format 1 (older readers take them)
INSTANCE_FORMAT = 2  # instance bundles: older readers refuse them with "update deal_ros"
MODEL_FILE = "model.onnx"
SPEC_FILE = "model.yaml"
ENGINE_DIR = "engine"
OUTPUT_NAMES = ("scores", "cams", "seg_logits")
MASK_SOURCES = ("cams", "seg_logits")
TASKS = ("semantic", "instance")
INSTANCE_OUTPUTS = ("scores", "classes", "boxes", "masks", "class_probs")
FITS = ("resize", "pad")
# Every key a reader knows, by section (what ``Bundle.to_yaml_dict`` writes). ``training`` and
# ``export`` are free-form records of the run; ``outputs`` entries are checked by name below.
TOP_KEYS = ("format", "task", "software", "created", "model", "model_sha256", "classes",
            "background", "input", "outputs", "instance", "postprocess", "palette", "training",
            "export")  # fmt: skip
INPUT_KEYS = ("name", "layout", "color", "height", "width", "dynamic_batch", "dynamic_size",
              "resize", "mean", "std", "fit", "pad_value", "graph_normalisation")  # fmt: skip
POSTPROCESS_KEYS = {
    "semantic": ("mask_source", "cam_threshold", "score_threshold", "overlay_alpha"),
    "instance": ("score_threshold", "nms_threshold", "max_detections", "mask_threshold",
                 "box_margin", "overlay_alpha"),
}  # fmt: skip
INSTANCE_KEYS = ("topk", "mask_stride")


class BundleError(DealError, ValueError):
    """A model bundle is missing, corrupt or inconsistent (one line: bundle path + what)."""


@dataclass(frozen=True)
class InputSpec:
    """What the graph's image input expects; the runtime feeds ``(rgb / 255 - mean) / std``."""

    height: int
    width: int
    name: str = "image"
    dynamic_size: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: str = "bilinear"
    fit: str = "resize"  # resize (stretch) | pad (keep the aspect ratio, pad to the size)
    pad_value: tuple[int, int, int] = (0, 0, 0)  # RGB of the padding (fit: pad)


@dataclass(frozen=True)
class PostprocessSpec:
    """CAM -> mask settings: a class is present when its score >= ``score_threshold``; a pixel
    is background unless some present class's CAM there is >= ``cam_threshold``."""

    mask_source: str = "cams"
    cam_threshold: float = 0.26
    score_threshold: float = 0.5
    overlay_alpha: float = 0.5


@dataclass(frozen=True)
class InstanceSpec:
    """Instance post-processing (``deal_ros.infer.instances``): keep the graph's top-``topk``
    candidates with ``class_probs > score_threshold``, class-aware NMS at ``nms_threshold``,
    at most ``max_detections``; masks (at ``mask_stride``) upsampled and cut at
    ``mask_threshold``, then zeroed outside their box widened by ``box_margin`` input pixels
    (-1: not cropped; ``deal_ros.instance.config.InferConfig``); overlays tint with
    ``overlay_alpha``."""

    topk: int
    mask_stride: int = 4
    score_threshold: float = 0.05
    nms_threshold: float = 0.6
    max_detections: int = 100
    mask_threshold: float = 0.5
    box_margin: float = -1.0
    overlay_alpha: float = 0.55


@dataclass
class Bundle:
    """A validated bundle folder (see the module docstring for ``model.yaml``)."""

    path: Path
    classes: tuple[str, ...]
    input: InputSpec
    outputs: dict[str, dict[str, Any]]
    postprocess: PostprocessSpec
    palette: list[tuple[int, int, int]]
    background: str = "background"
    model_sha256: str = ""
    cam_stride: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    software: str = ""
    created: str = ""
    graph_normalisation: dict[str, list[float]] | None = None  # informational
    task: str = "semantic"  # semantic | instance
    instance: InstanceSpec | None = None  # set for task instance

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def engine_dir(self) -> Path:
        return self.path / ENGINE_DIR

    @property
    def num_classes(self) -> int:
        """Foreground classes K (class ids 1..K; 0 is background)."""
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        """Names by class id, background first (``class_names[id]``)."""
        return [self.background, *self.classes]

    @property
    def has_seg(self) -> bool:
        return "seg_logits" in self.outputs

    @property
    def is_instance(self) -> bool:
        return self.task == "instance"

    def to_yaml_dict(self) -> dict[str, Any]:
        """The ``model.yaml`` content for this bundle."""
        inp = self.input
        data: dict[str, Any] = {
            "format": INSTANCE_FORMAT if self.is_instance else SEMANTIC_FORMAT,
            **({"task": self.task} if self.is_instance else {}),
            "software": self.software,
            "created": self.created,
            "model": MODEL_FILE,
            "model_sha256": self.model_sha256,
            "classes": list(self.classes),
            "background": self.background,
            "input": {
                "name": inp.name,
                "layout": "NCHW",
                "color": "rgb",
                "height": inp.height,
                "width": inp.width,
                "dynamic_batch": True,
                "dynamic_size": inp.dynamic_size,
                "resize": inp.resize,
                "mean": [float(v) for v in inp.mean],
                "std": [float(v) for v in inp.std],
            },
            "outputs": self.outputs,
            "postprocess": self._postprocess_dict(),
            "palette": [list(map(int, row)) for row in self.palette],
            "training": self.training,
            "export": self.export,
        }
        if inp.fit != "resize":
            data["input"]["fit"] = inp.fit
            data["input"]["pad_value"] = [int(v) for v in inp.pad_value]
        if self.instance is not None:
            data = _insert_after(
                data,
                "outputs",
                "instance",
                {"topk": self.instance.topk, "mask_stride": self.instance.mask_stride},
            )
        if self.graph_normalisation:
            data["input"]["graph_normalisation"] = self.graph_normalisation
        return data

    def _postprocess_dict(self) -> dict[str, Any]:
        if self.instance is not None:
            i = self.instance
            return {
                "score_threshold": float(i.score_threshold),
                "nms_threshold": float(i.nms_threshold),
                "max_detections": int(i.max_detections),
                "mask_threshold": float(i.mask_threshold),
                "box_margin": float(i.box_margin),
                "overlay_alpha": float(i.overlay_alpha),
            }
        return {
            "mask_source": self.postprocess.mask_source,
            "cam_threshold": float(self.postprocess.cam_threshold),
            "score_threshold": float(self.postprocess.score_threshold),
            "overlay_alpha": float(self.postprocess.overlay_alpha),
        }


def _insert_after(data: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """Plain YAML types: str subclasses, numpy scalars, tuples and paths become builtins."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _plain(value.item())
    return str(value)


def write_spec(bundle: Bundle) -> Path:
    """Write ``model.yaml`` atomically (tmp + fsync + rename)."""
    target = bundle.path / SPEC_FILE
    tmp = target.with_suffix(".yaml.tmp")
    data = _plain(bundle.to_yaml_dict())
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    return target


class _Reader:
    """Typed access to the parsed YAML with one-line errors naming the key."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, what: str) -> BundleError:
        return BundleError(f"{self.where}: {what}")

    def section(self, data: Mapping[str, Any], key: str, required: bool = True) -> dict:
        value = data.get(key)
        if value is None and not required:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(f"'{key}' must be a mapping, got {_kind(value)}")
        return dict(value)

    def integer(self, data: Mapping[str, Any], key: str, minimum: int = 1) -> int:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"'{key}' must be an integer >= {minimum}, got {value!r}")
        return value

    def unit(self, data: Mapping[str, Any], key: str, default: float) -> float:
        value = data.get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not 0.0 <= float(value) <= 1.0:
            raise self.fail(f"'{key}' must be a number in [0, 1], got {value!r}")
        return float(value)

    def triple(self, data: Mapping[str, Any], key: str, default: Sequence[float]) -> tuple:
        value = data.get(key, list(default))
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 3
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
        ):
            raise self.fail(f"'{key}' must be 3 finite numbers (R, G, B), got {value!r}")
        return tuple(float(v) for v in value)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _check_keys(
    section: Mapping[str, Any], known: Sequence[str], prefix: str, r: _Reader, task: str
) -> None:
    """Refuse the first key of ``section`` that no reader knows (a misspelled threshold would
    otherwise be ignored and the default used without a word), naming the closest known key;
    a key known for the other task says so."""
    for key in section:
        if key in known:
            continue
        name = f"{prefix}{key}"
        other = "instance" if task == "semantic" else "semantic"
        if prefix == "postprocess." and key in POSTPROCESS_KEYS[other]:
            raise r.fail(f"'{name}' is not read for task {task} (only for task {other})")
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known: {', '.join(known)}"
        raise r.fail(f"unknown key '{name}' ({hint})")


def _check_all_keys(data: Mapping[str, Any], r: _Reader, task: str) -> None:
    """Unknown keys at the top level and in ``input``, ``postprocess`` and ``instance``."""
    _check_keys(data, TOP_KEYS, "", r, task)
    for key, known in (("input", INPUT_KEYS), ("postprocess", POSTPROCESS_KEYS[task]),
                       ("instance", INSTANCE_KEYS)):  # fmt: skip
        section = data.get(key)
        if isinstance(section, Mapping):
            _check_keys(section, known, f"{key}.", r, task)


def _load_yaml(path: Path, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise BundleError(f"{where}: {SPEC_FILE} is not valid YAML{at} ({problem})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{where}: {SPEC_FILE} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{where}: {SPEC_FILE} must hold a mapping, got {_kind(data)}")
    return data


def _check_format(data: Mapping[str, Any], where: str) -> None:
    fmt = data.get("format")
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise BundleError(f"{where}: {SPEC_FILE} has no integer 'format' (got {fmt!r})")
    if fmt > BUNDLE_FORMAT:
        raise BundleError(
            f"{where}: bundle format {fmt} is newer than this deal_ros reads ({BUNDLE_FORMAT}); "
            "update deal_ros"
        )


def _classes(data: Mapping[str, Any], r: _Reader) -> tuple[str, ...]:
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes:
        raise r.fail(f"'classes' must be a non-empty list of names, got {classes!r}")
    if not all(isinstance(c, str) and c.strip() for c in classes):
        raise r.fail(f"'classes' must hold non-empty strings, got {classes!r}")
    dupes = sorted({c for c in classes if classes.count(c) > 1})
    if dupes:
        raise r.fail(f"'classes' names repeat: {', '.join(dupes)}")
    return tuple(classes)


def _fit(sec: Mapping[str, Any], r: _Reader, task: str) -> tuple[str, tuple[int, int, int]]:
    fit = sec.get("fit", "resize")
    if fit not in FITS:
        raise r.fail(f"'input.fit' must be one of {', '.join(FITS)}, got {fit!r}")
    if fit != "resize" and task != "instance":
        raise r.fail(f"'input.fit' {fit} is only read for instance bundles (task: instance)")
    pad = sec.get("pad_value", [0, 0, 0])
    ok = isinstance(pad, list) and len(pad) == 3
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255
                         for v in pad):  # fmt: skip
        raise r.fail(f"'input.pad_value' must be 3 integers 0..255 (R, G, B), got {pad!r}")
    return fit, (int(pad[0]), int(pad[1]), int(pad[2]))


def _input(data: Mapping[str, Any], r: _Reader, task: str = "semantic") -> InputSpec:
    sec = r.section(data, "input")
    std = r.triple(sec, "std", (1.0, 1.0, 1.0))
    if any(v <= 0 for v in std):
        raise r.fail(f"'input.std' must be > 0, got {list(std)}")
    resize = sec.get("resize", "bilinear")
    if resize not in ("bilinear", "nearest"):
        raise r.fail(f"'input.resize' must be bilinear or nearest, got {resize!r}")
    fit, pad_value = _fit(sec, r, task)
    return InputSpec(
        height=r.integer(sec, "height"),
        width=r.integer(sec, "width"),
        name=str(sec.get("name", "image")),
        dynamic_size=bool(sec.get("dynamic_size", False)),
        mean=r.triple(sec, "mean", (0.0, 0.0, 0.0)),
        std=std,
        resize=resize,
        fit=fit,
        pad_value=pad_value,
    )


def _task(data: Mapping[str, Any], r: _Reader) -> str:
    task = data.get("task", "semantic")
    if task not in TASKS:
        raise r.fail(f"'task' must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def _instance_outputs(data: Mapping[str, Any], r: _Reader) -> dict[str, dict[str, Any]]:
    outputs = r.section(data, "outputs")
    missing = [n for n in INSTANCE_OUTPUTS if n not in outputs]
    if missing:
        raise r.fail(
            f"'outputs' has no {', '.join(repr(n) for n in missing)} (an instance bundle needs "
            f"{', '.join(INSTANCE_OUTPUTS)})"
        )
    unknown = sorted(set(outputs) - set(INSTANCE_OUTPUTS))
    if unknown:
        raise r.fail(f"'outputs' has unknown entries {unknown} for task instance")
    return {k: dict(v) if isinstance(v, Mapping) else {} for k, v in outputs.items()}


def _instance(data: Mapping[str, Any], r: _Reader) -> InstanceSpec:
    sec = r.section(data, "instance")
    post = r.section(data, "postprocess", required=False)
    stride = r.integer(sec, "mask_stride")
    return InstanceSpec(
        topk=r.integer(sec, "topk"),
        mask_stride=stride,
        score_threshold=r.unit(post, "score_threshold", 0.05),
        nms_threshold=r.unit(post, "nms_threshold", 0.6),
        max_detections=r.integer(
            {"max_detections": post.get("max_detections", 100)}, "max_detections"
        ),
        mask_threshold=r.unit(post, "mask_threshold", 0.5),
        box_margin=_box_margin(post, r),
        overlay_alpha=r.unit(post, "overlay_alpha", 0.55),
    )


def _box_margin(post: Mapping[str, Any], r: _Reader) -> float:
    """``postprocess.box_margin``: input pixels >= 0, or -1 (no crop; older bundles)."""
    value = post.get("box_margin", -1.0)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value == -1 or 0 <= value < 1e4)
    ):
        raise r.fail(f"postprocess.box_margin must be -1 or a pixel count >= 0, got {value!r}")
    return float(value)


def _outputs(data: Mapping[str, Any], r: _Reader) -> dict[str, dict[str, Any]]:
    outputs = r.section(data, "outputs")
    for name in ("scores", "cams"):
        if name not in outputs:
            raise r.fail(f"'outputs' has no '{name}' (needs scores and cams)")
    unknown = sorted(set(outputs) - set(OUTPUT_NAMES))
    if unknown:
        raise r.fail(f"'outputs' has unknown entries {unknown} (known: {', '.join(OUTPUT_NAMES)})")
    return {k: dict(v) if isinstance(v, Mapping) else {} for k, v in outputs.items()}


def _postprocess(data: Mapping[str, Any], r: _Reader, has_seg: bool) -> PostprocessSpec:
    sec = r.section(data, "postprocess", required=False)
    source = sec.get("mask_source", "cams")
    if source not in MASK_SOURCES:
        raise r.fail(f"'postprocess.mask_source' must be one of {MASK_SOURCES}, got {source!r}")
    if source == "seg_logits" and not has_seg:
        raise r.fail("'postprocess.mask_source' is seg_logits but 'outputs' has no seg_logits")
    return PostprocessSpec(
        mask_source=source,
        cam_threshold=r.unit(sec, "cam_threshold", 0.26),
        score_threshold=r.unit(sec, "score_threshold", 0.5),
        overlay_alpha=r.unit(sec, "overlay_alpha", 0.5),
    )


def _palette(data: Mapping[str, Any], r: _Reader, k: int) -> list[tuple[int, int, int]]:
    palette = data.get("palette")
    if palette is None:
        return default_palette(k)
    ok = isinstance(palette, list) and all(
        isinstance(row, (list, tuple))
        and len(row) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in row)
        for row in palette
    )
    if not ok:
        raise r.fail("'palette' must be a list of [R, G, B] rows of integers 0..255")
    if len(palette) < k + 1:
        raise r.fail(f"'palette' has {len(palette)} rows, needs {k + 1} (background + classes)")
    return [tuple(row) for row in palette]


def _check_model_file(path: Path, sha: str, where: str, verify: bool) -> None:
    model = path / MODEL_FILE
    if not model.is_file():
        raise BundleError(f"{where}: {MODEL_FILE} is missing")
    if model.stat().st_size == 0:
        raise BundleError(f"{where}: {MODEL_FILE} is empty")
    if verify and sha and file_sha256(model) != sha:
        raise BundleError(
            f"{where}: {MODEL_FILE} does not match the model_sha256 in {SPEC_FILE} "
            "(the file was changed or truncated; export the bundle again)"
        )


def read_bundle(path: str | Path, verify_checksum: bool = True) -> Bundle:
    """Read and validate a bundle folder; :class:`BundleError` (one line) when it is unusable."""
    path = Path(path).expanduser()
    where = f"model bundle '{path}'"
    if not path.exists():
        raise BundleError(f"{where}: no such folder")
    if not path.is_dir():
        raise BundleError(f"{where}: not a folder (a bundle is a folder with {SPEC_FILE})")
    spec_path = path / SPEC_FILE
    if not spec_path.is_file():
        raise BundleError(f"{where}: {SPEC_FILE} is missing (write bundles with 'deal export')")
    data = _load_yaml(spec_path, where)
    _check_format(data, where)
    r = _Reader(f"{where}: {SPEC_FILE}")
    task = _task(data, r)
    _check_all_keys(data, r, task)
    classes = _classes(data, r)
    instance = None
    if task == "instance":
        outputs = _instance_outputs(data, r)
        instance = _instance(data, r)
        postprocess = PostprocessSpec(
            score_threshold=instance.score_threshold, overlay_alpha=instance.overlay_alpha
        )
        stride = 0
    else:
        outputs = _outputs(data, r)
        postprocess = _postprocess(data, r, "seg_logits" in outputs)
        stride = outputs["cams"].get("stride", 0)
    sha = data.get("model_sha256") or ""
    _check_model_file(path, str(sha), where, verify_checksum)
    return Bundle(
        path=path,
        classes=classes,
        input=_input(data, r, task),
        outputs=outputs,
        postprocess=postprocess,
        palette=_palette(data, r, len(classes)),
        background=str(data.get("background", "background")),
        model_sha256=str(sha),
        cam_stride=int(stride) if isinstance(stride, int) else 0,
        training=dict(data.get("training") or {}),
        export=dict(data.get("export") or {}),
        software=str(data.get("software", "")),
        created=str(data.get("created", "")),
        graph_normalisation=data["input"].get("graph_normalisation") or None,
        task=task,
        instance=instance,
    )
