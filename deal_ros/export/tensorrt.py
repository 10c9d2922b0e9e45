"""TensorRT engines for a bundle, cached in ``<bundle>/engine/<gpu>-trt<ver>-<fp16|fp32>-<sha>/``.

Two builders (``method``):

* ``"ort"``: ONNX Runtime's TensorRT execution provider with its engine cache pointed at the
  bundle (``deal_ros.infer.providers.provider_options``); one warm-up run builds the engine.
  The runtime (node, ``deal infer``) then finds it under the same key and loads it in seconds.
* ``"trtexec"``: NVIDIA's ``trtexec`` writes ``model.plan`` in the same folder, for C++ /
  Isaac ROS consumers (the Python runtime keeps using the ORT cache).

``"auto"`` takes ORT when its TensorRT provider is available, else trtexec when on PATH.
On a machine with neither (like CI), ``tensorrt_possible()`` is False and export skips this.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from deal_ros.errors import DealError
from deal_ros.infer.bundle import read_bundle
from deal_ros.infer.providers import TENSORRT, engine_cache_dir, writable_cache_dir

__all__ = ["build_engine", "tensorrt_possible", "trtexec_path"]

METHODS = ("auto", "ort", "trtexec")


def trtexec_path() -> str | None:
    """``trtexec`` on PATH (or in /usr/src/tensorrt/bin, where the Debian packages put it)."""
    found = shutil.which("trtexec")
    if found:
        return found
    fallback = Path("/usr/src/tensorrt/bin/trtexec")
    return str(fallback) if fallback.is_file() else None


def tensorrt_possible() -> bool:
    """True when an engine can be built here (ORT TensorRT provider or trtexec)."""
    return TENSORRT in ort.get_available_providers() or trtexec_path() is not None


def _pick(method: str) -> str:
    if method not in METHODS:
        raise DealError(f"TensorRT: method must be one of {', '.join(METHODS)}, got '{method}'")
    if method != "auto":
        return method
    if TENSORRT in ort.get_available_providers():
        return "ort"
    if trtexec_path():
        return "trtexec"
    raise DealError(
        "TensorRT: no engine builder here: onnxruntime has no TensorrtExecutionProvider "
        f"(available: {', '.join(ort.get_available_providers())}; install onnxruntime-gpu with "
        "TensorRT) and trtexec is not on PATH"
    )


def _build_with_ort(bundle_dir: Path, fp16: bool, max_batch: int) -> Path:
    from deal_ros.infer.runtime import Runtime

    if TENSORRT not in ort.get_available_providers():
        raise DealError("TensorRT: onnxruntime here has no TensorrtExecutionProvider")
    runtime = Runtime(bundle_dir, providers=["tensorrt"], fp16=fp16)
    if runtime.provider != TENSORRT:
        raise DealError(
            f"TensorRT: ONNX Runtime fell back to {runtime.provider} for '{bundle_dir}' "
            "(TensorRT libraries not found?)"
        )
    h, w = runtime.input_size
    runtime.run(np.zeros((1, 3, h, w), dtype=np.float32))  # builds and caches the engine
    cache = writable_cache_dir(engine_cache_dir(bundle_dir, fp16, runtime.bundle.model_sha256))
    if not any(cache.glob("*.engine")):
        raise DealError(f"TensorRT: ONNX Runtime wrote no engine into '{cache}'")
    return cache


def _build_with_trtexec(bundle_dir: Path, fp16: bool, max_batch: int) -> Path:
    exe = trtexec_path()
    if exe is None:
        raise DealError("TensorRT: trtexec is not on PATH")
    bundle = read_bundle(bundle_dir)
    cache = writable_cache_dir(engine_cache_dir(bundle_dir, fp16, bundle.model_sha256))
    name, h, w = bundle.input.name, bundle.input.height, bundle.input.width
    cmd = [
        exe,
        f"--onnx={bundle.model_path}",
        f"--saveEngine={cache / 'model.plan'}",
        f"--minShapes={name}:1x3x{h}x{w}",
        f"--optShapes={name}:1x3x{h}x{w}",
        f"--maxShapes={name}:{max(1, max_batch)}x3x{h}x{w}",
    ] + (["--fp16"] if fp16 else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DealError(f"TensorRT: trtexec failed for '{bundle_dir}' ({tail[0]})")
    return cache


def build_engine(
    bundle_dir: str | Path,
    *,
    fp16: bool = False,
    method: str = "auto",
    max_batch: int = 1,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build (or reuse) the engine for this GPU + TensorRT; returns its cache folder."""
    bundle_dir = Path(bundle_dir)
    chosen = _pick(method)
    build = _build_with_ort if chosen == "ort" else _build_with_trtexec
    cache = build(bundle_dir, fp16, max_batch)
    if log:
        log(f"TensorRT engine ({chosen}, {'fp16' if fp16 else 'fp32'}) in {cache}")
    return cache
