"""Stage ``seg``: a second-stage segmenter trained on pseudo labels (+ self-training rounds).

    L = loss(logits (B, K+1, H, W), pseudo labels (B, H, W))      loss: ce | focal | lovasz |
                                                                   ce+lovasz, 255 ignored

``pseudo=<folder>`` names the labels (``pseudo.yaml`` says which data and classes they belong
to; ``data=`` may point at the same data elsewhere). The segmenter is written into the run that
made the labels (``seg_net.safetensors`` beside ``cam_net.safetensors``; its config in
``config_seg.yaml``) unless ``run=`` or ``name=`` says otherwise: a folder of its own gets
``config.yaml``, so ``deal eval run=<it>`` reads it like any run.

Self-training (``rounds=N``, the sea-floor sonar study's iterative scheme): after training, the
segmenter labels the training images again (prediction + flip, absent classes removed,
dense CRF and ignores as in ``labeling``) into ``pseudo_r<n>/``, and a fresh segmenter is
trained on them; N times. Our choice: every round starts again from the pretrained backbone
(or, with ``model.init_from=cam``, from the backbone of the CAM net that made the labels).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from deal_ros.data.sample import SampleDataset
from deal_ros.engine.checkpoints import checkpoint_path, load_checkpoint
from deal_ros.engine.ddp import DistEnv
from deal_ros.engine.device import resolve_device, seed_everything
from deal_ros.engine.loop import FitResult, Trainer
from deal_ros.engine.runfolder import prepare_run, read_yaml
from deal_ros.engine.stage import Stage
from deal_ros.errors import DealError
from deal_ros.losses.registry import build_seg_loss
from deal_ros.nets.seg_net import SegNet
from deal_ros.nets.weights import read_state_dict
from deal_ros.train.config import ModelConfig, TrainConfig
from deal_ros.train.data import (
    IGNORE,
    TrainItems,
    dataset_options,
    open_dataset,
    write_label_png,
)
from deal_ros.train.predict import seg_probs as seg_probs  # also its old home
from deal_ros.train.stages.pseudo import PseudoLabels, refine, write_pseudo_yaml


def build_seg_net(model: ModelConfig, num_classes: int, pretrained: bool = True) -> SegNet:
    """The segmenter of a config; ``num_classes`` counts the background."""
    return SegNet(
        model.backbone,
        num_classes=num_classes,
        pretrained=model.pretrained if pretrained else None,
        output_stride=model.output_stride,
        decoder=model.decoder,
        channels=model.channels,
    )


class SegObjective:
    def __init__(self, cfg: TrainConfig) -> None:
        try:
            self.loss = build_seg_loss(cfg.loss, **cfg.loss_options)
        except ValueError as exc:
            raise DealError(f"loss={cfg.loss}: {exc}") from None

    def __call__(
        self, model: nn.Module, batch: dict[str, Any], step: int
    ) -> dict[str, torch.Tensor]:
        logits = model(batch["image"]).float()
        seg = self.loss(logits, batch["target"])
        return {"seg": seg, "loss": seg}


def start_from_cam(net: SegNet, cam_run: Path | None, backbone: str) -> None:
    """``model.init_from=cam``: the segmenter's backbone starts as the backbone of the CAM net
    in ``cam_run`` (the run that made the pseudo labels), trained on these very images, rather
    than from ImageNet alone. Our choice (the papers start stage 2 from ImageNet); measured in
    bench/README.md."""
    where = "model.init_from=cam"
    path = None if cam_run is None else Path(cam_run) / "cam_net.safetensors"
    if path is None or not path.is_file():
        raise DealError(
            f"{where}: the pseudo labels name no CAM run with cam_net.safetensors "
            f"({cam_run or 'no run in pseudo.yaml'}); set model.init_from=pretrained"
        )
    cam_config = read_yaml(Path(cam_run) / "config.yaml", f"{where}: CAM run config")
    cam_backbone = (cam_config.get("model") or {}).get("backbone", "mobilenet_v2")
    if cam_backbone != backbone:
        raise DealError(
            f"{where}: the CAM run {cam_run} has backbone {cam_backbone}, not {backbone}"
        )
    state = {
        k[len("backbone.") :]: v
        for k, v in read_state_dict(path).items()
        if k.startswith("backbone.")
    }
    missing, unexpected = net.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DealError(
            f"{where}: {path} does not fit the segmenter's backbone "
            f"({len(missing)} missing, {len(unexpected)} unexpected weights)"
        )


def seg_stage(
    cfg: TrainConfig, items: TrainItems, num_classes: int, cam_run: Path | None = None
) -> Stage:
    seed_everything(cfg.seed)
    net = build_seg_net(cfg.model, num_classes + 1)
    if cfg.model.init_from == "cam":
        start_from_cam(net, cam_run, cfg.model.backbone)
    backbone = set(id(p) for p in net.backbone.parameters())
    head = [p for p in net.parameters() if id(p) not in backbone]
    groups = [
        {"params": list(net.backbone.parameters()), "lr_mult": 1.0},
        {"params": head, "lr_mult": cfg.optim.head_lr_mult},
    ]
    return Stage("seg", net, groups, SegObjective(cfg), items)


def _data_for(cfg: TrainConfig, labels: PseudoLabels) -> SampleDataset:
    spec = cfg.data or labels.meta.get("data")
    if not spec:
        raise DealError(f"pseudo labels {labels.folder}: pseudo.yaml names no data; give data=")
    options = None if cfg.data else dict(labels.meta.get("data_options") or {})
    data = open_dataset(spec, cfg, classes=labels.classes, options=options)
    labels.check(data)
    return data


def _start_round(cfg: TrainConfig, run_dir: Path) -> int:
    if not cfg.resume:
        return 0
    path = checkpoint_path(run_dir, "seg")
    return int(load_checkpoint(path, "seg").get("round", 0)) if path.is_file() else 0


def train_seg(
    cfg: TrainConfig, env: DistEnv | None = None, progress: bool = True
) -> tuple[Path, FitResult]:
    """Train the seg stage (all rounds); returns the run folder and the last fit summary."""
    env = env or DistEnv()
    device = resolve_device(cfg.device)
    if not cfg.pseudo:
        raise DealError("stage seg: no pseudo labels given (set pseudo=runs/<name>/pseudo)")
    labels = PseudoLabels(cfg.pseudo)
    data = _data_for(cfg, labels)
    classes = list(data.classes)
    cfg.model.num_classes = len(classes) + 1
    labels_run = labels.run
    source = labels_run if labels_run and (labels_run / "cam_net.safetensors").is_file() else None
    beside = source is not None and not cfg.name and not cfg.run  # the CAM run folder
    # beside a CAM run's config.yaml (its folder, or run= naming a run that has one), else own
    into_run = bool(cfg.run) and (Path(cfg.run) / "config.yaml").is_file()
    name = "config_seg.yaml" if beside or into_run else "config.yaml"
    cfg.input.mean, cfg.input.std = None, None
    size = (cfg.input.height, cfg.input.width)
    probe = build_seg_net(cfg.model, len(classes) + 1, pretrained=False)
    cfg.input.mean, cfg.input.std = list(probe.backbone.mean), list(probe.backbone.std)
    run_dir = prepare_run(cfg, env, classes, "seg", default_dir=source, config_name=name)
    first = _start_round(cfg, run_dir)
    result = None
    for rnd in range(first, cfg.rounds + 1):
        rcfg = copy.deepcopy(cfg)
        rcfg.resume = cfg.resume if rnd == first else False
        if rnd > 0:
            labels = PseudoLabels(run_dir / f"pseudo_r{rnd}")
        items = TrainItems(data, size, cfg.augment, cfg.seed, targets=labels, cache=cfg.cache)
        stage = seg_stage(rcfg, items, len(classes), cam_run=labels_run)
        trainer = Trainer(rcfg, stage, run_dir, env, device, progress)
        trainer.extra_state = {"round": rnd}
        result = trainer.fit()
        if not result.completed:
            return run_dir, result
        if env.is_main:
            finish_seg(cfg, run_dir, stage.model, classes, items, device, progress, rnd)
        env.barrier()
    return run_dir, result


def relabel(
    net: nn.Module, cfg: TrainConfig, data: SampleDataset, out: Path, device, progress: bool,
    run_dir: Path, rnd: int,
) -> Path:  # fmt: skip
    """Self-training labels from the segmenter (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    net = net.to(device).eval()
    size = (cfg.input.height, cfg.input.width)
    ignored, total = 0, 0
    for i in tqdm(range(len(data)), desc=f"relabel r{rnd}", disable=not progress):
        s = data[i]
        probs = seg_probs(net, s.rgb, size, device)
        ids = np.concatenate([[0], np.flatnonzero(np.asarray(s.labels) > 0) + 1])
        label = refine(s.rgb, probs[ids], ids, cfg.labeling)
        write_label_png(out / f"{i:06d}.png", label)
        ignored += int((label == IGNORE).sum())
        total += label.size
    meta = PseudoLabels(cfg.pseudo).meta
    spec = cfg.data or meta.get("data")
    opts = dataset_options(cfg) if cfg.data else dict(meta.get("data_options") or {})
    write_pseudo_yaml(
        out, run_dir, cfg, data, source=f"seg round {rnd}",
        ignore_fraction=ignored / max(total, 1), data_spec=spec, data_options=opts,
    )  # fmt: skip
    return out


def finish_seg(cfg, run_dir, net, classes, items, device, progress, rnd: int) -> None:
    from deal_ros.nets.weights import save_weights
    from deal_ros.train.report import write_report

    net.eval()
    save_weights(net, run_dir / "seg_net.safetensors",
                 {"classes": ",".join(classes), "stage": "seg", "round": str(rnd)})  # fmt: skip
    if rnd < cfg.rounds:
        relabel(net, cfg, items.samples, run_dir / f"pseudo_r{rnd + 1}", device, progress,
                run_dir, rnd + 1)  # fmt: skip
        return
    evals: dict[str, Any] = {}
    if cfg.val:
        from deal_ros.train.evaluate import evaluate_seg

        val = open_dataset(cfg.val, cfg, classes=classes, what="val")
        evals["val"] = evaluate_seg(net, val, (cfg.input.height, cfg.input.width), device,
                                    progress=progress)  # fmt: skip
    if cfg.report:
        write_report(run_dir, cfg, seg_net=net, items=items, classes=classes, device=device,
                     evals=evals)  # fmt: skip
