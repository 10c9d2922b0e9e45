"""bench/gpu_check.sh --quick on this machine (no GPU): the public commands build both bundles,
the CPU provider is timed, training throughput and DEAL's share are measured, and everything
that needs CUDA is skipped with its reason in the JSON, not failed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import onnxruntime as ort

from paths import REPO


def test_gpu_check_quick_runs_on_cpu_and_says_what_it_skipped(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [str(REPO / "bench" / "gpu_check.sh"), "--quick", "--out", str(out),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["schema"] == 1 and data["mode"] == "quick" and data["errors"] == []
    for kind in ("semantic", "instance"):  # built by deal train + deal export
        bundle = Path(data["bundles"][kind])
        assert (bundle / "model.onnx").is_file() and (bundle / "model.yaml").is_file()
        cpu = data["inference"][kind]["cpu"]
        assert cpu["provider"] == "CPUExecutionProvider" and cpu["image"] == "640x480"
        assert cpu["frames_per_s"] > 0 and cpu["session_run_per_s"] > 0
    available = ort.get_available_providers()
    skipped = {s["what"]: s["why"] for s in data["skipped"]}
    gpu_providers = [("cuda", "cuda", "CUDAExecutionProvider"),
                     ("tensorrt_fp16", "tensorrt fp16", "TensorrtExecutionProvider")]  # fmt: skip
    for kind in ("semantic", "instance"):
        for key, name, full in gpu_providers:
            got = data["inference"][kind][key]
            if full in available:  # a GPU build of onnxruntime: it ran
                assert got["frames_per_s"] > 0
            else:
                assert full in got["skipped"] and full in skipped[f"{kind}/{name}"]
    if not data["cuda"]:
        assert "GPU training" in skipped
    training = data["training"]
    assert training["semantic_images_per_s"] > 0 and training["instance_images_per_s"] > 0
    assert training["semantic_images_per_s_without_deal"] > 0
    assert -1.0 < training["deal_share_of_step"] < 1.0  # quick: 3 steps, a noisy share
    assert {r["arm"] for r in training["semantic_runs"]} == {"deal", "baseline"}
    assert data["summary"]["deal_share_of_step"] == training["deal_share_of_step"]
