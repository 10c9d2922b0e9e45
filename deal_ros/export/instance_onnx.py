"""ONNX export of a box run's CondInst: ``image (N,3,H,W) RGB in [0,1] ->``

    scores      (N, k)         sqrt(p_cls * p_ctr) of the k best (location, class) pairs
    classes     (N, k) int64   class ids 1..K
    boxes       (N, k, 4)      x0, y0, x1, y1 input pixels, clipped to the image
    masks       (N, k, H/4, W/4) instance mask probabilities (DG-MaskHead included)
    class_probs (N, k)         p_cls of each pair (what ``score_threshold`` is compared with)

The candidates are the pairs ``CondInst.predict`` (``inference.select``) considers: every
(location, class), ranked by sqrt(p_cls * p_ctr), so a runtime that keeps the pairs with
``class_probs > score_threshold`` and runs the same NMS gets predict's instances whenever at
most k pairs pass the threshold (k >= L * K: always).

The dynamic mask heads run as batched matrix products (``instance.dynamic_mask_head``), so the
graph is plain opset-17 ops (TopK, Gather, MatMul). Not in the graph: the score threshold and
the class-aware NMS over the k candidates, and the upsampling of the masks to the image
(``deal_ros.infer.instances`` does them in numpy, with ``deal_ros.core.boxes.nms``). The
input size is fixed at export (the location grid is a constant of the graph).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deal_ros.export.onnx_export import check_onnx, export_onnx
from deal_ros.instance.condinst import CondInst


class CondInstExport(nn.Module):
    """The inference view of ``CondInst`` for ONNX (see the module docstring)."""

    def __init__(self, model: CondInst, topk: int = 100) -> None:
        super().__init__()
        self.model = model.eval()
        self.topk = int(topk)

    @property
    def output_names(self) -> list[str]:
        return ["scores", "classes", "boxes", "masks", "class_probs"]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = self.model(x)
        n, num_loc, num_cls = d.logits.shape
        prob = torch.sigmoid(d.logits)
        pair = torch.sqrt(prob * torch.sigmoid(d.ctr)[..., None]).reshape(n, num_loc * num_cls)
        score, flat = pair.topk(min(self.topk, num_loc * num_cls), dim=1)
        loc = torch.div(flat, num_cls, rounding_mode="floor")
        cls = flat - loc * num_cls
        p_cls = prob.reshape(n, num_loc * num_cls).gather(1, flat)
        k = loc.shape[1]
        reg = d.reg.gather(1, loc[..., None].expand(n, k, 4))
        xy = d.locations[loc]
        h, w = d.image_size
        lim = torch.tensor([w, h, w, h], dtype=reg.dtype, device=reg.device)
        boxes = torch.minimum(
            torch.cat([xy - reg[..., :2], xy + reg[..., 2:]], -1).clamp_min(0), lim
        )
        image = torch.arange(n, device=x.device)[:, None].expand(n, k).reshape(-1)
        logits, _ = self.model.masks(d, loc.reshape(-1), image)
        masks = torch.sigmoid(logits).reshape(n, k, *logits.shape[-2:])
        return score, cls + 1, boxes, masks, p_cls


def export_instance_onnx(
    model: CondInst, path: str | Path, input_size: tuple[int, int], topk: int = 100
) -> Path:
    """Write ``CondInstExport(model, topk)`` to ``path`` (checked by ``onnx.checker``).
    ``deal export`` on a box run (``deal_ros.export.instance_bundle``) wraps it into a bundle."""
    out = export_onnx(CondInstExport(model.cpu(), topk), path, input_size)
    check_onnx(out)
    return out
