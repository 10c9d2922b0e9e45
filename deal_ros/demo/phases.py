"""The phases of ``deal demo``, in order, and the child logs that belong to each."""

from __future__ import annotations

__all__ = ["PHASES", "PHASE_LOGS"]

PHASES: dict[str, str] = {
    "record": "demo camera + deal-recorder: one onboarding episode per class",
    "train": "deal train --config demo: CAM net + DEAL on the episodes (CPU)",
    "pseudo": "deal pseudo: pseudo labels for the recorded frames",
    "eval": "deal eval: CAM and pseudo-label mIoU on held-out generated scenes",
    "export": "deal export: ONNX model bundle",
    "segment": "deal-segmenter on a replay of the episodes",
    "report": "scores against the generator's ground truth, report.md, metrics.json",
}
PHASE_LOGS: dict[str, tuple[str, ...]] = {
    "record": ("camera", "recorder"),
    "train": ("train",),
    "pseudo": ("pseudo",),
    "eval": ("eval",),
    "export": ("export",),
    "segment": ("segmenter",),
}
