"""Per-query values of the QVHighlights metrics: what the official numbers average over the queries.

Every ``full`` moment-retrieval metric and every highlight-detection metric of
:func:`momentkit.metrics.evaluate_grounding` is a mean over the queries of a per-query value (x100);
:func:`grounding_per_query` returns those values, so that two methods scored on the same queries can be
compared query by query (:func:`momentkit.stats.paired_bootstrap`); so are the single-moment R@k and mIoU
of :func:`momentkit.metrics.evaluate_single_moment`. Their means equal the official numbers before
rounding (tested). The ``short`` / ``middle`` / ``long`` metrics keep a subset of the
queries and are not included.
"""

from __future__ import annotations

import numpy as np

from momentkit.metrics import records as rec
from momentkit.metrics.ap import ranking_ap
from momentkit.metrics.qvhighlights import (
    MAX_PRED_WINDOWS,
    MR_THRESHOLDS,
    SALIENCY_LEVELS,
    hd_arrays,
    mr_arrays,
    mr_metrics,
)


def grounding_per_query(preds, gt, *, max_pred_windows: int | None = MAX_PRED_WINDOWS) -> tuple[list, dict]:
    """``(qids in prediction order, {flat metric key: per-query values (Q,)})`` for the keys
    ``MR-full-mAP``, ``MR-full-mAP@0.5``, ``MR-full-mAP@0.75``, ``MR-full-R1@0.5``, ``MR-full-R1@0.7``
    and the single-moment ``R1@0.3`` ... ``R5@0.7``, ``mIoU`` (when the predictions have windows), and
    ``HL-min-{Fair,Good,VeryGood}-{mAP,Hit1}`` (when both sides have saliency), each x100 as the official
    numbers are."""
    import warnings

    preds = rec.load_records(preds, "predictions")
    gt = rec.load_records(gt, "ground truth")
    order = rec.align(preds, gt)
    qids = [p.get("qid") for p in preds]
    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evaluate_grounding warns about the same files
        if any("pred_relevant_windows" in r for r in preds):
            r1, ap = mr_metrics(*mr_arrays(preds, gt, order, max_pred_windows))
            at = {round(float(t), 2): i for i, t in enumerate(MR_THRESHOLDS)}
            out["MR-full-mAP"] = 100.0 * ap.mean(axis=1)
            out["MR-full-mAP@0.5"] = 100.0 * ap[:, at[0.5]]
            out["MR-full-mAP@0.75"] = 100.0 * ap[:, at[0.75]]
            out["MR-full-R1@0.5"] = 100.0 * r1[:, at[0.5]]
            out["MR-full-R1@0.7"] = 100.0 * r1[:, at[0.7]]
            out.update(_single_moment_per_query(preds, gt, order))
        if any("pred_saliency_scores" in r for r in preds) and any("saliency_scores" in r for r in gt):
            out.update(_highlight_per_query(preds, gt, order))
    return qids, out


def _single_moment_per_query(preds, gt, order) -> dict[str, np.ndarray]:
    """As :func:`momentkit.metrics.evaluate_single_moment` (``R{1,5}@{0.3,0.5,0.7}``, ``mIoU``), before the
    mean over queries."""
    from momentkit.metrics.common import threshold_key
    from momentkit.metrics.single_moment import THRESHOLDS, TOP_K, best_iou

    pred, counts = rec.padded_windows(preds, range(len(preds)), "pred_relevant_windows", with_score=False,
                                      cap=max(TOP_K))
    gt_arr, gt_counts = rec.padded_windows(gt, order, "relevant_windows", with_score=False)
    best = best_iou(pred, counts, gt_arr, gt_counts)
    out = {}
    for k in TOP_K:
        best_k = best[:, :k].max(axis=1) if best.shape[1] else np.zeros(len(best))
        for t in THRESHOLDS:
            out[f"R{k}@{threshold_key(t)}"] = 100.0 * (best_k >= t)
    top1 = best[:, 0] if best.shape[1] else np.zeros(len(best))
    out["mIoU"] = 100.0 * np.maximum(top1, 0.0)
    return out


def _highlight_per_query(preds, gt, order) -> dict[str, np.ndarray]:
    """As :func:`momentkit.metrics.qvhighlights.eval_highlight`, before the mean over queries."""
    pred_raw, _, gt_scores, num_clips = hd_arrays(preds, gt, order)
    width = gt_scores.shape[-1]
    ranked = np.zeros((len(order), width))
    w = min(width, pred_raw.shape[1])
    ranked[:, :w] = np.where(np.isfinite(pred_raw[:, :w]), pred_raw[:, :w], 0.0)
    top = np.argmax(pred_raw, axis=1)
    inside = top < num_clips
    top_scores = np.take_along_axis(gt_scores, np.minimum(top, max(width - 1, 0))[:, None, None], axis=2)[..., 0]
    levels = np.array([lvl for _, lvl in SALIENCY_LEVELS], dtype=np.float64)
    labels = gt_scores[:, None, :, :] >= levels[None, :, None, None]
    q, nl, na, _ = labels.shape
    ap = ranking_ap(labels.reshape(q, nl * na, width), ranked, num_clips).reshape(q, nl, na)
    out = {}
    for li, (name, lvl) in enumerate(SALIENCY_LEVELS):
        out[f"HL-min-{name}-mAP"] = 100.0 * ap[:, li, :].mean(axis=1)
        out[f"HL-min-{name}-Hit1"] = 100.0 * (inside & np.any(top_scores >= lvl, axis=1))
    return out
