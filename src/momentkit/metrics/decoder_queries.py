"""Diagnostics per decoder query: what each query slot of a DETR-style decoder predicts, before NMS.

Thesis 001, chapter 3 (Sec. 3.4.2, Fig. 3.7 and 3.10, Tab. 3.5-3.9): a DETR decoder trained on
single-moment captions keeps only a few of its queries *active* (confidence that does not vanish),
whatever the number of moments a search query has (*active decoder-query collapse*); more active
queries help only when they predict different windows. These numbers are read from the decoder's
raw outputs, one window per query slot, not from the predictions after NMS and ``max_windows``
(:func:`momentkit.metrics.multimoment.evaluate_multimoment` counts those, ``active-preds@score>=s``).

Input: one record per text query with ``qid`` and ``slot_windows [[st, ed, score], ...]``: the window
of every decoder query in slot order (``Q`` of them, the same ``Q`` for every record) with the model's
own confidence (uncalibrated), as :func:`momentkit.models.postprocess.postprocess` writes them with
``slot_windows=True`` (the run file ``decoder_{split}.jsonl``); ground truth with ``relevant_windows``.

Per text query ``i`` with GT moments ``g_1..g_n`` and slot windows ``p_1..p_Q`` (scores ``s_q``), at
score threshold ``s`` and IoU threshold ``tau``:

- ``active_i = #{q : s_q >= s}``: the active decoder queries;
- ``distinct_i``: the active windows left by greedy hard NMS at IoU ``distinct_iou`` (0.7), i.e.
  active queries that predict different windows (``active_i`` when none repeats another);
- ``matched-preds@tau``: % of the ``Q`` slot windows with ``IoU >= tau`` with some GT moment;
- ``matched-gt@tau``: % of the ``n`` GT moments with ``IoU >= tau`` with some slot window;
- ``matched-gt-active@tau``: the same with the active slots only (the moments the active budget can
  retrieve at all).

Overall: the mean and standard deviation over text queries (each query weighs the same; the thesis
reports ``mean ± std``), the mean of ``active`` per number of GT moments (Fig. 3.7) and the histogram
of ``active``. Per slot ``q``: ``active`` (% of text queries where slot ``q`` is active), ``top1`` (%
where it has the highest score, ties to the lower slot: a few slots with all of it is *index
collapse*), ``mean-score``, ``matched@tau`` (% of text queries where its window matches a GT moment);
``top1-slot`` is the largest ``top1`` (100: one slot has the highest score for every text query).

Flat keys (logged every validation; :func:`flat_metrics`): ``decoder-active@score>=s``,
``decoder-distinct@score>=s``, ``decoder-top1-slot``, ``decoder-matched-preds@tau``, ``decoder-matched-gt@tau``.
"""

from __future__ import annotations

import numpy as np

from momentkit.errors import InputError
from momentkit.metrics import records as rec
from momentkit.metrics.common import parse_thresholds, pct, threshold_key
from momentkit.ops.nms import temporal_nms
from momentkit.spans import iou_np

THRESHOLDS = (0.1, 0.3, 0.5, 0.75)
KEY = "slot_windows"


def _stat(x: np.ndarray, scale: float = 1.0) -> dict:
    """``{"mean", "std"}`` of per-query values (population std), ``scale``-d, 2 decimals."""
    x = np.asarray(x, dtype=np.float64) * scale
    return {"mean": float(f"{x.mean():.2f}"), "std": float(f"{x.std():.2f}")}


def slot_array(rows, what: str = "decoder outputs") -> tuple[rec.Records, np.ndarray]:
    """The records and their slot windows ``(N, Q, 3)``; every record needs the same ``Q >= 1``."""
    rows = rec.load_records(rows, what)
    slots, counts = rec.padded_windows(rows, range(len(rows)), KEY, with_score=True)
    if np.any(counts == 0):
        raise rows.error(int(np.argmax(counts == 0)), "no slot window", field=KEY)
    if np.any(counts != counts[0]):
        i = int(np.argmax(counts != counts[0]))
        raise rows.error(i, f"{counts[i]} slot windows, but the first record has {counts[0]}", field=KEY)
    return rows, slots


def evaluate_decoder_queries(rows, gt, *, score_threshold: float = 0.5, thresholds=THRESHOLDS,
                             distinct_iou: float = 0.7) -> dict:
    """Diagnostics per decoder query of ``rows`` (records with ``slot_windows``) against ``gt``; see the
    module docstring. Returns the complete dict (``brief``: the flat keys)."""
    if not 0.0 <= score_threshold <= 1.0:
        raise InputError(f"must be in [0, 1], got {score_threshold}", field="score_threshold")
    thr = parse_thresholds(thresholds, THRESHOLDS)
    rows, slots = slot_array(rows)
    gt = rec.load_records(gt, "ground truth")
    order = rec.align(rows, gt)
    gt_arr, gt_counts = rec.padded_windows(gt, order, "relevant_windows", with_score=False)
    if np.any(gt_counts == 0):
        raise gt.error(int(order[np.argmax(gt_counts == 0)]), "no ground-truth window", field="relevant_windows")
    n, q = slots.shape[:2]
    gt_valid = np.arange(gt_arr.shape[1])[None, :] < gt_counts[:, None]
    scores = slots[..., 2]
    active = scores >= score_threshold  # (N, Q)
    n_active = active.sum(1)
    distinct = np.array([len(temporal_nms(w[a], distinct_iou)) for w, a in zip(slots, active)])
    top1 = np.bincount(np.argmax(scores, axis=1), minlength=q)  # argmax: ties to the lower slot
    iou = iou_np(slots[:, :, None, :2], gt_arr[:, None, :, :])  # (N, Q, G)

    tag = f"score>={float(score_threshold):g}"
    moments = {str(m): float(f"{n_active[gt_counts == m].mean():.2f}") for m in np.unique(gt_counts)}
    out: dict = {
        "score": "the model's own confidence of each decoder query, before calibration, NMS and max_windows",
        "score-threshold": float(score_threshold),
        "distinct-iou": float(distinct_iou),
        "num-queries": int(n),
        "num-slots": int(q),
        "active": {**_stat(n_active), "by-moments": moments,
                   "histogram": np.bincount(n_active, minlength=q + 1).tolist()},
        "distinct-active": _stat(distinct),
        "top1-slot": pct(top1.max() / n),
    }
    slot_rows = [{"slot": s, "active": pct(active[:, s].mean()), "top1": pct(top1[s] / n),
                  "mean-score": float(f"{scores[:, s].mean():.4f}")} for s in range(q)]
    brief = {f"decoder-active@{tag}": out["active"]["mean"], f"decoder-distinct@{tag}": out["distinct-active"]["mean"],
             "decoder-top1-slot": out["top1-slot"]}
    for tau in thr:
        key = threshold_key(tau)
        match = (iou >= tau) & gt_valid[:, None, :]  # (N, Q, G)
        pred_matched = match.any(2)  # (N, Q)
        gt_matched = match.any(1).sum(1) / gt_counts
        gt_matched_active = (match & active[:, :, None]).any(1).sum(1) / gt_counts
        out[f"matched-preds@{key}"] = _stat(pred_matched.mean(1), 100)
        out[f"matched-gt@{key}"] = _stat(gt_matched, 100)
        out[f"matched-gt-active@{key}"] = _stat(gt_matched_active, 100)
        for s, row in enumerate(slot_rows):
            row[f"matched@{key}"] = pct(pred_matched[:, s].mean())
        brief[f"decoder-matched-preds@{key}"] = out[f"matched-preds@{key}"]["mean"]
        brief[f"decoder-matched-gt@{key}"] = out[f"matched-gt@{key}"]["mean"]
    out["slots"] = slot_rows
    return {"brief": brief, **out}


def flat_metrics(rows, gt, **options) -> dict:
    """The flat keys only (see the module docstring)."""
    return evaluate_decoder_queries(rows, gt, **options)["brief"]
