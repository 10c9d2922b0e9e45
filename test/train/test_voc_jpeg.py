"""A real JPEG dataset end to end: train -> pseudo labels -> eval on an on-disk VOC folder of
JPEG files, through pydensecrf2 (the CRF that raised 'buffer source array is read-only' on the
read-only arrays np.asarray makes of PIL images), with the acceptance check's keys."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from deal_ros.cli import main as deal
from deal_ros.refine.crf_pydensecrf import pydensecrf_available
from deal_ros.scene.generator import SceneGenerator
from deal_ros.scene.voc_writer import write_scene_voc

pytestmark = pytest.mark.skipif(not pydensecrf_available(), reason="pydensecrf2 not installed")


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    gen = SceneGenerator.from_mode("multi", size=(48, 64), seed=3)
    return write_scene_voc(gen, tmp_path_factory.mktemp("voc") / "hard", n_train=8, n_val=4)


def test_train_pseudo_eval_on_jpeg_voc_through_pydensecrf(voc, tmp_path):
    assert sorted(p.suffix for p in (voc / "JPEGImages").iterdir()) == [".jpg"] * 12
    with Image.open(next((voc / "JPEGImages").iterdir())) as img:
        assert np.asarray(img).flags.writeable is False  # what the adapter used to hand on
    keys = [
        f"data=voc:{voc}",
        "data_options.split=train",
        f"data_options.depth={voc}/depth",
        "data_options.vocabulary=[mug,box,ball,can]",
        "data_options.labels_from=masks",
    ]
    tiny = ["input.height=48", "input.width=64", "model.pretrained=none", "train.max_steps=2",
            "train.batch_size=4", "train.num_workers=0", "labeling.scales=[1.0]",
            "labeling.crf_backend=pydensecrf", "labeling.crf_iterations=2", "threads=1",
            "make_pseudo=true", f"out={tmp_path}", "name=jpeg"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not writable.*")  # torch.from_numpy's
        assert deal(["train", "--config", "scene", *keys, *tiny, "--no-progress"]) == 0
    run = tmp_path / "jpeg-001"
    assert (run / "cam_overlays.png").is_file()  # the report ran the CRF on JPEG images
    assert len(list((run / "pseudo").glob("*.png"))) == 8
    rc = deal(["eval", f"run={run}", f"data=voc:{voc}", "data_options.split=val", "what=cam",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    cam = json.loads((run / "eval.json").read_text())["cam"]
    assert cam["images"] == 4 and 0 <= cam["pseudo_miou"] <= 1 and cam["pseudo_crf"] is True
    assert deal(["eval", f"run={run}", "what=pseudo", "--no-progress"]) == 0  # the train split
    pseudo = json.loads((run / "eval.json").read_text())["pseudo_dir"]
    assert 0 <= pseudo["miou"] <= 1 and pseudo["coverage"] > 0.99
