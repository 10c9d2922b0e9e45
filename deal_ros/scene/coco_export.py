"""Generated scenes written as a COCO instances dataset that ``coco:`` reads back.

    write_coco_split(scenes, "data/overlap", "train", classes)   # -> data/overlap/train.json

Layout of ``DIR`` (one folder for every split, so ``data=coco:DIR/train.json
data_options.depth=DIR/depth`` and ``deal eval data=coco:DIR/val.json`` share the depth folder):

- ``DIR/<split>.json``: COCO instances (images, annotations, categories 1..K in class order);
  each annotation has a compressed RLE ``segmentation`` (pycocotools' format, encoded here in
  plain Python: no pycocotools needed to write), its ``area``, its ``bbox`` (x, y, w, h, the
  tight box of the mask) and ``iscrowd`` 0.
- ``DIR/images/<split>_NNNNN.png``: RGB.
- ``DIR/depth/<split>_NNNNN.png``: 16-bit depth in millimetres, 0 = invalid (the RealSense
  convention; the adapters read it with ``depth_scale`` 0.001).

A scene is anything with ``rgb`` (H,W,3) uint8, ``depth`` (H,W) metres (0 = invalid),
``instance_masks`` (N,H,W) bool and ``instance_classes`` (N,) ids 1..K: the
:class:`~deal_ros.scene.generator.Scene` of every generator in ``deal_ros.scene``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.scene.voc_writer import depth_millimetres

__all__ = ["rle_encode", "scene_annotations", "write_coco_split"]


def _run_lengths(mask: np.ndarray) -> list[int]:
    """Run lengths of a bool mask in column-major order, starting with a run of zeros."""
    flat = np.asarray(mask, bool).reshape(-1, order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return [int(r) for r in runs]


def _counts_string(runs: list[int]) -> str:
    """pycocotools' ``rleToString``: each count (minus the count two before it, from the
    third on) as 5-bit groups, low first, 0x20 = more follows, offset by 48."""
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool -> COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    h, w = mask.shape
    return {"size": [int(h), int(w)], "counts": _counts_string(_run_lengths(mask))}


def _tight_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]


def scene_annotations(scene: Any, image_id: int, first_id: int) -> list[dict[str, Any]]:
    """The COCO annotations of one scene's instances (empty masks left out)."""
    anns = []
    for m, c in zip(scene.instance_masks, scene.instance_classes):
        m = np.asarray(m, bool)
        if not m.any():
            continue
        anns.append(
            {
                "id": first_id + len(anns),
                "image_id": int(image_id),
                "category_id": int(c),
                "segmentation": rle_encode(m),
                "area": float(m.sum()),
                "bbox": _tight_box(m),
                "iscrowd": 0,
            }
        )
    return anns


def _write_depth_png(path: Path, depth_m: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(depth_millimetres(depth_m)).save(path)


def write_coco_split(
    scenes: Iterable[Any], out_dir: str | Path, split: str, classes: Sequence[str]
) -> Path:
    """Write ``scenes`` as ``out_dir/<split>.json`` + images + depth (module docstring);
    returns the JSON path."""
    from PIL import Image

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "depth").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i, scene in enumerate(scenes):
        stem = f"{split}_{i:05d}"
        h, w = scene.rgb.shape[:2]
        Image.fromarray(np.asarray(scene.rgb, np.uint8)).save(out / "images" / f"{stem}.png")
        _write_depth_png(out / "depth" / f"{stem}.png", scene.depth)
        images.append({"id": i + 1, "file_name": f"{stem}.png", "height": h, "width": w})
        anns += scene_annotations(scene, i + 1, len(anns) + 1)
    data = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": k + 1, "name": str(c)} for k, c in enumerate(classes)],
    }
    path = out / f"{split}.json"
    path.write_text(json.dumps(data))
    return path
