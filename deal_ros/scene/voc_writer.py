"""Write labelled RGB-D frames to disk in the PASCAL VOC layout (+ a 16-bit depth folder).

```
DIR/JPEGImages/<id>.jpg                   RGB, JPEG (quality 90 by default)
DIR/SegmentationClass/<id>.png            palette PNG of class ids (0 bg, k = class k, 255 ignore)
DIR/ImageSets/Segmentation/<split>.txt    ids, one a line (train, val)
DIR/depth/<id>.png                        16-bit millimetres, 0 = invalid (a RealSense 16UC1)
DIR/vocabulary.txt                        the class names, one a line (class id 1 first)
```

It is what ``voc:DIR`` reads back (``deal_ros.data.adapters.voc``):

    deal train --config scene data=voc:DIR data_options.split=train \\
        data_options.depth=DIR/depth data_options.vocabulary=[mug,box,ball,can] \\
        data_options.labels_from=masks
    deal eval run=RUN data=voc:DIR data_options.split=val what=cam

``write_scene_voc`` writes ``n_train`` + ``n_val`` scenes of a :class:`SceneGenerator`
(scene indices 0.. for train, the next ``n_val`` for val: disjoint, independent scenes).
``write_voc`` takes any iterable of frames, so other generators share the format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["VOCFrame", "voc_palette", "write_scene_voc", "write_voc"]

Array = np.ndarray


@dataclass
class VOCFrame:
    """One frame to write: RGB (H,W,3) uint8, depth (H,W) metres (0 = invalid), mask (H,W)
    uint8 class ids (0 background, 255 ignore)."""

    rgb: Array
    depth: Array
    mask: Array


def voc_palette() -> list[int]:
    """The 256-entry PASCAL VOC colour map, flattened (r, g, b, r, g, b, ...)."""
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


def depth_millimetres(depth: Array) -> Array:
    """Metres (0 / NaN / inf = invalid) -> uint16 millimetres, 0 = invalid, clipped at 65535."""
    d = np.asarray(depth, np.float64)
    ok = np.isfinite(d) & (d > 0)
    mm = np.where(ok, np.round(d * 1000.0), 0.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _write_frame(root: Path, image_id: str, frame: VOCFrame, quality: int, palette) -> None:
    from PIL import Image

    h, w = frame.mask.shape
    if frame.rgb.shape != (h, w, 3) or frame.depth.shape != (h, w):
        raise ValueError(
            f"write_voc: frame {image_id}: rgb {frame.rgb.shape}, depth {frame.depth.shape} and "
            f"mask {frame.mask.shape} disagree"
        )
    Image.fromarray(np.ascontiguousarray(frame.rgb, np.uint8)).save(
        root / "JPEGImages" / f"{image_id}.jpg", quality=quality
    )
    mask = Image.fromarray(np.ascontiguousarray(frame.mask, np.uint8), mode="P")
    mask.putpalette(palette)
    mask.save(root / "SegmentationClass" / f"{image_id}.png")
    Image.fromarray(depth_millimetres(frame.depth)).save(root / "depth" / f"{image_id}.png")


def write_voc(
    out: str | Path,
    splits: dict[str, Iterable[tuple[str, VOCFrame]]],
    classes: Sequence[str],
    quality: int = 90,
) -> Path:
    """Write ``{split: [(id, frame), ...]}`` under ``out`` (see the module docstring)."""
    root = Path(out)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "depth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    palette = voc_palette()
    for split, frames in splits.items():
        ids = []
        for image_id, frame in frames:
            _write_frame(root, image_id, frame, quality, palette)
            ids.append(image_id)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (root / "vocabulary.txt").write_text("\n".join(classes) + "\n")
    return root


def write_scene_voc(
    generator, out: str | Path, n_train: int = 160, n_val: int = 60, quality: int = 90
) -> Path:
    """``n_train`` + ``n_val`` scenes of ``generator`` (a SceneGenerator) as a VOC folder."""

    def frames(lo: int, hi: int, prefix: str):
        for i in range(lo, hi):
            s = generator.sample(i)
            yield f"{prefix}{i:05d}", VOCFrame(s.rgb, s.depth, s.mask)

    return write_voc(
        out,
        {"train": frames(0, n_train, "tr"), "val": frames(n_train, n_train + n_val, "va")},
        generator.classes,
        quality,
    )
