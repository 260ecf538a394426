"""Greedy matching of ranked predictions to ground-truth spans, ActivityNet style, many groups at once.

A *group* is the unit inside which predictions compete for ground truth: one query (QVHighlights
moment retrieval) or one (class, video) pair (action detection). Inside a group, predictions are
visited in rank order; each takes the still unmatched ground-truth span of highest IoU if that IoU is
``>= t`` (a true positive), otherwise it is a false positive. Every threshold ``t`` has its own
matching (a span is matched at most once per threshold).

Ties between ground-truth spans of equal IoU go to the LAST one, which is what the official
evaluators' ``iou.argsort()[::-1]`` gives for short arrays (stable ascending sort, reversed).

The loop runs over rank positions (at most the longest group), each step vectorised over the groups
still holding a prediction at that rank and over all thresholds.
"""

from __future__ import annotations

import numpy as np

from momentkit.spans import iou_np


def greedy_match(
    pred_spans: np.ndarray,
    pred_counts: np.ndarray,
    gt_spans: np.ndarray,
    gt_counts: np.ndarray,
    thresholds,
) -> np.ndarray:
    """True-positive flags of ranked predictions.

    Args:
        pred_spans: ``(N, K, 2)`` start-end spans per group, in rank order, padded after
            ``pred_counts[i]`` entries.
        pred_counts: ``(N,)`` real predictions per group.
        gt_spans: ``(N, G, 2)`` ground-truth spans, padded after ``gt_counts[i]`` entries.
        gt_counts: ``(N,)`` real ground-truth spans per group.
        thresholds: ``(T,)`` IoU thresholds.

    Returns:
        ``(N, T, K)`` boolean, True where the prediction is a true positive at that threshold
        (padding is False).
    """
    pred_spans = np.asarray(pred_spans, dtype=np.float64)
    gt_spans = np.asarray(gt_spans, dtype=np.float64)
    pred_counts = np.asarray(pred_counts, dtype=np.int64)
    gt_counts = np.asarray(gt_counts, dtype=np.int64)
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    n, k_max = pred_spans.shape[:2]
    tp = np.zeros((n, thr.size, k_max), dtype=bool)
    if n == 0 or k_max == 0 or gt_spans.shape[1] == 0:
        return tp
    # Groups with few GT spans (the common case) are matched without the padding of the largest.
    bucket = np.ceil(np.log2(np.maximum(gt_counts, 1))).astype(np.int64)
    for b in np.unique(bucket):
        rows = np.flatnonzero(bucket == b)
        width = int(gt_counts[rows].max())
        if width == 0:
            continue
        tp[rows] = _match(pred_spans[rows], pred_counts[rows], gt_spans[rows, :width], gt_counts[rows], thr)
    return tp


def _match(pred_spans, pred_counts, gt_spans, gt_counts, thr) -> np.ndarray:
    n, k_max = pred_spans.shape[:2]
    g_max = gt_spans.shape[1]
    # Visit groups from the longest to the shortest so that rank k only touches a prefix.
    order = np.argsort(-pred_counts, kind="stable")
    p_sorted = pred_spans[order]
    g_sorted = gt_spans[order]
    counts_sorted = pred_counts[order]
    gt_valid = np.arange(g_max)[None, :] < gt_counts[order][:, None]
    locked = np.zeros((n, thr.size, g_max), dtype=bool)
    tp_sorted = np.zeros((n, thr.size, k_max), dtype=bool)
    active = np.searchsorted(-counts_sorted, -np.arange(k_max), side="left")  # groups with count > k

    for k in range(k_max):
        m = int(active[k])
        if m == 0:
            break
        iou = iou_np(p_sorted[:m, k, None, :], g_sorted[:m])  # (m, G)
        iou = np.where(gt_valid[:m], iou, -1.0)
        cand = (iou[:, None, :] >= thr[None, :, None]) & ~locked[:m]  # (m, T, G)
        best = np.where(cand, iou[:, None, :], -np.inf)
        last_best = g_max - 1 - np.argmax(best[..., ::-1], axis=-1)  # (m, T), ties -> last span
        hit = cand.any(axis=-1)
        tp_sorted[:m, :, k] = hit
        rows, ts = np.nonzero(hit)
        locked[rows, ts, last_best[rows, ts]] = True

    tp = np.empty_like(tp_sorted)
    tp[order] = tp_sorted
    return tp
