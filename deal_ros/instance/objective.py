"""One training step's losses of the box method: the ``loss_fn`` of its engine ``Stage``.

    L = w_cls L_cls + w_box L_box + w_ctr L_ctr                      (FCOS, all locations)
      + L_proj (+ L_proj_bce, L_out) + L_pair + L_cons (+ L_surf)     (``losses.py``, sampled
      + L_depth                                                          positive locations)
      + L_distill (from ``distill.start`` on: EMA teacher pseudo masks)

The positive locations whose masks are scored are drawn (``loss.max_instances``) from the
objective's own generator, seeded with ``seed``; its state rides in the checkpoint
(``state_dict``), so a resumed run draws what the uninterrupted one drew. The teacher is the
:class:`~deal_ros.engine.ema.EMAHook`'s (None before ``distill.start``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deal_ros.engine.ddp import unwrap
from deal_ros.engine.ema import EMAHook, EMATeacher
from deal_ros.instance.condinst import STRIDES
from deal_ros.instance.config import BoxTrainConfig, loss_in_steps
from deal_ros.instance.distill import pseudo_masks
from deal_ros.instance.losses import detection_losses, distill_loss, mask_losses, sample_positives
from deal_ros.instance.mask_targets import (
    box_masks,
    lab_image,
    nearness,
    normalise_depth,
    pooled_depth,
)
from deal_ros.instance.targets import fcos_targets
from deal_ros.losses.surround_depth import surround_targets

MASK_TERMS = ("proj", "proj_bce", "out", "pair", "cons", "surf", "depth", "distill")
TERMS = ("cls", "box", "ctr", *MASK_TERMS)


class BoxObjective:
    """``(model, batch, step) -> {"loss", <TERMS>}`` (see the module docstring).
    ``schedule(total)`` turns the loss's run fractions into steps of a ``total``-step run."""

    def __init__(self, cfg: BoxTrainConfig, ema: EMAHook | None = None) -> None:
        self.cfg, self.ema = cfg, ema
        self.loss = cfg.loss
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def schedule(self, total: int) -> None:
        self.loss = loss_in_steps(self.cfg.loss, total)

    @property
    def teacher(self) -> EMATeacher | None:
        return self.ema.teacher if self.ema is not None else None

    def state_dict(self) -> dict[str, Any]:
        return {"sampling_rng": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["sampling_rng"])

    def __call__(
        self, model: nn.Module, batch: dict[str, Any], step: int
    ) -> dict[str, torch.Tensor]:
        cfg, lc = self.cfg, self.loss
        images = batch["image"]
        boxes = [b.to(images.device) for b in batch["boxes"]]
        dense = model(images)  # through DDP's forward under torchrun
        net = unwrap(model)
        targets = fcos_targets(
            dense.locations, dense.level, boxes, STRIDES, cfg.model.sizes_of_interest,
            cfg.model.center_sample_radius,
        )  # fmt: skip
        terms = detection_losses(dense, targets, lc)
        total = lc.cls_weight * terms["cls"] + lc.box_weight * terms["box"]
        total = total + lc.centerness_weight * terms["ctr"]
        hw = (images.shape[2] // 4, images.shape[3] // 4)
        depth = None
        if bool(batch["has_depth"].any()):
            depth = normalise_depth(pooled_depth(batch["depth"], batch["valid"]), lc.depth_norm)
        sel = sample_positives(targets, lc.max_instances, self.gen)
        zero = total * 0.0
        mterms = dict.fromkeys(MASK_TERMS, zero)
        if sel.loc.numel():
            logits, dpred = net.masks(dense, sel.loc, sel.image)
            bm = box_masks(targets.gt_boxes[sel.gt], hw)
            d_inst = None if depth is None else depth[sel.image]
            d_target = None
            if d_inst is not None and dpred is not None:
                d_target = self._depth_target(depth, d_inst, bm, sel)
            surround = self._surround(batch, targets, sel)
            mt = mask_losses(
                logits,
                dpred,
                bm,
                lab_image(images)[sel.image],
                d_inst,
                d_target,
                step,
                lc,
                surround,
            )
            total = total + mt.pop("mask_total")
            mterms.update(mt)
            if self.teacher is not None:
                dist = self._distill(images, targets, depth, hw, logits, sel)
                mterms["distill"] = dist
                total = total + dist
        return {"loss": total, **terms, **mterms}

    def _surround(self, batch, targets, sel) -> tuple[torch.Tensor, torch.Tensor] | None:
        """L_surf's prior and weight per sampled mask (computed once per ground-truth box)."""
        lc = self.loss
        if not lc.surround_on or not bool(batch["has_depth"].any()):
            return None
        prior, weight = surround_targets(  # samples without depth have no valid pixel
            batch["depth"], batch["valid"], targets.gt_boxes, targets.gt_image,
            ring=lc.surround_ring, margin=lc.surround_margin,
        )  # fmt: skip
        return prior[sel.gt], weight[sel.gt]

    def _depth_target(self, depth, d_inst, bm, sel) -> tuple[torch.Tensor, torch.Tensor]:
        mode = self.cfg.loss.depth_target
        if mode == "box":
            return nearness(d_inst, bm)
        target = nearness(depth, mode="inverse" if mode == "inverse" else "minmax")[0]
        return target[sel.image], d_inst > 0

    def _distill(self, images, targets, depth, hw, logits, sel) -> torch.Tensor:
        d, lc = self.cfg.distill, self.loss
        per_image = [targets.gt_boxes[targets.gt_image == b] for b in range(images.shape[0])]
        dmap = depth if depth is not None else images.new_zeros((images.shape[0], 1, *hw))
        out = pseudo_masks(
            self.teacher.model, images, per_image, dmap, hw, d, lc.depth_tau, lc.depth_scale
        )
        pseudo = torch.cat([p for p, _ in out])
        scores = torch.cat([s for _, s in out])
        return distill_loss(logits, pseudo[sel.gt], scores[sel.gt], d.tau, d.dice_weight)
