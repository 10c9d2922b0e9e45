"""PASCAL VOC layout: ``voc:DIR``.

```
DIR/                                # VOC2012 (or a VOCdevkit holding one VOC20xx folder)
  JPEGImages/<id>.jpg
  SegmentationClass/<id>.png        # palette PNG of class ids (0 bg, 1..20, 255 = void edge)
  Annotations/<id>.xml              # objects (name, bndbox) -> image labels and boxes
  ImageSets/Segmentation/<split>.txt   # ids, one a line (falls back to ImageSets/Main)
depth=DEPTH_DIR                     # optional: <id>.png (16-bit, x depth_scale = m) or <id>.npy (m)
```

Image-level labels (``labels_from``): ``"masks"`` (the classes present in the class mask),
``"xml"`` (every object in the annotation, ``difficult`` ones included), or ``"auto"``
(the mask when the image has one, else the XML: the usual SBD ``train_aug`` set has masks for
few images only). Boxes come from the XML when it exists (VOC's 1-based inclusive corners ->
pixel edges). ``vocabulary=`` replaces VOC's 20 names for a custom dataset in this layout.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from deal_ros.data.adapters.base import (
    ClassMap,
    DatasetError,
    IndexedDataset,
    as_float,
    check_depth_shape,
    depth_for,
    find_file,
    read_label_png,
    read_rgb,
    require_dir,
    select_classes,
)
from deal_ros.data.sample import Box, Sample

__all__ = ["VOC_CLASSES", "VOCDataset"]

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
LABELS_FROM = ("auto", "masks", "xml")


def _voc_root(path: Path) -> Path:
    if (path / "JPEGImages").is_dir():
        return path
    inner = sorted(p for p in path.glob("VOC*") if (p / "JPEGImages").is_dir())
    if len(inner) == 1:
        return inner[0]
    raise DatasetError(f"voc: {path / 'JPEGImages'} does not exist (not a VOC folder)")


class VOCDataset(IndexedDataset):
    """PASCAL VOC segmentation split as :class:`Sample` (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        split: str = "train",
        classes: Sequence[str] | None = None,
        depth: str | Path | None = None,
        depth_scale: float = 0.001,
        min_depth: float | None = None,
        max_depth: float | None = None,
        labels_from: str = "auto",
        others: str = "background",
        vocabulary: Sequence[str] | None = None,
    ) -> None:
        self.root = _voc_root(require_dir(path, "voc"))
        self.source = f"voc:{self.root}"
        if labels_from not in LABELS_FROM:
            raise DatasetError(f"voc: labels_from={labels_from!r}: choose {', '.join(LABELS_FROM)}")
        self.labels_from = labels_from
        self.vocabulary = tuple(vocabulary) if vocabulary is not None else VOC_CLASSES
        self.classes = select_classes(self.vocabulary, classes, "voc", open_set=False)
        self.map = ClassMap(self.vocabulary, self.classes, others)
        self.split = split
        self.ids = self._read_split(split)
        self.depth_dir = require_dir(depth, "voc depth") if depth is not None else None
        self.depth_scale = as_float(depth_scale, "voc: depth_scale")
        self.min_depth = as_float(min_depth, "voc: min_depth", optional=True)
        self.max_depth = as_float(max_depth, "voc: max_depth", optional=True)
        self._check_label_sources()

    def _read_split(self, split: str) -> list[str]:
        sets = self.root / "ImageSets"
        for sub in ("Segmentation", "Main"):
            f = sets / sub / f"{split}.txt"
            if f.is_file():
                ids = [line.split()[0] for line in f.read_text().splitlines() if line.strip()]
                if not ids:
                    raise DatasetError(f"voc: split file {f} lists no images")
                return ids
        raise DatasetError(
            f"voc: split file {sets / 'Segmentation' / f'{split}.txt'} does not exist"
        )

    def _mask_path(self, image_id: str) -> Path:
        return self.root / "SegmentationClass" / f"{image_id}.png"

    def _xml_path(self, image_id: str) -> Path:
        return self.root / "Annotations" / f"{image_id}.xml"

    def _check_label_sources(self) -> None:
        for image_id in self.ids:
            has_mask = self._mask_path(image_id).is_file()
            has_xml = self._xml_path(image_id).is_file()
            need = {"masks": has_mask, "xml": has_xml, "auto": has_mask or has_xml}
            if not need[self.labels_from]:
                missing = {"masks": self._mask_path(image_id), "xml": self._xml_path(image_id)}
                what = missing.get(
                    self.labels_from, f"{self._mask_path(image_id)} or {self._xml_path(image_id)}"
                )
                raise DatasetError(f"voc: no labels for image '{image_id}': {what} does not exist")

    def __len__(self) -> int:
        return len(self.ids)

    def _read_xml(self, path: Path) -> list[tuple[str, tuple[float, float, float, float]]]:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise DatasetError(f"voc: cannot parse {path}: {exc}") from None
        objects = []
        for obj in root.iter("object"):
            name = (obj.findtext("name") or "").strip()
            bb = obj.find("bndbox")
            try:
                x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                raise DatasetError(f"voc: object '{name}' in {path} has no valid bndbox") from None
            objects.append((name, (x0 - 1, y0 - 1, x1, y1)))
        return objects

    def _load(self, index: int) -> Sample:
        image_id = self.ids[index]
        img_path = find_file(self.root / "JPEGImages", image_id, (".jpg", ".jpeg", ".png"), "voc")
        rgb = read_rgb(img_path)
        mask = None
        if self._mask_path(image_id).is_file():
            mask = self.map.remap(
                read_label_png(self._mask_path(image_id)), str(self._mask_path(image_id))
            )
        objects = (
            self._read_xml(self._xml_path(image_id)) if self._xml_path(image_id).is_file() else []
        )
        xml_labels = self.map.labels([n for n, _ in objects], str(self._xml_path(image_id)))
        use_mask = self.labels_from == "masks" or (self.labels_from == "auto" and mask is not None)
        labels = self.map.labels_from_mask(mask) if use_mask else xml_labels
        boxes = [Box(self.map.id_of(n), *xyxy) for n, xyxy in objects if self.map.id_of(n)]
        depth, valid = depth_for(
            self.depth_dir,
            image_id,
            scale=self.depth_scale,
            min_m=self.min_depth,
            max_m=self.max_depth,
        )
        check_depth_shape(rgb, depth, f"voc image {img_path}")
        if mask is not None and mask.shape != rgb.shape[:2]:
            raise DatasetError(
                f"voc: mask {self._mask_path(image_id)} is {mask.shape} but "
                f"image {img_path} is {rgb.shape[:2]}"
            )
        return Sample(
            rgb=rgb,
            labels=labels,
            depth=depth,
            valid=valid,
            mask=mask,
            boxes=boxes,
            meta={"source": self.source, "index": index, "id": image_id, "path": str(img_path)},
        )
