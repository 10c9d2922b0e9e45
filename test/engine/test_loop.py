"""The engine on its own: a tiny regression Stage run by the one Trainer, with a config schema
that is neither DEAL's nor the box method's (the engine reads configs through Protocols).
Hooks run in order around each step, hook and objective state ride in the checkpoint, a
resumed run is bit-exact, a non-finite loss stops without a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

from deal_ros.engine.checkpoints import checkpoint_path, load_checkpoint
from deal_ros.engine.hooks import HookBase
from deal_ros.engine.log import read_metrics
from deal_ros.engine.loop import Trainer
from deal_ros.engine.stage import Stage
from deal_ros.errors import DealError


@dataclass
class Optim:
    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "poly"
    power: float = 0.9
    warmup_steps: float = 2
    grad_clip: float = 1.0


@dataclass
class Loop:
    epochs: int = 2
    max_steps: int | None = None
    batch_size: int = 2
    num_workers: int = 0
    log_every: int = 1
    checkpoint_every: int = 0
    stop_after: int | None = None
    sync_bn: bool = False


@dataclass
class Toy:
    """A third method's config: only what the engine reads."""

    stage: str = "toy"
    seed: int = 3
    device: str = "cpu"
    amp: str = "off"
    resume: bool | str = False
    run: str | None = None
    out: str = "runs"
    name: str | None = None
    optim: Optim = field(default_factory=Optim)
    train: Loop = field(default_factory=Loop)


class Points(torch.utils.data.Dataset):
    """Noisy samples of y = W x, keyed by (index, epoch): the noise depends on both."""

    def __init__(self, n: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.w = torch.randn(2, 4, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        i, epoch = key
        noise = torch.randn(2, generator=torch.Generator().manual_seed(100 * epoch + i))
        return {"image": self.x[i], "y": self.w @ self.x[i] + 0.1 * noise}


class DropoutLoss:
    """MSE on a randomly masked prediction: draws from its own generator (state saved)."""

    def __init__(self, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, model: nn.Module, batch: dict[str, Any], step: int):
        keep = (torch.rand(batch["y"].shape, generator=self.gen) > 0.3).float()
        err = ((model(batch["image"]) - batch["y"]) * keep).pow(2).mean()
        return {"loss": err, "mse": err}

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])


class Recorder(HookBase):
    """Logs the calls; counts steps in its own (checkpointed) state."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.count = 0

    def before_train(self) -> None:
        self.events.append(f"before_train@{self.trainer.step}")

    def before_step(self) -> None:
        self.events.append("b")

    def after_step(self) -> None:
        self.count += 1
        self.events.append("a")

    def after_epoch(self) -> None:
        self.events.append(f"epoch->{self.trainer.epoch}")

    def after_train(self) -> None:
        self.events.append(f"after_train:{self.trainer.outcome}")

    def state_dict(self) -> dict[str, Any]:
        return {"recorder_count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state.get("recorder_count", 0))


def _trainer(cfg: Toy, run_dir, hooks=(), loss=None) -> Trainer:
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    stage = Stage("toy", model, [{"params": list(model.parameters()), "lr_mult": 1.0}],
                  loss or DropoutLoss(), Points())  # fmt: skip
    return Trainer(cfg, stage, run_dir, progress=False, hooks=hooks)


def test_hooks_run_in_order_and_their_state_is_checkpointed(tmp_path):
    rec = Recorder()
    tr = _trainer(Toy(train=Loop(max_steps=6)), tmp_path, [rec])
    result = tr.fit()
    assert result.completed and result.steps == 6 and result.total_steps == 6
    assert rec.events == ["before_train@0", *["b", "a"] * 4, "epoch->1", *["b", "a"] * 2,
                          "after_train:done"]  # fmt: skip
    state = load_checkpoint(checkpoint_path(tmp_path, "toy"), "toy")
    assert (state["step"], state["epoch"], state["batch"]) == (6, 1, 2)
    assert state["recorder_count"] == 6 and "gen" in state["objective"]
    assert checkpoint_path(tmp_path, "toy").name == "toy-last.pt"
    logged = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert logged == [1, 2, 3, 4, 5, 6]


def test_a_second_fit_continues_and_start_step_seeks(tmp_path):
    rec = Recorder()
    tr = _trainer(Toy(train=Loop(max_steps=6, stop_after=3)), None, [rec])
    assert tr.fit().steps == 3
    tr.cfg.train.stop_after = None
    assert tr.fit().steps == 6
    assert rec.events.count("before_train@3") == 1
    tr.fit(start_step=4)
    assert rec.events[-1] == "after_train:done" and rec.count == 3 + 3 + 2


def test_resume_is_bit_exact_with_objective_and_hook_state(tmp_path):
    full = _trainer(Toy(train=Loop(epochs=3, checkpoint_every=2)), tmp_path / "full")
    full.fit()
    cut_cfg = Toy(train=Loop(epochs=3, checkpoint_every=2, stop_after=5))
    rec = Recorder()
    cut = _trainer(cut_cfg, tmp_path / "cut", [rec])
    assert cut.fit().steps == 5  # mid-epoch (4 batches per epoch)
    again_cfg = Toy(resume=True, train=Loop(epochs=3, checkpoint_every=2))
    rec2 = Recorder()
    again = _trainer(again_cfg, tmp_path / "cut", [rec2])
    result = again.fit()
    assert result.completed and result.steps == 12 and rec2.count == 12
    a, b = full.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda d: [(r["step"], r["loss"]) for r in read_metrics(d / "metrics.jsonl")]  # noqa: E731
    assert losses(tmp_path / "full") == losses(tmp_path / "cut")


class NaNAfter:
    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, model, batch, step):
        loss = (model(batch["image"]) - batch["y"]).pow(2).mean()
        return {"loss": loss * (float("nan") if step >= self.step else 1.0)}


def test_a_non_finite_loss_is_one_line_and_writes_no_checkpoint(tmp_path):
    rec = Recorder()
    tr = _trainer(Toy(train=Loop(max_steps=6)), tmp_path, [rec], loss=NaNAfter(2))
    tr.stage.nonfinite_hint = "check the points"
    with pytest.raises(DealError, match=r"stage toy: the loss is not finite near step 3 .*"
                                        r"lower optim\.lr or check the points"):  # fmt: skip
        tr.fit()
    assert rec.events[-1] == "after_train:failed"
    assert not checkpoint_path(tmp_path, "toy").exists()


def test_stage_names_must_be_words():
    with pytest.raises(DealError, match="not a stage name"):
        checkpoint_path("runs/x", "../evil")
