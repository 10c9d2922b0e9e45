"""Box-supervised training end to end, on real generated scenes and a real COCO-format folder:
losses go down and masks come out, distillation runs, the run folder, resume, ``deal eval``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deal_ros.data.torch_dataset import collate_samples
from deal_ros.instance.cli import eval_command, load_box_run
from deal_ros.instance.config import is_box_config, is_box_run, load_box_config
from deal_ros.instance.data import box_items, open_box_dataset
from deal_ros.instance.inference import box_iou_matrix
from deal_ros.instance.train import BoxTrainer, build_model, main_from_config, resolve_config

from instance_fixtures import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = [
    *TINY,
    "augment.scale=[1.0,1.0]",
    "augment.hflip=false",
    "augment.color_jitter=0",
]
TERMS = ("cls", "box", "ctr", "proj", "pair", "cons", "surf", "depth")


def _trainer(extra):
    cfg = load_box_config(None, ["data=scene:n=4,seed=0,size=64x96", *SMALL, *extra])
    ds = open_box_dataset(cfg, cfg.data)
    items = box_items(ds, (64, 96), "resize", None)
    torch.manual_seed(0)
    model = build_model(cfg, len(ds.classes))
    return cfg, BoxTrainer(cfg, model, items, None, torch.device("cpu"), progress=False), items


def test_short_training_reduces_all_losses_and_produces_masks():
    cfg, tr, items = _trainer(
        [
            "train.max_steps=40",
            "train.batch_size=4",
            "optim.name=adamw",
            "optim.lr=0.002",
            "optim.warmup_steps=0",
            "optim.schedule=constant",
            "loss.pairwise_warmup=1",
            "loss.surround_weight=1",  # L_surf: without it, on this machine 2-3 of 9 masks
            "loss.surround_background=1",  # reach 0.5 in 40 steps (8 of 9 with it)
            "distill.enabled=false",
        ]
    )
    batch = collate_samples([items[i] for i in range(4)])
    with torch.no_grad():
        before = {k: float(v) for k, v in tr.step_terms(batch, 100).items()}
    result = tr.fit()
    assert result.steps == 40 and result.completed and result.samples_seen == 4
    with torch.no_grad():
        after = {k: float(v) for k, v in tr.step_terms(batch, 100).items()}
    for k in TERMS:
        assert after[k] < before[k], f"{k}: {before[k]:.4f} -> {after[k]:.4f}"
    tr.model.eval()
    res = tr.model.predict(batch["image"], cfg.infer)
    hits = 0
    for inst, boxes in zip(res, batch["boxes"]):
        assert inst.masks.shape[1:] == (64, 96)
        iou = box_iou_matrix(boxes[:, 1:], inst.boxes)
        for g, b in enumerate(boxes):  # a detection of the box's class on it, with a mask
            ok = (inst.classes == int(b[0])) & (iou[g] > 0.5)
            ok &= (inst.masks > 0.5).flatten(1).any(1)
            hits += bool(ok.any())
    total = sum(len(b) for b in batch["boxes"])
    assert hits >= total // 2, f"only {hits} of {total} boxes were detected with a mask"


def test_self_distillation_runs_with_an_ema_teacher():
    _, tr, _ = _trainer(
        [
            "train.max_steps=3",
            "train.batch_size=2",
            "distill.start=1",
            "distill.ema=0.5",
            "distill.tau=0.0",
            "distill.candidates=10",
            "loss.pairwise_warmup=1",
        ]
    )
    result = tr.fit()
    assert tr.teacher is not None and tr.teacher.updates == 2  # made before step 1, updated after
    assert result.last["distill"] > 0 and np.isfinite(result.last["distill"])
    s, t = tr.model.state_dict(), tr.teacher.model.state_dict()
    assert any(not torch.equal(s[k], t[k]) for k in s if s[k].dtype.is_floating_point)


def _write_coco(tmp_path):
    img_dir, depth_dir = tmp_path / "images", tmp_path / "depth"
    img_dir.mkdir()
    depth_dir.mkdir()
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(1, 5):
        rgb = np.full((64, 96, 3), 90, np.uint8)
        depth = np.full((64, 96), 2.0, np.float32)
        x, y = 10 + 12 * i, 8 + 4 * i
        rgb[y : y + 20, x : x + 24] = rng.integers(150, 255, 3)
        depth[y : y + 20, x : x + 24] = 1.0
        Image.fromarray(rgb).save(img_dir / f"{i}.png")
        np.save(depth_dir / f"{i}.npy", depth)
        images.append({"id": i, "file_name": f"{i}.png", "height": 64, "width": 96})
        poly = [x, y, x + 24, y, x + 24, y + 20, x, y + 20]
        anns.append(
            {
                "id": i,
                "image_id": i,
                "category_id": 1,
                "bbox": [x, y, 24, 20],
                "area": 480,
                "iscrowd": 0,
                "segmentation": [poly],
            }
        )
    anns.append(
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 10], "area": 0, "iscrowd": 0}
    )  # an empty box
    anns.append(
        {
            "id": 11,
            "image_id": 2,
            "category_id": 1,
            "bbox": [300, 5, 10, 10],
            "area": 100,
            "iscrowd": 0,
        }
    )  # a box outside the image
    data = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "mug"}]}
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps(data))
    return path, img_dir, depth_dir


def test_coco_run_folder_resume_and_eval(tmp_path, capsys):
    path, img_dir, depth_dir = _write_coco(tmp_path)
    spec = f"coco:{path}"
    over = [
        f"data={spec}",
        f"depth={depth_dir}",
        f"data_options.images={img_dir}",
        f"val={spec}",
        f"out={tmp_path / 'runs'}",
        "name=box",
        "train.max_steps=3",
        "train.batch_size=2",
        "train.log_every=1",
        "overlays=2",
        "distill.enabled=true",  # off in the preset
        "distill.tau=0",  # every pseudo mask counts: the distillation loss is > 0
        "distill.start=2",
        "distill.candidates=8",
        *SMALL,
    ]
    assert is_box_config("box", over)
    cfg = resolve_config("box", over)
    run_dir, result = main_from_config(cfg, progress=False)
    assert run_dir.name == "box-001" and result.steps == 3 and is_box_run(run_dir)
    assert result.box_skipped == {"invalid": 0, "empty": 1, "outside": 1, "unknown_class": 0}
    for name in (
        "config.yaml",
        "classes.txt",
        "instance_net.safetensors",
        "eval.json",
        "checkpoints/box-last.pt",
        "metrics.jsonl",
        "overlays/0000.png",
    ):
        assert (run_dir / name).is_file(), name
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in lines] == [1, 2, 3]
    assert json.loads(lines[-1])["distill"] > 0  # the teacher took over at step 2
    assert set(result.eval["segm"]) >= {"AP", "AP50", "AP75"} and result.eval["instances"] == 4
    # resume: the saved config + new overrides, training continues at step 3
    cfg2 = resolve_config(None, [f"resume={run_dir}", "train.max_steps=4"])
    assert cfg2.data == spec and cfg2.run == str(run_dir)
    run2, result2 = main_from_config(cfg2, progress=False)
    assert run2 == run_dir and result2.steps == 4
    assert [json.loads(r)["step"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()][
        -1
    ] == 4
    # deal eval run=... : the same AP as the end-of-training evaluation
    capsys.readouterr()
    assert eval_command([f"run={run_dir}", "overlays=1", f"out={tmp_path / 'e.json'}"], False) == 0
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "e.json").read_text())
    final = json.loads((run_dir / "eval.json").read_text())
    assert saved["segm"] == pytest.approx(final["segm"]) and "mask AP" in printed
    _, classes, model = load_box_run(run_dir)
    assert classes == ["mug"] and not model.training
