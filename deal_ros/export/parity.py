"""Parity of an exported graph: torch eager vs ONNX Runtime (CPU) on the same real inputs.

The batch is made by the runtime's own preprocessing (``deal_ros.infer.preprocess``) from real
images, so the check covers exactly what the robot will feed. Every output is compared; an
output passes when ``max|onnx - torch| <= atol + rtol * max|torch|`` (scores and CAMs lie in
[0, 1]; seg_logits are unbounded, hence the relative part). ``atol`` is 1e-3 by default: each
CAM is divided by its own peak, so float32 rounding in the backbone (~1e-6) is amplified for an
absent class whose peak is small (1e-4 seen on an untrained net); a wrong graph, weights or
preprocessing shows as differences of 1e-2 and more. The batch holds several images, so
the dynamic batch axis is exercised too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from deal_ros.errors import DealError

__all__ = ["ParityReport", "check_parity"]


@dataclass
class ParityReport:
    """Per output: max abs difference and the largest reference magnitude."""

    images: int
    atol: float
    rtol: float
    max_abs: dict[str, float] = field(default_factory=dict)
    ref_max: dict[str, float] = field(default_factory=dict)
    excluded: int = 0  # top-k rows tied at the cut, in one graph's top k only (not compared)

    def failures(self) -> list[str]:
        return [
            name
            for name, diff in self.max_abs.items()
            if not diff <= self.atol + self.rtol * self.ref_max[name]
        ]

    @property
    def ok(self) -> bool:
        return not self.failures()

    @property
    def worst(self) -> float:
        return max(self.max_abs.values(), default=0.0)

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs.items())
        tied = f"; {self.excluded} rows tied at the top-k cut not compared" if self.excluded else ""
        return f"parity torch vs onnxruntime on {self.images} images: max abs diff {parts}{tied}"

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "atol": self.atol,
            "rtol": self.rtol,
            "max_abs": {k: float(f"{v:.3e}") for k, v in self.max_abs.items()},
        }


def check_parity(
    module: nn.Module,
    onnx_path: str | Path,
    batch: np.ndarray,
    *,
    atol: float = 1e-3,
    rtol: float = 1e-4,
    input_name: str = "image",
    raise_on_failure: bool = True,
    align: Callable[[list[np.ndarray], list[np.ndarray]], tuple[list, np.ndarray]] | None = None,
) -> ParityReport:
    """Run ``batch`` (N, 3, H, W) float32 through torch and ONNX Runtime; compare outputs.

    ``module`` has ``output_names`` (``DeployModule``, ``CondInstExport``). ``align(ref, got)``
    may reorder ONNX Runtime's outputs to torch's first (top-k rows whose scores tie within
    float rounding may come out swapped; see ``deal_ros.export.instance_bundle``) and returns
    them with an (N, k) bool mask of the rows to compare (a row tied at the top-k cut may be in
    one graph's top k and not the other's)."""
    module = module.eval()
    names = module.output_names
    with torch.no_grad():
        ref = [t.numpy() for t in module(torch.from_numpy(np.ascontiguousarray(batch)))]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a correctness check: deterministic, no spinning threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    got = session.run(names, {input_name: batch})
    compare = None
    if align is not None:
        got, compare = align(ref, got)
    report = ParityReport(images=int(batch.shape[0]), atol=atol, rtol=rtol)
    if compare is not None:
        report.excluded = int(compare.size - np.count_nonzero(compare))
    for name, r, g in zip(names, ref, got):
        if r.shape != g.shape:
            raise DealError(
                f"parity '{onnx_path}': output '{name}' is {g.shape} in ONNX Runtime but "
                f"{r.shape} in torch"
            )
        if compare is not None and r.shape[:2] == compare.shape:
            r, g = r[compare], g[compare]
        diff = np.abs(r.astype(np.float64) - g)
        report.max_abs[name] = float(diff.max()) if diff.size else 0.0
        report.ref_max[name] = float(np.max(np.abs(r))) if r.size else 0.0
    if raise_on_failure and not report.ok:
        bad = report.failures()
        raise DealError(
            f"parity '{onnx_path}': {', '.join(bad)} differ from torch beyond "
            f"atol {atol:g} + rtol {rtol:g} ({report.summary()})"
        )
    return report


def batch_from_images(
    images: Sequence[np.ndarray], preprocess, size: tuple[int, int]
) -> np.ndarray:
    """Stack preprocessed images into one (N, 3, h, w) batch."""
    if not images:
        raise DealError("parity: no images to check with")
    return np.concatenate([preprocess(img, size) for img in images], axis=0)
