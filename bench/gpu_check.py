"""GPU check: the whole GPU path in one run, written as one JSON (issue 15).

On a machine with an NVIDIA GPU:

1. builds a semantic bundle (``deal train --config scene``) and an instance bundle
   (``deal train --config box``), a few steps each, exported with ``deal export`` at 480x640;
2. for each bundle and each ONNX Runtime provider, CUDA (fp32) and TensorRT (fp16): the first
   load (TensorRT: the engine is built and cached in ``<bundle>/engine/``) and the second load
   (the cached engine reused), timed, the cache checked unchanged by the reuse; then frames/s on
   640x480 rgb8 frames through the runtime (``segment`` / ``detect`` with the overlay: pre- and
   post-processing included) and of the bare ``session.run``; CPU too, as the reference;
3. training images/s as ``deal train`` reports them (``metrics.jsonl``), semantic (CAM + DEAL)
   and instance (box), and DEAL's share of a semantic training step:
   ``1 - images/s(DEAL) / images/s(deal.weight=0)`` (``deal.weight=0`` skips the DEAL term:
   the same step without it), arms alternated ABBA.

Without CUDA it runs what it can (CPU provider, CPU training) and says in the JSON what it
skipped and why, so CI keeps the script working (``--quick``: tiny models and sizes, seconds
of work; test/bench/test_gpu_check.py runs it). Only the public commands (``deal train``,
``deal export``, in-process through ``deal_ros.cli.main``) and the stable runtime API
(``deal_ros.infer.Runtime``) are used, so training-code reorganisations do not break it.

    python bench/gpu_check.py --out gpu_check.json          # on the GPU machine
    python bench/gpu_check.py --quick --out /tmp/gpu.json   # anywhere, CPU, ~1-2 min
    bench/gpu_check.sh                                      # the same with the repo's venv

Exit code 0 when every step that ran succeeded (skips are not failures), 1 otherwise; the JSON
is written in both cases (``errors`` lists what failed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = 1
IMAGE = (480, 640)  # the frames the runtime is timed on (H, W)

# Tiny settings (CPU, CI) and the real ones (GPU): bundle input size, training sizes and steps.
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {
        "bundle_input": (64, 96),
        "bundle_steps": 2,
        "frames": 5,
        "train": {"steps": 3, "batch": 2, "size": (64, 96), "rounds": 1},
        "box_train": {"steps": 2, "batch": 2, "size": (64, 96)},
        "semantic": ["model.pretrained=none", "threads=1"],
        "box": ["model.pretrained=none", "model.fpn_channels=32", "model.mask_branch_channels=32",
                "model.head_convs=1", "model.mask_branch_convs=1",
                "model.sizes_of_interest=[24,48]", "cpu_threads=1"],
    },
    "full": {
        "bundle_input": IMAGE,
        "bundle_steps": 2,
        "frames": 100,
        "train": {"steps": 60, "batch": 8, "size": (192, 256), "rounds": 2},
        "box_train": {"steps": 30, "batch": 8, "size": IMAGE},
        "semantic": ["model.pretrained=none"],
        "box": ["model.pretrained=none"],
    },
}  # fmt: skip


class Check:
    """What the run found: sections of the JSON, skips and errors."""

    def __init__(self, mode: str) -> None:
        self.data: dict[str, Any] = {"schema": SCHEMA, "mode": mode, "skipped": [], "errors": []}

    def skip(self, what: str, why: str) -> dict[str, str]:
        self.data["skipped"].append({"what": what, "why": why})
        return {"skipped": why}

    def step(self, what: str, fn, *args, **kwargs) -> Any:
        """``fn(*args)``; an exception is recorded under ``errors`` (and printed), None back."""
        print(f"gpu_check: {what} ...", flush=True)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # every failure goes into the JSON
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.data["errors"].append(f"{what}: {type(exc).__name__}: {first}")
            traceback.print_exc()
            return None


# ---------------------------------------------------------------------------- environment
def environment() -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    import deal_ros
    from deal_ros.infer.providers import gpu_name, tensorrt_version

    cuda = bool(torch.cuda.is_available())
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "deal_ros": getattr(deal_ros, "__version__", ""),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda or "",
        "cuda_available": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else "",
        "gpu_smi": gpu_name(),
        "onnxruntime": ort.__version__,
        "ort_providers": list(ort.get_available_providers()),
        "tensorrt": tensorrt_version(),
        "cpu_count": os.cpu_count(),
    }


# ---------------------------------------------------------------------------- commands
def deal(args: list[str]) -> str:
    """``deal <args>`` in this process; its output, or a RuntimeError with the last lines."""
    from deal_ros.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(args)
    if code != 0:
        tail = " | ".join(out.getvalue().strip().splitlines()[-3:])
        raise RuntimeError(f"deal {' '.join(args[:3])} ... exit {code}: {tail}")
    return out.getvalue()


def last_metrics(run: Path) -> dict[str, Any]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    return lines[-1] if lines else {}


def _newest_run(out: Path, name: str) -> Path:
    runs = sorted(out.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RuntimeError(f"deal train wrote no run '{name}-*' under {out}")
    return runs[-1]


def train(kind: str, out: Path, name: str, steps: int, batch: int, size: tuple[int, int],
          extra: list[str], device: str) -> dict[str, Any]:  # fmt: skip
    """One ``deal train`` run; images/s as it reports them."""
    h, w = size
    preset = "scene" if kind == "semantic" else "box"
    n = max(batch * 2, 8) if kind == "semantic" else max(batch, 4)
    args = ["train", "--config", preset, "--no-progress", f"data=scene:n={n},seed=0,size={h}x{w}",
            f"input.height={h}", f"input.width={w}", f"train.max_steps={steps}",
            f"train.batch_size={batch}", "train.num_workers=0", f"train.log_every={steps}",
            f"out={out}", f"name={name}", f"device={device}", *extra]  # fmt: skip
    if kind == "semantic":
        args += ["report=false"]
    else:
        args += ["distill.enabled=false", "overlays=0", "input.fit=pad"]
    t0 = time.perf_counter()
    deal(args)
    wall = time.perf_counter() - t0
    run = _newest_run(out, name)
    metrics = last_metrics(run)
    return {
        "run": str(run),
        "steps": steps,
        "batch": batch,
        "size": f"{h}x{w}",
        "images_per_s": metrics.get("images_per_s"),
        "wall_s": round(wall, 2),
        "loss": metrics.get("loss"),
        "deal_term": metrics.get("deal"),
    }


def export(run: str, out: Path, size: tuple[int, int]) -> str:
    deal(["export", f"run={run}", f"out={out}", f"input={size[0]}x{size[1]}", "engine=false"])
    return str(out)


# ---------------------------------------------------------------------------- inference
def _engine_files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def time_provider(check: Check, bundle: str, provider: str, fp16: bool, frames: int,
                  rgb: np.ndarray, threads: int) -> dict[str, Any]:  # fmt: skip
    """Load twice (build then reuse for TensorRT), then frames/s at 640x480."""
    import onnxruntime as ort

    from deal_ros.infer import Runtime
    from deal_ros.infer.providers import parse_providers

    full = parse_providers(provider)[0]
    label = f"{Path(bundle).name}/{provider}{' fp16' if fp16 else ''}"
    if full not in ort.get_available_providers():
        have = ort.get_available_providers()
        return check.skip(label, f"{full} not in this onnxruntime's providers {have}")
    engine_root = Path(bundle) / "engine"
    before = _engine_files(engine_root)
    t0 = time.perf_counter()
    first = Runtime(bundle, providers=provider, fp16=fp16, threads=threads)
    first_s = time.perf_counter() - t0
    built = _engine_files(engine_root)
    del first
    t0 = time.perf_counter()
    runtime = Runtime(bundle, providers=provider, fp16=fp16, threads=threads)
    second_s = time.perf_counter() - t0
    reused = _engine_files(engine_root)
    result: dict[str, Any] = {
        "provider": runtime.provider,
        "providers": list(runtime.providers),
        "notes": list(runtime.notes),
        "fp16": fp16,
        "first_load_s": round(first_s, 3),
        "second_load_s": round(second_s, 3),
    }
    if provider == "tensorrt":
        new = sorted(set(built) - set(before))
        result.update(
            engine_files_built=len(new),
            engine_cache=str(engine_root),
            engine_reused_unchanged=bool(new) and all(reused.get(p) == built[p] for p in new),
        )
        if runtime.provider != full:
            check.data["errors"].append(f"{label}: asked for {full}, the session runs "
                                        f"{runtime.provider}")  # fmt: skip
    instance = runtime.bundle.is_instance

    def frame() -> None:
        if instance:
            runtime.detect(rgb, overlay=True)
        else:
            runtime.segment(rgb, cam=True, overlay=True)

    x = runtime.preprocess(rgb)
    for _ in range(3):  # warm-up (allocations, cuDNN / TensorRT first runs)
        frame()
        runtime.run(x)
    full_t, run_t = [], []
    for _ in range(frames):  # one of each in turn
        t0 = time.perf_counter()
        frame()
        t1 = time.perf_counter()
        runtime.run(x)
        t2 = time.perf_counter()
        full_t.append(t1 - t0)
        run_t.append(t2 - t1)
    result.update(
        frames=frames,
        image=f"{rgb.shape[1]}x{rgb.shape[0]}",
        model_input=f"{runtime.input_size[1]}x{runtime.input_size[0]}",
        frames_per_s=round(1.0 / statistics.median(full_t), 2),
        session_run_per_s=round(1.0 / statistics.median(run_t), 2),
        frame_p50_ms=round(statistics.median(full_t) * 1000, 3),
        session_run_p50_ms=round(statistics.median(run_t) * 1000, 3),
    )
    return result


# ---------------------------------------------------------------------------- the run
def build_bundles(check: Check, work: Path, s: dict[str, Any], device: str) -> dict[str, str]:
    bundles: dict[str, str] = {}
    size = s["bundle_input"]
    for kind, name in (("semantic", "gpucheck-sem"), ("instance", "gpucheck-box")):
        extra = s["semantic" if kind == "semantic" else "box"]
        made = check.step(f"train {kind} bundle run", train, kind, work / "runs", name,
                          s["bundle_steps"], 2, size, extra, device)  # fmt: skip
        if made is None:
            continue
        out = check.step(f"export {kind} bundle", export, made["run"], work / "models" / kind, size)
        if out is not None:
            bundles[kind] = out
    return bundles


def training_throughput(check: Check, work: Path, s: dict[str, Any], device: str) -> dict:
    t, b = s["train"], s["box_train"]
    arms: dict[str, list[float]] = {"deal": [], "baseline": []}
    runs: list[dict[str, Any]] = []
    order = (["deal", "baseline", "baseline", "deal"] * t["rounds"])[: 2 * t["rounds"]]  # ABBA
    for i, arm in enumerate(order):
        extra = [*s["semantic"], *(["deal.weight=0"] if arm == "baseline" else [])]
        got = check.step(f"train semantic ({arm}) for throughput", train, "semantic",
                         work / "throughput", f"{arm}{i}", t["steps"], t["batch"], t["size"],
                         extra, device)  # fmt: skip
        if got is not None and got["images_per_s"]:
            arms[arm].append(float(got["images_per_s"]))
            runs.append({"arm": arm, **got})
    out: dict[str, Any] = {"semantic_runs": runs}
    if arms["deal"] and arms["baseline"]:
        deal_ips, base_ips = statistics.median(arms["deal"]), statistics.median(arms["baseline"])
        out.update(
            semantic_images_per_s=round(deal_ips, 3),
            semantic_images_per_s_without_deal=round(base_ips, 3),
            deal_share_of_step=round(1.0 - deal_ips / base_ips, 4),
            deal_share_formula="1 - images/s(DEAL) / images/s(deal.weight=0), medians",
        )
    box = check.step("train instance (box) for throughput", train, "instance",
                     work / "throughput", "box", b["steps"], b["batch"], b["size"], s["box"],
                     device)  # fmt: skip
    if box is not None:
        out["instance_images_per_s"] = box["images_per_s"]
        out["instance_run"] = box
    return out


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """The headline figures (None where skipped or failed)."""
    out: dict[str, Any] = {}
    for kind, by_provider in data.get("inference", {}).items():
        for key, got in by_provider.items():
            out[f"{kind}_{key}_frames_per_s"] = got.get("frames_per_s")
            if key.startswith("tensorrt"):
                out[f"{kind}_{key}_engine_build_s"] = got.get("first_load_s")
                out[f"{kind}_{key}_engine_reuse_s"] = got.get("second_load_s")
    training = data.get("training", {})
    for key in ("semantic_images_per_s", "semantic_images_per_s_without_deal",
                "deal_share_of_step", "instance_images_per_s"):  # fmt: skip
        out[key] = training.get(key)
    return out


def run(mode: str, out_path: Path, work: Path) -> int:
    s = SETTINGS[mode]
    check = Check(mode)
    env = check.step("environment", environment) or {}
    check.data["environment"] = env
    cuda = bool(env.get("cuda_available"))
    check.data["cuda"] = cuda
    device = "cuda" if cuda else "cpu"
    if not cuda:
        check.skip("GPU training", "torch.cuda.is_available() is false: trained on the CPU")
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(0)
        if not cuda:
            torch.set_num_threads(1 if mode == "quick" else max(1, (os.cpu_count() or 1)))
    bundles = build_bundles(check, work, s, device)
    check.data["bundles"] = bundles
    from deal_ros.scene.generator import SceneGenerator

    rgb = SceneGenerator(size=IMAGE, seed=0).sample(0).rgb
    threads = 1 if mode == "quick" else 0
    inference: dict[str, Any] = {}
    for kind, bundle in bundles.items():
        inference[kind] = {}
        for provider, fp16 in (("cpu", False), ("cuda", False), ("tensorrt", True)):
            frames = s["frames"] if provider != "cpu" or mode == "quick" else 20
            key = f"{provider}{'_fp16' if fp16 else ''}"
            got = check.step(f"{kind} {key}", time_provider, check, bundle, provider, fp16,
                             frames, rgb, threads)  # fmt: skip
            inference[kind][key] = got if got is not None else {"error": "see errors"}
    check.data["inference"] = inference
    check.data["training"] = training_throughput(check, work, s, device)
    check.data["summary"] = summary(check.data)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(check.data, indent=2) + "\n")
    print(f"gpu_check: wrote {out_path} ({len(check.data['skipped'])} skipped, "
          f"{len(check.data['errors'])} errors)")  # fmt: skip
    for line in check.data["errors"]:
        print(f"gpu_check: error: {line}", file=sys.stderr)
    return 1 if check.data["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and sizes (CI, CPU)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the JSON")
    parser.add_argument("--work", type=Path, help="keep runs and bundles here (default: temp)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        return run(mode, args.out, args.work)
    with tempfile.TemporaryDirectory(prefix="deal-gpu-check-") as tmp:
        return run(mode, args.out, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
