"""``deal eval model=BUNDLE``: a bundle scored through ONNX Runtime, semantic and instance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deal_ros.cli import main as deal
from deal_ros.data.registry import build_dataset
from deal_ros.infer import Runtime
from deal_ros.train.metrics import confusion_matrix, miou

from deploy_fixtures import cam_bundle
from instance_fixtures import box_bundle

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_semantic_bundle_miou_is_its_masks_against_the_data(tmp_path, capsys):
    path = cam_bundle().path
    spec = "scene:n=4,seed=3,size=48x64"
    out = tmp_path / "e.json"
    assert deal(["eval", f"model={path}", f"data={spec}", f"out={out}", "threads=1",
                 "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "Bundle masks (4 images" in printed and "mIoU" in printed
    got = json.loads(out.read_text())
    assert got["model"] == str(path) and got["provider"] == "CPUExecutionProvider"
    # the reference: the runtime's masks against the scenes' masks, one confusion matrix
    rt = Runtime(path, threads=1)
    data = build_dataset(spec, classes=rt.bundle.classes)
    k = rt.bundle.num_classes + 1
    conf = sum(
        confusion_matrix(rt.segment(data[i].rgb, cam=False, overlay=False).mask, data[i].mask, k)
        for i in range(len(data))
    )
    assert got["bundle"]["miou"] == pytest.approx(miou(conf), abs=1e-9)
    assert got["bundle"]["n_images"] == 4


def test_instance_bundle_ap_matches_the_run_it_came_from(tmp_path, capsys):
    """The fixture's bundle holds every candidate (topk=1000), so ONNX Runtime's instances are
    CondInst.predict's: the bundle's COCO AP equals ``deal eval run=``'s on the same data."""
    bb = box_bundle()
    spec = "scene:n=3,seed=4,size=64x96"
    assert deal(["eval", f"model={bb.path}", f"data={spec}", f"out={tmp_path / 'b.json'}",
                 "threads=1", "--no-progress"]) == 0  # fmt: skip
    assert "mask AP" in capsys.readouterr().out
    assert deal(["eval", f"run={bb.run}", f"data={spec}", f"out={tmp_path / 'r.json'}",
                 "overlays=0", "--no-progress"]) == 0  # fmt: skip
    bundle = json.loads((tmp_path / "b.json").read_text())
    run = json.loads((tmp_path / "r.json").read_text())
    assert bundle["instances"] == run["instances"] > 0
    assert bundle["detections"] == run["detections"] > 0
    for kind in ("segm", "bbox"):
        for key in ("AP", "AP50", "AP75"):
            assert bundle[kind][key] == pytest.approx(run[kind][key], abs=0.01), (kind, key)
    assert np.isfinite(bundle["segm"]["AP"])


def test_bundle_eval_errors_are_one_line(tmp_path, capsys):
    path = cam_bundle().path
    cases = [
        ([f"model={path}"], "give data=SPEC"),
        ([f"model={path}", "data=scene:n=1", "colour=red"], "unknown keys colour"),
        ([f"model={path}", "run=runs/x", "data=scene:n=1"], "not both"),
        ([f"model={tmp_path / 'none'}", "data=scene:n=1"], str(tmp_path / "none")),
    ]
    for argv, text in cases:
        assert deal(["eval", *argv, "--no-progress"]) == 1
        err = capsys.readouterr().err.strip()
        assert text in err and "\n" not in err, err


def test_semantic_bundle_eval_never_imports_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from deal_ros.cli import main\n"
        f"rc = main(['eval', 'model={cam_bundle().path}', 'data=scene:n=2,size=48x64',\n"
        "            'threads=1', '--no-progress'])\n"
        "assert rc == 0, rc\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Bundle masks (2 images" in done.stdout
