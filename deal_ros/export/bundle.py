"""Write a model bundle (docs/formats.md): ``model.onnx`` + ``model.yaml`` (+ ``engine/``).

    export_model(cam_net, ["mug"], "models/mug")             # no run folder needed
    export_run("runs/mug-001", "models/mug")                   # what ``deal export`` calls

Steps: ONNX export (dynamic batch; fixed or dynamic H, W) -> ``onnx.checker`` -> parity torch
vs ONNX Runtime on real images through the runtime's own preprocessing (max abs difference
reported and stored in model.yaml; export fails beyond the tolerance) -> ``model.yaml``
(written last, atomically) -> the bundle is loaded once by :class:`deal_ros.infer.Runtime`
(the same checks the robot makes) -> TensorRT engine when asked / available.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from deal_ros.errors import DealError
from deal_ros.export.core import (
    ExportResult,
    check_out_dir,
    default_parity_images,
    exporting,
    parity_batch,
    run_frames,
    write_bundle,
)
from deal_ros.export.onnx_export import (
    DEFAULT_OPSET,
    DeployModule,
    check_onnx,
    export_onnx,
    pin_channel_dims,
)
from deal_ros.export.parity import check_parity
from deal_ros.infer.bundle import MODEL_FILE, InputSpec, PostprocessSpec, default_palette
from deal_ros.nets.cam_net import CAM_EPS, CAMNet

__all__ = ["ExportResult", "default_parity_images", "export_model", "export_run"]

_MEANINGS = {
    "scores": "image-level class probabilities: sigmoid of the spatial mean of the CAM logits",
    "cams": (
        "class activation maps at the CAM stride: ReLU, each map divided by its own maximum "
        f"(+{CAM_EPS:g}), in [0, 1]; channel k is class id k+1"
    ),
    "seg_logits": "stage-2 segmenter logits at the input size; channel 0 = background",
}


def _check_nets(cam_net: CAMNet, seg_net: nn.Module | None, classes: Sequence[str]) -> None:
    k = len(classes)
    if k == 0 or len(set(classes)) != k:
        raise DealError(f"export: class names must be non-empty and distinct, got {list(classes)}")
    if cam_net.num_classes != k:
        raise DealError(f"export: {k} class names for a CAM net with {cam_net.num_classes} classes")
    seg_k = getattr(seg_net, "num_classes", None)
    if seg_net is not None and seg_k != k + 1:
        raise DealError(
            f"export: the seg net has {seg_k} classes, expected {k + 1} (background + {k})"
        )


def _outputs(names: Sequence[str], stride: int) -> dict[str, dict[str, Any]]:
    shapes = {
        "scores": ["N", "K"],
        "cams": ["N", "K", "h", "w"],
        "seg_logits": ["N", "K+1", "H", "W"],
    }
    out = {n: {"shape": shapes[n], "meaning": _MEANINGS[n]} for n in names}
    out["cams"]["stride"] = stride
    return out


def export_model(
    cam_net: CAMNet,
    classes: Sequence[str],
    out_dir: str | Path,
    *,
    seg_net: nn.Module | None = None,
    input_size: tuple[int, int] = (240, 320),
    dynamic_size: bool = False,
    cam_threshold: float = 0.26,
    score_threshold: float = 0.5,
    overlay_alpha: float = 0.5,
    mask_source: str | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    parity_images: Sequence[np.ndarray] | None = None,
    parity_count: int = 4,
    atol: float = 1e-3,
    rtol: float = 1e-4,
    opset: int = DEFAULT_OPSET,
    training: dict[str, Any] | None = None,
    tensorrt: bool | None = None,
    fp16: bool = False,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``cam_net`` (+ optional stage-2 ``seg_net``) to a bundle in ``out_dir``.

    ``classes``: foreground names (id = index + 1). ``parity_images``: (H, W, 3) uint8 RGB
    frames for the parity check (default: ``parity_count`` scene-generator frames).
    ``tensorrt``: None = build an engine when ONNX Runtime's TensorRT provider (or trtexec) is
    there, True = must build one, False = never.
    """
    say = log or (lambda _msg: None)
    out = Path(out_dir).expanduser()
    classes = [str(c) for c in classes]
    check_out_dir(out)
    _check_nets(cam_net, seg_net, classes)
    size = (int(input_size[0]), int(input_size[1]))
    backbone = cam_net.backbone
    spec = InputSpec(height=size[0], width=size[1], dynamic_size=dynamic_size)
    module = DeployModule(cam_net, seg_net)
    with exporting(out, [cam_net, seg_net]):
        onnx_path = export_onnx(
            module, out / MODEL_FILE, size, dynamic_size=dynamic_size, opset=opset
        )
        k = len(classes)
        pin_channel_dims(onnx_path, {"scores": k, "cams": k, "seg_logits": k + 1})
        check_onnx(onnx_path)
        say(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB), onnx.checker ok")
        batch = parity_batch(parity_images, spec, size, parity_count)
        parity = check_parity(module, onnx_path, batch, atol=atol, rtol=rtol)
        say(parity.summary())
    return write_bundle(
        out, onnx_path, parity, opset, backbone, tensorrt, fp16, say,
        classes=tuple(classes),
        input=spec,
        outputs=_outputs(module.output_names, cam_net.cam_stride),
        postprocess=PostprocessSpec(
            mask_source=mask_source or ("seg_logits" if seg_net is not None else "cams"),
            cam_threshold=float(cam_threshold),
            score_threshold=float(score_threshold),
            overlay_alpha=float(overlay_alpha),
        ),
        palette=[tuple(int(v) for v in row) for row in palette or default_palette(len(classes))],
        cam_stride=cam_net.cam_stride,
        training={
            "backbone": getattr(backbone, "name", type(backbone).__name__),
            "output_stride": int(getattr(backbone, "output_stride", cam_net.cam_stride)),
            **(training or {}),
        },
    )  # fmt: skip


def _run_images(run: Any, n: int, say: Callable[[str], None]) -> list[np.ndarray] | None:
    """The first ``n`` frames of the run's own training data, when it is readable here."""
    from deal_ros.train.data import open_dataset

    return run_frames(lambda: open_dataset(run.config.data, run.config, run.classes), n, say)


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    stage: str = "auto",
    parity_images: Sequence[np.ndarray] | None = None,
    parity_count: int = 4,
    log: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> ExportResult:
    """Export a ``deal train`` run folder (``deal_ros.train.run.load_run``).

    Classes, input size, the CAM threshold (``labeling.bg_threshold``) and the nets come from
    the run; parity runs on the run's own first frames when its data is readable here.
    ``kwargs`` go to :func:`export_model` and win over the run's values. ``stage``: "auto" (with
    the stage-2 segmenter when the run has one), "cam" (CAM net only) or "seg" (must have it).
    """
    from deal_ros.train.run import load_run

    say = log or (lambda _msg: None)
    if stage not in ("auto", "cam", "seg"):
        raise DealError(f"export: stage must be auto, cam or seg, got '{stage}'")
    run = load_run(run_dir)
    with_seg = stage == "seg" or (stage == "auto" and run.has_seg)
    if parity_images is None:
        parity_images = _run_images(run, parity_count, say)
    meta = run.meta or {}
    options: dict[str, Any] = {
        "seg_net": run.seg_net() if with_seg else None,
        "input_size": run.input_size,
        "cam_threshold": float(run.config.labeling.bg_threshold),
        "training": {
            "run": str(run.path),
            "stage": "seg" if with_seg else "cam",
            "data": run.config.data,
            **{k: meta[k] for k in ("deal_ros", "git", "seed", "created") if k in meta},
        },
    }
    options.update(kwargs)
    return export_model(
        run.cam_net(),
        run.classes,
        out_dir,
        parity_images=parity_images,
        parity_count=parity_count,
        log=say,
        **options,
    )
