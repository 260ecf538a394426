"""Video classification metrics: top-k accuracy (single-label) and mAP (multi-label, Charades-style).

Inputs (plain structures or JSON paths):

- predictions: ``{"classes": [names], "results": {video: [score per class]}}`` (what the
  ``classification`` task writes; ``classes`` optional, the scores' columns are the ground truth's
  classes in order);
- ground truth: ``{"classes": [names], "labels": {video: [class name or index, ...]}}`` -- one label
  per video for single-label data, any number (also none) for multi-label data.

Metrics (percentages, two decimals, like the other evaluators):

- ``top1`` / ``top5``: share of videos whose ``k`` highest-scoring classes hold one of its labels
  (ranking by descending score, ties in class order); videos without a label are left out;
- ``mAP``: mean over the classes with at least one positive video of the non-interpolated AP of the
  class's ranking of all videos (:func:`~momentkit.metrics.ap.positive_precision_ap`), the Charades
  video-level classification protocol (its official ``Charades_v1_classify.m`` does the same);
- ``mean-class-accuracy`` (single label): the mean over classes of each class's top-1 accuracy;
- ``per-class``: every class's AP (None without positives).

Every video of the ground truth needs a prediction (an :class:`InputError` names the missing ones);
predictions on other videos are ignored with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from momentkit.errors import InputError
from momentkit.metrics.ap import positive_precision_ap
from momentkit.metrics.common import json_source, pct, stable_desc_order, warn


def topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """``(N,)`` bools: does any of the ``k`` best classes of row ``i`` hold a positive of ``labels (N, K)``?"""
    order = stable_desc_order(np.asarray(scores, dtype=np.float64), axis=1)[:, :k]
    return np.take_along_axis(np.asarray(labels) > 0, order, axis=1).any(axis=1)


def classification_metrics(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str] | None = None,
                           topk: Sequence[int] = (1, 5)) -> dict:
    """Metrics of a ``(N, K)`` score matrix against ``(N, K)`` 0/1 labels (see the module notes)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise InputError(f"scores {scores.shape} and labels {labels.shape} must be the same (videos x classes)")
    n, k = scores.shape
    labelled = labels.sum(1) > 0
    out: dict = {}
    for t in topk:
        hits = topk_hits(scores[labelled], labels[labelled], min(t, k))
        out[f"top{t}"] = pct(hits.mean()) if labelled.any() else 0.0
    ap = positive_precision_ap(labels, scores)
    present = labels.sum(0) > 0
    out["mAP"] = pct(np.mean(ap[present])) if present.any() else 0.0
    single = bool(np.all(labels.sum(1) <= 1))
    if single and labelled.any():
        top1 = topk_hits(scores, labels, 1)
        per = [top1[labels[:, c] > 0].mean() for c in range(k) if present[c]]
        out["mean-class-accuracy"] = pct(np.mean(per))
    out["num-videos"] = int(n)
    out["num-classes"] = int(k)
    names = list(classes) if classes is not None and len(classes) == k else [str(c) for c in range(k)]
    out["per-class"] = {names[c]: (pct(ap[c]) if present[c] else None) for c in range(k)}
    return out


def _label_index(value, index: Mapping[str, int], k: int, path, field) -> int:
    if isinstance(value, bool):
        raise InputError(f"expected a class name or index, got {value!r}", path=path, field=field)
    if isinstance(value, int):
        if not 0 <= value < k:
            raise InputError(f"class index {value} is outside 0..{k - 1}", path=path, field=field)
        return value
    if str(value) not in index:
        raise InputError(f"label {value!r} is not one of the {k} classes", path=path, field=field)
    return index[str(value)]


def evaluate_classification(preds, gt, *, topk: Sequence[int] = (1, 5)) -> dict:
    """Top-k accuracy and mAP of predictions against ground truth (see the module notes)."""
    pred_data, ppath = json_source(preds)
    gt_data, gpath = json_source(gt)
    if not isinstance(pred_data, Mapping) or not isinstance(pred_data.get("results"), Mapping):
        raise InputError("expected a JSON object with 'results': {video: [score per class]}", path=ppath)
    if not isinstance(gt_data, Mapping) or not isinstance(gt_data.get("labels"), Mapping):
        raise InputError("expected a JSON object with 'classes' and 'labels': {video: [labels]}", path=gpath)
    classes = gt_data.get("classes")
    if not isinstance(classes, list) or not classes:
        raise InputError("the ground truth needs its class list", path=gpath, field="classes")
    pclasses = pred_data.get("classes")
    if pclasses is not None and list(pclasses) != list(classes):
        raise InputError("the predictions' classes are not the ground truth's (same names, same order)", path=ppath,
                         field="classes")
    k = len(classes)
    index = {str(c): i for i, c in enumerate(classes)}
    db, results = gt_data["labels"], pred_data["results"]
    if not db:
        raise InputError("no videos in the ground truth", path=gpath, field="labels")
    missing = [v for v in db if v not in results]
    if missing:
        shown = ", ".join(repr(v) for v in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InputError(f"{len(missing)} of {len(db)} ground-truth videos have no prediction ({shown})",
                         path=ppath, field="results")
    extra = sum(1 for v in results if v not in db)
    if extra:
        warn(f"{extra} predicted videos are not in the ground truth: ignored")
    scores = np.zeros((len(db), k))
    labels = np.zeros((len(db), k))
    for i, (vid, labs) in enumerate(db.items()):
        row = np.asarray(results[vid], dtype=np.float64) if isinstance(results[vid], list) else None
        if row is None or row.shape != (k,) or not np.all(np.isfinite(row)):
            raise InputError(f"expected {k} finite class scores", path=ppath, field=f"results.{vid}")
        scores[i] = row
        if not isinstance(labs, list):
            labs = [labs]
        for j, lab in enumerate(labs):
            labels[i, _label_index(lab, index, k, gpath, f"labels.{vid}[{j}]")] = 1.0
    return classification_metrics(scores, labels, classes, topk)
