"""Does a grounding model listen to the query, and can its confidence be read? Diagnostics beside the
official metrics (no official evaluator reports them).

:func:`query_diagnostics` takes QVHighlights-format predictions and ground truth (lists of dicts, as
:func:`momentkit.metrics.evaluate_grounding`) and returns:

- ``query-sensitivity``: mean Pearson correlation of the predicted per-clip saliency of two
  *different* queries (distinct ``qid``) of the same video, over every such pair; near 1 means the
  saliency ignores the query. ``query-sensitivity-gt`` is the same statistic of the ground-truth
  saliency (per clip: the mean annotator score at ``relevant_clip_ids``, 0 elsewhere; clips inside a
  ``relevant_windows`` window count 1 when the file has no scores). Pairs where either curve is
  constant are left out. ``query-pairs``: the number of pairs.
- ``top1-overlap``: mean temporal IoU of the top-1 predicted windows of the two queries of a pair;
  ``top1-overlap-gt``: the same for the ground truth, the largest IoU between a window of one query and
  a window of the other.
- Calibration of the top-1 confidence (the score of the first predicted window) against "IoU >= 0.5
  with some ground-truth window": ``ECE`` (expected calibration error, x100, over ``bins`` equal-width
  bins of [0, 1]), ``top1-confidence`` and ``top1-accuracy`` (means, x100), and ``reliability``: one
  row per non-empty bin ``{"bin": [lo, hi], "count", "confidence", "accuracy"}``.

Numbers are x100 and rounded to 2 decimals like the official metrics (``query-pairs`` and the
reliability table are not scaled).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

import numpy as np

from momentkit.spans import pairwise_iou_np


def _gt_saliency(g: dict, n: int, clip_len: float) -> np.ndarray:
    curve = np.zeros(n)
    ids, scores = g.get("relevant_clip_ids"), g.get("saliency_scores")
    if ids and scores:
        for c, s in zip(ids, scores):
            if 0 <= c < n:
                curve[c] = float(np.mean(s))
    else:
        for st, ed in g.get("relevant_windows") or []:
            curve[int(st // clip_len): int(np.ceil(ed / clip_len))] = 1.0
    return curve


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n], float), np.asarray(b[:n], float)
    if n < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _iou(a, b) -> float:
    if not len(a) or not len(b):
        return 0.0
    return float(pairwise_iou_np(np.asarray(a, float)[:, :2], np.asarray(b, float)[:, :2]).max())


def _mean(values: list[float]) -> float | None:
    return round(100 * float(np.mean(values)), 2) if values else None


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error (fraction) and the reliability rows of ``confidence`` (N,) in [0, 1]
    against ``correct`` (N,) bool; bin ``i`` holds ``[i / bins, (i + 1) / bins)`` (1.0 in the last)."""
    confidence = np.clip(np.asarray(confidence, float), 0.0, 1.0)
    correct = np.asarray(correct, bool)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for i in range(bins):
        sel = which == i
        if not sel.any():
            continue
        conf, acc = float(confidence[sel].mean()), float(correct[sel].mean())
        ece += sel.mean() * abs(acc - conf)
        rows.append({"bin": [i / bins, (i + 1) / bins], "count": int(sel.sum()), "confidence": round(conf, 4),
                     "accuracy": round(acc, 4)})
    return float(ece), rows


def top1_outcomes(preds: list[dict], gt: list[dict], *, iou: float = 0.5) -> list[tuple[dict, float, bool]]:
    """``(prediction row, top-1 confidence, top-1 right)`` of every ground-truth query with windows whose
    prediction has some: "right" is a temporal IoU >= ``iou`` with one of its ground-truth windows."""
    by_qid = {p["qid"]: p for p in preds}
    out = []
    for g in gt:
        p = by_qid.get(g["qid"])
        windows = (p or {}).get("pred_relevant_windows") or []
        if not windows or not g.get("relevant_windows"):
            continue
        out.append((p, float(windows[0][2]) if len(windows[0]) > 2 else 1.0,
                    _iou(windows[:1], g["relevant_windows"]) >= iou))
    return out


def query_diagnostics(preds: list[dict], gt: list[dict], *, clip_len: float = 2.0, iou: float = 0.5,
                      bins: int = 10) -> dict:
    """See the module docstring. ``preds`` rows need ``qid`` and ``pred_relevant_windows`` (best first)
    and/or ``pred_saliency_scores``; ``gt`` rows ``qid``, ``vid``, ``relevant_windows``."""
    by_qid = {p["qid"]: p for p in preds}
    videos: dict[str, list[dict]] = defaultdict(list)
    for g in gt:
        if g["qid"] in by_qid:
            videos[g["vid"]].append(g)
    corr, corr_gt, ov, ov_gt = [], [], [], []
    for group in videos.values():
        for a, b in combinations(group, 2):
            pa, pb = by_qid[a["qid"]], by_qid[b["qid"]]
            if "pred_saliency_scores" in pa and "pred_saliency_scores" in pb:
                n = min(len(pa["pred_saliency_scores"]), len(pb["pred_saliency_scores"]))
                r = _pearson(np.asarray(pa["pred_saliency_scores"][:n]), np.asarray(pb["pred_saliency_scores"][:n]))
                r_gt = _pearson(_gt_saliency(a, n, clip_len), _gt_saliency(b, n, clip_len))
                if r is not None and r_gt is not None:
                    corr.append(r)
                    corr_gt.append(r_gt)
            wa, wb = pa.get("pred_relevant_windows") or [], pb.get("pred_relevant_windows") or []
            if wa and wb:
                ov.append(_iou(wa[:1], wb[:1]))
                ov_gt.append(_iou(a.get("relevant_windows") or [], b.get("relevant_windows") or []))
    out = {"query-pairs": len(ov) or len(corr),
           "query-sensitivity": _mean(corr), "query-sensitivity-gt": _mean(corr_gt),
           "top1-overlap": _mean(ov), "top1-overlap-gt": _mean(ov_gt)}
    outcomes = top1_outcomes(preds, gt, iou=iou)
    conf = [c for _, c, _ in outcomes]
    correct = [ok for _, _, ok in outcomes]
    if conf:
        ece, rows = reliability(np.asarray(conf), np.asarray(correct), bins)
        out.update({"ECE": round(100 * ece, 2), "top1-confidence": _mean(conf), "top1-accuracy": _mean(correct),
                    "reliability": rows})
    return out
