"""Multi-moment retrieval (search queries): R_m and mAP_m per GT moment, beside the standard mAP.

Per query, predictions ``p_1..p_K`` are ranked by score (descending, stable) and ``g_1..g_n`` are the
GT moments. At threshold ``tau``, for GT moment ``g_j``:

- ``TP_j``: predictions with ``IoU(p, g_j) >= tau``;
- ``IGN_j``: predictions that match another GT moment but not ``g_j`` (ignored for ``g_j``);
- ``FP_j``: predictions that match no GT moment at all (the same set for every ``j``).

``R_m(g_j) = 1`` iff the first TP of ``g_j`` comes before every FP; ``AP_m(g_j) = 1 / (1 + number of
FP ranked above the first TP)``, 0 without a TP. ``R_m@tau`` and ``mAP_m@tau`` are 100 x the means
over ALL GT moments of the dataset (each moment weighs the same). With one moment per query,
``R_m@tau`` equals R1@tau of the score-sorted predictions.

``mAP@tau`` is the standard per-query detection AP (greedy matching, VOC all-points interpolation,
as QVHighlights MR; all predictions unless ``max_pred_windows``), averaged over queries.

Diagnostics: ``matched-preds@tau`` (% of predictions matching some GT moment), ``matched-gt@tau``
(% of GT moments matched by some prediction) and, with ``active_threshold``, ``active-preds@score>=s``
(mean number of predictions per query with score >= s, e.g. confident decoder queries). These count
the predictions as written, after NMS and ``max_windows``; the decoder's own outputs, one window per
query slot before NMS, are scored by :mod:`momentkit.metrics.decoder_queries`.

Beside them (``qv_m2=True``, the default), the multi-moment metrics of QV-M2 / FlashMMR
(:mod:`momentkit.metrics.qv_m2`): ``MR-full-mAP`` (G-mAP), ``MR-full-mAP@1_tgt`` / ``@2_tgt`` /
``@3+tgt``, ``MR-full-mR1..3``, ``MR-full-mIoU@1..3``, and their details under ``qv-m2``. Their
thresholds are their own (0.5:0.95 for mAP, 0.3:0.95 for recall) whatever ``thresholds`` is.
"""

from __future__ import annotations

import numpy as np

from momentkit.metrics import records as rec
from momentkit.metrics.ap import detection_ap
from momentkit.metrics.common import parse_thresholds, pct, stable_desc_order, threshold_key, warn
from momentkit.metrics.matching import greedy_match
from momentkit.metrics.qv_m2 import evaluate_qv_m2
from momentkit.spans import iou_np

THRESHOLDS = (0.1, 0.3, 0.5, 0.75)


def moment_scores(iou: np.ndarray, pred_valid: np.ndarray, gt_valid: np.ndarray, tau: float):
    """Per-GT-moment ``(R_m (Q, G) bool, AP_m (Q, G), has_tp (Q, G), matched_pred (Q, K))``.

    ``iou (Q, K, G)`` of score-ranked predictions with GT moments; masks mark real entries.
    """
    if iou.shape[1] == 0:  # no query has any prediction
        zeros = np.zeros(gt_valid.shape)
        return zeros.astype(bool), zeros, zeros.astype(bool), np.zeros(pred_valid.shape, dtype=bool)
    match = (iou >= tau) & pred_valid[:, :, None] & gt_valid[:, None, :]
    matches_any = match.any(axis=2)
    fp = pred_valid & ~matches_any
    fp_before = np.cumsum(fp, axis=1) - fp  # false positives ranked strictly above each position
    has_tp = match.any(axis=1)
    first_tp = np.argmax(match, axis=1)  # (Q, G)
    fp_above = np.take_along_axis(fp_before, first_tp, axis=1)
    r_m = has_tp & (fp_above == 0)
    ap_m = np.where(has_tp, 1.0 / (1.0 + fp_above), 0.0)
    return r_m, ap_m, has_tp, matches_any


def evaluate_multimoment(
    preds,
    gt,
    *,
    thresholds=THRESHOLDS,
    max_pred_windows: int | None = None,
    active_threshold: float | None = None,
    qv_m2: bool = True,
) -> dict:
    """R_m, mAP_m and standard mAP at each threshold (x100, 2 decimals), plus diagnostics and (``qv_m2``)
    the QV-M2 metrics."""
    thr = parse_thresholds(thresholds, THRESHOLDS)
    preds = rec.load_records(preds, "predictions")
    gt = rec.load_records(gt, "ground truth")
    order = rec.align(preds, gt)
    pred, counts = rec.padded_windows(
        preds, range(len(preds)), "pred_relevant_windows", with_score=True, cap=max_pred_windows
    )
    gt_arr, gt_counts = rec.padded_windows(gt, order, "relevant_windows", with_score=False)
    if np.any(gt_counts == 0):
        raise gt.error(int(order[np.argmax(gt_counts == 0)]), "no ground-truth window", field="relevant_windows")
    empty = int(np.sum(counts == 0))
    if empty:
        warn(f"{empty} quer{'y has' if empty == 1 else 'ies have'} an empty pred_relevant_windows: counted as misses")

    pred_valid = np.arange(pred.shape[1])[None, :] < counts[:, None]
    gt_valid = np.arange(gt_arr.shape[1])[None, :] < gt_counts[:, None]
    by_score = stable_desc_order(np.where(pred_valid, pred[..., 2], -np.inf))
    ranked = np.take_along_axis(pred, by_score[..., None], axis=1)
    iou = iou_np(ranked[:, :, None, :2], gt_arr[:, None, :, :])  # (Q, K, G)

    tp = greedy_match(ranked[..., :2], counts, gt_arr, gt_counts, thr)
    ap = detection_ap(tp, gt_counts[:, None], pred_valid[:, None, :])  # (Q, T)

    out: dict = {}
    diagnostics: dict = {}
    n_preds = int(pred_valid.sum())
    for ti, tau in enumerate(thr):
        key = threshold_key(tau)
        r_m, ap_m, has_tp, matched = moment_scores(iou, pred_valid, gt_valid, tau)
        out[f"R_m@{key}"] = pct(r_m[gt_valid].mean())
        out[f"mAP_m@{key}"] = pct(ap_m[gt_valid].mean())
        out[f"mAP@{key}"] = pct(ap[:, ti].mean())
        diagnostics[f"matched-preds@{key}"] = pct(matched[pred_valid].mean()) if n_preds else 0.0
        diagnostics[f"matched-gt@{key}"] = pct(has_tp[gt_valid].mean())
    out.update(diagnostics)
    if active_threshold is not None:
        active = ((ranked[..., 2] >= active_threshold) & pred_valid).sum(axis=1)
        out[f"active-preds@score>={float(active_threshold):g}"] = float(f"{active.mean():.2f}")
    if qv_m2:
        out.update(evaluate_qv_m2(preds, gt, warn_empty=False))
    out["num-queries"] = len(preds)
    out["num-moments"] = int(gt_counts.sum())
    return out
