"""The one engine: every task trains, evaluates and predicts through these modules.

- :mod:`.config` -- the experiment schema (``task``, ``data``, ``model``, ``train``, ``eval``), checked
  when loaded: the model section by the registered model's config class, ``data`` / ``eval`` by the
  task's, ``train.monitor`` against the metrics the task produces;
- :mod:`.module` -- :class:`~.module.TaskModule`, the one Lightning module (any model following
  :class:`momentkit.models.contract.Model`);
- :mod:`.runner` -- ``momentkit train`` / ``test`` and :func:`~.runner.load_run` (one output layout,
  resume, checkpoints, logs, learning curves);
- :mod:`.callbacks` -- the learning curve and the EMA of weights; :mod:`.schedule` -- learning-rate
  schedules; :mod:`.sampler` -- the resumable sampler; :mod:`.report` -- metric tables.

A task (data module, metric, prediction format) lives in :mod:`momentkit.tasks`; a model is one file
registered with :func:`momentkit.models.register_model` plus a config in ``configs/``.
"""
