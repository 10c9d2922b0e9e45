"""The one training engine under every method (DEAL's cam/seg stages, the box method), in the
detectron2 manner. It imports nothing above ``deal_ros.core`` (torch, yes; no method, no
dataset adapter), and this package file imports nothing heavy: import the module you need.

A method is a folder that hands the engine a :class:`~deal_ros.engine.stage.Stage` plus hooks;
a new method is a new folder, not a new loop::

    from deal_ros.engine.loop import Trainer
    from deal_ros.engine.stage import Stage
    stage = Stage("cam", model, [{"params": model.parameters(), "lr_mult": 1.0}], loss_fn, items)
    result = Trainer(cfg, stage, run_dir, env, device, hooks=[...]).fit()   # -> FitResult

Public API (module: names):

* ``loop``:        ``Trainer`` (``fit(start_step=None)``, ``run_step``, ``save``, ``seek``,
  ``state_dict`` / ``load_state_dict``), ``FitResult``, ``TrainSettings`` / ``LoopSettings``
  (the Protocols a config must satisfy)
* ``stage``:       ``Stage`` (name, model, param_groups, loss_fn, items; collate, batch_size,
  permutation, find_unused_parameters, nonfinite_hint), ``LossFn``
* ``hooks``:       ``HookBase`` (before_train, before_step, after_step, after_epoch,
  after_train, state_dict, load_state_dict), ``MetricsLog``, ``Checkpointer``
* ``ema``:         ``EMATeacher``, ``EMAHook`` (teacher state in the checkpoint)
* ``sampler``:     ``EpochBatches`` (seeded per-epoch order, DDP shards, mid-epoch start)
* ``optim``:       ``build_optimizer``, ``lr_factor``, ``set_lr``, ``OptimSettings``
* ``device``:      ``resolve_device``, ``amp_dtype``, ``seed_everything``, ``to_device``
* ``ddp``:         ``DistEnv`` (torchrun ranks, barrier, broadcast, mean), ``wrap_model``,
  ``unwrap``
* ``checkpoints``: ``checkpoint_path``, ``save_checkpoint`` (atomic), ``load_checkpoint``,
  ``newest_checkpoint``, ``rng_state`` / ``set_rng_state``
* ``runfolder``:   ``prepare_run``, ``next_run_dir``, ``numbered_runs``, ``find_resume_dir``,
  ``resume_checkpoint``, ``write_config`` / ``read_yaml`` / ``write_yaml``,
  ``write_classes`` / ``read_classes``, ``stage_of_run``, ``newest_stage``, ``RunSettings``
* ``log``:         ``RunLog`` (progress bar, metrics.jsonl, TensorBoard), ``read_metrics``
* ``config``:      the generic config engine: ``load_config(source, overrides, schema)``,
  ``read_config_file``, ``apply_overrides``, ``from_dict`` / ``to_dict``, ``all_keys``,
  ``parse_override``, ``preset_names`` / ``preset_path`` (``PRESETS``), ``ConfigError``,
  ``ConfigSchema`` (the Protocol a method's schema satisfies)
* ``settings``:    the sections every schema embeds: ``OptimConfig``, ``LoopConfig``,
  ``AMP_MODES``, and their checks ``engine_checks``, ``scale_range_check``, ``raise_first``
"""
