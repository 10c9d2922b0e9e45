"""``deal demo``: the quick form end to end as a real subprocess (real camera and recorder
nodes over rclpy, real training, real ONNX export and segmenter node), Ctrl-C and failures."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deal_ros.demo.pipeline import DemoRun
from deal_ros.demo.record import camera_command
from deal_ros.demo.report import contact_sheet
from deal_ros.demo.settings import DemoSettings
from deal_ros.demo.takes import STAMPS_FILE, GroundTruth, pingpong
from deal_ros.errors import DealError

QUICK_SIZE = DemoSettings.quick_preset().camera_size  # (H, W)
CLASSES = ("mug", "box", "ball")
PHASE_NAMES = ("record", "train", "pseudo", "eval", "export", "segment", "report")


def _demo_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "deal_ros.cli", "demo", "--quick", "--out", str(out), *extra]


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (the demo's children do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    proc = subprocess.run(_demo_cmd(out), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, proc


# ---------------------------------------------------------------------- the quick demo
@pytest.mark.slow
def test_quick_demo_reports_every_phase_and_the_paths(quick_demo):
    out, proc = quick_demo
    lines = proc.stdout.splitlines()
    for i, name in enumerate(PHASE_NAMES, start=1):
        assert any(line.startswith(f"[{i}/7] {name}") and " done in " in line for line in lines), (
            name,
            proc.stdout,
        )
    assert any(line.startswith("deal demo: done in") for line in lines)
    for path in ("report.md", "metrics.json", "model", "overlays", "logs"):
        assert str(out / path) in proc.stdout
    assert not (out / "work").exists(), "work/ is removed without --keep"
    assert _processes_mentioning(str(out)) == [], "child processes left running"


@pytest.mark.slow
def test_quick_demo_bundle_loads_and_segments(quick_demo):
    from deal_ros.infer.runtime import Runtime
    from deal_ros.scene.generator import SceneGenerator

    out, _ = quick_demo
    runtime = Runtime(out / "model", providers="cpu")
    assert sorted(runtime.bundle.classes) == sorted(CLASSES)
    rgb = SceneGenerator(size=QUICK_SIZE, seed=5).sample(0).rgb
    result = runtime.segment(rgb)
    assert result.mask.shape == QUICK_SIZE
    assert result.mask.max() <= len(CLASSES)


@pytest.mark.slow
def test_quick_demo_outputs_are_images_of_the_camera_size(quick_demo):
    out, _ = quick_demo
    h, w = QUICK_SIZE
    overlays = sorted((out / "overlays").glob("*.png"))
    cams = sorted((out / "cams").glob("*.png"))
    masks = sorted((out / "masks").glob("*.png"))
    assert len(overlays) >= len(CLASSES) and len(cams) == len(overlays) == len(masks)
    for path in overlays + cams:
        with Image.open(path) as img:
            assert img.mode == "RGB" and img.size == (w, h), path
    for path in masks:
        with Image.open(path) as img:
            assert img.mode == "P" and img.size == (w, h), path
            assert np.asarray(img).max() <= len(CLASSES)
    # names: <episode id>_<input stamp>.png, the same frames for the three kinds
    assert [p.name for p in overlays] == [p.name for p in cams] == [p.name for p in masks]
    for sheet in ("segmenter_outputs.png", "heldout_scenes.png"):
        with Image.open(out / sheet) as img:
            assert img.size[0] > 3 * w and img.size[1] > h


@pytest.mark.slow
def test_quick_demo_metrics_are_complete_and_finite(quick_demo):
    out, _ = quick_demo
    m = json.loads((out / "metrics.json").read_text())
    rec = m["recording"]
    assert [e["label"] for e in rec["episodes"]] == list(CLASSES)
    # each take is played once and recorded whole: exactly its frames, unless the recorder
    # filed a drop (a loaded machine)
    n = DemoSettings.quick_preset().frames
    for e in rec["episodes"]:
        assert e["frames"] == n or (e["frames"] < n and sum(e["dropped"].values()) > 0), e
    assert rec["frames_recorded"] == sum(e["frames"] for e in rec["episodes"])
    assert rec["frames_dropped"] >= 0
    scores = {
        "pseudo episodes": m["pseudo_labels"]["episodes"]["miou"],
        "pseudo heldout": m["pseudo_labels"]["heldout"]["miou"],
        "cam heldout": m["heldout"]["cam_best_miou"],
        "mask heldout": m["heldout"]["mask_miou"],
        "baseline": m["heldout"]["all_background_miou"],
        "mask replay": m["segmenter"]["mask_miou"],
    }
    for name, value in scores.items():
        assert isinstance(value, float) and math.isfinite(value) and 0 <= value <= 1, name
    # every recorded frame was matched to the frame the camera published, and showed its label
    assert m["pseudo_labels"]["episodes"]["frames_matched"] == rec["frames_recorded"]
    # (the episode starts before its take is shown and stops after the take ended)
    assert m["pseudo_labels"]["episodes"]["label_purity"] == 1.0
    seg = m["segmenter"]
    assert seg["stamps_matched"] is True and seg["stamp_match_fraction"] == 1.0
    assert seg["frames_sent"] == rec["frames_recorded"]
    assert 0 < seg["frames_with_all_outputs"] <= seg["frames_sent"]
    assert 0 < seg["latency_ms"]["p50"] <= seg["latency_ms"]["p95"]
    assert set(PHASE_NAMES) <= set(m["timing_s"]) and m["timing_s"]["total"] > 0
    assert m["export"]["model_bytes"] > 0 and m["train"]["steps"] >= 1
    assert m["problems"] == []


@pytest.mark.slow
def test_quick_demo_report_reads_and_links_what_exists(quick_demo):
    out, _ = quick_demo
    report = (out / "report.md").read_text()
    assert "mask mIoU of the ONNX bundle" in report and "| mug |" in report
    for target in ("segmenter_outputs.png", "heldout_scenes.png", "training/report.html"):
        assert target in report and (out / target).is_file(), target
    for name in ("camera", "recorder", "train", "pseudo", "eval", "export", "segmenter"):
        assert (out / "logs" / f"{name}.log").stat().st_size > 0, name


# ---------------------------------------------------------------------- interruption, failure
@pytest.mark.slow
def test_ctrl_c_during_recording_stops_every_child(tmp_path):
    out = tmp_path / "demo-out"
    proc = subprocess.Popen(
        _demo_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = _processes_mentioning(str(out))
            if any("deal_ros.nodes.recorder" in c for c in running) and any(
                "deal_ros.demo.camera" in c for c in running
            ):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the camera and recorder processes never started")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stdout and "stopping the child processes" in stdout
    assert stderr.strip().splitlines()[-1] == "deal demo: interrupted"
    assert _processes_mentioning(str(out)) == []


def test_failing_phase_is_one_line_naming_phase_and_log(tmp_path, monkeypatch):
    """A real ``deal train`` child fails (no episodes were recorded): one DealError line names
    the phase, the child's last line and its log; the camera started before is stopped."""
    monkeypatch.setattr(os, "environ", os.environ.copy())  # the demo sets its ROS variables
    settings = DemoSettings.preset(True, out=tmp_path / "out")
    run = DemoRun(settings, echo=False)

    def record_nothing(self) -> str:
        self.children.start("camera", camera_command(self.s, self.gt_dir))
        return "nothing recorded"

    monkeypatch.setattr(DemoRun, "_record", record_nothing)
    with pytest.raises(DealError) as info:
        run.run()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("phase 'train' failed: train failed (exit code 1): deal train:")
    assert "episodes" in message and message.endswith(str(run.logs / "train.log"))
    assert _processes_mentioning(str(tmp_path / "out")) == []


def test_refuses_to_clear_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    proc = subprocess.run(_demo_cmd(out), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"deal demo: --out {out}: folder exists, is not empty and holds no previous demo "
        "(.deal-demo); choose another folder"
    ]
    assert (out / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--classes", "mug,spoon"], "--classes: spoon not objects of the scene generator"),
        (["--classes", "mug"], "--classes: give at least 2 different classes"),
    ],
)
def test_bad_options_are_one_line(tmp_path, args, expected):
    proc = subprocess.run(
        _demo_cmd(tmp_path / "o", *args), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"deal demo: {expected}"), proc.stderr
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------- small parts
def test_pingpong_plays_a_take_back_and_forth():
    assert [pingpong(i, 4) for i in range(9)] == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert [pingpong(i, 1) for i in range(3)] == [0, 0, 0]


def test_ground_truth_maps_stamps_to_masks_in_another_class_order(tmp_path):
    masks = np.zeros((2, 4, 5), np.uint8)
    masks[1, 1:3, 1:4] = 2  # camera class 2 = "box"
    masks[1, 0, 0] = 255
    np.savez_compressed(tmp_path / "box.npz", mask=masks)
    lines = [
        {"stamp_ns": 10, "class": "box", "frame": 0},
        {"stamp_ns": 20, "class": "box", "frame": 1},
    ]
    (tmp_path / STAMPS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    gt = GroundTruth(tmp_path, ["mug", "box"])
    mask = gt.mask(20, ["ball", "box", "mug"])
    assert mask[1, 1] == 2 and mask[0, 0] == 255 and mask[0, 1] == 0
    assert gt.mask(20, ["mug"])[1, 1] == 255  # a class the target list lacks: ignore
    assert gt.mask(30, ["box"]) is None and gt.class_of(10) == "box"


def test_contact_sheet_enlarges_small_cells():
    cell = np.zeros((24, 32, 3), np.uint8)
    sheet = contact_sheet([[cell, cell], [cell, cell]], ["a", "b"], min_width=64)
    assert sheet.size == (2 * 64 + 3 * 4, 20 + 2 * (48 + 4))
    legend = [("mug", (230, 25, 75))]
    with_legend = contact_sheet([[cell]], ["a"], legend=legend, min_width=64)
    assert with_legend.size == (64 + 2 * 4, 20 + 48 + 4 + 22)
    assert (230, 25, 75) in {with_legend.getpixel((x, 83)) for x in range(4, 20)}
