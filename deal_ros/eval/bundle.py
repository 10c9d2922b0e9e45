"""``deal eval model=BUNDLE data=SPEC``: score what the robot runs, the exported bundle.

The bundle runs through :class:`deal_ros.infer.Runtime` (ONNX Runtime, the segmenter node's
and ``deal infer``'s pre- and post-processing, the bundle's thresholds), on each sample at its
own size, so the figures include what export and deployment change (letterbox, thresholds,
TensorRT precision on a GPU).

* Semantic bundle: :class:`~deal_ros.eval.metrics.SegMetrics` of the ``~/mask`` class masks
  against the data's masks (mIoU, multi-class-only mIoU, pixel accuracy, IoU by class). No
  torch is imported: it runs on the robot.
* Instance bundle: COCO mask and box AP (:mod:`deal_ros.eval.coco`) of ``detect()`` against
  the data's instances, the ground truth ``deal eval run=<box run>`` uses
  (:mod:`deal_ros.eval.instances`). No torch either.

The data is opened with the bundle's class names, so class ids agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from deal_ros.data.sample import Sample, SampleDataset
from deal_ros.eval.coco import coco_ap
from deal_ros.eval.instances import instance_ground_truth
from deal_ros.eval.metrics import SegMetrics, ground_truth_mask
from deal_ros.infer.runtime import Runtime

__all__ = ["evaluate_bundle"]


def _samples(dataset: SampleDataset, limit: int | None, progress: bool) -> Iterator[Any]:
    from tqdm import tqdm

    n = len(dataset) if not limit else min(len(dataset), int(limit))
    for i in tqdm(range(n), desc="eval bundle", unit="img", disable=not progress, leave=False):
        yield i, dataset[i]


def _semantic(runtime: Runtime, dataset: SampleDataset, samples) -> dict[str, Any]:
    b = runtime.bundle
    metrics = SegMetrics(b.num_classes + 1, class_names=b.class_names)
    for i, sample in samples:
        gt = ground_truth_mask(sample, i, "eval")
        metrics.update(runtime.segment(sample.rgb, cam=False, overlay=False).mask, gt)
    return {"bundle": metrics.summary()}


def _instances(runtime: Runtime, dataset: SampleDataset, samples) -> dict[str, Any]:
    gts, preds = [], []
    for i, sample in samples:
        gts.append(instance_ground_truth(dataset, i, sample))
        found = runtime.detect(sample.rgb, overlay=False)
        preds.append((found.masks, found.boxes, found.scores, found.classes))
    return coco_ap(gts, preds, runtime.bundle.num_classes)


def evaluate_bundle(
    runtime: Runtime,
    dataset: SampleDataset,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores of ``runtime``'s bundle on ``dataset`` (module docstring)."""
    samples: Iterator[tuple[int, Sample]] = _samples(dataset, limit, progress)
    if runtime.bundle.is_instance:
        return _instances(runtime, dataset, samples)
    return _semantic(runtime, dataset, samples)
