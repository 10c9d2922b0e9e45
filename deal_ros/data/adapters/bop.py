"""BOP / HOPE layout: ``bop:DIR``.

```
DIR/<split>/<scene 000001>/
  rgb/<im 000000>.png|.jpg
  depth/<im>.png                    # 16-bit; metres = raw x depth_scale x 0.001
  mask_visib/<im>_<gt 000000>.png   # visible mask of scene_gt[im][gt] (255 = object)
  scene_gt.json                     # {"<im>": [{"obj_id": 1, ...}, ...]}
  scene_camera.json                 # {"<im>": {"cam_K": [...], "depth_scale": 0.1}}
  scene_gt_info.json                # optional: {"<im>": [{"bbox_visib": [x,y,w,h],
                                    #                      "px_count_visib": n, ...}]}
DIR/models/models_info.json         # optional: the object ids of the dataset
```

``DIR`` may also be one split folder. Image-level labels: the objects of ``scene_gt`` that
are visible (``px_count_visib > 0`` when ``scene_gt_info.json`` exists; else every listed
object); boxes: ``bbox_visib``. Class mask (for evaluation): the ``mask_visib`` PNGs painted
in ``scene_gt`` order (``mask_visib`` are disjoint); no ``mask_visib`` folder -> no mask.
Class names: ``names=`` maps object ids to names (a dict, or a .json/.yaml file of
``{id: name}``), else ``obj_000001``. Vocabulary: the ids of ``names=``, else of
``models_info.json``, else every id in the selected scenes, in id order. ``scenes=``
restricts to some scene ids (``"1,3"`` or a list).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deal_ros.data.adapters.base import (
    ClassMap,
    DatasetError,
    IndexedDataset,
    as_bool,
    as_float,
    check_depth_shape,
    find_file,
    read_depth_file,
    read_label_png,
    read_rgb,
    require_dir,
    select_classes,
)
from deal_ros.data.sample import Box, Sample

__all__ = ["BOPDataset", "bop_name"]


def bop_name(obj_id: int) -> str:
    return f"obj_{obj_id:06d}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"bop: file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"bop: cannot read {path}: {exc}") from None


def _read_names(names: Any) -> dict[int, str]:
    if isinstance(names, (str, Path)):
        path = Path(names)
        if not path.is_file():
            raise DatasetError(f"bop: names file {path} does not exist")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            names = yaml.safe_load(path.read_text())
        else:
            names = _read_json(path)
    if not isinstance(names, dict):
        raise DatasetError(f"bop: names= must map object ids to names, got {type(names).__name__}")
    try:
        return {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        raise DatasetError("bop: names= keys must be object ids (integers)") from None


class BOPDataset(IndexedDataset):
    """A BOP split (e.g. HOPE val) as :class:`Sample` (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        split: str = "val",
        classes: Sequence[str] | None = None,
        names: dict[int, str] | str | Path | None = None,
        scenes: Sequence[int] | str | None = None,
        depth: bool | str = True,
        masks: bool | str = True,
        min_depth: float | None = 0.1,
        max_depth: float | None = 10.0,
        others: str = "background",
    ) -> None:
        root = require_dir(path, "bop")
        self.split = split
        self.split_dir = root / split if (root / split).is_dir() else root
        self.root = root if self.split_dir != root else root.parent
        self.source = f"bop:{self.split_dir}"
        scene_dirs = self._scene_dirs(scenes)
        self.use_depth, self.use_masks = as_bool(depth, "depth"), as_bool(masks, "masks")
        self.min_depth = as_float(min_depth, "bop: min_depth", optional=True)
        self.max_depth = as_float(max_depth, "bop: max_depth", optional=True)
        self.frames: list[tuple[Path, str, dict[str, Any]]] = []
        ids_seen: set[int] = set()
        for sd in scene_dirs:
            gt = _read_json(sd / "scene_gt.json")
            cam = _read_json(sd / "scene_camera.json")
            info_path = sd / "scene_gt_info.json"
            info = _read_json(info_path) if info_path.is_file() else {}
            for im in sorted(gt, key=int):
                if im not in cam:
                    raise DatasetError(
                        f"bop: image {im} of {sd / 'scene_gt.json'} is missing "
                        f"from {sd / 'scene_camera.json'}"
                    )
                objs = gt[im]
                ids_seen.update(int(o["obj_id"]) for o in objs)
                self.frames.append((sd, im, {"gt": objs, "cam": cam[im], "info": info.get(im)}))
        self.names = self._names(names, ids_seen)
        self.vocabulary = tuple(self.names[i] for i in sorted(self.names))
        self.classes = select_classes(self.vocabulary, classes, "bop", open_set=False)
        self.map = ClassMap(self.vocabulary, self.classes, others)

    def _scene_dirs(self, scenes: Sequence[int] | str | None) -> list[Path]:
        found = sorted(
            p for p in self.split_dir.iterdir() if p.is_dir() and (p / "scene_gt.json").is_file()
        )
        if scenes is not None:
            if isinstance(scenes, str):
                scenes = [s for s in scenes.split(",") if s.strip()]
            want = {int(s) for s in scenes}
            by_id = {int(p.name): p for p in found if p.name.isdigit()}
            missing = sorted(want - set(by_id))
            if missing:
                raise DatasetError(f"bop: scene(s) {missing} not found in {self.split_dir}")
            found = [by_id[s] for s in sorted(want)]
        if not found:
            raise DatasetError(
                f"bop: no scene folder with scene_gt.json in {self.split_dir}"
                + (
                    f" (and no split folder {self.split_dir / self.split})"
                    if self.split_dir.name != self.split
                    else ""
                )
            )
        return found

    def _names(self, names: Any, ids_seen: set[int]) -> dict[int, str]:
        if names is not None:
            mapping = _read_names(names)
            for sd, _, rec in self.frames:
                for o in rec["gt"]:
                    if int(o["obj_id"]) not in mapping:
                        raise DatasetError(
                            f"label (obj_id {o['obj_id']}) in {sd / 'scene_gt.json'} is not in "
                            "names=; known classes: " + ", ".join(mapping.values())
                        )
            return mapping
        info = self.root / "models" / "models_info.json"
        ids = {int(k) for k in _read_json(info)} | ids_seen if info.is_file() else ids_seen
        return {i: bop_name(i) for i in sorted(ids)}

    def __len__(self) -> int:
        return len(self.frames)

    def _visible(self, rec: dict[str, Any]) -> list[bool]:
        info = rec["info"]
        if info is None:
            return [True] * len(rec["gt"])
        return [int(i.get("px_count_visib", 1)) > 0 for i in info]

    def _load(self, index: int) -> Sample:
        sd, im, rec = self.frames[index]
        stem = f"{int(im):06d}"
        img_path = find_file(sd / "rgb", stem, (".png", ".jpg", ".jpeg", ".tif"), "bop rgb")
        rgb = read_rgb(img_path)
        visible = self._visible(rec)
        names = [self.names[int(o["obj_id"])] for o in rec["gt"]]
        labels = self.map.labels([n for n, v in zip(names, visible) if v], str(sd))
        boxes = []
        for k, (name, v) in enumerate(zip(names, visible)):
            cid = self.map.id_of(name)
            if v and cid and rec["info"] is not None and "bbox_visib" in rec["info"][k]:
                x, y, w, h = (float(t) for t in rec["info"][k]["bbox_visib"])
                boxes.append(Box(cid, x, y, x + w, y + h))
        depth = valid = None
        if self.use_depth:
            scale = float(rec["cam"].get("depth_scale", 1.0)) * 0.001
            depth_path = find_file(sd / "depth", stem, (".png", ".tif"), "bop depth")
            depth, valid = read_depth_file(
                depth_path, scale=scale, min_m=self.min_depth, max_m=self.max_depth
            )
            check_depth_shape(rgb, depth, f"bop image {img_path}")
        mask = self._mask(sd, stem, names, rgb.shape[:2]) if self.use_masks else None
        meta = {
            "source": self.source,
            "index": index,
            "scene": int(sd.name) if sd.name.isdigit() else sd.name,
            "image": int(im),
            "path": str(img_path),
        }
        if "cam_K" in rec["cam"]:
            meta["K"] = np.asarray(rec["cam"]["cam_K"], np.float64).reshape(3, 3)
        return Sample(
            rgb=rgb, labels=labels, depth=depth, valid=valid, mask=mask, boxes=boxes, meta=meta
        )

    def _mask(
        self, sd: Path, stem: str, names: list[str], hw: tuple[int, int]
    ) -> np.ndarray | None:
        folder = sd / "mask_visib"
        if not folder.is_dir():
            return None
        mask = np.zeros(hw, np.uint8)
        for k, name in enumerate(names):
            path = folder / f"{stem}_{k:06d}.png"
            if not path.is_file():
                raise DatasetError(f"bop: mask {path} does not exist ({name} in scene_gt)")
            m = read_label_png(path) > 127
            if m.shape != hw:
                raise DatasetError(f"bop: mask {path} is {m.shape} but the image is {hw}")
            cid = self.map.id_of(name)
            mask[m] = cid if cid else (0 if self.map.others == "background" else 255)
        return mask
