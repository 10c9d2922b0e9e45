"""The optional depth folder beside an image set (``depth=DIR``), shared by the file adapters.

Options, as every file adapter takes them: ``depth`` (a folder of ``<image stem>.png`` 16-bit,
x ``depth_scale`` = metres, or ``.npy`` / ``.tif`` metres), ``depth_scale``, ``min_depth`` and
``max_depth`` (metres; outside = invalid). Without ``depth`` a sample has no depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deal_ros.data.adapters.base import as_float, check_depth_shape, depth_for, require_dir

__all__ = ["DepthFolder"]


@dataclass(frozen=True)
class DepthFolder:
    """Checked depth options of one adapter; ``load`` reads the depth of one image."""

    directory: Path | None
    scale: float = 0.001
    min_m: float | None = None
    max_m: float | None = None

    @classmethod
    def from_options(
        cls,
        adapter: str,
        depth: str | Path | None,
        depth_scale: float | str,
        min_depth: float | str | None,
        max_depth: float | str | None,
    ) -> DepthFolder:
        """Check the options; errors name ``adapter`` ("coco: depth_scale ...")."""
        return cls(
            directory=require_dir(depth, f"{adapter} depth") if depth is not None else None,
            scale=as_float(depth_scale, f"{adapter}: depth_scale"),
            min_m=as_float(min_depth, f"{adapter}: min_depth", optional=True),
            max_m=as_float(max_depth, f"{adapter}: max_depth", optional=True),
        )

    def load(
        self, rgb: np.ndarray, stem: str, where: str, subfolder: Path | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(depth metres, valid) of the image ``stem`` (in ``subfolder`` of the depth folder),
        or (None, None) without a depth folder; a missing file or a size other than the
        image's fails, naming ``where``."""
        folder = self.directory
        if folder is not None and subfolder is not None:
            folder = folder / subfolder
        depth, valid = depth_for(folder, stem, scale=self.scale, min_m=self.min_m, max_m=self.max_m)
        check_depth_shape(rgb, depth, where)
        return depth, valid
