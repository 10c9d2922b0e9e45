"""torch -> ONNX for deployment: ``image (N,3,H,W) RGB in [0,1] -> scores, cams[, seg_logits]``.

* ``DeployModule(cam_net, seg_net=None)``: the inference view. ``scores`` = sigmoid of the
  image-level logits (N, K); ``cams`` = ReLU + per-map max normalisation (N, K, h, w) at the CAM
  stride (``deal_ros.nets.CAMExport``); ``seg_logits`` (N, K+1, H, W) from a stage-2 SegNet at
  the input size. Input normalisation is inside both nets, so the graph takes RGB in [0, 1].
* ``export_onnx``: dynamic batch always; dynamic height/width when asked. The TorchScript
  exporter (``dynamo=False``) is used: it needs no extra package (onnxscript) and gives plain
  opset-17 graphs that ONNX Runtime's CPU, CUDA and TensorRT providers all take.
* ``check_onnx``: ``onnx.checker`` with shape inference (``full_check``).
"""

from __future__ import annotations

import inspect
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from deal_ros.errors import DealError
from deal_ros.nets.cam_net import CAMExport, CAMNet

__all__ = ["DEFAULT_OPSET", "DeployModule", "check_onnx", "export_onnx", "pin_channel_dims"]

DEFAULT_OPSET = 17


class DeployModule(nn.Module):
    """``x -> (scores, cams)`` or ``(scores, cams, seg_logits)`` (see the module docstring)."""

    def __init__(self, cam_net: CAMNet, seg_net: nn.Module | None = None) -> None:
        super().__init__()
        self.cam = CAMExport(cam_net)
        self.seg = seg_net
        self.eval()

    @property
    def output_names(self) -> list[str]:
        return ["scores", "cams"] + (["seg_logits"] if self.seg is not None else [])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scores, cams = self.cam(x)
        if self.seg is None:
            return scores, cams
        return scores, cams, self.seg(x)


def _dynamic_axes(names: Sequence[str], input_name: str, dynamic_size: bool) -> dict:
    axes: dict[str, dict[int, str]] = {input_name: {0: "N"}}
    for name in names:
        axes[name] = {0: "N"}
    if dynamic_size:
        axes[input_name].update({2: "H", 3: "W"})
        if "cams" in names:
            axes["cams"].update({2: "h", 3: "w"})
        if "seg_logits" in names:
            axes["seg_logits"].update({2: "H", 3: "W"})
    return axes


def export_onnx(
    module: DeployModule,
    path: str | Path,
    input_size: tuple[int, int],
    *,
    dynamic_size: bool = False,
    opset: int = DEFAULT_OPSET,
    input_name: str = "image",
) -> Path:
    """Write ``module`` as ONNX to ``path`` (atomically); returns the path."""
    path = Path(path)
    module = module.eval().cpu()
    names = module.output_names
    example = torch.rand(1, 3, int(input_size[0]), int(input_size[1]))
    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module,
                (example,),
                buffer,
                input_names=[input_name],
                output_names=names,
                dynamic_axes=_dynamic_axes(names, input_name, dynamic_size),
                opset_version=opset,
                do_constant_folding=True,
                **kwargs,
            )
    except Exception as exc:
        raise DealError(f"ONNX export to '{path}' failed: {type(exc).__name__}: {exc}") from exc
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path


def pin_channel_dims(path: str | Path, channels: dict[str, int]) -> None:
    """Write the known channel count of outputs into the graph where the exporter left a
    symbolic name (a resize with dynamic sizes does that), so readers can check class counts."""
    import onnx

    model = onnx.load(str(path))
    changed = False
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        want = channels.get(output.name)
        if want is not None and len(dims) > 1 and not dims[1].HasField("dim_value"):
            dims[1].dim_value = int(want)
            changed = True
    if changed:
        tmp = Path(str(path) + ".tmp")
        onnx.save(model, str(tmp))
        os.replace(tmp, path)


def check_onnx(path: str | Path) -> None:
    """``onnx.checker.check_model`` (full check: with shape inference); DealError on failure."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError, InferenceError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DealError(f"ONNX graph '{path}' is not valid: {first}") from exc
