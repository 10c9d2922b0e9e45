"""The torch side of the data: :class:`Sample` -> tensors, and the batch collate.

    ds = TorchSampleDataset(build_dataset("scene:n=100"), size=(240, 320), transform=aug)
    loader = DataLoader(ds, batch_size=8, sampler=DistributedSampler(ds),
                        collate_fn=collate_samples)

One item (``size = (H, W)``; K foreground classes):

- ``image``  (3,H,W) float32, ``(rgb / 255 - mean) / std`` (ImageNet statistics by default)
- ``depth``  (1,H,W) float32 metres, 0 where invalid or when the sample has no depth
- ``valid``  (1,H,W) bool, True where ``depth`` is a measurement
- ``labels`` (K,) float32 multi-hot
- ``mask``   (H,W) int64 class ids (0 background, 1..K, 255 ignore; all 255 without a mask)
- ``boxes``  (N,5) float32 rows ``[class_id, x0, y0, x1, y1]`` in output pixels
- ``has_depth``, ``has_mask`` () bool, ``index`` () int64, ``meta`` dict (a list in a batch)

Order of operations: the sample from the adapter -> ``transform`` (paired RGB-D
augmentation, see :mod:`deal_ros.data.transforms`) -> fit to ``size`` -> tensors.
Fit (``fit=``): ``"resize"`` stretches to ``size`` (default); ``"crop"`` scales to cover
``size`` keeping the aspect ratio, then centre-crops; ``"pad"`` scales to fit inside, then
pads (image with the mean colour, i.e. 0 after normalisation; depth invalid; mask 255).
Depth is resampled with :func:`deal_ros.core.depth.resize_depth` (area when shrinking,
bilinear otherwise), so holes never turn into fake depth; masks with nearest neighbour.

Transforms: a :class:`deal_ros.data.transforms.Transform` (e.g. ``Compose([...])``) works on
an ``RGBD`` (rgb, depth, valid, mask, K from ``meta["K"]``); samples without depth pass as
all-invalid depth and come back without. Those transforms do not carry boxes: a sample's
boxes are dropped when such a transform runs. Any other callable gets the :class:`Sample`
(and an ``rng`` when it takes one) and returns a :class:`Sample`.

Randomness: before each item the transform is reseeded (``reseed``) from ``[seed, epoch,
index]`` (a callable taking ``rng`` gets ``np.random.default_rng([seed, epoch, index])``):
the same item in the same epoch is the same in any worker or rank. Call
:meth:`TorchSampleDataset.set_epoch` each epoch, as for ``DistributedSampler`` (with
``persistent_workers=True`` the workers keep the epoch they started with).
The dataset is a plain map-style dataset (``len`` + ``[i]``): ``DistributedSampler`` and any
sampler work, and it pickles for spawned workers when its adapter does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deal_ros.core.depth import resize_depth
from deal_ros.core.placement import FITS, placement
from deal_ros.data.adapters.base import IGNORE, DatasetError, as_size
from deal_ros.data.sample import Box, Sample, SampleDataset

__all__ = [
    "FITS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TorchSampleDataset",
    "collate_samples",
    "fit_sample",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------ numpy geometry
def _resize_rgb(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.BILINEAR))


def _resize_mask(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(mask).resize((hw[1], hw[0]), Image.NEAREST))


def _resize(s: Sample, hw: tuple[int, int]) -> Sample:
    h, w = s.rgb.shape[:2]
    if (h, w) == hw:
        return s
    depth = valid = None
    if s.depth is not None:
        mode = "area" if hw[0] <= h and hw[1] <= w else "bilinear"
        depth, valid = resize_depth(s.depth, s.valid, hw, mode=mode)
    sy, sx = hw[0] / h, hw[1] / w
    boxes = [Box(b.class_id, b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy) for b in s.boxes]
    meta = _with_camera(s.meta, lambda K: _scale_camera(K, sx, sy))
    return Sample(
        rgb=_resize_rgb(s.rgb, hw),
        labels=s.labels,
        depth=depth,
        valid=valid,
        mask=None if s.mask is None else _resize_mask(s.mask, hw),
        boxes=boxes,
        meta=meta,
    )


def _with_camera(meta: dict[str, Any], change: Callable[[np.ndarray], np.ndarray]) -> dict:
    """``meta`` with its camera matrix ``K`` (if any) changed like the pixels."""
    if meta.get("K") is None:
        return meta
    return {**meta, "K": change(np.asarray(meta["K"], np.float64).copy())}


def _scale_camera(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Pixel centres map as x' = (x + 0.5) * sx - 0.5 (as in :mod:`.transforms`)."""
    K[0, 0], K[0, 1], K[1, 1] = K[0, 0] * sx, K[0, 1] * sx, K[1, 1] * sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def _shift_camera(K: np.ndarray, x0: int, y0: int) -> np.ndarray:
    K[0, 2] -= x0
    K[1, 2] -= y0
    return K


def _window(s: Sample, y0: int, x0: int, hw: tuple[int, int], fill_rgb: np.ndarray) -> Sample:
    """The ``hw`` window at (y0, x0) (may reach outside: padded)."""
    h, w = s.rgb.shape[:2]
    H, W = hw
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + H, h), min(x0 + W, w)
    dy, dx = sy0 - y0, sx0 - x0
    src = (slice(sy0, sy1), slice(sx0, sx1))
    dst = (slice(dy, dy + sy1 - sy0), slice(dx, dx + sx1 - sx0))
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:] = fill_rgb
    rgb[dst] = s.rgb[src]
    depth = valid = mask = None
    if s.depth is not None:
        depth, valid = np.zeros(hw, np.float32), np.zeros(hw, bool)
        depth[dst], valid[dst] = s.depth[src], s.valid[src]
    if s.mask is not None:
        mask = np.full(hw, IGNORE, np.uint8)
        mask[dst] = s.mask[src]
    boxes = []
    for b in s.boxes:
        x0b, y0b = np.clip(b.x0 - x0, 0, W), np.clip(b.y0 - y0, 0, H)
        x1b, y1b = np.clip(b.x1 - x0, 0, W), np.clip(b.y1 - y0, 0, H)
        if x1b > x0b and y1b > y0b:
            boxes.append(Box(b.class_id, float(x0b), float(y0b), float(x1b), float(y1b)))
    return Sample(
        rgb=rgb,
        labels=s.labels,
        depth=depth,
        valid=valid,
        mask=mask,
        boxes=boxes,
        meta=_with_camera(s.meta, lambda K: _shift_camera(K, x0, y0)),
    )


def fit_sample(
    s: Sample, size: tuple[int, int], fit: str = "resize", mean: Sequence[float] = IMAGENET_MEAN
) -> Sample:
    """``s`` brought to exactly ``size`` = (H, W) by ``fit`` (see the module docstring; the
    geometry is :func:`deal_ros.core.placement.placement`)."""
    if fit not in FITS:
        raise DatasetError(f"fit={fit!r}: choose one of {', '.join(FITS)}")
    H, W = size
    if fit == "resize" or s.rgb.shape[:2] == (H, W):
        return _resize(s, (H, W))
    where = placement(s.rgb.shape[:2], (H, W), fit)
    s = _resize(s, (where.height, where.width))
    fill = np.clip(np.rint(np.asarray(mean) * 255), 0, 255).astype(np.uint8)
    return _window(s, -where.top, -where.left, (H, W), fill)


# ------------------------------------------------------------------ tensors
def _tensor(arr: np.ndarray, dtype: Any = None) -> torch.Tensor:
    """A tensor over a contiguous, writable copy when needed (PIL arrays are read-only)."""
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr)


def _rgbd_transform(transform: Any) -> bool:
    from deal_ros.data.transforms import Transform

    return isinstance(transform, Transform)


def _apply_rgbd(transform: Any, s: Sample) -> Sample:
    """Run an RGBD transform on a Sample (boxes dropped: RGBD does not carry them)."""
    from deal_ros.data.transforms import RGBD

    has_depth = s.depth is not None
    depth = s.depth if has_depth else np.zeros(s.rgb.shape[:2], np.float32)
    valid = s.valid if has_depth else np.zeros(s.rgb.shape[:2], bool)
    K = s.meta.get("K")
    out = transform(RGBD.from_arrays(s.rgb, depth, mask=s.mask, valid=valid, K=K))
    meta = dict(s.meta)
    if out.K is not None:
        meta["K"] = out.K
    return Sample(
        rgb=out.rgb,
        labels=s.labels,
        depth=out.depth if has_depth else None,
        valid=out.valid if has_depth else None,
        mask=out.mask,
        meta=meta,
    )


def _takes_rng(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if "rng" in params:
        return True
    positional = [
        p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params.values())


class TorchSampleDataset(Dataset):
    """A :class:`SampleDataset` as a torch map-style dataset (see the module docstring)."""

    def __init__(
        self,
        dataset: SampleDataset,
        size: Any = None,
        *,
        transform: Callable[..., Sample] | None = None,
        fit: str = "resize",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        seed: int = 0,
    ) -> None:
        if fit not in FITS:
            raise DatasetError(f"fit={fit!r}: choose one of {', '.join(FITS)}")
        self.dataset = dataset
        self.classes = tuple(dataset.classes)
        self.size = as_size(size, "size")
        self.transform = transform
        self._rgbd = transform is not None and _rgbd_transform(transform)
        self._transform_rng = transform is not None and not self._rgbd and _takes_rng(transform)
        self.fit = fit
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise DatasetError(f"mean/std: need 3 values each, std > 0; got {mean}, {std}")
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def sample(self, index: int) -> Sample:
        """The transformed, fitted :class:`Sample` of item ``index`` (before tensors)."""
        s = self.dataset[index]
        if self.transform is not None:
            key = [self.seed, self.epoch, int(index)]
            if hasattr(self.transform, "reseed"):
                self.transform.reseed(np.random.SeedSequence(key))
            if self._rgbd:
                s = _apply_rgbd(self.transform, s)
            elif self._transform_rng:
                s = self.transform(s, np.random.default_rng(key))
            else:
                s = self.transform(s)
        if self.size is not None:
            s = fit_sample(s, self.size, self.fit, self.mean)
        return s

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.to_tensors(self.sample(index), index)

    def to_tensors(self, s: Sample, index: int) -> dict[str, Any]:
        """A fitted :class:`Sample` -> the item dict. The arithmetic runs in numpy on
        contiguous arrays (torch ops on the permuted uint8 image ran 5-50x slower here, on a
        busy 2-core machine), then ``torch.from_numpy`` shares the result."""
        h, w = s.rgb.shape[:2]
        scale = np.float32(1.0 / 255.0) / np.asarray(self.std, np.float32)
        shift = np.asarray(self.mean, np.float32) / np.asarray(self.std, np.float32)
        chw = np.ascontiguousarray(s.rgb.transpose(2, 0, 1), dtype=np.float32)
        chw *= scale[:, None, None]
        chw -= shift[:, None, None]
        if s.depth is not None:
            valid = np.asarray(s.valid, dtype=bool)
            depth = np.where(valid, s.depth, np.float32(0)).astype(np.float32, copy=False)
        else:
            valid = np.zeros((h, w), bool)
            depth = np.zeros((h, w), np.float32)
        mask = np.full((h, w), IGNORE, np.int64) if s.mask is None else s.mask.astype(np.int64)
        boxes = np.asarray(
            [[b.class_id, b.x0, b.y0, b.x1, b.y1] for b in s.boxes], np.float32
        ).reshape(-1, 5)
        return {
            "image": torch.from_numpy(chw),
            "depth": _tensor(depth[None]),
            "valid": _tensor(valid[None]),
            "labels": _tensor(np.asarray(s.labels, np.float32)),
            "mask": torch.from_numpy(mask),
            "boxes": torch.from_numpy(boxes),
            "has_depth": torch.tensor(s.depth is not None),
            "has_mask": torch.tensor(s.mask is not None),
            "index": torch.tensor(int(index), dtype=torch.long),
            "meta": dict(s.meta),
        }


_LISTS = ("boxes", "meta")


def collate_samples(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of :meth:`TorchSampleDataset.__getitem__` items; ``boxes`` and
    ``meta`` stay lists (one entry per item). Different image sizes fail with one line (give
    the dataset a ``size``)."""
    if not items:
        raise DatasetError("collate_samples: empty batch")
    shapes = {tuple(it["image"].shape) for it in items}
    if len(shapes) > 1:
        raise DatasetError(
            f"collate_samples: images of different sizes {sorted(shapes)} in one batch; give "
            "TorchSampleDataset a size= to resize/crop them"
        )
    ks = {int(it["labels"].shape[0]) for it in items}
    if len(ks) > 1:
        raise DatasetError(f"collate_samples: label vectors of different lengths {sorted(ks)}")
    out: dict[str, Any] = {k: [it[k] for it in items] for k in _LISTS}
    for key in items[0]:
        if key not in _LISTS:
            out[key] = torch.stack([it[key] for it in items])
    return out
