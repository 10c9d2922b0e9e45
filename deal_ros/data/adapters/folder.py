"""A plain image folder (+ optional depth folder), for ``deal infer``: ``folder:DIR``.

Images: every file with an image suffix in ``DIR`` (``recursive=true``: and below), in sorted
path order. ``depth=DEPTH_DIR``: ``<same relative path, stem>.png`` (16-bit, x ``depth_scale``
= metres) or ``.npy`` (metres); every image needs one. No labels: ``labels`` is all zeros over
``classes=`` (empty by default), there is no mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deal_ros.data.adapters.base import (
    IMAGE_SUFFIXES,
    DatasetError,
    IndexedDataset,
    as_bool,
    as_float,
    check_depth_shape,
    depth_for,
    read_rgb,
    require_dir,
)
from deal_ros.data.sample import Sample

__all__ = ["FolderDataset"]


class FolderDataset(IndexedDataset):
    """Images of a folder as unlabelled :class:`Sample` (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        classes: Sequence[str] | None = None,
        depth: str | Path | None = None,
        depth_scale: float = 0.001,
        min_depth: float | None = None,
        max_depth: float | None = None,
        recursive: bool | str = False,
    ) -> None:
        self.root = require_dir(path, "folder")
        self.source = f"folder:{self.root}"
        self.classes = tuple(classes or ())
        pattern = "**/*" if as_bool(recursive, "recursive") else "*"
        self.depth_dir = require_dir(depth, "folder depth") if depth is not None else None
        self.paths = sorted(
            p
            for p in self.root.glob(pattern)
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and (self.depth_dir is None or self.depth_dir not in p.parents)
        )
        if not self.paths:
            raise DatasetError(f"folder: no images ({', '.join(IMAGE_SUFFIXES)}) in {self.root}")
        self.depth_scale = as_float(depth_scale, "folder: depth_scale")
        self.min_depth = as_float(min_depth, "folder: min_depth", optional=True)
        self.max_depth = as_float(max_depth, "folder: max_depth", optional=True)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> Sample:
        path = self.paths[index]
        rgb = read_rgb(path)
        rel = path.relative_to(self.root)
        folder = None if self.depth_dir is None else self.depth_dir / rel.parent
        depth, valid = depth_for(
            folder, path.stem, scale=self.depth_scale, min_m=self.min_depth, max_m=self.max_depth
        )
        check_depth_shape(rgb, depth, f"image {path}")
        return Sample(
            rgb=rgb,
            labels=np.zeros(len(self.classes), np.float32),
            depth=depth,
            valid=valid,
            meta={"source": self.source, "index": index, "path": str(path)},
        )
