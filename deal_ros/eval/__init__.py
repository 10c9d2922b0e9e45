"""Evaluation shared by every method, in one place (torch-free: it also runs on the robot).

* ``metrics``:      confusion matrix, IoU, mIoU, multi-class-only mIoU, pixel accuracy,
  ``SegMetrics``, the CAM threshold sweep, ``ground_truth_mask`` (the contract names are also
  importable from ``deal_ros.train.metrics``)
* ``coco``:         ``coco_ap``: COCO mask and box AP (pycocotools)
* ``instances``:    ``instance_ground_truth``: the instance masks COCO AP is scored against
* ``bundle``:       ``evaluate_bundle``: an exported bundle through ONNX Runtime (``deal eval
  model=``), semantic or instance
* ``results_text``: ``format_results`` / ``format_ap``: the tables ``deal eval`` prints

The methods' own evaluations (DEAL's CAM sweep and segmenter: ``deal_ros.train.evaluate``; the
box method's CondInst: ``deal_ros.instance.evaluate``) score with these.
"""
