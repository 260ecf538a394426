"""Average precision, one function per flavour, each vectorised over many rows at once.

- :func:`interpolated_ap`: VOC 2011 all-points interpolated AP from a precision/recall curve, as the
  ActivityNet detection evaluator (and QVHighlights moment retrieval) computes it: precision padded
  with 0 at both ends, recall with 0 and 1, precision made a running maximum from the right,
  AP = sum over recall steps of step width x precision.
- :func:`detection_ap`: the same AP from ranked true-positive flags and the number of positives.
- :func:`ranking_ap`: the AP of a scored ranking against binary labels used for QVHighlights
  highlight detection (moment_detr's ``get_ap`` on scikit-learn's ``precision_recall_curve``): tied
  scores form one threshold step; the precision list, ordered from recall 1 down to recall 0, is made
  a running maximum along that order; AP = mean of the precisions where recall changes.
  All-negative labels give 0 and all-positive labels give 1.
- :func:`positive_precision_ap`: non-interpolated AP (mean precision at each positive), the per-class
  AP of the Charades / MultiTHUMOS per-frame protocols.

Rankings sort by descending score with a stable sort: ties keep the input order.
"""

from __future__ import annotations

import numpy as np

from momentkit.metrics.common import stable_desc_order


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """VOC 2011 all-points interpolated AP along the last axis: ``(..., K) -> (...)``.

    ``recall`` must be non-decreasing along the last axis. To ignore trailing padded positions, give
    them precision 0 and the recall of the last real position: they then add nothing.
    """
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    edge = np.zeros(precision.shape[:-1] + (1,))
    mprec = np.concatenate([edge, precision, edge], axis=-1)
    mrec = np.concatenate([edge, recall, edge + 1.0], axis=-1)
    mprec = np.flip(np.maximum.accumulate(np.flip(mprec, -1), axis=-1), -1)
    return np.sum(np.diff(mrec, axis=-1) * mprec[..., 1:], axis=-1)


def detection_ap(tp: np.ndarray, num_positives, valid: np.ndarray | None = None) -> np.ndarray:
    """Interpolated AP of ranked detections: ``tp (..., K)`` flags in rank order -> ``(...)``.

    ``valid`` (broadcastable to ``tp``) marks real predictions; the rest are padding (neither true
    nor false positives). ``num_positives`` (broadcastable to ``tp.shape[:-1]``) must be > 0.
    A row without any prediction has AP 0.
    """
    tp = np.asarray(tp, dtype=bool)
    if valid is None:
        valid = np.ones_like(tp)
    valid = np.broadcast_to(valid, tp.shape)
    tp = tp & valid
    fp = valid & ~tp
    tp_cum = np.cumsum(tp, axis=-1, dtype=np.float64)
    fp_cum = np.cumsum(fp, axis=-1, dtype=np.float64)
    npos = np.asarray(num_positives, dtype=np.float64)[..., None]
    recall = tp_cum / npos
    seen = tp_cum + fp_cum
    precision = np.where(valid, tp_cum / np.where(seen > 0, seen, 1.0), 0.0)
    return interpolated_ap(precision, recall)


def ranking_ap(labels: np.ndarray, scores: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """AP of each ranking, QVHighlights highlight-detection style.

    ``scores (N, L)``; ``labels (N, L)`` or ``(N, A, L)`` binary (several label sets, e.g. one per
    annotator, ranked by the same scores); ``lengths (N,)`` real entries per row (default: all).
    Returns ``(N,)`` or ``(N, A)``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    squeeze = labels.ndim == 2
    if squeeze:
        labels = labels[:, None, :]
    n, width = scores.shape
    if lengths is None:
        lengths = np.full(n, width, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if width == 0:
        out = np.zeros(labels.shape[:2])
        return out[:, 0] if squeeze else out

    pos = np.arange(width)
    valid = pos[None, :] < lengths[:, None]
    order = stable_desc_order(np.where(valid, scores, -np.inf))
    s = np.take_along_axis(scores, order, axis=1)
    y = np.take_along_axis((labels != 0) & valid[:, None, :], order[:, None, :], axis=2)  # bool (N, A, L)

    # Tie groups of equal scores: one precision/recall point per group (at its last member).
    changes = s[:, 1:] != s[:, :-1]
    is_end = valid & np.concatenate([changes, np.ones((n, 1), dtype=bool)], axis=1)
    is_end |= pos[None, :] == (lengths[:, None] - 1)
    is_start = valid & np.concatenate([np.ones((n, 1), dtype=bool), changes], axis=1)
    group_start = np.maximum.accumulate(np.where(is_start, pos[None, :], 0), axis=1)

    tps = np.cumsum(y, axis=2, dtype=np.int32)  # (N, A, L)
    precision = np.where(is_end[:, None, :], tps / (pos + 1.0), 0.0)
    # Running maximum from recall 1 (the last group) towards recall 0.
    interp = np.flip(np.maximum.accumulate(np.flip(precision, -1), axis=-1), -1)
    # Recall changes at a group iff the group holds a positive: the last positive so far is inside it.
    last_pos = np.maximum.accumulate(np.where(y, pos.astype(np.int32), -1), axis=2)
    contributes = is_end[:, None, :] & (last_pos >= group_start[:, None, :])

    count = contributes.sum(axis=2)
    total = np.where(contributes, interp, 0.0).sum(axis=2)
    ap = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    # Official special cases: all labels equal -> 0 (all negative) or 1 (all positive).
    npos = tps[..., -1]
    ap = np.where(npos == 0, 0.0, ap)
    ap = np.where((npos == lengths[:, None]) & (lengths[:, None] > 0), 1.0, ap)
    return ap[:, 0] if squeeze else ap


def positive_precision_ap(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Non-interpolated AP per column: ``labels, scores (N, C) -> (C,)``; NaN for a column without positives.

    AP = mean over the positives of the precision at their rank (descending score, stable).
    """
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    order = stable_desc_order(scores, axis=0)
    y = np.take_along_axis(labels, order, axis=0)
    precision = np.cumsum(y, axis=0) / np.arange(1, len(y) + 1, dtype=np.float64)[:, None]
    npos = y.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(npos > 0, (precision * y).sum(axis=0) / npos, np.nan)
