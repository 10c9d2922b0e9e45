"""ONNX Runtime execution providers: choose TensorRT > CUDA > CPU, and where TensorRT engines go.

``choose_providers("auto", available)`` keeps the preference order among the providers this
onnxruntime build offers; an explicit list ("cuda,cpu", ["tensorrt"]) is honoured in its order,
unavailable entries are dropped with a note, and CPU is always the last fallback (ORT runs the
operators a GPU provider does not take on the CPU anyway).

TensorRT engines are cached by ONNX Runtime's TensorRT provider in
``<bundle>/engine/<key>/`` where ``key = <gpu>-trt<version>-<fp16|fp32>-<model sha[:12]>``:
another GPU, another TensorRT version, the other precision or a re-exported model gets its own
engine, and an existing one is reused (built once, minutes; loaded in seconds).
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deal_ros.errors import DealError

__all__ = [
    "CPU",
    "CUDA",
    "PREFERENCE",
    "TENSORRT",
    "choose_providers",
    "engine_cache_dir",
    "engine_key",
    "gpu_name",
    "parse_providers",
    "provider_options",
    "tensorrt_version",
    "writable_cache_dir",
]

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (TENSORRT, CUDA, CPU)
_ALIASES = {
    "tensorrt": TENSORRT,
    "trt": TENSORRT,
    "cuda": CUDA,
    "gpu": CUDA,
    "cpu": CPU,
}


def parse_providers(spec: str | Sequence[str]) -> list[str] | None:
    """``"auto"`` / ``""`` -> None (automatic); else full ORT names from short or full names.

    Accepts a comma-separated string or a list: ``"tensorrt,cuda"``, ``["CPUExecutionProvider"]``.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names or names == ["auto"]:
        return None
    out = []
    for name in names:
        full = _ALIASES.get(name.lower(), name if name.endswith("ExecutionProvider") else None)
        if full is None:
            raise DealError(
                f"providers: unknown provider '{name}' (use auto, tensorrt, cuda, cpu or a full "
                "onnxruntime provider name)"
            )
        if full not in out:
            out.append(full)
    return out


def choose_providers(
    requested: str | Sequence[str], available: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(providers to use in order, notes about requested ones that are not available)."""
    wanted = parse_providers(requested)
    notes: list[str] = []
    if wanted is None:
        chosen = [p for p in PREFERENCE if p in available]
    else:
        chosen = [p for p in wanted if p in available]
        missing = [p for p in wanted if p not in available]
        if missing:
            notes.append(
                f"providers {', '.join(missing)} not available in this onnxruntime "
                f"(available: {', '.join(available)})"
            )
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen, notes


@functools.lru_cache(maxsize=1)
def gpu_name() -> str:
    """Name of the first visible NVIDIA GPU (``nvidia-smi``), or "unknown-gpu"."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "unknown-gpu"
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown-gpu"
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[0] if lines else "unknown-gpu"


def _decode_trt_version(value: int) -> str:
    # TensorRT >= 10 encodes major*10000 + minor*100 + patch; 8.x used major*1000 + minor*100.
    if value >= 10000:
        return f"{value // 10000}.{(value // 100) % 100}.{value % 100}"
    return f"{value // 1000}.{(value // 100) % 10}.{value % 100}"


@functools.lru_cache(maxsize=1)
def tensorrt_version() -> str:
    """The TensorRT library version ("10.3.0"), from the Python package or libnvinfer;
    "unknown" when neither is found."""
    try:
        import tensorrt  # optional

        return str(tensorrt.__version__)
    except ImportError:
        pass
    for soname in ("libnvinfer.so.10", "libnvinfer.so.9", "libnvinfer.so.8", "libnvinfer.so"):
        try:
            lib = ctypes.CDLL(soname)
            lib.getInferLibVersion.restype = ctypes.c_int32
            return _decode_trt_version(int(lib.getInferLibVersion()))
        except (OSError, AttributeError):
            continue
    return "unknown"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


def engine_key(gpu: str, trt_version: str, fp16: bool, model_sha256: str = "") -> str:
    """Folder name of one cached engine: GPU, TensorRT version, precision, model checksum."""
    key = f"{_slug(gpu)}-trt{_slug(trt_version)}-{'fp16' if fp16 else 'fp32'}"
    return f"{key}-{model_sha256[:12]}" if model_sha256 else key


def engine_cache_dir(bundle_dir: str | Path, fp16: bool, model_sha256: str = "") -> Path:
    """``<bundle>/engine/<key>`` for this machine's GPU and TensorRT."""
    key = engine_key(gpu_name(), tensorrt_version(), fp16, model_sha256)
    return Path(bundle_dir) / "engine" / key


def writable_cache_dir(cache: Path) -> Path:
    """``cache`` created if possible; for a read-only bundle (an installed share/ folder) the
    same key under ``$XDG_CACHE_HOME/deal_ros/engines`` (``~/.cache`` by default)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if os.access(cache, os.W_OK):
            return cache
    except OSError:
        pass
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    fallback = base / "deal_ros" / "engines" / cache.name
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _shape(name: str, batch: int, height: int, width: int) -> str:
    return f"{name}:{batch}x3x{height}x{width}"


def provider_options(
    provider: str,
    *,
    bundle_dir: str | Path,
    input_name: str,
    input_size: tuple[int, int],
    fp16: bool = False,
    model_sha256: str = "",
    max_batch: int = 1,
) -> dict[str, Any]:
    """ONNX Runtime options for ``provider``; TensorRT gets the engine cache and the shape
    profile (batch 1..``max_batch`` at ``input_size``)."""
    if provider != TENSORRT:
        return {}
    cache = engine_cache_dir(bundle_dir, fp16, model_sha256)
    height, width = input_size
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": bool(fp16),
        "trt_profile_min_shapes": _shape(input_name, 1, height, width),
        "trt_profile_opt_shapes": _shape(input_name, 1, height, width),
        "trt_profile_max_shapes": _shape(input_name, max(1, max_batch), height, width),
    }
