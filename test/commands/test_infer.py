"""``deal infer``: a bundle over an image folder / one image / a dataset spec, written as PNGs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from deal_ros.cli import main as deal
from deal_ros.infer import Runtime

from deploy_fixtures import cam_bundle, scene_images


def _folder(path, n=3, size=(90, 120)):
    path.mkdir()
    frames = scene_images(n, size, seed=21)
    for i, rgb in enumerate(frames):
        Image.fromarray(rgb).save(path / f"frame{i}.png")
    return frames


def test_infer_on_an_image_folder_writes_what_the_runtime_computes(tmp_path, capsys):
    frames = _folder(tmp_path / "images")
    out = tmp_path / "overlays"
    code = deal(["infer", f"model={cam_bundle().path}", f"input={tmp_path / 'images'}",
                 f"out={out}", "threads=1"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "3 frames ->" in printed and "CPUExecutionProvider" in printed
    runtime = Runtime(cam_bundle().path, threads=1)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["name"] for r in records] == ["frame0", "frame1", "frame2"]
    for i, rgb in enumerate(frames):
        ref = runtime.segment(rgb)
        mask = np.asarray(Image.open(out / f"frame{i}_mask.png"))
        np.testing.assert_array_equal(mask, ref.mask)
        overlay = np.asarray(Image.open(out / f"frame{i}_overlay.png"))
        np.testing.assert_array_equal(overlay, ref.overlay)
        assert Image.open(out / f"frame{i}_cam.png").size == (120, 90)
        assert set(records[i]["scores"]) == {"mug", "box"}
        assert records[i]["foreground"] == round(float(np.count_nonzero(ref.mask)) / mask.size, 5)


def test_infer_on_one_image_and_a_scene_spec(tmp_path, capsys):
    rgb = scene_images(1, (50, 70), seed=22)[0]
    Image.fromarray(rgb).save(tmp_path / "one.jpg")
    assert deal(["infer", f"model={cam_bundle().path}", f"input={tmp_path / 'one.jpg'}",
                 f"out={tmp_path / 'a'}", "save=mask"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["one_mask.png", "results.jsonl"]
    assert deal(["infer", f"model={cam_bundle().path}", "input=scene:n=4,size=48x64",
                 f"out={tmp_path / 'b'}", "every=2", "save=overlay"]) == 0  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == ["000000_overlay.png", "000002_overlay.png", "results.jsonl"]
    capsys.readouterr()


def test_infer_writes_class_coloured_clouds_for_rgbd_sources(tmp_path, capsys):
    out = tmp_path / "c"
    assert deal(["infer", f"model={cam_bundle().path}", "input=scene:n=1,size=48x64",
                 f"out={out}", "save=mask,cloud", "score_threshold=0"]) == 0  # fmt: skip
    ply = (out / "000000_cloud.ply").read_bytes()
    assert ply.startswith(b"ply") and b"element vertex" in ply
    (record,) = [json.loads(r) for r in (out / "results.jsonl").read_text().splitlines()]
    assert record["objects"], record  # score threshold 0: classes win pixels on the scene
    for obj in record["objects"]:
        assert obj["class"] in record["present"] and "instance" not in obj
        assert obj["points"] > 0 and len(obj["centroid"]) == len(obj["box_size"]) == 3
        assert 0.2 < obj["centroid"][2] < 10.0  # metres in front of the camera
    rgb = scene_images(1, (40, 50), seed=23)[0]
    Image.fromarray(rgb).save(tmp_path / "flat.png")
    assert deal(["infer", f"model={cam_bundle().path}", f"input={tmp_path / 'flat.png'}",
                 f"out={tmp_path / 'd'}", "save=cloud"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "frame flat: no cloud: frame has no depth" in err and "\n" not in err


def test_infer_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cases = [
        ([f"model={tmp_path / 'nope'}", f"input={tmp_path}", "out=x"], "no such folder"),
        ([f"model={cam_bundle().path}", f"input={tmp_path / 'empty'}", "out=x"],
         "no episode.yaml, bag or images"),
        ([f"model={cam_bundle().path}", f"input={tmp_path}", "out=x", "save=video"],
         "setting save=video"),
    ]  # fmt: skip
    for args, match in cases:
        assert deal(["infer", *args]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("deal infer: ") and match in err and "\n" not in err


def test_infer_does_not_import_torch(tmp_path):
    _folder(tmp_path / "images", n=1)
    code = (
        "import sys\n"
        "from deal_ros.cli import main\n"
        f"rc = main(['infer', 'model={cam_bundle().path}', 'input={tmp_path / 'images'}', "
        f"'out={tmp_path / 'out'}', 'threads=1'])\n"
        "sys.exit(rc or (3 if 'torch' in sys.modules else 0))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "frame0_overlay.png").is_file()
