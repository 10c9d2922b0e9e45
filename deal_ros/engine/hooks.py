"""Hooks: what runs around the steps of :class:`deal_ros.engine.loop.Trainer`.

    class MyHook(HookBase):
        def before_step(self): ...   # self.trainer.step = steps done so far
        def after_step(self): ...    # self.trainer.terms = this step's losses (detached)

As in detectron2, the trainer registers each hook (``hook.trainer``, a weak proxy) and calls,
in list order (the stage's hooks first, then the engine's :class:`MetricsLog` and
:class:`Checkpointer`): ``before_train`` once per ``fit``, ``before_step`` / ``after_step``
around each optimiser step, ``after_epoch`` when an epoch's last batch is done, and
``after_train`` always (also after an error or Ctrl-C; ``trainer.outcome`` says which:
``done``, ``interrupted`` or ``failed``). A hook with state that a resumed run needs returns
it from ``state_dict()`` (plain values and tensors, merged into the checkpoint under the keys
it chooses) and takes the whole checkpoint back in ``load_state_dict``.
"""

from __future__ import annotations

from typing import Any

import torch

from deal_ros.engine.log import RunLog


class HookBase:
    """No-op hook; override what you need. ``self.trainer`` is set when it is registered."""

    trainer: Any  # the deal_ros.engine.loop.Trainer that registered it (not imported: a cycle)

    def before_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class MetricsLog(HookBase):
    """The progress bar and ``metrics.jsonl`` (:class:`~deal_ros.engine.log.RunLog`): every
    ``train.log_every`` steps (and at the last step) the mean of each loss term since the last
    record, averaged over ranks, with the epoch, the learning rate and images/s. The terms stay
    on the device between records (no host sync per step)."""

    def before_train(self) -> None:
        trainer = self.trainer
        env = trainer.env
        self.log = RunLog(
            trainer.run_dir if env.is_main else None, trainer.stage.name, trainer.total_steps,
            trainer.step, enabled=env.is_main, progress=trainer.progress,
        )  # fmt: skip
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def after_step(self) -> None:
        trainer = self.trainer
        self.log.tick(trainer.batch_images)
        for k, v in trainer.terms.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += 1
        every = max(1, trainer.cfg.train.log_every)
        if trainer.step % every and trainer.step != trainer.stop_at:
            return
        rate = self.log.throughput() * trainer.env.world
        means = {k: float(v) / self.count for k, v in self.sums.items()}
        trainer.check_finite(means)
        means = trainer.env.mean(means)
        lr = trainer.optimizer.param_groups[0]["lr"]
        self.log.log(trainer.step, {"epoch": trainer.epoch, "lr": lr, **means,
                                    "images_per_s": rate})  # fmt: skip
        trainer.last, self.sums, self.count = means, {}, 0

    def after_train(self) -> None:
        if hasattr(self, "log"):
            self.log.close()


class Checkpointer(HookBase):
    """``checkpoints/<stage>-last.pt``: every ``train.checkpoint_every`` steps, or (0) at the end
    of every epoch; at the end of training and on Ctrl-C (not after an error)."""

    def before_train(self) -> None:
        self.saved_at = -1

    def _save(self) -> None:
        self.trainer.save()
        self.saved_at = self.trainer.step

    def after_step(self) -> None:
        every = self.trainer.cfg.train.checkpoint_every
        if every and self.trainer.step % every == 0:
            self._save()

    def after_epoch(self) -> None:
        t = self.trainer
        if not t.cfg.train.checkpoint_every and t.step < t.stop_at:
            self._save()

    def after_train(self) -> None:
        t = self.trainer
        if t.outcome == "interrupted" or (t.outcome == "done" and self.saved_at != t.step):
            self._save()
