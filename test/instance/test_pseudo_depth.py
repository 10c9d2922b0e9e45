"""``deal train --config box pseudo_depth=MODEL.onnx`` end to end on RGB-only COCO data: a tiny
depth net built here in torch and exported by ``torch.onnx.export`` (dynamic H x W, NCHW float
input normalised with the ImageNet statistics, one (N,1,H,W) output of relative inverse depth,
as MiDaS / DPT / Depth Anything exports give) fills the depth the box losses train on, and
``deal eval`` scores the run (docs/pseudo_depth.md states the contract)."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("pycocotools")

from deal_ros.cli import main as deal
from deal_ros.data.pseudo_depth import PseudoDepthModel
from deal_ros.data.registry import build_dataset
from deal_ros.scene.camouflage import CamouflageGenerator
from deal_ros.scene.coco_export import write_coco_split

from instance_fixtures import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyDisparity(nn.Module):
    """RGB (normalised) -> positive relative inverse depth (N,1,H,W): a smooth map (a 15 x 15
    mean of the brightness, within 2 % of 1), brighter = nearer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1, keepdim=True)
        smooth = nn.functional.avg_pool2d(grey, 15, 1, 7, count_include_pad=False)
        return 1.0 + 0.02 * torch.tanh(smooth)


def _export(path) -> None:
    kwargs = (
        {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    )
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TinyDisparity().eval(),
            (torch.rand(1, 3, 64, 96),),
            str(path),
            input_names=["image"],
            output_names=["disparity"],
            dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "disparity": {0: "n", 2: "h", 3: "w"}},
            opset_version=17,
            **kwargs,
        )


@pytest.fixture(scope="module")
def rgb_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("pseudo")
    gen = CamouflageGenerator(size=(64, 96), seed=1, zoom=2.0, min_objects=1, max_objects=2)
    write_coco_split((gen.sample(i) for i in range(4)), root, "train", gen.classes)
    (root / "depth").rename(root / "measured_depth")  # RGB only from here on
    model = root / "disparity.onnx"
    _export(model)
    return root, model


def test_the_exported_net_meets_the_contract(rgb_only):
    root, model = rgb_only
    m = PseudoDepthModel(model, output="disparity")
    rgb = np.full((50, 70, 3), 200, np.uint8)
    rgb[10:30, 20:40] = 40  # a dark patch: lower disparity = farther
    depth, valid = m(rgb)
    assert depth.shape == (50, 70) and valid.all()
    assert depth[20, 30] > depth[45, 5] > 0
    ds = build_dataset(
        f"coco:{root / 'train.json'}",
        pseudo_depth=str(model),
        pseudo_depth_options={"output": "disparity"},
    )
    s = ds[0]
    assert s.meta["depth_kind"] == "pseudo" and s.depth.shape == s.rgb.shape[:2]


def test_deal_train_box_with_pseudo_depth_end_to_end(rgb_only, tmp_path):
    root, model = rgb_only
    args = [
        "train",
        "--config",
        "box",
        f"data=coco:{root / 'train.json'}",
        f"pseudo_depth={model}",
        "data_options.pseudo_depth_options={output: disparity}",
        *TINY,
        "train.max_steps=4",
        "train.batch_size=2",
        "train.log_every=1",
        "loss.pairwise_warmup=1",
        "loss.depth_consistency_start=0",
        "model.depth_guided=true",  # the paper's DG-MaskHead and distillation (off in the
        "distill.enabled=true",  # preset) run on the pseudo depth too
        "distill.start=3",
        "distill.candidates=8",
        "overlays=0",
        f"out={tmp_path / 'runs'}",
        "name=pd",
        "--no-progress",
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert deal(args) == 0, out.getvalue()
    run = tmp_path / "runs" / "pd-001"
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # the depth terms ran on the model's depth (they are 0 without depth)
    assert all(r["cons"] > 0 and r["surf"] > 0 and r["depth"] > 0 for r in rows)
    assert rows[-1]["distill"] >= 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = deal(["eval", f"run={run}", f"data=coco:{root / 'train.json'}", "overlays=0"])
    assert code == 0, out.getvalue()
    assert "mask AP" in out.getvalue()
    saved = json.loads((run / "eval.json").read_text())
    assert saved["instances"] >= 4 and saved["segm"]["AP"] is not None
