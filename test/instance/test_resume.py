"""``deal train resume=...`` without ``--config box`` finds and resumes a box-supervised run."""

from __future__ import annotations

import json
import os

import pytest
import torch

from deal_ros.cli import main
from deal_ros.engine.checkpoints import NAMES, checkpoint_path, newest_checkpoint
from deal_ros.instance.config import is_box_config

TINY = [
    "data=scene:n=4,seed=0,size=64x96",
    "input.height=64",
    "input.width=96",
    "model.pretrained=none",
    "model.fpn_channels=16",
    "model.mask_branch_channels=16",
    "model.head_convs=1",
    "model.mask_branch_convs=1",
    "model.sizes_of_interest=[24,48]",
    "train.batch_size=2",
    "train.num_workers=0",
    "train.log_every=1",
    "distill.enabled=false",
    "overlays=0",
    "device=cpu",
    "cpu_threads=1",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fake_run(out, name: str, stage: str, mtime: float):
    """A run folder holding only a checkpoint file of ``stage`` written at ``mtime``."""
    run = out / name
    path = checkpoint_path(run, stage)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    (run / "config.yaml").write_text(f"stage: {stage}\n")
    os.utime(path, (mtime, mtime))
    return run


def test_resume_true_routes_by_the_newest_checkpoint(tmp_path):
    out = tmp_path / "runs"
    assert set(NAMES) == {"cam", "seg", "box"}
    assert not is_box_config(None, ["resume=true", f"out={out}"])  # no runs at all
    cam = _fake_run(out, "mug-001", "cam", 1_000)
    box = _fake_run(out, "box-001", "box", 2_000)
    assert newest_checkpoint([cam, box]) == (box, "box")
    assert is_box_config(None, ["resume=true", f"out={out}"])
    assert is_box_config(None, [f"resume={box}"]) and not is_box_config(None, [f"resume={cam}"])
    # a stage, a config file or a name restricts the choice: then it is not this box run
    assert not is_box_config(None, ["resume=true", f"out={out}", "stage=cam"])
    assert not is_box_config("onboarding", ["resume=true", f"out={out}"])
    assert not is_box_config(None, ["resume=true", f"out={out}", "name=mug"])
    assert not is_box_config(None, ["resume=false", f"out={out}"])
    os.utime(checkpoint_path(cam, "cam"), (3_000, 3_000))  # the CAM run is newer now
    assert not is_box_config(None, ["resume=true", f"out={out}"])


def test_deal_train_resumes_a_box_run_without_config_box(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--config", "box", f"out={out}", "train.max_steps=2", *TINY]) == 0
    run = out / "box-001"
    assert "deal train: box done at step 2/2" in capsys.readouterr().out
    # resume=true, no --config: the newest run is a box run -> box training continues there
    assert main(["train", "resume=true", f"out={out}", "train.max_steps=3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "deal train: box done at step 3/3" in printed and str(run) in printed
    steps = [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    # resume=<the run folder>, no --config
    assert main(["train", f"resume={run}", "train.max_steps=4", "--no-progress"]) == 0
    assert "deal train: box done at step 4/4" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["box-001"]  # no new run folder


def test_box_resume_gives_the_uninterrupted_result(tmp_path):
    """Stopped mid-epoch after the EMA teacher took over, then resumed: weights, teacher and
    logged losses equal the uninterrupted run's, bit for bit (the teacher, the sampling
    generator and the RNG ride in the checkpoint)."""
    from deal_ros.engine.checkpoints import load_checkpoint
    from deal_ros.engine.log import read_metrics
    from deal_ros.nets.weights import read_state_dict

    out = tmp_path / "runs"
    common = [*TINY, f"out={out}", "train.max_steps=5", "distill.enabled=true",
              "distill.start=2", "distill.ema=0.5", "distill.tau=0", "distill.candidates=8",
              "loss.max_instances=3", "loss.pairwise_warmup=1"]  # fmt: skip
    quiet = "--no-progress"
    assert main(["train", "--config", "box", *common, "name=full", quiet]) == 0
    assert main(["train", "--config", "box", *common, "name=cut", "train.stop_after=3", quiet]) == 0
    full, cut = out / "full-001", out / "cut-001"
    stopped = load_checkpoint(checkpoint_path(cut, "box"), "box")
    assert stopped["step"] == 3 and (stopped["epoch"], stopped["batch"]) == (1, 1)
    assert "teacher" in stopped and "sampling_rng" in stopped["objective"]
    assert main(["train", f"resume={cut}", "--no-progress"]) == 0

    a, b = (
        read_state_dict(full / "instance_net.safetensors"),
        read_state_dict(cut / "instance_net.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ta = load_checkpoint(checkpoint_path(full, "box"))["teacher"]
    tb = load_checkpoint(checkpoint_path(cut, "box"))["teacher"]
    assert all(torch.equal(ta[k], tb[k]) for k in ta)

    def losses(run):
        return [(r["step"], r["loss"], r["distill"]) for r in read_metrics(run / "metrics.jsonl")]

    assert losses(full) == losses(cut) and [s for s, _, _ in losses(cut)] == [1, 2, 3, 4, 5]
