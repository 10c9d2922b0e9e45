"""Box-supervised instance segmentation with pseudo depth (Yu, Yan et al., "Boosting
Box-supervised Instance Segmentation with Pseudo Depth"), CondInst/BoxInst-style, plain torch,
trained on the engine every method shares (``deal_ros.engine``).

One folder, one concept per file:

- ``config.py``            the ``stage: box`` config (preset ``deal_ros/train/configs/box.yaml``)
- ``fpn.py``, ``fcos_head.py``, ``controller.py``, ``dynamic_mask_head.py`` (DG-MaskHead),
  ``mask_branch.py``, ``condinst.py`` (the model), ``inference.py`` (decoding, NMS)
- ``targets.py`` (FCOS assignment), ``mask_targets.py`` (box masks, LAB, depth at stride 4),
  ``losses.py`` (the loss glue; the terms live in ``deal_ros.losses``)
- ``objective.py`` (one step's losses: the Stage's ``loss_fn``), ``hooks.py`` (skipped-box
  counts, step times; the EMA teacher is the engine's ``EMAHook``), ``distill.py``
  (depth-aware pseudo masks)
- ``data.py`` (box checks, box-carrying augmentation, epoch-keyed items)
- ``train.py`` (``main_from_config``, ``BoxTrainer``: the Stage and hooks on the engine),
  ``evaluate.py`` (COCO mask AP via ``deal_ros.eval``, overlays),
  ``cli.py`` (what ``deal train`` / ``deal eval`` call for box runs)

The ONNX view of CondInst lives with the exporters (``deal_ros.export.instance_onnx``).
"""

from deal_ros.instance.condinst import CondInst, Dense, Instances
from deal_ros.instance.config import (
    BoxTrainConfig,
    is_box_config,
    is_box_run,
    load_box_config,
)

__all__ = [
    "BoxTrainConfig",
    "CondInst",
    "Dense",
    "Instances",
    "is_box_config",
    "is_box_run",
    "load_box_config",
]
