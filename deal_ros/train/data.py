"""From a dataset spec to training batches: adapters, resizing, augmentation, sampling.

* ``open_dataset(spec, cfg)`` builds the adapter (``deal_ros.data.registry.build_dataset``)
  with the config's data options (``labels``, ``rgb_topic``, ``depth_topic``, ``data_options``).
* ``TrainItems`` turns samples into tensors at the network input size: the image is scaled to
  cover the input (aspect kept), then (training) randomly scaled, flipped, colour-jittered and
  cropped, or (no augmentation) centre-cropped. Depth, validity and labels follow the geometry
  (``deal_ros.data.transforms``: nearest for depth and labels, so holes never blend).
  The randomness of item ``i`` in epoch ``e`` comes from ``SeedSequence([seed, e, i])`` only,
  so any worker count, any resume point and any rank gives the same augmented item.
  With ``augment.mosaic`` = p, a share p of the items are a 2 x 2 mosaic of the item and
  three others drawn from the same seed, each augmented, then halved (``deal_ros.data.mosaic``);
  a mosaic carries no depth (all invalid), so DEAL learns from whole frames only.
* ``EpochBatches`` (``deal_ros.engine.sampler``, the engine's batch sampler) yields the
  ``(index, epoch)`` keys ``TrainItems`` takes.

The ground-truth ``mask`` of a sample is never handed to training: ``target`` is a pseudo label
(seg stage) or all-ignore (cam stage).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deal_ros.data.mosaic import mosaic, mosaic_labels, quadrants
from deal_ros.data.sample import Sample, SampleDataset
from deal_ros.data.transforms import RGBD, ColorJitter, Compose, HorizontalFlip, RandomScale, crop
from deal_ros.data.transforms import resize as resize_rgbd
from deal_ros.engine.sampler import EpochBatches as EpochBatches  # its old home
from deal_ros.errors import DealError
from deal_ros.train.config import AugmentConfig, TrainConfig

IGNORE = 255


def dataset_options(cfg: TrainConfig) -> dict[str, Any]:
    """Adapter keyword options from the config (only those that are set)."""
    opts = dict(cfg.data_options)
    for key in ("labels", "rgb_topic", "depth_topic"):
        value = getattr(cfg, key)
        if value is not None:
            opts[key] = value
    return opts


def open_dataset(
    spec: str | None,
    cfg: TrainConfig,
    classes: Sequence[str] | None = None,
    what: str = "data",
    options: dict[str, Any] | None = None,
) -> SampleDataset:
    """The dataset of ``spec`` (``data=...``) with the config's options and classes."""
    if not spec:
        raise DealError(f"{what}: no dataset given (set {what}=PATH, e.g. {what}=./episodes)")
    from deal_ros.data.registry import build_dataset

    opts = dataset_options(cfg) if options is None else dict(options)
    ds = build_dataset(spec, classes=list(classes) if classes else cfg.classes, **opts)
    if len(ds) == 0:
        raise DealError(f"{what} '{spec}': holds no samples")
    if not ds.classes:
        raise DealError(f"{what} '{spec}': no classes (give classes=[...] or a labels file)")
    return ds


def cover_factor(hw: tuple[int, int], size: tuple[int, int]) -> float:
    """Scale that makes an image of ``hw`` cover ``size`` (aspect ratio kept)."""
    return max(size[0] / hw[0], size[1] / hw[1])


def to_rgbd(sample: Sample, target: np.ndarray | None) -> RGBD:
    h, w = sample.rgb.shape[:2]
    if sample.depth is None:
        depth, valid = np.zeros((h, w), np.float32), np.zeros((h, w), bool)
    else:
        depth, valid = sample.depth, sample.valid
    return RGBD.from_arrays(sample.rgb, depth, mask=target, valid=valid)


def centre_crop(s: RGBD, size: tuple[int, int]) -> RGBD:
    h, w = s.shape
    return crop(s, (h - size[0]) // 2, (w - size[1]) // 2, size[0], size[1])


def random_crop(s: RGBD, size: tuple[int, int], rng: np.random.Generator) -> RGBD:
    (h, w), (ch, cw) = s.shape, size
    y0 = int(rng.integers(0, h - ch + 1)) if h >= ch else -int(rng.integers(0, ch - h + 1))
    x0 = int(rng.integers(0, w - cw + 1)) if w >= cw else -int(rng.integers(0, cw - w + 1))
    return crop(s, y0, x0, ch, cw)


class TrainItems(torch.utils.data.Dataset):
    """Samples -> dicts of tensors at the input size (see the module docstring).

    ``targets``: optional callable ``index -> (H, W) uint8`` label map at the sample's size
    (pseudo labels). ``cache``: keep each sample after the cover resize (uint8 RGB, float32
    depth) in memory.
    """

    def __init__(
        self,
        samples: SampleDataset,
        size: tuple[int, int],
        augment: AugmentConfig | None = None,
        seed: int = 0,
        targets: Any = None,
        cache: bool = False,
    ) -> None:
        self.samples = samples
        self.size = (int(size[0]), int(size[1]))
        self.augment = augment
        self.seed = int(seed)
        self.targets = targets
        self.cache: dict[int, tuple[RGBD, np.ndarray]] | None = {} if cache else None
        self.num_classes = len(samples.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def base(self, index: int) -> tuple[RGBD, np.ndarray]:
        """The sample scaled to cover the input size, and its image-level labels."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        sample = self.samples[index]
        target = None if self.targets is None else self.targets(index)
        if target is not None and target.shape != sample.rgb.shape[:2]:
            raise DealError(
                f"pseudo label of sample {index} is {target.shape[0]}x{target.shape[1]} but the "
                f"image is {sample.rgb.shape[0]}x{sample.rgb.shape[1]}"
            )
        labels = np.asarray(sample.labels, np.float32)
        if labels.shape != (self.num_classes,):
            raise DealError(
                f"sample {index}: {labels.shape[0]} labels for {self.num_classes} classes"
            )
        rgbd = to_rgbd(sample, target)
        factor = cover_factor(rgbd.shape, self.size)
        if abs(factor - 1.0) > 1e-6:
            rgbd = resize_rgbd(rgbd, factor)
        item = (rgbd, labels)
        if self.cache is not None:
            self.cache[index] = item
        return item

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = (key, 0) if isinstance(key, (int, np.integer)) else key
        index, epoch = int(index), int(epoch)
        a = self.augment
        if a is None:
            rgbd, labels = self.base(index)
            rgbd = centre_crop(rgbd, self.size)
        else:
            *streams, pick_seed = np.random.SeedSequence([self.seed, epoch, index]).spawn(4)
            pick = np.random.default_rng(pick_seed)
            if a.mosaic > 0 and len(self) > 1 and pick.random() < a.mosaic:
                rgbd, labels = self._mosaic(index, epoch, pick)
            else:
                rgbd, labels = self._augmented(index, streams)
        target = rgbd.mask if rgbd.mask is not None else np.full(self.size, IGNORE, np.uint8)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(rgbd.rgb)).permute(2, 0, 1).float()
            / 255.0,
            "depth": torch.from_numpy(rgbd.depth)[None],
            "valid": torch.from_numpy(rgbd.valid)[None],
            "labels": torch.from_numpy(labels),
            "target": torch.from_numpy(target.astype(np.int64)),
            "index": index,
        }

    def _augmented(
        self,
        index: int,
        streams: Sequence[np.random.SeedSequence],
        size: tuple[int, int] | None = None,
        shrink: float = 1.0,
    ) -> tuple[RGBD, np.ndarray]:
        """Sample ``index`` scaled (the scale range times ``shrink``), flipped, jittered and
        cropped to ``size`` (default: the input size); ``streams``: the seeds of the geometry,
        the colour and the crop."""
        rgbd, labels = self.base(index)
        geo, colour, crop_seed = streams
        a = self.augment
        lo, hi = a.scale[0] * shrink, a.scale[1] * shrink
        ops = [RandomScale((lo, hi))] if lo != 1 or hi != 1 else []
        ops += [HorizontalFlip(0.5)] if a.hflip else []
        if ops:
            rgbd = Compose(ops, seed=geo)(rgbd)
        if a.color_jitter > 0:
            j = a.color_jitter
            rgbd = ColorJitter(j, j, j, hue=0.0, seed=colour)(rgbd)
        crop_rng = np.random.default_rng(crop_seed)
        return random_crop(rgbd, size or self.size, crop_rng), labels

    def _mosaic(self, index: int, epoch: int, pick: np.random.Generator) -> tuple[RGBD, np.ndarray]:
        """Item ``index`` and three others, each at half size in its quadrant; no depth (DEAL
        learns from whole frames), labels joined."""
        others = [int(j) for j in pick.integers(0, len(self), size=3)]
        tiles = [
            self._augmented(
                j, np.random.SeedSequence([self.seed, epoch, index, k]).spawn(3), hw, 0.5
            )
            for k, (j, hw) in enumerate(zip([index, *others], quadrants(*self.size)))
        ]
        joined = mosaic([t[0] for t in tiles], keep_depth=False)
        return joined, mosaic_labels([t[1] for t in tiles])

    def prefill(self) -> None:
        """Fill the cache now (before workers fork, so they share it)."""
        if self.cache is not None:
            for i in range(len(self)):
                self.base(i)


def image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1] (a read-only array, e.g. a frame
    decoded from a bag buffer, is copied: torch.from_numpy warns on read-only memory)."""
    rgb = np.ascontiguousarray(rgb) if rgb.flags.writeable else np.array(rgb, order="C")
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def resize_image(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of an image batch (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def read_label_png(path: Path) -> np.ndarray:
    """A mono8 label PNG -> (H, W) uint8 (one line naming the file when unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "P"):
                raise DealError(f"label PNG {path}: expected mono8 (mode L), got mode {img.mode}")
            return np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise DealError(f"label PNG {path}: not found") from None
    except OSError as exc:
        raise DealError(f"label PNG {path}: cannot be read ({exc})") from None


def write_label_png(path: Path, labels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8))).save(path)
