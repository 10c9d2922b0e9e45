"""Deployment: torch nets -> model bundle (ONNX + model.yaml, parity-checked) -> TensorRT engine.

``export_model(cam_net, classes, out_dir)`` works without a run folder; ``export_run(run_dir,
out_dir)`` is what ``deal export`` calls; ``export_instance_run`` does it for a box run
(an instance bundle, ``task: instance``). The bundle is read by ``deal_ros.infer``. Both bundle
writers share ``core.py`` (checks, parity frames, model.yaml's common fields, the load check
and the TensorRT engine); ``instance_onnx.py`` is the box run's ONNX view (``CondInstExport``).
"""

from deal_ros.export.bundle import export_model, export_run
from deal_ros.export.core import ExportResult, default_parity_images
from deal_ros.export.instance_bundle import export_instance_model, export_instance_run
from deal_ros.export.onnx_export import DeployModule, check_onnx, export_onnx
from deal_ros.export.parity import ParityReport, check_parity
from deal_ros.export.tensorrt import build_engine, tensorrt_possible

__all__ = [
    "DeployModule",
    "ExportResult",
    "ParityReport",
    "build_engine",
    "check_onnx",
    "check_parity",
    "default_parity_images",
    "export_instance_model",
    "export_instance_run",
    "export_model",
    "export_onnx",
    "export_run",
    "tensorrt_possible",
]
