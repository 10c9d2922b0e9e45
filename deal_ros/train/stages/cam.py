"""Stage ``cam``: a CAM net trained from image-level labels, with DEAL on the depth edges.

    L = L_cls + w_deal * L_DEAL(cams, depth) + w_fsl * L_FSL(image, cams)

* L_cls: multi-label soft margin loss on the global average pooled CAM logits, or ISL (the
  GAP loss mixed with importance-sampled pixels, ``isl.weight`` = the mix).
* L_DEAL: ``deal_ros.losses.deal.DEALLoss`` on the normalised CAMs (ReLU, per-map max) and the
  metric depth with its validity mask (paper formula; normalisation choices in that module).
  ``deal.warmup_steps`` ramps w_deal linearly from 0 (our choice; 0 = full weight at once).
* L_FSL: ``deal_ros.losses.fsl.FSLLoss`` on the normalised CAMs (optional).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from deal_ros.engine.ddp import DistEnv
from deal_ros.engine.device import resolve_device, seed_everything
from deal_ros.engine.loop import FitResult, Trainer
from deal_ros.engine.runfolder import prepare_run
from deal_ros.engine.stage import Stage
from deal_ros.losses.deal import DEALLoss
from deal_ros.losses.fsl import FSLLoss
from deal_ros.losses.isl import gap_multilabel_loss, isl_loss
from deal_ros.nets.cam_net import CAMNet, normalise_cams
from deal_ros.train.config import ModelConfig, TrainConfig
from deal_ros.train.data import TrainItems, open_dataset


def build_cam_net(model: ModelConfig, num_classes: int, pretrained: bool = True) -> CAMNet:
    """The CAM net of a config (``pretrained=False``: skip loading ImageNet weights, e.g.
    when trained weights are loaded next)."""
    return CAMNet(
        model.backbone,
        num_classes=num_classes,
        pretrained=model.pretrained if pretrained else None,
        output_stride=model.output_stride,
        dropout=model.dropout,
        decoder=model.cam_decoder,
        decoder_channels=model.cam_decoder_channels,
        align=model.cam_align,
    )


class CAMObjective:
    """``(model, batch, step) -> {"loss", "cls", "deal"?, "fsl"?}`` (see the module docstring)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        d = cfg.deal
        self.deal = None
        if d.weight > 0:
            self.deal = DEALLoss(
                mu=d.mu, edge_norm=d.edge_norm, cam_edge_norm=d.cam_edge_norm,
                depth_transform=d.depth_transform, percentile=d.percentile,
                depth_scale=d.depth_scale, cam_scale=d.cam_scale,
                depth_min_scale=d.depth_min_scale, cam_min_scale=d.cam_min_scale,
                min_support_valid=d.min_support_valid, antialias=d.antialias,
                variant=d.variant, radius=d.radius, depth_edges=d.depth_edges,
                fill=d.fill, min_cell_valid=d.min_cell_valid,
                direction_weight=d.direction_weight,
            )  # fmt: skip
        f = cfg.fsl
        self.fsl = FSLLoss(f.mu, f.sigma, f.radius) if f.weight > 0 else None

    def deal_weight(self, step: int) -> float:
        d = self.cfg.deal
        ramp = min(1.0, (step + 1) / d.warmup_steps) if d.warmup_steps > 0 else 1.0
        return d.weight * ramp

    def __call__(
        self, model: nn.Module, batch: dict[str, Any], step: int
    ) -> dict[str, torch.Tensor]:
        out = model(batch["image"])
        cam_logits = out["cam_logits"].float()
        labels = batch["labels"]
        if self.cfg.isl.weight > 0:
            cls = isl_loss(cam_logits, labels, self.cfg.isl.weight, self.cfg.isl.num_samples)
        else:
            cls = gap_multilabel_loss(cam_logits, labels)
        terms = {"cls": cls}
        total = cls
        if self.deal is not None or self.fsl is not None:
            with torch.autocast(cam_logits.device.type, enabled=False):
                cams = normalise_cams(cam_logits)
                if self.deal is not None:
                    terms["deal"] = self.deal(cams, batch["depth"], labels, batch["valid"])
                    total = total + self.deal_weight(step) * terms["deal"]
                if self.fsl is not None:
                    terms["fsl"] = self.fsl(batch["image"].float(), cams)
                    total = total + self.cfg.fsl.weight * terms["fsl"]
        terms["loss"] = total
        return terms


def cam_stage(cfg: TrainConfig, items: TrainItems, num_classes: int) -> Stage:
    seed_everything(cfg.seed)  # identical initial weights on every rank and every run
    net = build_cam_net(cfg.model, num_classes)  # classifier: Xavier init (see CAMNet)
    groups = [
        {"params": list(net.backbone.parameters()), "lr_mult": 1.0},
        {"params": net.head_parameters(), "lr_mult": cfg.optim.head_lr_mult},
    ]
    return Stage("cam", net, groups, CAMObjective(cfg), items)


def train_cam(
    cfg: TrainConfig, env: DistEnv | None = None, progress: bool = True
) -> tuple[Path, FitResult]:
    """Train the CAM stage; returns the run folder and the fit summary."""
    env = env or DistEnv()
    device = resolve_device(cfg.device)
    data = open_dataset(cfg.data, cfg)
    classes = list(data.classes)
    cfg.model.num_classes = len(classes)
    items = TrainItems(data, (cfg.input.height, cfg.input.width), cfg.augment, cfg.seed,
                       cache=cfg.cache)  # fmt: skip
    stage = cam_stage(cfg, items, len(classes))
    cfg.input.mean = list(stage.model.backbone.mean)
    cfg.input.std = list(stage.model.backbone.std)
    run_dir = prepare_run(cfg, env, classes, "cam")
    result = Trainer(cfg, stage, run_dir, env, device, progress).fit()
    if env.is_main and result.completed:
        finish_cam(cfg, run_dir, stage.model, classes, items, device, progress)
    env.barrier()
    return run_dir, result


def finish_cam(cfg, run_dir, net, classes, items, device, progress) -> None:
    """Weights, optional pseudo labels / validation, and the report (rank 0)."""
    from deal_ros.nets.weights import save_weights
    from deal_ros.train.report import write_report

    net.eval()
    save_weights(net, run_dir / "cam_net.safetensors",
                 {"classes": ",".join(classes), "stage": "cam"})  # fmt: skip
    evals: dict[str, Any] = {}
    if cfg.val:
        from deal_ros.train.evaluate import evaluate_cams

        val = open_dataset(cfg.val, cfg, classes=classes, what="val")
        evals["val"] = evaluate_cams(net, val, cfg, device, progress=progress)
    if cfg.make_pseudo:
        from deal_ros.train.stages.pseudo import make_pseudo_labels

        make_pseudo_labels(run_dir, cfg, net, items.samples, device, progress=progress)
    if cfg.report:
        write_report(run_dir, cfg, net=net, items=items, classes=classes, device=device,
                     evals=evals)  # fmt: skip
