"""QVHighlights moment retrieval (MR) and highlight detection (HD), as the official evaluator.

Reproduces jayleicn/moment_detr ``standalone_eval/eval.py`` to the printed digit, same JSON layout::

    {"brief": {...}, "HL-min-Fair": {"HL-mAP", "HL-Hit1"}, "HL-min-Good": ..., "HL-min-VeryGood": ...,
     "full": {"MR-mAP": {"0.5": .., ..., "0.95": .., "average": ..}, "MR-R1": {"0.5": .., ...}},
     "long": ..., "middle": ..., "short": ...}

Moment retrieval (thresholds 0.5:0.05:0.95, rounded to 2 decimals):

- R1@t: the FIRST window of ``pred_relevant_windows`` as given (file order is trusted), against the
  first GT window of highest IoU with it.
- mAP@t: the first 10 windows, sorted by score with a stable sort; per query, ActivityNet greedy
  matching (:mod:`momentkit.metrics.matching`) and VOC all-points interpolated AP; mean over queries.
  ``average`` = mean of the unrounded per-threshold values.
- ``short``/``middle``/``long``: GT windows of length in (0, 10], (10, 30], (30, 150] seconds only;
  queries left without a GT window are skipped. ``full`` keeps every window. A range without any
  query reports ``None``.

Highlight detection (clips of 2 s, ``num_clips = int(duration / 2)``): per annotator, a clip is
positive if its score is >= 2 (Fair), 3 (Good) or 4 (VeryGood). Predicted saliency is truncated or
zero-padded to ``num_clips`` (the official rule; a warning counts the queries concerned). HIT@1: the
first maximum of the predicted saliency (as given) is positive for any annotator; a maximum beyond
the video's clips is a miss. HD mAP: mean over (query, annotator) of :func:`~momentkit.metrics.ap.ranking_ap`.

Documented choices where the official script fails or is undefined:

- a query with an EMPTY ``pred_relevant_windows`` counts as a miss for R1 and AP 0 (the official
  script drops it from mAP and crashes in R1); a :class:`MetricsWarning` says how many;
- an empty ``pred_saliency_scores``, a relevant clip id beyond ``num_clips``, a missing field,
  non-finite numbers, a window with start > end, duplicate or mismatched qids: :class:`InputError`;
- a window of zero length against another of zero length has IoU 0 (the official script gets NaN).

HD is evaluated when the predictions carry ``pred_saliency_scores`` and the ground truth carries
``saliency_scores``; MR when the predictions carry ``pred_relevant_windows``.
"""

from __future__ import annotations

from itertools import chain

import numpy as np

from momentkit.metrics import records as rec
from momentkit.metrics.ap import detection_ap, ranking_ap
from momentkit.metrics.common import pct, round_thresholds, stable_desc_order, threshold_key, warn
from momentkit.metrics.matching import greedy_match
from momentkit.spans import iou_np

MR_THRESHOLDS = round_thresholds(np.linspace(0.5, 0.95, 10))
#: (name, min length exclusive, max length inclusive); ``full`` keeps every window.
LENGTH_RANGES = (("short", 0.0, 10.0), ("middle", 10.0, 30.0), ("long", 30.0, 150.0), ("full", 0.0, 150.0))
#: (name, minimum annotator score for a positive clip)
SALIENCY_LEVELS = (("Fair", 2), ("Good", 3), ("VeryGood", 4))
CLIP_LENGTH = 2.0
MAX_PRED_WINDOWS = 10


# ----------------------------------------------------------------------------- moment retrieval
def mr_arrays(preds: rec.Records, gt: rec.Records, order: np.ndarray, max_pred_windows: int | None):
    """Padded prediction and GT windows of every query (prediction order).

    Returns ``(pred_sorted (Q, K, 2), pred_counts, top1 (Q, 2), has_pred (Q,), gt (Q, G, 2), gt_counts)``;
    ``pred_sorted`` is the capped list sorted by score (stable); ``top1`` the first window as given.
    """
    pred, pred_counts = rec.padded_windows(
        preds, range(len(preds)), "pred_relevant_windows", with_score=True, cap=max_pred_windows
    )
    has_pred = pred_counts > 0
    empty = int(np.sum(~has_pred))
    if empty:
        warn(
            f"{empty} quer{'y has' if empty == 1 else 'ies have'} an empty pred_relevant_windows: "
            "counted as a miss (R1) and AP 0 (mAP)"
        )
    top1 = pred[:, 0, :2] if pred.shape[1] else np.zeros((len(preds), 2))
    valid = np.arange(pred.shape[1])[None, :] < pred_counts[:, None]
    by_score = stable_desc_order(np.where(valid, pred[..., 2], -np.inf))
    pred_sorted = np.take_along_axis(pred[..., :2], by_score[..., None], axis=1)
    gt_arr, gt_counts = rec.padded_windows(gt, order, "relevant_windows", with_score=False)
    if np.any(gt_counts == 0):
        j = int(order[np.argmax(gt_counts == 0)])
        raise gt.error(j, "no ground-truth window", field="relevant_windows")
    return pred_sorted, pred_counts, top1, has_pred, gt_arr, gt_counts


def mr_metrics(pred_sorted, pred_counts, top1, has_pred, gt, gt_counts, thresholds=MR_THRESHOLDS):
    """Per-query R1 hit flags and AP: ``(r1 (Q, T) bool, ap (Q, T))``."""
    thr = np.asarray(thresholds)
    g_valid = np.arange(gt.shape[1])[None, :] < gt_counts[:, None]
    iou_top1 = np.where(g_valid, iou_np(top1[:, None, :], gt), -1.0).max(axis=1)
    iou_top1 = np.where(has_pred, iou_top1, 0.0)
    r1 = (iou_top1[:, None] >= thr[None, :]) & has_pred[:, None]
    tp = greedy_match(pred_sorted, pred_counts, gt, gt_counts, thr)
    valid = np.arange(pred_sorted.shape[1])[None, None, :] < pred_counts[:, None, None]
    ap = detection_ap(tp, gt_counts[:, None], valid)
    return r1, ap


def _in_range(gt, gt_counts, lo, hi):
    """GT windows with length in (lo, hi], moved to the front of each row; returns (gt, counts)."""
    length = gt[..., 1] - gt[..., 0]
    keep = (np.arange(gt.shape[1])[None, :] < gt_counts[:, None]) & (length > lo) & (length <= hi)
    front = np.argsort(~keep, axis=1, kind="stable")
    return np.take_along_axis(gt, front[..., None], axis=1), keep.sum(axis=1)


def eval_moment_retrieval(
    preds: rec.Records, gt: rec.Records, order: np.ndarray, max_pred_windows: int | None = MAX_PRED_WINDOWS
) -> dict:
    """``{"short"|"middle"|"long"|"full": {"MR-mAP": {...}, "MR-R1": {...}}}``."""
    pred_sorted, pred_counts, top1, has_pred, gt_arr, gt_counts = mr_arrays(preds, gt, order, max_pred_windows)
    keys = [threshold_key(t) for t in MR_THRESHOLDS]
    out = {}
    for name, lo, hi in LENGTH_RANGES:
        if name == "full":
            sel = np.arange(len(preds))
            g, gc = gt_arr, gt_counts
        else:
            g, gc = _in_range(gt_arr, gt_counts, lo, hi)
            sel = np.flatnonzero(gc > 0)
            g, gc = g[sel], gc[sel]
        if sel.size == 0:
            out[name] = {"MR-mAP": {**dict.fromkeys(keys), "average": None}, "MR-R1": dict.fromkeys(keys)}
            continue
        r1, ap = mr_metrics(pred_sorted[sel], pred_counts[sel], top1[sel], has_pred[sel], g, gc)
        ap_thds = ap.mean(axis=0)
        mr_map = {k: pct(v) for k, v in zip(keys, ap_thds)}
        mr_map["average"] = pct(np.mean(ap_thds))
        out[name] = {"MR-mAP": mr_map, "MR-R1": {k: pct(v) for k, v in zip(keys, r1.mean(axis=0))}}
    return out


# ----------------------------------------------------------------------------- highlight detection
def hd_arrays(preds: rec.Records, gt: rec.Records, order: np.ndarray):
    """``(pred_raw (Q, L1) padded with -inf, pred_lengths, gt_scores (Q, A, L), num_clips (Q,))``."""
    pred_raw, pred_lengths = rec.padded_vectors(preds, range(len(preds)), "pred_saliency_scores", -np.inf)
    try:
        num_clips, clip_q, clip_ids, clip_scores = _gt_saliency_fast(gt, order)
    except (KeyError, TypeError, ValueError):
        num_clips, clip_q, clip_ids, clip_scores = _gt_saliency_checked(gt, order)
    width = max(int(num_clips.max()) if num_clips.size else 0, 1)
    annotators = clip_scores.shape[1] if clip_scores.ndim == 2 and clip_scores.shape[1] else 3
    gt_scores = np.zeros((len(order), width, annotators))
    gt_scores[clip_q, clip_ids] = clip_scores
    return pred_raw, pred_lengths, gt_scores.transpose(0, 2, 1), num_clips


def _gt_saliency_fast(gt: rec.Records, order: np.ndarray):
    """Bulk conversion; raises ValueError/TypeError/KeyError on anything unusual."""
    rows = [gt[int(j)] for j in order]
    duration = np.asarray([r["duration"] for r in rows], dtype=np.float64)
    if not np.all(np.isfinite(duration) & (duration > 0)):
        raise ValueError
    num_clips = (duration / CLIP_LENGTH).astype(np.int64)
    ids_lists = [r["relevant_clip_ids"] for r in rows]
    score_lists = [r["saliency_scores"] for r in rows]
    if not all(type(a) is list and type(b) is list and len(a) == len(b) for a, b in zip(ids_lists, score_lists)):
        raise ValueError
    counts = np.fromiter(map(len, ids_lists), dtype=np.int64, count=len(rows))
    ids = np.asarray(list(chain.from_iterable(ids_lists)), dtype=np.float64)
    scores = np.asarray(list(chain.from_iterable(score_lists)), dtype=np.float64)
    if ids.size == 0:
        return num_clips, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    clip_q = np.repeat(np.arange(len(rows)), counts)
    if (
        ids.ndim != 1
        or scores.ndim != 2
        or not np.all(np.isfinite(scores))
        or np.any(ids != np.round(ids))
        or np.any(ids < 0)
        or np.any(ids >= num_clips[clip_q])
    ):
        raise ValueError
    return num_clips, clip_q, ids.astype(np.int64), scores


def _gt_saliency_checked(gt: rec.Records, order: np.ndarray):
    """Record-by-record conversion with located errors."""
    num_clips = np.zeros(len(order), dtype=np.int64)
    qs, id_parts, score_parts = [], [], []
    annotators = None
    for q, j in enumerate(order):
        j = int(j)
        n = int(rec.number(gt, j, "duration", positive=True) / CLIP_LENGTH)
        num_clips[q] = n
        ids, scores = gt[j].get("relevant_clip_ids"), gt[j].get("saliency_scores")
        if not isinstance(ids, list):
            raise gt.error(j, "expected a list of clip ids", field="relevant_clip_ids")
        if not isinstance(scores, list):
            raise gt.error(j, "expected a list of per-annotator score lists", field="saliency_scores")
        if len(ids) != len(scores):
            raise gt.error(j, f"{len(scores)} score rows for {len(ids)} relevant clips", field="saliency_scores")
        if not ids:
            continue
        try:
            ids_arr = np.asarray(ids, dtype=np.float64)
            sc = np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError):
            raise gt.error(j, "expected one list of numbers per relevant clip", field="saliency_scores") from None
        if ids_arr.ndim != 1 or not np.all(np.isfinite(ids_arr)) or np.any(ids_arr != np.round(ids_arr)):
            raise gt.error(j, "expected a flat list of integer clip ids", field="relevant_clip_ids")
        outside = (ids_arr < 0) | (ids_arr >= n)
        if outside.any():
            raise gt.error(
                j,
                f"clip id {int(ids_arr[np.argmax(outside)])} is outside the video's {n} clips "
                f"(int(duration / {CLIP_LENGTH:g}))",
                field="relevant_clip_ids",
            )
        if sc.ndim != 2:
            raise gt.error(j, "expected one list of annotator scores per relevant clip", field="saliency_scores")
        if not np.all(np.isfinite(sc)):
            raise gt.error(j, "non-finite saliency score", field="saliency_scores")
        if annotators is None:
            annotators = sc.shape[1]
        elif sc.shape[1] != annotators:
            raise gt.error(
                j, f"{sc.shape[1]} annotator scores per clip, expected {annotators}", field="saliency_scores"
            )
        qs.append(np.full(len(ids_arr), q))
        id_parts.append(ids_arr.astype(np.int64))
        score_parts.append(sc)
    if not qs:
        return num_clips, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    return num_clips, np.concatenate(qs), np.concatenate(id_parts), np.concatenate(score_parts)


def eval_highlight(preds: rec.Records, gt: rec.Records, order: np.ndarray) -> dict:
    """``{"HL-min-Fair": {"HL-mAP": .., "HL-Hit1": ..}, "HL-min-Good": ..., "HL-min-VeryGood": ...}``."""
    pred_raw, pred_lengths, gt_scores, num_clips = hd_arrays(preds, gt, order)
    mismatched = int(np.sum(pred_lengths != num_clips))
    if mismatched:
        warn(
            f"{mismatched} quer{'y has' if mismatched == 1 else 'ies have'} a pred_saliency_scores length other "
            f"than int(duration / {CLIP_LENGTH:g}): truncated or zero-padded, as the official evaluator does"
        )
    width = gt_scores.shape[-1]
    # Saliency ranked for AP: truncated / zero-padded to num_clips.
    ranked = np.zeros((len(order), width))
    w = min(width, pred_raw.shape[1])
    ranked[:, :w] = np.where(np.isfinite(pred_raw[:, :w]), pred_raw[:, :w], 0.0)
    top = np.argmax(pred_raw, axis=1)  # first maximum of the saliency as given
    inside = top < num_clips
    top_scores = np.take_along_axis(gt_scores, np.minimum(top, max(width - 1, 0))[:, None, None], axis=2)[..., 0]

    levels = np.array([lvl for _, lvl in SALIENCY_LEVELS], dtype=np.float64)
    labels = gt_scores[:, None, :, :] >= levels[None, :, None, None]  # (Q, 3 levels, A, L)
    q, nl, na, _ = labels.shape
    ap = ranking_ap(labels.reshape(q, nl * na, width), ranked, num_clips).reshape(q, nl, na)
    out = {}
    for li, (name, lvl) in enumerate(SALIENCY_LEVELS):
        hit = inside & np.any(top_scores >= lvl, axis=1)
        out[f"HL-min-{name}"] = {"HL-mAP": pct(np.mean(ap[:, li, :])), "HL-Hit1": pct(np.mean(hit))}
    return out


# ----------------------------------------------------------------------------- both
def evaluate_grounding(preds, gt, *, max_pred_windows: int | None = MAX_PRED_WINDOWS) -> dict:
    """QVHighlights MR + HD metrics of ``preds`` against ``gt`` (lists of dicts or JSON Lines paths).

    Returns the official nested dict (``brief`` first, then the other keys sorted), all numbers x100
    and rounded to 2 decimals.
    """
    preds = rec.load_records(preds, "predictions")
    gt = rec.load_records(gt, "ground truth")
    order = rec.align(preds, gt)
    has_mr = any("pred_relevant_windows" in r for r in preds)
    has_pred_hd = any("pred_saliency_scores" in r for r in preds)
    has_gt_hd = any("saliency_scores" in r for r in gt)
    if not has_mr and not has_pred_hd:
        raise preds.file_error("no record has 'pred_relevant_windows' or 'pred_saliency_scores'")
    metrics: dict = {}
    brief: dict = {}
    if has_mr:
        mr = eval_moment_retrieval(preds, gt, order, max_pred_windows)
        metrics.update(mr)
        mr_brief = {
            "MR-full-mAP": mr["full"]["MR-mAP"]["average"],
            "MR-full-mAP@0.5": mr["full"]["MR-mAP"]["0.5"],
            "MR-full-mAP@0.75": mr["full"]["MR-mAP"]["0.75"],
            "MR-short-mAP": mr["short"]["MR-mAP"]["average"],
            "MR-middle-mAP": mr["middle"]["MR-mAP"]["average"],
            "MR-long-mAP": mr["long"]["MR-mAP"]["average"],
            "MR-full-R1@0.5": mr["full"]["MR-R1"]["0.5"],
            "MR-full-R1@0.7": mr["full"]["MR-R1"]["0.7"],
        }
        brief.update(sorted(mr_brief.items()))
    if has_pred_hd and not has_gt_hd:
        warn("the ground truth has no saliency_scores: highlight detection is not evaluated")
    elif has_pred_hd:
        hd = eval_highlight(preds, gt, order)
        metrics.update(hd)
        for level, values in hd.items():
            for sub, v in values.items():
                brief[f"{level}-{sub.split('-')[1]}"] = v
    return {"brief": brief, **dict(sorted(metrics.items()))}
