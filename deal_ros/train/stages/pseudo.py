"""Stage ``pseudo``: CAMs -> background threshold -> dense CRF -> label PNGs.

For every training image (no augmentation):

1. CAMs at several scales and their horizontal flips (``labeling.scales``, ``flip``): the
   ReLU'd CAM logits of each pass are resized to the input size and summed, then every map is
   divided by its maximum (IRN / SEAM's multi-scale inference), giving CAMs in [0, 1],
   bilinearly resized to the image's own size.
2. Classes absent from the image-level labels are dropped; the background scores the constant
   ``bg_threshold`` (the usual WSSS rule: a pixel is background where no CAM exceeds it).
3. Dense CRF (``deal_ros.refine.dense_crf``) on p = [t, cam_1, ..] / sum (present classes
   only), or the plain argmax with ``crf: false``.
4. Uncertain pixels -> 255 (ignore): refined probability below ``min_confidence``, or best
   CAM score within ``ignore_margin`` of the threshold (both off by default; our choice).

Output folder (``<run>/pseudo`` by default): ``<index:06d>.png`` mono8 class ids (0 background,
k = classes[k-1], 255 ignore) at each image's size, and ``pseudo.yaml`` naming the data, the
classes, the run and the settings, so ``deal train --config seg pseudo=<folder>`` needs nothing
else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from deal_ros import __version__
from deal_ros.data.sample import Sample, SampleDataset
from deal_ros.engine.runfolder import read_yaml, write_yaml
from deal_ros.errors import DealError
from deal_ros.train.config import LabelingConfig, TrainConfig, to_dict
from deal_ros.train.data import IGNORE, image_tensor, read_label_png, resize_image, write_label_png

PSEUDO_FORMAT = 1
PATTERN = "{index:06d}.png"


@torch.no_grad()
def multiscale_cams(
    net: torch.nn.Module, images: torch.Tensor, scales: Sequence[float], flip: bool
) -> torch.Tensor:
    """(B,3,H,W) in [0,1] -> (B,K,H,W) CAMs in [0,1] from all scales (and flips)."""
    h, w = images.shape[-2:]
    acc = None
    for s in scales:
        size = (max(8, round(h * s)), max(8, round(w * s)))
        x = resize_image(images, size)
        if flip:
            x = torch.cat([x, x.flip(-1)])
        cam = F.relu(net(x)["cam_logits"].float())
        if flip:
            b = images.shape[0]
            cam = cam[:b] + cam[b:].flip(-1)
        cam = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)
        acc = cam if acc is None else acc + cam
    peak = acc.amax(dim=(-2, -1), keepdim=True)
    return acc / (peak + 1e-5)


def sample_cams(
    net: torch.nn.Module,
    samples: Sequence[Sample],
    size: tuple[int, int],
    lab: LabelingConfig,
    device: torch.device,
) -> list[np.ndarray]:
    """CAMs (K, h, w) in [0, 1] of each sample at its own size (network input ``size``)."""
    x = torch.cat([resize_image(image_tensor(s.rgb), size) for s in samples]).to(device)
    cams = multiscale_cams(net, x, lab.scales, lab.flip)
    out = []
    for s, c in zip(samples, cams):
        hw = s.rgb.shape[:2]
        if tuple(c.shape[-2:]) != hw:
            c = F.interpolate(c[None], size=hw, mode="bilinear", align_corners=False)[0]
        out.append(c.clamp(0, 1).cpu().numpy())
    return out


def refine(rgb: np.ndarray, probs: np.ndarray, ids: np.ndarray, lab: LabelingConfig) -> np.ndarray:
    """Probabilities (P+1, h, w) over the class ids ``ids`` -> label map with ignores."""
    if lab.crf:
        from deal_ros.refine import dense_crf

        p = np.maximum(probs, 1e-5)
        q = dense_crf(
            rgb, p / p.sum(0, keepdims=True), iterations=lab.crf_iterations,
            gauss_sxy=lab.gauss_sxy, gauss_compat=lab.gauss_compat,
            bilateral_sxy=lab.bilateral_sxy, bilateral_srgb=lab.bilateral_srgb,
            bilateral_compat=lab.bilateral_compat, backend=lab.crf_backend,
        )  # fmt: skip
    else:
        q = probs / np.maximum(probs.sum(0, keepdims=True), 1e-12)
    out = ids[np.argmax(q, axis=0)].astype(np.uint8)
    if lab.min_confidence > 0:
        out[q.max(0) < lab.min_confidence] = IGNORE
    return out


def label_from_cams(
    rgb: np.ndarray, cams: np.ndarray, labels: np.ndarray, lab: LabelingConfig
) -> np.ndarray:
    """One image: CAMs (K, h, w) in [0,1] + image-level labels -> (h, w) uint8 pseudo label."""
    present = np.flatnonzero(np.asarray(labels) > 0)
    h, w = cams.shape[1:]
    if present.size == 0:
        return np.zeros((h, w), np.uint8)
    scores = cams[present]
    t = lab.bg_threshold
    probs = np.concatenate([np.full((1, h, w), max(t, 1e-5), np.float32), scores])
    ids = np.concatenate([[0], present + 1])
    out = refine(rgb, probs, ids, lab)
    if lab.ignore_margin > 0:
        out[np.abs(scores.max(0) - t) < lab.ignore_margin] = IGNORE
    return out


def batches(dataset: SampleDataset, size: int) -> Iterator[list[tuple[int, Sample]]]:
    chunk: list[tuple[int, Sample]] = []
    for i in range(len(dataset)):
        chunk.append((i, dataset[i]))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def make_pseudo_labels(
    run_dir: Path,
    cfg: TrainConfig,
    net: torch.nn.Module,
    dataset: SampleDataset,
    device: torch.device,
    out: Path | None = None,
    progress: bool = True,
    data_spec: str | None = None,
    data_options: dict[str, Any] | None = None,
) -> Path:
    """Write the pseudo labels of ``dataset`` (see the module docstring); returns the folder."""
    from deal_ros.train.data import dataset_options

    lab = cfg.labeling
    out = Path(out or lab.out or Path(run_dir) / "pseudo")
    out.mkdir(parents=True, exist_ok=True)
    net = net.to(device).eval()
    size = (cfg.input.height, cfg.input.width)
    ignored, total = 0, 0
    bar = tqdm(total=len(dataset), desc="pseudo labels", unit="img", disable=not progress)
    for chunk in batches(dataset, max(1, lab.batch_size)):
        cams = sample_cams(net, [s for _, s in chunk], size, lab, device)
        for (i, s), c in zip(chunk, cams):
            label = label_from_cams(s.rgb, c, s.labels, lab)
            write_label_png(out / PATTERN.format(index=i), label)
            ignored += int((label == IGNORE).sum())
            total += label.size
        bar.update(len(chunk))
    bar.close()
    write_pseudo_yaml(
        out, run_dir, cfg, dataset, source="cam", ignore_fraction=ignored / max(total, 1),
        data_spec=data_spec or cfg.data,
        data_options=dataset_options(cfg) if data_options is None else data_options,
    )  # fmt: skip
    return out


def write_pseudo_yaml(
    out: Path,
    run_dir: Path | None,
    cfg: TrainConfig,
    dataset: SampleDataset,
    source: str,
    ignore_fraction: float,
    data_spec: str | None,
    data_options: dict[str, Any],
) -> None:
    write_yaml(
        out / "pseudo.yaml",
        {
            "format": PSEUDO_FORMAT,
            "run": str(Path(run_dir).resolve()) if run_dir else None,
            "data": data_spec,
            "data_options": data_options,
            "classes": list(dataset.classes),
            "count": len(dataset),
            "pattern": PATTERN,
            "source": source,
            "ignore_fraction": round(float(ignore_fraction), 6),
            "labeling": to_dict(cfg.labeling),
            "software": f"deal_ros {__version__}",
        },
    )


class PseudoLabels:
    """A pseudo label folder: ``pseudo.yaml`` + ``<index>.png``; ``labels(i)`` reads one."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        meta_path = self.folder / "pseudo.yaml"
        if not self.folder.is_dir():
            raise DealError(f"pseudo={folder}: no such folder (make one with 'deal pseudo')")
        self.meta = read_yaml(meta_path, "pseudo labels")
        if int(self.meta.get("format", 0)) > PSEUDO_FORMAT:
            raise DealError(
                f"pseudo labels {meta_path}: format {self.meta['format']} is newer than this "
                f"deal_ros reads ({PSEUDO_FORMAT})"
            )
        for key in ("classes", "count", "pattern"):
            if key not in self.meta:
                raise DealError(f"pseudo labels {meta_path}: missing key '{key}'")
        self.classes = [str(c) for c in self.meta["classes"]]
        self.count = int(self.meta["count"])
        self.pattern = str(self.meta["pattern"])

    @property
    def run(self) -> Path | None:
        run = self.meta.get("run")
        return Path(run) if run else None

    def path(self, index: int) -> Path:
        return self.folder / self.pattern.format(index=index)

    def __call__(self, index: int) -> np.ndarray:
        path = self.path(index)
        label = read_label_png(path)
        bad = (label > len(self.classes)) & (label != IGNORE)
        if bad.any():
            value = int(label[bad][0])
            raise DealError(
                f"pseudo label {path}: class id {value} is not in the class list "
                f"(1..{len(self.classes)} = {', '.join(self.classes)}; 0 background, 255 ignore)"
            )
        return label

    def check(self, dataset: SampleDataset) -> None:
        if list(dataset.classes) != self.classes:
            raise DealError(
                f"pseudo labels {self.folder}: classes {self.classes} differ from the data's "
                f"{list(dataset.classes)}"
            )
        if len(dataset) != self.count:
            raise DealError(
                f"pseudo labels {self.folder}: {self.count} labels for {len(dataset)} samples "
                "(were they made from other data?)"
            )
        missing = [i for i in range(self.count) if not self.path(i).is_file()]
        if missing:
            raise DealError(
                f"pseudo labels {self.folder}: {len(missing)} label PNG(s) missing, first "
                f"{self.path(missing[0]).name}"
            )
