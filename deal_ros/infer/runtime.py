"""The inference runtime over a model bundle: ONNX Runtime + numpy + PIL (no torch, no ROS).

    rt = Runtime("models/mug")                  # providers="auto": TensorRT > CUDA > CPU
    print(rt.describe())                        # which provider it got
    result = rt.segment(rgb)                    # rgb: (H, W, 3) uint8
    result.mask, result.cam, result.overlay     # at the INPUT image's size

The same object runs in the segmenter node, in ``deal infer`` and in the benches. Loading
checks the graph against ``model.yaml`` (input name and size, class count of every output);
any problem is one :class:`~deal_ros.infer.bundle.BundleError` line.

An instance bundle (``task: instance``, from a box run) loads the same way (providers, threads,
TensorRT cache); ``rt.detect(rgb)`` gives its instances (:mod:`deal_ros.infer.instances`).
``task="semantic"`` (what the segmenter node asks for) refuses the other kind at load.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

import deal_ros.infer.postprocess as post
from deal_ros.infer.bundle import TASKS, Bundle, BundleError, read_bundle
from deal_ros.infer.instances import (
    InstanceResult,
    draw_instances,
    gate_instances,
    instances_from_outputs,
)
from deal_ros.infer.preprocess import Preprocessor, to_rgb_array
from deal_ros.infer.providers import (
    TENSORRT,
    choose_providers,
    provider_options,
    writable_cache_dir,
)

__all__ = ["InferenceResult", "InstanceResult", "Runtime"]


@dataclass
class InferenceResult:
    """One image's outputs, all at the input image's size (H, W).

    mask: uint8 class ids (0 = background); scores: (K,) image-level probabilities;
    present: (K,) bool; cam: float32 CAM of class ``cam_class`` (the strongest present class;
    0 and an all-zero map when none is present), None when not asked for; overlay: rgb8 or
    None; class_cams: upsampled CAMs by class id; timings: seconds per stage.
    """

    mask: np.ndarray
    scores: np.ndarray
    present: np.ndarray
    cam_class: int
    cam: np.ndarray | None = None
    overlay: np.ndarray | None = None
    class_cams: dict[int, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


_THRESHOLD_NAMES = (
    "cam_threshold",
    "score_threshold",
    "nms_threshold",
    "mask_threshold",
    "overlay_alpha",
)


def _threshold(value: float | None, default: float, name: str) -> float:
    if value is None or value < 0:
        return default
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"Runtime: {name} must be in [0, 1] (or < 0 for the bundle's), got {value}"
        )
    return float(value)


class Runtime:
    """A loaded bundle ready to run (see the module docstring).

    ``providers``: "auto", a comma list or a list of short/full names (see
    ``deal_ros.infer.providers``). ``threads``: ONNX Runtime intra-op threads (0 = its default).
    Thresholds and ``overlay_alpha`` left at None use the bundle's values. ``input_size``
    (h, w) overrides the bundle's size for graphs exported with a dynamic spatial size.
    """

    def __init__(
        self,
        model: str | Path | Bundle,
        providers: str | Sequence[str] = "auto",
        *,
        fp16: bool = False,
        threads: int = 0,
        cam_threshold: float | None = None,
        score_threshold: float | None = None,
        overlay_alpha: float | None = None,
        input_size: tuple[int, int] | None = None,
        mask_source: str | None = None,
        task: str | None = None,
        nms_threshold: float | None = None,
        mask_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> None:
        self.bundle = model if isinstance(model, Bundle) else read_bundle(model)
        b = self.bundle
        self.where = f"model bundle '{b.path}'"
        self._check_task(task)
        self.input_size = self._input_size(input_size)
        self.fp16 = fp16
        self.session, self.notes = self._open(providers, threads)
        self.providers: list[str] = list(self.session.get_providers())
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._check_graph()
        self.preprocessor = Preprocessor(b.input)
        if b.is_instance:
            self._init_instance(score_threshold, overlay_alpha, nms_threshold, mask_threshold,
                                max_detections)  # fmt: skip
            return
        pp = b.postprocess
        self.cam_threshold = _threshold(cam_threshold, pp.cam_threshold, "cam_threshold")
        self.score_threshold = _threshold(score_threshold, pp.score_threshold, "score_threshold")
        self.overlay_alpha = _threshold(overlay_alpha, pp.overlay_alpha, "overlay_alpha")
        self.mask_source = mask_source or pp.mask_source
        if self.mask_source == "seg_logits" and not b.has_seg:
            raise BundleError(
                f"{self.where}: mask_source seg_logits, but the model has no seg head"
            )
        self.palette = post.palette_array(b.palette)
        self._wanted = ["scores", "cams"] + (
            ["seg_logits"] if self.mask_source == "seg_logits" else []
        )

    # ------------------------------------------------------------------ loading
    def _check_task(self, task: str | None) -> None:
        if task is not None and task not in TASKS:
            raise ValueError(f"Runtime: task must be one of {', '.join(TASKS)}, got {task!r}")
        if task is not None and task != self.bundle.task:
            hint = " (run it with 'deal infer')" if self.bundle.is_instance else ""
            raise BundleError(
                f"{self.where}: this is {_article(self.bundle.task)} bundle "
                f"(task: {self.bundle.task}), {_article(task)} bundle is needed here{hint}"
            )

    def _init_instance(self, score, alpha, nms, mask, max_det) -> None:
        spec = self.bundle.instance
        assert spec is not None  # read_bundle sets it for task instance
        if max_det is not None and max_det < 1:
            raise ValueError(f"Runtime: max_detections must be >= 1, got {max_det}")
        self.instance = replace(
            spec,
            score_threshold=_threshold(score, spec.score_threshold, "score_threshold"),
            nms_threshold=_threshold(nms, spec.nms_threshold, "nms_threshold"),
            mask_threshold=_threshold(mask, spec.mask_threshold, "mask_threshold"),
            overlay_alpha=_threshold(alpha, spec.overlay_alpha, "overlay_alpha"),
            max_detections=int(max_det) if max_det is not None else spec.max_detections,
        )
        self.score_threshold = self.instance.score_threshold
        self.overlay_alpha = self.instance.overlay_alpha
        self._wanted = list(self.bundle.outputs)

    def set_thresholds(self, **values: float | None) -> None:
        """Change thresholds at run time (the segmenter node's parameters); None or < 0 gives
        the bundle's value back. Semantic bundles read ``cam_threshold, score_threshold,
        overlay_alpha``; instance bundles ``score_threshold, nms_threshold, mask_threshold,
        overlay_alpha``; a name the loaded kind does not read is ignored."""
        unknown = set(values) - set(_THRESHOLD_NAMES)
        if unknown:
            raise ValueError(
                f"Runtime.set_thresholds: unknown {', '.join(sorted(unknown))} "
                f"(known: {', '.join(_THRESHOLD_NAMES)})"
            )
        if self.bundle.is_instance:
            spec = self.bundle.instance
            names = ("score_threshold", "nms_threshold", "mask_threshold", "overlay_alpha")
            given = {k: v for k, v in values.items() if k in names}
            new = {k: _threshold(v, getattr(spec, k), k) for k, v in given.items()}
            self.instance = replace(self.instance, **new)
            self.score_threshold = self.instance.score_threshold
            self.overlay_alpha = self.instance.overlay_alpha
            return
        pp = self.bundle.postprocess
        for name in ("cam_threshold", "score_threshold", "overlay_alpha"):
            if name in values:
                setattr(self, name, _threshold(values[name], getattr(pp, name), name))

    @property
    def task(self) -> str:
        """semantic | instance (the bundle's ``task``)."""
        return self.bundle.task

    def _input_size(self, override: tuple[int, int] | None) -> tuple[int, int]:
        spec = self.bundle.input
        if override is None or tuple(override) == (spec.height, spec.width):
            return spec.height, spec.width
        if not spec.dynamic_size:
            raise BundleError(
                f"{self.where}: input size {override[0]}x{override[1]} asked, but the graph was "
                f"exported at a fixed {spec.height}x{spec.width}"
            )
        return int(override[0]), int(override[1])

    def _open(self, providers: str | Sequence[str], threads: int):
        b = self.bundle
        chosen, notes = choose_providers(providers, ort.get_available_providers())
        with_options = [
            (
                name,
                provider_options(
                    name,
                    bundle_dir=b.path,
                    input_name=b.input.name,
                    input_size=self.input_size,
                    fp16=self.fp16,
                    model_sha256=b.model_sha256,
                ),
            )
            for name in chosen
        ]
        for name, options in with_options:
            if name == TENSORRT:
                cache = str(writable_cache_dir(Path(options["trt_engine_cache_path"])))
                options["trt_engine_cache_path"] = options["trt_timing_cache_path"] = cache
        so = ort.SessionOptions()
        so.log_severity_level = 3  # errors only: our own line says what was chosen
        if threads > 0:
            so.intra_op_num_threads = threads
        # ORT's worker threads spin after each run by default, stealing the core from whatever
        # follows in the same frame (post-processing, the 3-D cloud step): measured 0.20 -> 0.15
        # cloud/inference time ratio and a faster session.run on 2 shared cores with this off.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(b.model_path), so, providers=with_options)
        except Exception as exc:  # ORT raises its own types (Fail, InvalidGraph, ...)
            text = str(exc).strip().splitlines()
            reason = text[0] if text else type(exc).__name__
            raise BundleError(
                f"{self.where}: model.onnx cannot be loaded by ONNX Runtime ({reason[:300]})"
            ) from None
        return session, notes

    def _check_graph(self) -> None:
        b, where = self.bundle, self.where
        inputs = self.session.get_inputs()
        names = [i.name for i in inputs]
        if b.input.name not in names:
            raise BundleError(
                f"{where}: the graph's inputs are {names}, model.yaml names '{b.input.name}'"
            )
        shape = next(i.shape for i in inputs if i.name == b.input.name)
        channels = shape[1] if len(shape) == 4 else None
        if len(shape) != 4 or (isinstance(channels, int) and channels != 3):
            raise BundleError(f"{where}: graph input '{b.input.name}' is {shape}, not (N, 3, H, W)")
        fixed = [d for d in shape[2:] if isinstance(d, int)]
        if len(fixed) == 2 and tuple(shape[2:]) != self.input_size:
            raise BundleError(
                f"{where}: input size mismatch: model.yaml says "
                f"{self.input_size[0]}x{self.input_size[1]}, the graph takes {shape[2]}x{shape[3]}"
            )
        for name in b.outputs:
            if name not in self.output_names:
                raise BundleError(
                    f"{where}: model.yaml lists output '{name}', the graph has {self.output_names}"
                )
        self._check_classes()

    def _check_classes(self) -> None:
        k = self.bundle.num_classes
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        if self.bundle.is_instance:
            self._check_instance_shapes(shapes)
            return
        for name, expect in (("scores", k), ("cams", k), ("seg_logits", k + 1)):
            if name not in self.bundle.outputs:
                continue
            dim = shapes[name][1] if len(shapes[name]) > 1 else None
            if isinstance(dim, int) and dim != expect:
                raise BundleError(
                    f"{self.where}: class count: model.yaml lists {k} classes, so '{name}' "
                    f"should have {expect} channels; the graph's has {dim}"
                )

    def _check_instance_shapes(self, shapes: dict[str, list]) -> None:
        masks = shapes["masks"]
        if len(masks) != 4 or any(len(shapes[n]) != 2 for n in ("scores", "class_probs")):
            raise BundleError(
                f"{self.where}: the graph's outputs are not instance outputs "
                f"(scores {shapes['scores']}, masks {masks}; expected (N, k) and (N, k, h, w))"
            )
        stride = self.bundle.instance.mask_stride if self.bundle.instance else 4
        h, w = self.input_size
        want = (-(-h // stride), -(-w // stride))
        got = tuple(masks[2:])
        if all(isinstance(d, int) for d in got) and got != want:
            raise BundleError(
                f"{self.where}: masks are {got[0]}x{got[1]} in the graph, model.yaml's mask "
                f"stride {stride} at input {h}x{w} says {want[0]}x{want[1]}"
            )

    # ------------------------------------------------------------------ running
    @property
    def provider(self) -> str:
        """The provider that runs the graph (the first one ONNX Runtime accepted)."""
        return self.providers[0]

    def describe(self) -> str:
        b = self.bundle
        h, w = self.input_size
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        fp = " fp16" if self.fp16 and self.provider == TENSORRT else ""
        kind = "instance segmentation, " if b.is_instance else ""
        return (
            f"{b.path} ({kind}{b.num_classes} classes: {', '.join(b.classes)}; input {h}x{w}; "
            f"{self.provider}{fp}){extra}"
        )

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float32 input for ``run``."""
        return self.preprocessor(rgb, self.input_size)

    def run(self, batch: np.ndarray, outputs: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The bare ``session.run`` on a preprocessed batch: outputs by name."""
        names = list(outputs) if outputs is not None else self._wanted
        values = self.session.run(names, {self.bundle.input.name: batch})
        return dict(zip(names, values))

    def segment(
        self,
        rgb: np.ndarray,
        *,
        cam: bool = True,
        overlay: bool = True,
        cam_classes: Iterable[int] = (),
        keep: np.ndarray | None = None,
    ) -> InferenceResult:
        """Run one (H, W, 3) uint8 RGB image (mono8 (H, W) accepted); results at (H, W).

        ``cam``/``overlay``: compute those outputs; ``cam_classes``: class ids whose upsampled
        CAM should be in ``class_cams`` too; ``keep``: (H, W) bool, pixels outside it are
        background (e.g. :func:`deal_ros.infer.postprocess.depth_keep`).
        """
        self._need("semantic", "segment")
        t0 = time.perf_counter()
        rgb = to_rgb_array(rgb)  # the one check of this image
        batch, _ = self.preprocessor.checked(rgb, self.input_size)
        t1 = time.perf_counter()
        raw = self.run(batch)
        t2 = time.perf_counter()
        result = self.postprocess(
            rgb, raw, cam=cam, overlay=overlay, cam_classes=cam_classes, keep=keep
        )
        t3 = time.perf_counter()
        result.timings = {"preprocess": t1 - t0, "run": t2 - t1, "postprocess": t3 - t2}
        return result

    def postprocess(
        self,
        rgb: np.ndarray,
        raw: dict[str, np.ndarray],
        *,
        index: int = 0,
        cam: bool = True,
        overlay: bool = True,
        cam_classes: Iterable[int] = (),
        keep: np.ndarray | None = None,
    ) -> InferenceResult:
        """Turn the raw outputs of batch item ``index`` into an :class:`InferenceResult`."""
        size = rgb.shape[:2]
        scores = np.asarray(raw["scores"][index], dtype=np.float32)
        extra = set(cam_classes)
        if cam:
            present = post.present_classes(scores, self.score_threshold)
            extra.add(post.strongest_class(scores, present))
        res = post.cams_to_mask(
            raw["cams"][index], scores, size, self.cam_threshold, self.score_threshold, extra
        )
        mask = res.mask
        if self.mask_source == "seg_logits":
            mask = post.seg_logits_to_mask(raw["seg_logits"][index], size)
        if keep is not None:
            if keep.shape != size:
                raise ValueError(f"keep mask is {keep.shape}, the image {size}")
            mask = np.where(keep, mask, np.uint8(0))
        heat = None
        if cam:
            heat = res.maps.get(res.strongest) if res.strongest else None
            heat = heat if heat is not None else np.zeros(size, dtype=np.float32)
        image = post.overlay(rgb, mask, self.palette, self.overlay_alpha) if overlay else None
        return InferenceResult(
            mask=mask,
            scores=scores,
            present=res.present,
            cam_class=res.strongest,
            cam=heat,
            overlay=image,
            class_cams=res.maps,
        )

    # ------------------------------------------------------------------ instances
    def _need(self, task: str, method: str) -> None:
        if self.bundle.task != task:
            other = "detect" if method == "segment" else "segment"
            raise BundleError(
                f"{self.where}: {method}() needs {_article(task)} bundle, this one is "
                f"task: {self.bundle.task} (use {other}())"
            )

    def detect(
        self, rgb: np.ndarray, *, overlay: bool = True, keep: np.ndarray | None = None
    ) -> InstanceResult:
        """Instances of one (H, W, 3) uint8 RGB image (mono8 accepted) at (H, W), with the
        bundle's (or this runtime's) thresholds; ``overlay``: also draw them; ``keep``: (H, W)
        bool, masks are cut to it and instances left empty dropped (:func:`gate_instances`)."""
        self._need("instance", "detect")
        t0 = time.perf_counter()
        rgb = to_rgb_array(rgb)  # the one check of this image
        batch, where = self.preprocessor.checked(rgb, self.input_size)
        t1 = time.perf_counter()
        raw = self.run(batch)
        t2 = time.perf_counter()
        result = instances_from_outputs(raw, self.instance, self.input_size, where)
        if keep is not None:
            result = gate_instances(result, keep)
        if overlay:
            result.overlay = self.draw(rgb, result)
        t3 = time.perf_counter()
        result.timings = {"preprocess": t1 - t0, "run": t2 - t1, "postprocess": t3 - t2}
        return result

    def draw(self, rgb: np.ndarray, result: InstanceResult) -> np.ndarray:
        """The rgb8 overlay of ``result`` on ``rgb`` (tint, box, "name score")."""
        return draw_instances(
            rgb,
            result.masks,
            result.boxes,
            result.scores,
            result.classes,
            self.bundle.classes,
            self.overlay_alpha,
            ids=result.id_image(),
        )


def _article(task: str) -> str:
    return f"an {task}" if task[0] in "aeiou" else f"a {task}"
