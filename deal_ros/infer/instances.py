"""Instance bundle outputs -> instances on the image, and their overlay (numpy + PIL, no torch).

The graph (``deal_ros.instance.export``) gives the top-k (location, class) candidates of each
image: ``scores`` sqrt(p_cls p_ctr), ``classes`` 1..K, ``boxes`` in input pixels, ``masks``
(probabilities at the mask stride) and ``class_probs`` p_cls. As ``CondInst.predict`` does:

    keep  = class_probs > score_threshold                       (FCOS's candidate rule)
    keep  = nms(boxes, scores, classes, nms_threshold)[:max_detections]  (deal_ros.core.boxes)
    mask  = upsample(masks, input size) -> unplace (cut the padding, resize to the image)
            -> > mask_threshold   (resized only near cells above the threshold:
                                   ``deal_ros.infer.postprocess.threshold_on_image``)
    box   = unplace_boxes(box)
    mask  = 0 outside box, widened by box_margin input pixels (if box_margin >= 0;
            ``deal_ros.core.boxes.crop_to_box``)

Upsampling and un-placing are the semantic path's own (``deal_ros.infer.postprocess``); only
the kept instances' masks are upsampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

import deal_ros.infer.postprocess as post
from deal_ros.core.boxes import crop_to_boxes, nms, pixel_box
from deal_ros.core.palette import default_palette
from deal_ros.infer.bundle import InstanceSpec
from deal_ros.infer.preprocess import Placement

__all__ = [
    "INSTANCE_COLOURS",
    "InstanceResult",
    "class_id_image",
    "draw_instances",
    "gate_instances",
    "instance_id_image",
    "instances_from_outputs",
    "pixel_box",
    "select_candidates",
]

INSTANCE_COLOURS = np.array(default_palette(20)[1:], np.uint8)  # by instance, no background


@dataclass
class InstanceResult:
    """One image's instances, best score first, at the input image's size (H, W).

    boxes (n, 4) float32 x0, y0, x1, y1 (exclusive x1, y1); scores (n,); classes (n,) int64
    class ids 1..K; masks (n, H, W) bool; overlay rgb8 or None; timings seconds per stage.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    masks: np.ndarray
    overlay: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _ids: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def id_image(self) -> np.ndarray:
        """:func:`instance_id_image` of the masks, made once (the overlay, ``~/instances``,
        ``~/mask`` and ``deal infer``'s mask PNG all read it)."""
        if self._ids is None:
            self._ids = instance_id_image(self.masks, self.masks.shape[1:])
        return self._ids

    def class_scores(self, num_classes: int) -> np.ndarray:
        """(K,) float32: each class's best instance score (0 where it has none)."""
        out = np.zeros(num_classes, dtype=np.float32)
        np.maximum.at(out, self.classes - 1, self.scores)
        return out


def select_candidates(
    scores: np.ndarray,
    classes: np.ndarray,
    boxes: np.ndarray,
    class_probs: np.ndarray,
    spec: InstanceSpec,
) -> np.ndarray:
    """Indices of the kept candidates (of one image), best score first (module docstring)."""
    cand = np.flatnonzero(np.asarray(class_probs) > np.float32(spec.score_threshold))
    keep = nms(boxes[cand], scores[cand], classes[cand], spec.nms_threshold)
    return cand[keep[: spec.max_detections]]


def instances_from_outputs(
    raw: dict[str, np.ndarray],
    spec: InstanceSpec,
    input_size: tuple[int, int],
    where: Placement,
    index: int = 0,
) -> InstanceResult:
    """The instances of batch item ``index`` of the graph outputs ``raw`` on the image."""
    scores = np.asarray(raw["scores"][index], np.float32)
    classes = np.asarray(raw["classes"][index], np.int64)
    boxes = np.asarray(raw["boxes"][index], np.float32)
    keep = select_candidates(scores, classes, boxes, raw["class_probs"][index], spec)
    h, w = where.image
    masks = np.zeros((len(keep), h, w), dtype=bool)
    for i, k in enumerate(keep):
        plane = raw["masks"][index, k]
        masks[i] = post.threshold_on_image(plane, input_size, where, spec.mask_threshold)
    on_image = post.unplace_boxes(boxes[keep], where).reshape(-1, 4)
    crop_to_boxes(masks, on_image, spec.box_margin, w / max(where.width, 1))
    return InstanceResult(
        boxes=on_image,
        scores=scores[keep],
        classes=classes[keep],
        masks=masks,
    )


def instance_id_image(masks: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W) uint8: 0 = no instance, i + 1 = instance i (best score first wins overlaps;
    ids above 255 are not drawn)."""
    size = masks.shape[1:] if len(masks) else shape
    if size is None:
        raise ValueError("instance_id_image: no masks and no shape")
    out = np.zeros(size, dtype=np.uint8)
    for i in range(min(len(masks), 255) - 1, -1, -1):
        out[masks[i]] = i + 1
    return out


def class_id_image(ids: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids (0 = background) from an :func:`instance_id_image`: each pixel
    takes the class of the instance it shows, so the semantic ``~/mask`` contract holds for
    instance bundles too."""
    lut = np.zeros(256, dtype=np.uint8)
    n = min(len(classes), 255)
    lut[1 : n + 1] = np.asarray(classes[:n], dtype=np.uint8)
    return lut[ids]


def gate_instances(result: InstanceResult, keep: np.ndarray) -> InstanceResult:
    """``result`` with its masks cut to ``keep`` ((H, W) bool, e.g. the depth gate's
    :func:`deal_ros.infer.postprocess.depth_keep`). An instance goes when no pixel of its mask
    is kept, or, for an instance whose mask was empty to begin with, no pixel of its box: a gate
    that keeps everything changes nothing, one that keeps nothing leaves no instance."""
    size = result.masks.shape[1:]
    if keep.shape != size:
        raise ValueError(f"keep mask is {keep.shape}, the image {size}")
    masks = result.masks & keep
    alive = masks.any(axis=(1, 2))
    for i in np.flatnonzero(~result.masks.any(axis=(1, 2))):
        left, top, right, bottom = pixel_box(result.boxes[i], size)
        alive[i] = keep[top:bottom, left:right].any()
    return InstanceResult(
        boxes=result.boxes[alive],
        scores=result.scores[alive],
        classes=result.classes[alive],
        masks=masks[alive],
        timings=result.timings,
    )


def draw_instances(
    rgb: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    names: Sequence[str],
    alpha: float = 0.55,
    colours: np.ndarray = INSTANCE_COLOURS,
    outlines: Sequence[Sequence[float]] | None = None,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """An rgb8 overlay: each pixel of instance i's mask tinted with ``colours[i]`` (weight
    ``alpha``; where masks overlap, the better-scored instance's colour, as in
    :func:`instance_id_image`), its box outlined and labelled "name score"
    (``names[class id - 1]``), best score drawn last. The tint is the semantic overlay's
    (:func:`deal_ros.infer.postprocess.overlay`) over instance ids.
    ``outlines``: more (m, 4) boxes (e.g. the ground truth), thin white outlines on top.
    ``ids``: the masks' :func:`instance_id_image` when the caller already has it."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    ids = instance_id_image(masks, rgb.shape[:2]) if ids is None else ids
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[1:] = colours[np.arange(255) % len(colours)]
    image = Image.fromarray(post.overlay(rgb, ids, palette, alpha))
    draw = ImageDraw.Draw(image)
    for i in range(len(boxes) - 1, -1, -1):
        colour = tuple(int(v) for v in colours[i % len(colours)])
        draw.rectangle(_rect(boxes[i]), outline=colour)
        c = int(classes[i])
        name = names[c - 1] if 0 < c <= len(names) else str(c)
        x0, y0 = float(boxes[i][0]), float(boxes[i][1])
        draw.text((x0 + 2, y0 + 1), f"{name} {float(scores[i]):.2f}", fill=colour)
    for box in () if outlines is None else outlines:
        draw.rectangle(_rect(box), outline=(255, 255, 255))
    return np.asarray(image)


def _rect(box: Sequence[float]) -> list[float]:
    """PIL's inclusive corners of an x0, y0, x1, y1 box with exclusive x1, y1 (>= one pixel)."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    return [x0, y0, max(x1 - 1, x0), max(y1 - 1, y0)]
