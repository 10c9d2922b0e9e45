"""Both methods on the one engine get what it gives every stage: Ctrl-C (a real SIGINT) writes
a checkpoint that resumes, the box method's amp=fp16 scales its loss with a GradScaler, and
box training runs under torchrun (two gloo processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch

from deal_ros.engine.checkpoints import checkpoint_path, load_checkpoint
from deal_ros.engine.hooks import HookBase
from deal_ros.engine.loop import Trainer

from instance_fixtures import TINY as BOX_TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAM = ["data=scene:n=8,seed=0,size=48x64", "input.height=48", "input.width=64",
       "model.pretrained=none", "train.batch_size=2", "train.num_workers=0", "cache=true",
       "threads=1", "report=false", "train.max_steps=6"]  # fmt: skip
BOX = [*BOX_TINY, "data=scene:n=4,seed=0,size=64x96", "train.batch_size=2", "overlays=0",
       "train.max_steps=6", "distill.enabled=true", "distill.start=1", "distill.candidates=8",
       "loss.pairwise_warmup=1"]  # fmt: skip


class CtrlC(HookBase):
    """Sends this process a SIGINT after step ``at`` (Python raises KeyboardInterrupt)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self) -> None:
        if self.trainer.step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def _cam_trainer(run_dir, extra=()):
    from deal_ros.train.config import load_config
    from deal_ros.train.data import TrainItems, open_dataset
    from deal_ros.train.stages.cam import cam_stage

    cfg = load_config("scene", [*CAM, *extra])
    data = open_dataset(cfg.data, cfg)
    items = TrainItems(data, (48, 64), cfg.augment, cfg.seed, cache=True)
    return Trainer(cfg, cam_stage(cfg, items, len(data.classes)), run_dir, progress=False)


def _box_trainer(run_dir, extra=()):
    from deal_ros.instance.config import load_box_config
    from deal_ros.instance.data import box_items, open_box_dataset
    from deal_ros.instance.train import BoxTrainer, build_model

    cfg = load_box_config("box", [*BOX, *extra])
    data = open_box_dataset(cfg, cfg.data)
    items = box_items(data, (64, 96), cfg.input.fit, cfg.augment, cfg.seed)
    model = build_model(cfg, len(data.classes))
    return BoxTrainer(cfg, model, items, run_dir, torch.device("cpu"), progress=False)


@pytest.mark.parametrize("method", ["cam", "box"])
def test_ctrl_c_writes_a_checkpoint_that_resumes(method, tmp_path):
    make, stage = (_cam_trainer, "cam") if method == "cam" else (_box_trainer, "box")
    tr = make(tmp_path)
    engine = tr if method == "cam" else tr.engine
    engine.register_hooks([CtrlC(at=3)])
    # a shell that starts a job in the background (nohup cmd &) leaves SIGINT ignored, and
    # Python then raises nothing for it: Ctrl-C is what a foreground run gets, so set that up
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            tr.fit()
    finally:
        signal.signal(signal.SIGINT, before)
    state = load_checkpoint(checkpoint_path(tmp_path, stage), stage)
    assert state["step"] == 3 and engine.outcome == "interrupted"
    if method == "box":
        assert "teacher" in state  # distill.start=1: the teacher was running
    again = make(tmp_path, [f"resume={tmp_path}"])
    result = again.fit()
    assert result.completed and result.steps == 6


def test_box_fp16_scales_the_loss_with_a_grad_scaler(tmp_path):
    tr = _box_trainer(tmp_path, ["amp=fp16", "train.max_steps=2", "distill.enabled=false"])
    assert tr.engine.dtype == torch.float16 and tr.engine.scaler.is_enabled()
    result = tr.fit()
    assert result.completed and all(torch.isfinite(torch.tensor(v)) for v in result.last.values())
    state = load_checkpoint(checkpoint_path(tmp_path, "box"), "box")
    assert state["scaler"]["scale"] > 0  # the scaler's state rides in the checkpoint


def test_box_training_under_two_gloo_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "deal_ros.cli", "train", "--config", "box", *BOX, "train.max_steps=2",
           f"out={tmp_path}", "name=ddp", "--no-progress"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp-001"]
    run = tmp_path / "ddp-001"
    assert (run / "instance_net.safetensors").is_file()
    assert load_checkpoint(checkpoint_path(run, "box"), "box")["step"] == 2
    assert result.stdout.count("deal train: box done at step 2/2") == 1
