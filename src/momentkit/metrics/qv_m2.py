"""Multi-moment retrieval metrics of QV-M2 / FlashMMR (Cao et al., "When One Moment Isn't Enough:
Multi-Moment Retrieval with Cross-Moment Interactions", NeurIPS 2025), as their official evaluator.

Where the definitions come from: the evaluator released with the QV-M2 annotations,
``standalone_eval/eval.py`` (``compute_mr_ap_by_gt``, ``compute_mr_all``, ``eval_submission``) of
github.com/Zhuo-Cao/QV-M2 at commit d5d4038 (MIT licence). The paper's text was not at hand; where the
code and its comments disagree, the code (what produces the published numbers) is followed and the
difference is noted below. This module is our own code: it reproduces the ``brief`` numbers of that
script, with the same names.

Per query, predictions are ``pred_relevant_windows [[st, ed, score], ...]`` and GT windows
``relevant_windows``; n is the query's number of GT windows (its "targets").

**mAP by number of targets** (IoU thresholds 0.5:0.05:0.95, 2 decimals):

- per query: the first 10 predicted windows (file order), sorted by score (stable sort), ActivityNet
  greedy matching and VOC all-points interpolated AP at each threshold
  (:mod:`momentkit.metrics.matching`, :mod:`momentkit.metrics.ap`, the QVHighlights MR mAP); the
  query's value is the mean over the 10 thresholds;
- ``MR-full-mAP@1_tgt`` / ``MR-full-mAP@2_tgt``: mean over the queries with exactly 1 / 2 targets;
- ``MR-full-mAP@3+tgt``: the **unweighted mean over the group sizes n >= 3** of each group's mean
  (the official code counts groups, not queries, although its comment says "count queries": one query
  with 25 targets weighs as much as all the queries with 3 targets). Ambiguous in intent; the code is
  reproduced;
- ``MR-full-mAP`` (the paper's G-mAP, "Generalized_mAP"): the mean over the groups weighted by their
  number of queries, i.e. the mean over all queries -- the same number as the QVHighlights
  ``MR-full-mAP`` of the same predictions.

Because only 10 windows are scored, a query with n > 10 targets has AP <= 10 / n, and the 3+ mean gives
those few queries the weight of whole groups: perfect predictions score 81.59 ``@3+tgt`` (99.79 G-mAP)
on QV-M2 ``val.jsonl`` and 96.23 on ``test.jsonl``, with this code and with the official script.
``max_pred_windows=None`` scores every window.

**Recall and mIoU over the top k** (k = 1, 2, 3; recall thresholds 0.30:0.05:0.95):

- a query counts for k when it has at least k targets and at least k predicted windows; its first k
  windows **as given** (file order, not re-sorted by score, as the official script assumes the file is
  sorted) are matched one after the other, each to the still unmatched GT window of highest IoU (the
  first one on ties). At threshold t the match counts when that IoU is >= t; a prediction whose best
  IoU is below t matches nothing and leaves that GT window free;
- ``R@k(t)`` = matched / (k x counted queries), x100, 2 decimals; ``MR-full-mR{k}`` = the mean over the
  14 thresholds of the rounded ``R@k(t)``, rounded to 2 decimals (numpy's rounding, as the script);
- ``MR-full-mIoU@{k}``: the same assignment without a threshold (every one of the k predictions takes
  its best free GT window), mean IoU over all those (query, prediction) pairs, x100.

Only the ``full`` length range is computed (the script also splits GT windows by length into
short/middle/long; its ``brief`` reports only ``full``).

Documented choices where the official script fails or is undefined:

- a group with no query (e.g. no single-target query): ``None`` (the script crashes for @1 and @2 and
  prints 0.0 for @3+); no query with k targets and k predictions: ``None`` for R@k, mR{k}, mIoU@k
  (the script prints 0.0);
- a query with an EMPTY ``pred_relevant_windows`` has AP 0 and counts in its group (the script drops it
  from the mAP and from the weights of G-mAP), as :mod:`momentkit.metrics.qvhighlights` does; it never
  counts for R@k / mIoU@k (it has fewer than k predictions, the script's rule);
- a window of zero length against another of zero length has IoU 0 (the script gets NaN);
- the script's qid check (predictions and ground truth cover the same queries) is
  :func:`momentkit.metrics.records.align`.

Tested against the official script's output on the QV-M2 test file (``tests/test_metrics_qv_m2.py``).
"""

from __future__ import annotations

import warnings

import numpy as np

from momentkit.metrics import records as rec
from momentkit.metrics.common import MetricsWarning, pct, round_thresholds, threshold_key, warn
from momentkit.metrics.qvhighlights import MAX_PRED_WINDOWS, MR_THRESHOLDS, mr_arrays, mr_metrics
from momentkit.spans import iou_np

#: IoU thresholds of the top-k recall (0.30, 0.35, ..., 0.95).
RECALL_THRESHOLDS = round_thresholds(np.linspace(0.3, 0.95, 14))
TOP_K = (1, 2, 3)
#: Groups of queries by number of targets: (key suffix, smallest n, largest n or None).
TARGET_GROUPS = (("1_tgt", 1, 1), ("2_tgt", 2, 2), ("3+tgt", 3, None))


def topk_assignment(top: np.ndarray, gt: np.ndarray, gt_counts: np.ndarray, k: int, thresholds) -> tuple:
    """Greedy assignment of the first ``k`` predictions of each query to its GT windows.

    Args:
        top: ``(Q, k, 2)`` the first k predicted windows of each query, in file order.
        gt: ``(Q, G, 2)`` GT windows padded after ``gt_counts[q]`` (every ``gt_counts[q] >= k``).
        thresholds: ``(T,)``; a threshold of -1 assigns every prediction.

    Returns:
        ``(hit (Q, T, k) bool, best_iou (Q, T, k))``: whether prediction i matched at threshold t and the
        IoU of the free GT window it picked.
    """
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    q, g_max = gt.shape[:2]
    valid = np.arange(g_max)[None, :] < gt_counts[:, None]
    iou = iou_np(top[:, :k, None, :], gt[:, None, :, :])  # (Q, k, G)
    iou = np.where(valid[:, None, :], iou, -np.inf)
    locked = np.zeros((q, thr.size, g_max), dtype=bool)
    hit = np.zeros((q, thr.size, k), dtype=bool)
    best_iou = np.zeros((q, thr.size, k))
    rows = np.arange(q)[:, None]
    cols = np.arange(thr.size)[None, :]
    for i in range(k):
        cand = np.where(locked, -np.inf, iou[:, i, None, :])  # (Q, T, G)
        j = np.argmax(cand, axis=-1)  # first maximum, as the script's strict ">" scan
        best = cand[rows, cols, j]
        h = best >= thr[None, :]
        locked[rows, cols, j] |= h
        hit[:, :, i] = h
        best_iou[:, :, i] = best
    return hit, best_iou


def _rounded_mean(values) -> float:
    return float(np.round(np.mean(values), 2))


def evaluate_qv_m2(preds, gt, *, max_pred_windows: int | None = MAX_PRED_WINDOWS, warn_empty: bool = True) -> dict:
    """The QV-M2 ``brief`` metrics (flat keys, x100, 2 decimals) and their details under ``"qv-m2"``.

    Keys: ``MR-full-mAP``, ``MR-full-mAP@1_tgt``, ``MR-full-mAP@2_tgt``, ``MR-full-mAP@3+tgt``,
    ``MR-full-mR1..3``, ``MR-full-mIoU@1..3``; ``qv-m2`` holds ``MR-R1..3`` per threshold, the mAP
    and number of queries of every number of targets (``targets``), and the number of queries counted
    for each k (``queries-counted``). ``warn_empty=False`` leaves the warning about empty prediction
    lists to the caller.
    """
    preds = rec.load_records(preds, "predictions")
    gt = rec.load_records(gt, "ground truth")
    order = rec.align(preds, gt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricsWarning)
        pred_sorted, pred_counts, top1, has_pred, gt_arr, gt_counts = mr_arrays(preds, gt, order, max_pred_windows)
    empty = int(np.sum(~has_pred))
    if empty and warn_empty:
        warn(f"{empty} quer{'y has' if empty == 1 else 'ies have'} an empty pred_relevant_windows: "
             "AP 0 (mAP), not counted for R@k / mIoU@k")
    _, ap = mr_metrics(pred_sorted, pred_counts, top1, has_pred, gt_arr, gt_counts)  # (Q, T)

    out: dict = {"MR-full-mAP": pct(np.mean(ap.mean(axis=0)))}
    by_size: dict[str, dict] = {}
    group_means: dict[int, float] = {}
    for n in np.unique(gt_counts).tolist():
        rows = gt_counts == n
        group = ap[rows].mean(axis=0)  # per threshold, as the script
        group_means[n] = float(group.mean())
        by_size[str(n)] = {"queries": int(rows.sum()), "mAP": pct(group_means[n]),
                           **{threshold_key(t): pct(v) for t, v in zip(MR_THRESHOLDS, group)}}
    for suffix, lo, hi in TARGET_GROUPS:
        sizes = [n for n in group_means if n >= lo and (hi is None or n <= hi)]
        out[f"MR-full-mAP@{suffix}"] = pct(np.mean([group_means[n] for n in sizes])) if sizes else None

    # recall / mIoU: the first k windows as given (no score sort, no cap at 10)
    top, top_counts = rec.padded_windows(preds, range(len(preds)), "pred_relevant_windows", with_score=True,
                                         cap=max(TOP_K))
    detail: dict = {"targets": by_size, "queries-counted": {}}
    recall: dict = {}
    miou: dict = {}
    for k in TOP_K:
        ok = (gt_counts >= k) & (top_counts >= k)
        detail["queries-counted"][f"top{k}"] = int(ok.sum())
        if not ok.any():
            detail[f"MR-R{k}"] = dict.fromkeys((threshold_key(t) for t in RECALL_THRESHOLDS))
            recall[f"MR-full-mR{k}"] = miou[f"MR-full-mIoU@{k}"] = None
            continue
        g, gc, p = gt_arr[ok], gt_counts[ok], top[ok, :k, :2]
        hit, _ = topk_assignment(p, g, gc, k, RECALL_THRESHOLDS)
        matched = hit.sum(axis=(0, 2)) / (k * int(ok.sum()))  # (T,)
        per_thr = {threshold_key(t): pct(r) for t, r in zip(RECALL_THRESHOLDS, matched)}
        detail[f"MR-R{k}"] = per_thr
        recall[f"MR-full-mR{k}"] = _rounded_mean(list(per_thr.values()))
        _, best = topk_assignment(p, g, gc, k, [-1.0])
        miou[f"MR-full-mIoU@{k}"] = pct(np.mean(best[:, 0, :].reshape(-1)))  # (query, prediction) pairs
    out.update(recall)
    out.update(miou)
    out["qv-m2"] = detail
    return out


__all__ = ["RECALL_THRESHOLDS", "TARGET_GROUPS", "TOP_K", "evaluate_qv_m2", "topk_assignment"]
