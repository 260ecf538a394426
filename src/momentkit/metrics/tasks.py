"""Which protocol applies to a pair of files, and one entry point that runs it.

Task inference (when no task is given), from the ground truth first, then the predictions:

- query records (JSON Lines, or a JSON list) with ``saliency_scores`` -> ``grounding`` (QVHighlights
  MR + HD);
- query records without saliency where some query has several GT windows -> ``multimoment``
  (R_m / mAP_m beside the QV-M2 metrics: single-moment metrics would silently ignore the extra
  windows);
- query records without saliency, one GT window each -> ``single`` (R1/R5@t, mIoU);
- a JSON object (``database`` or ``{video: ...}``): ``dense`` when the predictions hold per-frame
  score lists (lists of lists of numbers), ``detection`` when they hold segment objects.

QVHighlights-style MR numbers of a single-moment dataset are available with ``task="grounding"``
(HD is skipped when the ground truth has no saliency). QV-M2's ``val.jsonl`` has saliency on its
QVHighlights queries only, so it is inferred as ``grounding``: give ``task="multimoment"`` for the
multi-moment metrics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from momentkit.errors import InputError
from momentkit.metrics.dense import evaluate_dense
from momentkit.metrics.detection import evaluate_detection
from momentkit.metrics.multimoment import evaluate_multimoment
from momentkit.metrics.qvhighlights import evaluate_grounding
from momentkit.metrics.records import load_file
from momentkit.metrics.single_moment import evaluate_single_moment

TASKS = ("grounding", "single", "multimoment", "detection", "dense")


def _several_windows(record) -> bool:
    windows = record.get("relevant_windows") if isinstance(record, Mapping) else None
    return isinstance(windows, list) and len(windows) > 1


def _first_items(results: Mapping):
    for items in results.values():
        if isinstance(items, list) and items:
            return items
    return None


def infer_task(preds, gt) -> str:
    """The task for loaded ``preds`` and ``gt`` (see the module notes); InputError if undecidable."""
    if isinstance(gt, list):
        if any(isinstance(r, Mapping) and "saliency_scores" in r for r in gt):
            return "grounding"
        if any(_several_windows(r) for r in gt):
            return "multimoment"
        return "single"
    if isinstance(gt, Mapping):
        if isinstance(preds, Mapping):
            results = preds["results"] if isinstance(preds.get("results"), Mapping) else preds
            items = _first_items(results)
            if items is not None:
                if isinstance(items[0], Mapping):
                    return "detection"
                if isinstance(items[0], list):
                    return "dense"
        raise InputError(
            "cannot tell the task from the predictions (expected {video: [segment objects]} for detection or "
            "{video: [[per-class scores] per frame]} for dense): give the task explicitly",
            field="task",
        )
    raise InputError("cannot tell the task from the ground truth: give the task explicitly", field="task")


def evaluate(
    task: str | None, preds, gt, *, subset=None, tiou=None, protocol=None, num_frames=None
) -> tuple[str, dict]:
    """Run one protocol; ``preds``/``gt`` are paths or loaded structures. Returns ``(task, metrics)``."""
    if task is not None and task not in TASKS:
        raise InputError(f"unknown task {task!r} (choose from {', '.join(TASKS)})", field="task")
    if isinstance(preds, (str, os.PathLike)):
        preds = load_file(preds, "predictions")
    if isinstance(gt, (str, os.PathLike)):
        gt = load_file(gt, "ground truth")
    if task is None:
        task = infer_task(preds, gt)

    def refuse(option, value):
        if value is not None:
            raise InputError(f"{option} does not apply to the {task} task", field=option)

    if task in ("grounding", "single", "multimoment"):
        for name, value in (("subset", subset), ("protocol", protocol), ("frames", num_frames)):
            refuse(name, value)
        if not isinstance(preds, list) or not isinstance(gt, list):
            raise InputError(
                f"the {task} task needs query records (JSON Lines) for predictions and ground truth", field="task"
            )
        if task == "grounding":
            refuse("tiou", tiou)
            return task, evaluate_grounding(preds, gt)
        if task == "single":
            return task, evaluate_single_moment(preds, gt, **({} if tiou is None else {"thresholds": tiou}))
        return task, evaluate_multimoment(preds, gt, **({} if tiou is None else {"thresholds": tiou}))
    if not isinstance(preds, Mapping) or not isinstance(gt, Mapping):
        raise InputError(f"the {task} task needs JSON objects for predictions and ground truth", field="task")
    if task == "detection":
        refuse("protocol", protocol)
        refuse("frames", num_frames)
        return task, evaluate_detection(preds, gt, subset=subset, **({} if tiou is None else {"tiou": tiou}))
    refuse("tiou", tiou)
    return task, evaluate_dense(preds, gt, subset=subset, protocol=protocol or "per-frame", num_frames=num_frames)
