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
    read_rgb,
    require_dir,
)
from deal_ros.data.adapters.depth_folder import DepthFolder
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
        self.depth = DepthFolder.from_options("folder", depth, depth_scale, min_depth, max_depth)
        depth_dir = self.depth.directory
        self.paths = sorted(
            p
            for p in self.root.glob(pattern)
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and (depth_dir is None or depth_dir not in p.parents)
        )
        if not self.paths:
            raise DatasetError(f"folder: no images ({', '.join(IMAGE_SUFFIXES)}) in {self.root}")

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> Sample:
        path = self.paths[index]
        rgb = read_rgb(path)
        sub = path.relative_to(self.root).parent
        depth, valid = self.depth.load(rgb, path.stem, f"image {path}", subfolder=sub)
        return Sample(
            rgb=rgb,
            labels=np.zeros(len(self.classes), np.float32),
            depth=depth,
            valid=valid,
            meta={"source": self.source, "index": index, "path": str(path)},
        )
