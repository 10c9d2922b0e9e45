"""Instance bundles: a box run's CondInst -> ``model.onnx`` + ``model.yaml`` (``task: instance``).

    export_instance_run("runs/box-001", "models/box")          # what ``deal export`` calls

Steps as for semantic bundles (``deal_ros.export.bundle``; what both share is
``deal_ros.export.core``): ONNX export
(``deal_ros.export.instance_onnx.export_instance_onnx``: top-k candidates, threshold / NMS / mask
upsampling left to ``deal_ros.infer.instances``) -> ``onnx.checker`` -> parity torch vs ONNX
Runtime on real frames through the runtime's own preprocessing (the run's ``input.fit``,
letterbox included) -> ``model.yaml`` (written last, atomically, format 2) -> loaded once by
:class:`deal_ros.infer.Runtime` -> TensorRT engine when asked / available.

Parity compares every output row by row. Candidates whose scores tie within float rounding may
leave top-k in another order in ONNX Runtime than in torch; :func:`align_candidates` puts
such rows back in torch's order (same class, score within ``atol``, nearest box) before the
comparison, so only real differences fail the export.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.errors import DealError
from deal_ros.export.core import (
    ExportResult,
    check_out_dir,
    exporting,
    parity_batch,
    run_frames,
    write_bundle,
)
from deal_ros.export.instance_onnx import CondInstExport, export_instance_onnx
from deal_ros.export.onnx_export import DEFAULT_OPSET, check_onnx, pin_channel_dims
from deal_ros.export.parity import check_parity
from deal_ros.infer.bundle import (
    MODEL_FILE,
    InputSpec,
    InstanceSpec,
    PostprocessSpec,
    default_palette,
)

__all__ = ["align_candidates", "export_instance_model", "export_instance_run"]

_MEANINGS = {
    "scores": "sqrt(p_cls * p_ctr) of the top-k (location, class) candidates, best first",
    "classes": "class id 1..K of each candidate (int64)",
    "boxes": "x0, y0, x1, y1 in input pixels (exclusive x1, y1), clipped to the input",
    "masks": "instance mask probabilities at the mask stride (input size / mask_stride)",
    "class_probs": "p_cls of each candidate; candidates need class_probs > score_threshold",
}
_SHAPES = {
    "scores": ["N", "k"],
    "classes": ["N", "k"],
    "boxes": ["N", "k", 4],
    "masks": ["N", "k", "h", "w"],
    "class_probs": ["N", "k"],
}


BOX_MATCH_PX = 1.0  # one candidate's box in both graphs: ~1e-5 px apart; neighbours: pixels


def align_candidates(atol: float) -> Callable[[list[np.ndarray], list[np.ndarray]], tuple]:
    """``align(ref, got)`` for :func:`deal_ros.export.parity.check_parity` on instance graphs:
    per image, each torch row i takes the unused ONNX row of the same class whose score is
    within ``atol`` and whose box is within ``BOX_MATCH_PX`` and nearest (row i itself when it
    qualifies): the same candidate. A torch row left without a match whose score ties the k-th
    within ``atol`` is not compared: candidates tied at the top-k cut may be in one graph's
    top k and not the other's. Any row above the cut is in both (scores agree to ~1e-6)."""

    def align(ref: list[np.ndarray], got: list[np.ndarray]) -> tuple[list, np.ndarray]:
        scores, classes, boxes = ref[0], ref[1], ref[2]
        order = np.empty(scores.shape, dtype=np.int64)
        compare = np.ones(scores.shape, dtype=bool)
        for n in range(scores.shape[0]):
            order[n], matched = _match_rows(
                scores[n], classes[n], boxes[n], got[0][n], got[1][n], got[2][n], atol
            )
            cut = min(scores[n].min(), got[0][n].min()) if scores.shape[1] else 0.0
            compare[n] = matched | (scores[n] > cut + atol)
        rows = np.arange(scores.shape[0])[:, None]
        return [g[rows, order] if g.shape[:2] == scores.shape else g for g in got], compare

    return align


def _match_rows(s, c, b, gs, gc, gb, atol: float) -> tuple[np.ndarray, np.ndarray]:
    """(ONNX row for each torch row, whether it found one)."""
    k = len(s)
    used = np.zeros(k, bool)
    out = np.arange(k)
    matched = np.zeros(k, bool)
    for i in range(k):
        near = np.abs(gb - b[i]).max(axis=1) <= BOX_MATCH_PX
        ok = (~used) & (gc == c[i]) & (np.abs(gs - s[i]) <= atol) & near
        if ok[i]:
            j = i
        elif ok.any():
            cand = np.flatnonzero(ok)
            j = int(cand[np.argmin(np.abs(gb[cand] - b[i]).max(1))])
        else:
            continue  # no match: compared as it is (and reported if it differs)
        used[j] = True
        out[i] = j
        matched[i] = True
    return out, matched


def export_instance_model(
    model: Any,
    classes: Sequence[str],
    out_dir: str | Path,
    *,
    input_size: tuple[int, int],
    fit: str = "resize",
    pad_value: Sequence[int] = (0, 0, 0),
    topk: int = 100,
    score_threshold: float = 0.05,
    nms_threshold: float = 0.6,
    max_detections: int = 100,
    mask_threshold: float = 0.5,
    box_margin: float = -1.0,
    overlay_alpha: float = 0.55,
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
    """Export a ``CondInst`` to an instance bundle in ``out_dir`` (see the module docstring)."""
    say = log or (lambda _msg: None)
    out = Path(out_dir).expanduser()
    classes = [str(c) for c in classes]
    check_out_dir(out)
    if not classes or len(set(classes)) != len(classes) or model.num_classes != len(classes):
        raise DealError(
            f"export: {len(classes)} class names {classes} for a model with "
            f"{model.num_classes} classes (names must be distinct)"
        )
    size = (int(input_size[0]), int(input_size[1]))
    spec = InputSpec(height=size[0], width=size[1], fit=fit,
                     pad_value=tuple(int(v) for v in pad_value))  # fmt: skip
    with exporting(out, [model]):
        onnx_path = export_instance_onnx(model, out / MODEL_FILE, size, topk=topk)
        batch = parity_batch(parity_images, spec, size, parity_count)
        module = CondInstExport(model, topk)
        k = _pin_candidates(module, onnx_path, batch)
        say(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB, {k} candidates per "
            "image), onnx.checker ok")  # fmt: skip
        parity = check_parity(
            module, onnx_path, batch, atol=atol, rtol=rtol, align=align_candidates(atol)
        )
        say(parity.summary())
    instance = InstanceSpec(
        topk=k,
        mask_stride=int(model.mask_out_stride),
        score_threshold=float(score_threshold),
        nms_threshold=float(nms_threshold),
        max_detections=int(max_detections),
        mask_threshold=float(mask_threshold),
        box_margin=float(box_margin),
        overlay_alpha=float(overlay_alpha),
    )
    outputs: dict[str, dict[str, Any]] = {
        n: {"shape": _SHAPES[n], "meaning": _MEANINGS[n]} for n in _SHAPES
    }
    outputs["masks"]["stride"] = instance.mask_stride
    backbone = model.backbone
    return write_bundle(
        out, onnx_path, parity, opset, backbone, tensorrt, fp16, say,
        classes=tuple(classes),
        input=spec,
        outputs=outputs,
        postprocess=PostprocessSpec(
            score_threshold=instance.score_threshold, overlay_alpha=instance.overlay_alpha
        ),
        palette=[tuple(int(v) for v in row) for row in default_palette(len(classes))],
        training={
            "backbone": getattr(backbone, "name", type(backbone).__name__),
            **(training or {}),
        },
        task="instance",
        instance=instance,
    )  # fmt: skip


def _pin_candidates(module: Any, onnx_path: Path, batch: np.ndarray) -> int:
    """k (= min(topk, locations x classes)) from one torch pass, written into the graph's
    output shapes (the exporter leaves it symbolic); the graph is checked again."""
    import torch

    with torch.no_grad():
        k = int(module(torch.from_numpy(batch[:1]))[0].shape[1])
    pin_channel_dims(onnx_path, dict.fromkeys(module.output_names, k))
    check_onnx(onnx_path)
    return k


def _run_images(cfg: Any, classes: Sequence[str], n: int, say) -> list[np.ndarray] | None:
    """The first ``n`` frames of the run's own data, when it is readable here."""
    from deal_ros.instance.data import open_box_dataset

    return run_frames(lambda: open_box_dataset(cfg, cfg.data, classes=list(classes)), n, say)


def export_instance_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    parity_images: Sequence[np.ndarray] | None = None,
    parity_count: int = 4,
    log: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> ExportResult:
    """Export a box run folder (``stage: box``). Classes, input size and fit, and the infer
    thresholds (``infer.score_threshold``, ``nms_threshold``, ``max_detections``,
    ``mask_threshold``) come from the run's config.yaml; ``kwargs`` go to
    :func:`export_instance_model` and win over them."""
    from deal_ros.data.torch_dataset import IMAGENET_MEAN
    from deal_ros.engine.runfolder import read_yaml
    from deal_ros.instance.cli import load_box_run

    say = log or (lambda _msg: None)
    run_path = Path(run_dir).expanduser()
    if not run_path.is_dir():
        raise DealError(f"run {run_path}: no such folder")
    cfg, classes, model = load_box_run(run_path)
    if parity_images is None:
        parity_images = _run_images(cfg, classes, parity_count, say)
    meta = read_yaml(run_path / "config.yaml", "run config").get("meta") or {}
    fill = np.clip(np.rint(np.asarray(IMAGENET_MEAN) * 255), 0, 255).astype(int)  # fit_sample's
    options: dict[str, Any] = {
        "input_size": (cfg.input.height, cfg.input.width),
        "fit": cfg.input.fit,
        "pad_value": [int(v) for v in fill],
        "score_threshold": cfg.infer.score_threshold,
        "nms_threshold": cfg.infer.nms_threshold,
        "max_detections": cfg.infer.max_detections,
        "mask_threshold": cfg.infer.mask_threshold,
        "box_margin": cfg.infer.box_margin,
        "training": {
            "run": str(run_path),
            "stage": "box",
            "data": cfg.data,
            **{k: meta[k] for k in ("deal_ros", "git", "seed", "created") if k in meta},
        },
    }
    options.update({k: v for k, v in kwargs.items() if v is not None})
    return export_instance_model(
        model,
        classes,
        out_dir,
        parity_images=parity_images,
        parity_count=parity_count,
        log=say,
        **options,
    )
