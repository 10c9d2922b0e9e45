"""The trainer end to end on generated RGB-D scenes: cam -> pseudo -> seg -> eval, the run
folder contract, resume == uninterrupted, and one-line failures. Tiny images, a few steps,
no pretrained weights, real torch / CRF / safetensors / PNG files throughout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from deal_ros.cli import main as deal
from deal_ros.engine.log import read_metrics
from deal_ros.errors import DealError
from deal_ros.nets.weights import read_state_dict
from deal_ros.train.config import load_config
from deal_ros.train.pipeline import train
from deal_ros.train.resolve import resume_config
from deal_ros.train.run import load_run

DATA = "scene:n=12,seed=0,size=48x64"
TINY = [
    f"data={DATA}",
    "input.height=48",
    "input.width=64",
    "model.pretrained=none",
    "model.output_stride=8",  # 48x64 images: 6x8 CAM cells (the scene preset has 16)
    "train.batch_size=4",
    "train.num_workers=0",
    "train.log_every=1",
    "cache=true",
    "labeling.scales=[1.0, 1.5]",
    "labeling.batch_size=12",
    "threads=1",
]


@pytest.fixture(scope="module")
def cam_run(tmp_path_factory):
    """One short CAM + DEAL run through the real CLI (shared by the tests below)."""
    out = tmp_path_factory.mktemp("runs")
    rc = deal(["train", "--config", "scene", *TINY, f"out={out}", "name=tiny",
               "train.max_steps=4", "--no-progress"])  # fmt: skip
    assert rc == 0
    return out / "tiny-001"


def test_cam_run_folder_contract(cam_run):
    cfg = yaml.safe_load((cam_run / "config.yaml").read_text())
    assert cfg["model"]["backbone"] == "mobilenet_v2"
    assert cfg["model"]["num_classes"] == 3 and cfg["model"]["output_stride"] == 8
    assert (cfg["input"]["height"], cfg["input"]["width"]) == (48, 64)
    assert len(cfg["input"]["mean"]) == 3 and len(cfg["input"]["std"]) == 3
    assert cfg["meta"]["seed"] == 0 and cfg["meta"]["deal_ros"]
    assert "git" in cfg["meta"]
    assert (cam_run / "classes.txt").read_text().split() == ["mug", "box", "ball"]
    state = torch.load(cam_run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 4 and state["stage"] == "cam"
    weights = read_state_dict(cam_run / "cam_net.safetensors")
    assert torch.equal(weights["classifier.weight"], state["model"]["classifier.weight"])
    records = [r for r in read_metrics(cam_run / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) and "deal" in r and r["images_per_s"] > 0 for r in records)
    html = (cam_run / "report.html").read_text()
    for png in ("cam_curves.png", "cam_overlays.png"):
        assert png in html
        with Image.open(cam_run / png) as img:
            assert img.size[0] > 100 and img.size[1] > 50


def test_pseudo_seg_selftrain_and_eval(cam_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(cam_run, run)
    assert deal(["pseudo", f"run={run}", "--no-progress"]) == 0
    meta = yaml.safe_load((run / "pseudo" / "pseudo.yaml").read_text())
    assert meta["classes"] == ["mug", "box", "ball"] and meta["count"] == 12
    assert meta["data"] == DATA
    pngs = sorted((run / "pseudo").glob("*.png"))
    assert len(pngs) == 12
    from deal_ros.data.registry import build_dataset

    data = build_dataset(DATA)
    for i, path in enumerate(pngs):
        with Image.open(path) as img:
            assert img.mode == "L" and img.size == (64, 48)
            label = np.asarray(img)
        present = {0, 255} | {k + 1 for k in np.flatnonzero(data[i].labels)}
        assert set(np.unique(label).tolist()) <= present  # never a class the image lacks

    rc = deal(["train", "--config", "seg", f"pseudo={run / 'pseudo'}", "input.height=48",
               "input.width=64", "model.pretrained=none", "train.batch_size=4",
               "train.num_workers=0", "train.max_steps=2", "loss=lovasz", "rounds=1",
               "cache=true", "--no-progress"])  # fmt: skip
    assert rc == 0
    assert (run / "seg_net.safetensors").is_file() and (run / "config_seg.yaml").is_file()
    assert len(list((run / "pseudo_r1").glob("*.png"))) == 12
    assert yaml.safe_load((run / "config.yaml").read_text())["stage"] == "cam"  # kept

    loaded = load_run(run)
    x = torch.rand(2, 3, 48, 64)
    with torch.no_grad():
        assert loaded.cam_net()(x)["cam_logits"].shape == (2, 3, 6, 8)
        assert loaded.seg_net()(x).shape == (2, 4, 48, 64)
    assert loaded.classes == ["mug", "box", "ball"] and loaded.input_size == (48, 64)

    assert deal(["eval", f"run={run}", "limit=6", "--no-progress"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert set(result) >= {"cam", "seg", "pseudo_dir"}
    cam = result["cam"]
    assert 0 <= cam["cam_best_miou"] <= 1 and 0 <= cam["pseudo_miou"] <= 1
    assert cam["cam_best_miou"] >= cam["cam_miou_at_threshold"] - 1e-12
    seg = result["seg"]
    for key in ("miou", "miou_multiclass_only", "pixel_accuracy", "iou_per_class"):
        assert key in seg
    assert len(seg["iou_per_class"]) == 4 and 0 <= seg["pixel_accuracy"] <= 1
    assert "seg_overlays.png" in (run / "report.html").read_text()

    # two stage-2 losses on one pseudo folder, each named: each run in a folder of its own
    # (both wrote into the CAM run's folder before, the second overwriting the first)
    seg_keys = ["--config", "seg", f"pseudo={run / 'pseudo'}", "input.height=48", "input.width=64",
                "model.pretrained=none", "train.batch_size=4", "train.num_workers=0",
                "train.max_steps=1", f"out={tmp_path / 'seg'}"]  # fmt: skip
    for loss in ("ce", "focal"):
        assert deal(["train", "--no-progress", *seg_keys, f"loss={loss}", f"name=seg-{loss}"]) == 0
    for loss in ("ce", "focal"):
        folder = tmp_path / "seg" / f"seg-{loss}-001"
        assert (folder / "seg_net.safetensors").is_file()
        assert yaml.safe_load((folder / "config.yaml").read_text())["loss"] == loss
    # run= naming a new folder: config.yaml there too, so deal eval reads it as a run
    fresh = tmp_path / "seg" / "fresh"
    assert deal(["train", "--no-progress", *seg_keys, "loss=ce", f"run={fresh}"]) == 0
    assert yaml.safe_load((fresh / "config.yaml").read_text())["stage"] == "seg"
    assert (
        deal(["eval", f"run={fresh}", f"data={DATA}", "limit=2", "what=seg", "--no-progress"]) == 0
    )


def _weights(run_dir):
    return read_state_dict(run_dir / "cam_net.safetensors")


def test_resume_gives_the_uninterrupted_result(tmp_path):
    common = [*TINY, f"out={tmp_path}", "train.max_steps=5", "isl.weight=0.2",
              "model.dropout=0.2", "train.checkpoint_every=2", "report=false"]  # fmt: skip
    full_dir, full = train(load_config("scene", [*common, "name=full"]), progress=False)
    assert full.completed and full.steps == 5

    cut_dir, cut = train(load_config("scene", [*common, "name=cut", "train.stop_after=4"]),
                         progress=False)  # fmt: skip
    assert not cut.completed and cut.steps == 4  # 3 batches per epoch: stops mid-epoch
    assert not (cut_dir / "cam_net.safetensors").exists()
    again_dir, again = train(resume_config(None, [f"resume={cut_dir}"]), progress=False)
    assert again_dir == cut_dir and again.completed and again.steps == 5

    a, b = _weights(full_dir), _weights(cut_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    loss = lambda d: [(r["step"], r["loss"]) for r in read_metrics(d / "metrics.jsonl")]  # noqa: E731
    assert loss(full_dir) == loss(cut_dir)


def _deal_cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "deal_ros.cli", *args], capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_unknown_config_key_fails_with_one_line_through_the_cli():
    result = _deal_cli("train", "--config", "scene", "deal.wieght=1")
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "unknown config key 'deal.wieght'" in line and "deal.weight" in line


def test_corrupt_and_absent_checkpoints_fail_with_one_line(cam_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(cam_run, run)
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    result = _deal_cli("train", f"resume={run}", "--no-progress")
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert str(ckpt) in line and "corrupt" in line

    ckpt.unlink()
    assert deal(["train", f"resume={run}", "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "checkpoint" in line and "not found" in line

    with pytest.raises(DealError, match=r"no run in .* has a checkpoint"):
        resume_config(None, ["resume=true", f"out={tmp_path / 'empty'}"])


def test_pseudo_label_outside_the_class_list_fails_with_one_line(cam_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(cam_run, run)
    assert deal(["pseudo", f"run={run}", "labeling.crf=false", "--no-progress"]) == 0
    bad = run / "pseudo" / "000003.png"
    label = np.asarray(Image.open(bad)).copy()
    label[0, 0] = 9
    Image.fromarray(label).save(bad)
    rc = deal(["train", "--config", "seg", f"pseudo={run / 'pseudo'}", *TINY[1:],
               "train.max_steps=1", "--no-progress"])  # fmt: skip
    assert rc == 1
    line = _one_line(capsys.readouterr().err)
    assert str(bad) in line and "class id 9 is not in the class list" in line


def test_ddp_two_gloo_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "deal_ros.cli", "train", "--config", "scene", *TINY, f"out={tmp_path}",
           "name=ddp", "train.max_steps=2", "report=false", "--no-progress"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert runs == ["ddp-001"]  # rank 0 chose the folder; rank 1 followed it
    assert (tmp_path / "ddp-001" / "cam_net.safetensors").is_file()
    state = torch.load(tmp_path / "ddp-001" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2
    assert result.stdout.count("deal train: cam done") == 1


def test_onboarding_preset_on_episodes_and_a_label_outside_the_classes(tmp_path):
    from fixtures_data import write_episode

    episodes = tmp_path / "episodes"
    episodes.mkdir()
    write_episode(episodes, "mug-1", ["mug"], n=4, size=(48, 64), seed=0)
    write_episode(episodes, "cup-1", ["cup"], n=4, size=(48, 64), seed=1)
    small = ["input.height=48", "input.width=64", "model.pretrained=none", "threads=1",
             "train.batch_size=4", "train.num_workers=0", "train.max_steps=2", "report=false",
             f"out={tmp_path / 'runs'}", "--no-progress"]  # fmt: skip
    result = _deal_cli("train", "--config", "onboarding", f"data={episodes}", "classes=[mug]",
                       *small)  # fmt: skip
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "'cup'" in line and "not in the class list" in line and "mug" in line

    assert deal(["train", "--config", "onboarding", f"data={episodes}", *small]) == 0
    run = load_run(tmp_path / "runs" / "cup-mug-001")
    assert run.classes == ["cup", "mug"] and run.has_cam


def test_bench_train_compares_deal_on_and_off(capsys):
    rc = deal(["bench", "train", "seeds=0", *TINY, "train.max_steps=2", "crf=false", "limit=4",
               "report=false"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "seed 0:" in out and "DEAL vs baseline, 1 seed(s)" in out
    row = next(line for line in out.splitlines() if line.startswith("  CAM mIoU (best thr)"))
    deal_pct, base_pct, delta = (float(v) for v in row.split()[4:7])
    assert delta == pytest.approx(deal_pct - base_pct, abs=0.02)


def test_bench_lists_and_rejects_unknown_names(capsys):
    assert deal(["bench"]) == 0
    assert "train (DEAL vs baseline)" in capsys.readouterr().out
    assert deal(["bench", "no-such-bench"]) == 1
    assert "bench 'no-such-bench': unknown" in _one_line(capsys.readouterr().err)


def test_seg_backbone_can_start_from_the_cam_net(cam_run, tmp_path):
    from deal_ros.train.config import ModelConfig
    from deal_ros.train.stages.seg import build_seg_net, start_from_cam

    net = build_seg_net(ModelConfig(pretrained=None, output_stride=16), 4)
    start_from_cam(net, cam_run, "mobilenet_v2")
    cam = read_state_dict(cam_run / "cam_net.safetensors")
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, cam[f"backbone.{key}"]), key  # stride 8 -> 16: same weights
    with pytest.raises(DealError, match=r"model.init_from=cam: the pseudo labels name no CAM run"):
        start_from_cam(net, tmp_path, "mobilenet_v2")
    with pytest.raises(DealError, match="has backbone mobilenet_v2, not efficientnet_lite0"):
        start_from_cam(net, cam_run, "efficientnet_lite0")
