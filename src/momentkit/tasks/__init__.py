"""Tasks of the one engine: what a ``task:`` name in an experiment config plugs into the runner.

A task is a data module, a metric and a prediction format; its models come from the model registry
(each model declares its task). Everything else -- the experiment schema, the Lightning module, the
runner with its checkpoints, logs, learning curves, resume and ``momentkit test`` -- is shared
(:mod:`momentkit.training`).

A task subclasses :class:`Task` and is registered with :func:`register_task`:

- ``data_config`` / ``eval_config``: the dataclasses typing the ``data`` and ``eval`` sections;
- :meth:`Task.datamodule`: a Lightning data module with, besides its loaders, ``model_inputs()`` (the
  model options the data decides, such as feature widths), ``resolved_data()`` (the data section with
  what was derived from the files filled in, saved with the run), ``has_split(split)``,
  ``eval_sets(split)`` (the named evaluation sets of a split, in loader order), ``ground_truth(set)``,
  a ``test_split`` attribute (the split ``test_dataloader`` serves) and ``resume_from`` (set by the
  module when a checkpoint is restored, to skip the batches of a half-done epoch);
- :meth:`Task.score`: metrics of prediction rows against a set's ground truth, flat (headline numbers,
  for logs, curves and ``train.monitor``) or complete (``metrics_{split}.json``, identical to
  ``momentkit evaluate``);
- :meth:`Task.write_predictions`: the community's prediction file of a set;
- :meth:`Task.metric_names`: every flat metric a config produces (``train.monitor`` is checked
  against it when the config is loaded);
- :meth:`Task.per_unit_scores` (optional): per-query / per-video values of the flat metrics that are
  means over them, from a run's prediction file (``momentkit compare`` bootstraps them).

Metric keys of a set named like its split (``val``) are used as they are (``MR-full-mAP``); those of
other sets are prefixed with the set's name (``target/val/average-mAP``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from momentkit.errors import InputError


class Task:
    """Base class of a task; see the module docstring."""

    name: str = ""
    data_config: type
    eval_config: type
    headline: tuple[str, ...] = ()  # metrics printed in tables, in order (others follow when absent)
    derived_data: tuple[str, ...] = ()  # data fields filled from the files at training time

    def datamodule(self, cfg, seed: int = 0):
        raise NotImplementedError

    def check(self, cfg, path: str | None) -> None:
        """Cross-section checks of a loaded config (raise :class:`InputError` naming the key)."""

    def metric_names(self, cfg) -> list[str]:
        raise NotImplementedError

    def default_monitor(self, cfg) -> str:
        raise NotImplementedError

    def postprocess_options(self, cfg) -> dict:
        """Keyword options of the models' ``postprocess`` from the ``eval`` section."""
        return {}

    def row_key(self, row: dict) -> Any:
        """The identity of a prediction row (duplicates from padded distributed samplers are dropped)."""
        raise NotImplementedError

    def score(self, rows: list[dict], gt: Any, cfg, dm, *, full: bool = False) -> dict:
        raise NotImplementedError

    def write_predictions(self, out: Path, set_name: str, rows: list[dict], dm) -> Path:
        raise NotImplementedError

    def fit_calibration(self, rows: list[dict], gt: Any, cfg) -> tuple[list[float] | None, list[dict]]:
        """Fit a map of the prediction scores on validation ``rows`` (None: the task does not calibrate);
        returns it and the rows with scores a user can read (see :meth:`calibrate`)."""
        return None, rows

    def calibrate(self, rows: list[dict], params: list[float]) -> list[dict]:
        """``rows`` with their scores mapped by fitted ``params``."""
        return rows

    def per_unit_scores(self, run_dir: Path, split: str, cfg) -> tuple[str, list, dict] | None:
        """``(unit, ids, {flat metric: per-unit values})`` for the flat metrics that are means over units
        (queries, videos), from the predictions a run wrote for ``split`` (what ``momentkit compare``
        bootstraps); None when the task has none or the run has no prediction file."""
        return None


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Register ``task`` under ``task.name``."""
    _TASKS[task.name] = task
    return task


def _load_builtin() -> None:
    import momentkit.tasks.classification  # noqa: F401
    import momentkit.tasks.dense  # noqa: F401
    import momentkit.tasks.detection  # noqa: F401
    import momentkit.tasks.grounding  # noqa: F401


def get_task(name: str, *, path: str | None = None) -> Task:
    _load_builtin()
    if name not in _TASKS:
        raise InputError(f"unknown task {name!r}; known: {', '.join(sorted(_TASKS))}", path=path, field="task")
    return _TASKS[name]


def list_tasks() -> list[str]:
    _load_builtin()
    return sorted(_TASKS)


def set_metric_key(set_name: str, split: str, key: str) -> str:
    """The flat key of metric ``key`` of evaluation set ``set_name`` of ``split`` (see the module docstring)."""
    return key if set_name == split else f"{set_name}/{key}"


def video_feature_input(feats, cfg, what: str = "features"):
    """One video's features as ``float32 (T, D)``, ``T >= 1``, of the width the run's model reads
    (``model.input_dim`` when the config has it): what the one-video entry points of the tasks
    (serving a classification or detection checkpoint) check before building their batch."""
    import numpy as np

    x = np.asarray(feats, dtype=np.float32)
    if x.ndim != 2 or len(x) < 1:
        raise InputError(f"expected {what} (T, D) with T >= 1, got shape {x.shape}", field="features")
    want = cfg.model.get("input_dim")
    if want and x.shape[-1] != int(want):
        raise InputError(f"features of width {x.shape[-1]}, the model reads {want}", field="features")
    return x

