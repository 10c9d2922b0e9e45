"""The DEAL method on the engine (``deal_ros.engine``): configs, stages (cam, pseudo, seg),
evaluation of CAMs and segmenters, reports.

Entry points (import the module you need; this package imports nothing heavy):

* ``deal_ros.train.config.load_config(preset_or_path, ["key=value", ...]) -> TrainConfig``
* ``deal_ros.train.pipeline.train(cfg) -> (run_dir, FitResult)``
* ``deal_ros.train.stages.pseudo.make_pseudo_labels(...)`` (``deal pseudo``)
* ``deal_ros.train.evaluate`` (``deal eval``), ``deal_ros.train.compare`` (``deal bench train``)
* ``deal_ros.train.run.load_run(run_dir) -> Run`` (``deal export`` reads runs through it)
* ``deal_ros.train.metrics`` (confusion matrix, mIoU, threshold sweep: ``deal_ros.eval.metrics``)
"""
