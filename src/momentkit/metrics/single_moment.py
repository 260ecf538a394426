"""Single-moment grounding metrics (Charades-STA, TACoS): R1@t, R5@t and mIoU.

Same files as QVHighlights (JSON Lines, ``pred_relevant_windows`` / ``relevant_windows``), without
saliency. The ranking is the order of ``pred_relevant_windows`` in the file (as QVHighlights R1
trusts it); windows may be ``[start, end]`` or ``[start, end, score]``.

- ``R{k}@t`` = 100 x fraction of queries where one of the first ``k`` windows has IoU >= t with a
  GT window (with several GT windows, the best one counts).
- ``mIoU`` = 100 x mean over queries of the top-1 window's best IoU.

A query without any predicted window counts as a miss with IoU 0 (a :class:`MetricsWarning` says how
many). Keys: ``R1@0.3, R1@0.5, R1@0.7, R5@0.3, R5@0.5, R5@0.7, mIoU``.
"""

from __future__ import annotations

import numpy as np

from momentkit.errors import InputError
from momentkit.metrics import records as rec
from momentkit.metrics.common import parse_thresholds, pct, threshold_key, warn
from momentkit.spans import iou_np

THRESHOLDS = (0.3, 0.5, 0.7)
TOP_K = (1, 5)


def evaluate_single_moment(preds, gt, *, thresholds=THRESHOLDS, top_k=TOP_K) -> dict:
    """R@k for every ``k`` in ``top_k`` and threshold, plus mIoU; lists of dicts or JSON Lines paths."""
    thr = np.asarray(parse_thresholds(thresholds, THRESHOLDS))
    top_k = tuple(int(k) for k in top_k)
    if not top_k or min(top_k) < 1:
        raise InputError(f"top_k must hold integers >= 1, got {top_k}", field="top_k")
    preds = rec.load_records(preds, "predictions")
    gt = rec.load_records(gt, "ground truth")
    order = rec.align(preds, gt)
    pred, counts = rec.padded_windows(
        preds, range(len(preds)), "pred_relevant_windows", with_score=False, cap=max(top_k)
    )
    gt_arr, gt_counts = rec.padded_windows(gt, order, "relevant_windows", with_score=False)
    if np.any(gt_counts == 0):
        raise gt.error(int(order[np.argmax(gt_counts == 0)]), "no ground-truth window", field="relevant_windows")
    empty = int(np.sum(counts == 0))
    if empty:
        warn(f"{empty} quer{'y has' if empty == 1 else 'ies have'} an empty pred_relevant_windows: counted as a miss")

    best = best_iou(pred, counts, gt_arr, gt_counts)  # (Q, K)
    out: dict = {}
    for k in top_k:
        best_k = best[:, :k].max(axis=1) if best.shape[1] else np.zeros(len(best))
        for t in thr:
            out[f"R{k}@{threshold_key(t)}"] = pct(np.mean(best_k >= t))
    top1 = best[:, 0] if best.shape[1] else np.zeros(len(best))
    out["mIoU"] = pct(np.mean(np.maximum(top1, 0.0)))
    return out


def best_iou(pred: np.ndarray, counts: np.ndarray, gt: np.ndarray, gt_counts: np.ndarray) -> np.ndarray:
    """Best IoU with any GT window of every ranked prediction: ``(Q, K)``; -1 where padded."""
    g_valid = np.arange(gt.shape[1])[None, None, :] < gt_counts[:, None, None]
    iou = np.where(g_valid, iou_np(pred[:, :, None, :], gt[:, None, :, :]), -1.0).max(axis=2, initial=-1.0)
    p_valid = np.arange(pred.shape[1])[None, :] < counts[:, None]
    return np.where(p_valid, iou, -1.0)
