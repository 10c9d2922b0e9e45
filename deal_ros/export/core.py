"""What both bundle writers share (semantic ``bundle.py``, instance ``instance_bundle.py``).

    check_out_dir(out)                           # an empty or a bundle folder
    with exporting(out, [net]):                  # out made; the nets back in their mode
        onnx_path = ...                          # the kind's own graph export
        batch = parity_batch(images, spec, size, count)
        parity = check_parity(module, onnx_path, batch, ...)
    return write_bundle(out, onnx_path, parity, opset, backbone, tensorrt, fp16, say,
                        classes=..., input=spec, outputs=..., postprocess=..., ...)

``write_bundle`` fills the fields every ``model.yaml`` has (model hash, export versions and
parity, software, creation time, the graph's input normalisation), writes it last and
atomically, drops engines built for an older graph, loads the bundle once through
:class:`deal_ros.infer.Runtime` (the checks the robot makes) and builds the TensorRT engine when
asked or available.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros import __version__
from deal_ros.errors import DealError
from deal_ros.export.parity import ParityReport, batch_from_images
from deal_ros.infer.bundle import (
    ENGINE_DIR,
    MODEL_FILE,
    SPEC_FILE,
    Bundle,
    InputSpec,
    file_sha256,
    write_spec,
)
from deal_ros.infer.preprocess import Preprocessor

__all__ = [
    "ExportResult",
    "check_out_dir",
    "default_parity_images",
    "exporting",
    "parity_batch",
    "run_frames",
    "write_bundle",
]

_BUNDLE_FILES = {MODEL_FILE, SPEC_FILE, ENGINE_DIR}
Log = Callable[[str], None]


@dataclass
class ExportResult:
    """What an export wrote: the bundle folder, the parity report, the engine folder."""

    path: Path
    bundle: Bundle
    parity: ParityReport
    engine: Path | None = None
    provider_check: str = ""


def default_parity_images(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``n`` real-looking RGB frames from the built-in RGB-D scene generator (rendered table-top
    scenes with household objects), for exports that bring no images of their own."""
    from deal_ros.scene.generator import SceneGenerator

    gen = SceneGenerator(size=size, seed=seed)
    return [gen.sample(i).rgb for i in range(n)]


def run_frames(open_data: Callable[[], Any], n: int, say: Log) -> list[np.ndarray] | None:
    """The first ``n`` frames of a run's own data (``open_data()``), when it is readable here;
    None (and a log line) when not: the parity check then uses scene frames."""
    try:
        dataset = open_data()
        return [dataset[i].rgb for i in range(min(n, len(dataset)))]
    except (DealError, OSError) as exc:
        say(f"parity images: the run's data is not readable here ({exc}); using scene frames")
        return None


def check_out_dir(out: Path) -> None:
    """An absent, empty or bundle folder (files of a bundle only: it is replaced)."""
    if out.exists() and not out.is_dir():
        raise DealError(f"export: '{out}' exists and is not a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _BUNDLE_FILES)
        foreign = [n for n in foreign if not n.endswith(".tmp")]
        if foreign:
            raise DealError(
                f"export: '{out}' holds other files ({', '.join(foreign[:3])}); "
                "give an empty or a bundle folder"
            )


@contextlib.contextmanager
def exporting(out: Path, nets: Sequence[Any]) -> Iterator[None]:
    """Make ``out``; the nets go back to their train/eval mode afterwards."""
    modes = [(net, net.training) for net in nets if net is not None]
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        for net, mode in modes:
            net.train(mode)


def parity_batch(
    images: Sequence[np.ndarray] | None, spec: InputSpec, size: tuple[int, int], count: int
) -> np.ndarray:
    """The parity frames (``images``, else ``count`` scene frames) through the runtime's own
    preprocessing: what the robot feeds the graph."""
    frames = list(images) if images is not None else None
    frames = frames or default_parity_images(count, size)
    return batch_from_images(frames, Preprocessor(spec), size)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime as ort
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__}


def _clear_stale_engines(out: Path, sha: str) -> None:
    engines = out / ENGINE_DIR
    if not engines.is_dir():
        return
    for entry in engines.iterdir():
        if entry.is_dir() and not entry.name.endswith(sha[:12]):
            shutil.rmtree(entry, ignore_errors=True)


def write_bundle(
    out: Path,
    onnx_path: Path,
    parity: ParityReport,
    opset: int,
    backbone: Any,
    tensorrt: bool | None,
    fp16: bool,
    say: Log,
    **fields: Any,
) -> ExportResult:
    """``model.yaml`` from the kind's ``fields`` + the shared ones (module docstring), then the
    bundle's load check and the optional TensorRT engine."""
    sha = file_sha256(onnx_path)
    bundle = Bundle(
        path=out,
        model_sha256=sha,
        export={"opset": opset, **_versions(), "parity": parity.to_dict()},
        software=f"deal_ros {__version__}",
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        graph_normalisation={
            "mean": [float(v) for v in backbone.mean],
            "std": [float(v) for v in backbone.std],
        },
        **fields,
    )
    write_spec(bundle)
    _clear_stale_engines(out, sha)
    return _finish(bundle, parity, tensorrt, fp16, say)


def _finish(
    bundle: Bundle, parity: ParityReport, tensorrt: bool | None, fp16: bool, say: Log
) -> ExportResult:
    from deal_ros.export.tensorrt import build_engine, tensorrt_possible
    from deal_ros.infer.bundle import read_bundle
    from deal_ros.infer.runtime import Runtime

    bundle = read_bundle(bundle.path)
    check = Runtime(bundle, providers="cpu", threads=1).describe()
    say(f"bundle loads: {check}")
    engine = None
    if tensorrt or (tensorrt is None and tensorrt_possible()):
        engine = build_engine(bundle.path, fp16=fp16, log=say)
    return ExportResult(bundle.path, bundle, parity, engine, check)
