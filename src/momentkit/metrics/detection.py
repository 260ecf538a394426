"""Temporal action localisation mAP, ActivityNet style (THUMOS14, EPIC-Kitchens, SADA benchmarks).

Inputs (plain structures or JSON paths):

- predictions ``{"results": {video: [{"segment": [st, ed], "label": str|int, "score": float}, ...]}}``
  or the bare ``{video: [...]}``;
- ground truth ``{"database": {video: {"subset": .., "duration": .., "annotations":
  [{"segment": [st, ed], "label": ..}, ...]}}}`` (or the bare ``{video: {...}}``), restricted to one
  ``subset`` (case-insensitive; required when the file holds several).

Per class (classes with at least one GT segment): the class's predictions of all videos are ranked by
score (descending, stable: ties keep file order); each takes the unmatched GT segment of highest
tIoU >= t of the same class in the same video (:mod:`momentkit.metrics.matching`); AP is the VOC
all-points interpolated AP (:func:`momentkit.metrics.ap.detection_ap`). ``mAP@t`` = mean over classes;
``average-mAP`` = mean over thresholds of the unrounded values. Everything x100, 2 decimals.

Labels match by value, ``3`` and ``"3"`` being the same label. As in the official evaluator,
predictions on videos outside the evaluated ground truth are false positives (a warning counts
them); predictions of labels without any GT segment cannot change any class AP and are ignored
(a warning counts them). Thresholds: ``"thumos"`` 0.3:0.1:0.7 (default), ``"epic"`` 0.1:0.1:0.5,
``"activitynet"`` 0.5:0.05:0.95, or any list.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from momentkit.errors import InputError
from momentkit.metrics.ap import detection_ap
from momentkit.metrics.common import json_source, parse_thresholds, pct, threshold_key, warn
from momentkit.metrics.matching import greedy_match

DEFAULT_TIOU = "thumos"


def label_key(label) -> str | None:
    """The matching key of a label: ints (or integral floats) and strings; None if unusable."""
    if isinstance(label, bool):
        return None
    if isinstance(label, int):
        return str(label)
    if isinstance(label, float) and np.isfinite(label) and label == int(label):
        return str(int(label))
    if isinstance(label, str) and label.strip():
        return label
    return None


def _segment(value, path, field) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise InputError(f"expected [start, end], got {value!r}", path=path, field=field)
    s, e = value[0], value[1]
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x) for x in (s, e)):
        raise InputError(f"expected two finite numbers, got {value!r}", path=path, field=field)
    if s > e:
        raise InputError(f"start > end ({s:g} > {e:g})", path=path, field=field)
    return float(s), float(e)


def load_ground_truth(gt, subset: str | None = None):
    """``(videos [ids], labels {key: original}, gt_video (N,), gt_label [key], gt_segments (N, 2))``."""
    data, path = json_source(gt)
    if not isinstance(data, Mapping):
        raise InputError("expected a JSON object with a 'database'", path=path)
    db = data.get("database", data)
    prefix = "database." if "database" in data else ""
    if not isinstance(db, Mapping) or not db:
        raise InputError("no videos in the ground truth", path=path, field="database")
    for vid, info in db.items():
        if not isinstance(info, Mapping):
            raise InputError("expected an object with 'annotations'", path=path, field=f"{prefix}{vid}")
    subsets = sorted({str(info.get("subset")) for info in db.values() if info.get("subset") is not None})
    if subset is None:
        if len(subsets) > 1:
            raise InputError(
                f"the ground truth holds several subsets ({', '.join(subsets)}): choose one", path=path, field="subset"
            )
        chosen = list(db)
    else:
        want = str(subset).lower()
        chosen = [vid for vid, info in db.items() if str(info.get("subset", "")).lower() == want]
        if not chosen:
            raise InputError(
                f"no video of subset {subset!r} (subsets here: {', '.join(subsets) or 'none'})",
                path=path,
                field="subset",
            )
    labels: dict[str, object] = {}
    gt_video, gt_label, gt_seg = [], [], []
    for v, vid in enumerate(chosen):
        anns = db[vid].get("annotations", [])
        if not isinstance(anns, list):
            raise InputError("expected a list", path=path, field=f"{prefix}{vid}.annotations")
        for i, ann in enumerate(anns):
            where = f"{prefix}{vid}.annotations[{i}]"
            if not isinstance(ann, Mapping):
                raise InputError("expected an object with 'segment' and 'label'", path=path, field=where)
            key = label_key(ann.get("label"))
            if key is None:
                raise InputError(f"missing or unusable label {ann.get('label')!r}", path=path, field=f"{where}.label")
            labels.setdefault(key, ann["label"])
            gt_video.append(v)
            gt_label.append(key)
            gt_seg.append(_segment(ann.get("segment"), path, f"{where}.segment"))
    if not gt_seg:
        raise InputError("the ground truth has no annotated segment in the chosen videos", path=path)
    return chosen, labels, np.asarray(gt_video, np.int64), gt_label, np.asarray(gt_seg, np.float64).reshape(-1, 2)


def load_predictions(preds, video_index: Mapping[str, int]):
    """``(pred_video (P,) (-1 outside the GT), pred_label [key], segments (P, 2), scores (P,), n_outside_videos)``."""
    data, path = json_source(preds)
    if not isinstance(data, Mapping):
        raise InputError("expected a JSON object {video: [predictions]} or {'results': {...}}", path=path)
    results = data["results"] if isinstance(data.get("results"), Mapping) else data
    prefix = "results." if results is not data else ""
    for vid, items in results.items():
        if not isinstance(items, list):
            raise InputError("expected a list of predictions", path=path, field=f"{prefix}{vid}")
    outside = sum(1 for vid, items in results.items() if items and vid not in video_index)
    try:
        return (*_predictions_fast(results, video_index), outside)
    except (KeyError, TypeError, ValueError, AttributeError):
        return (*_predictions_checked(results, video_index, path, prefix), outside)


def _predictions_fast(results: Mapping, video_index: Mapping[str, int]):
    """Bulk conversion; raises on anything unusual (then the checked path locates the problem)."""
    counts = [len(items) for items in results.values()]
    p_video = np.repeat(np.asarray([video_index.get(vid, -1) for vid in results], np.int64), counts)
    flat = [item for items in results.values() for item in items]
    seg = np.asarray([item["segment"] for item in flat], dtype=np.float64).reshape(len(flat), 2)
    raw_scores = [item["score"] for item in flat]
    if any(type(x) is bool for x in raw_scores):
        raise ValueError
    score = np.asarray(raw_scores, dtype=np.float64).reshape(len(flat))
    if not (np.all(np.isfinite(seg)) and np.all(np.isfinite(score)) and np.all(seg[:, 0] <= seg[:, 1])):
        raise ValueError
    cache: dict = {}
    labels = []
    for item in flat:
        raw = item["label"]
        key = cache.get((type(raw), raw))
        if key is None:
            key = cache[(type(raw), raw)] = label_key(raw)
            if key is None:
                raise ValueError
        labels.append(key)
    return p_video, labels, seg, score


def _predictions_checked(results: Mapping, video_index: Mapping[str, int], path, prefix: str):
    p_video, p_label, p_seg, p_score = [], [], [], []
    for vid, items in results.items():
        v = video_index.get(vid, -1)
        for i, item in enumerate(items):
            where = f"{prefix}{vid}[{i}]"
            if not isinstance(item, Mapping):
                raise InputError("expected an object with 'segment', 'label' and 'score'", path=path, field=where)
            key = label_key(item.get("label"))
            if key is None:
                raise InputError(f"missing or unusable label {item.get('label')!r}", path=path, field=f"{where}.label")
            score = item.get("score")
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
                raise InputError(f"expected a finite number, got {score!r}", path=path, field=f"{where}.score")
            p_video.append(v)
            p_label.append(key)
            p_seg.append(_segment(item.get("segment"), path, f"{where}.segment"))
            p_score.append(float(score))
    return (
        np.asarray(p_video, np.int64),
        p_label,
        np.asarray(p_seg, np.float64).reshape(-1, 2),
        np.asarray(p_score, np.float64),
    )


def _class_order(keys) -> list[str]:
    try:
        return sorted(keys, key=lambda k: (0, int(k), "") if k.lstrip("-").isdigit() else (1, 0, k))
    except ValueError:
        return sorted(keys)


def evaluate_detection(preds, gt, *, subset: str | None = None, tiou=DEFAULT_TIOU, per_class: bool = True) -> dict:
    """ActivityNet-style detection mAP per tIoU threshold, their average and a per-class AP table."""
    thr = parse_thresholds(tiou, DEFAULT_TIOU)
    videos, label_names, gt_video, gt_label, gt_seg = load_ground_truth(gt, subset)
    video_index = {vid: v for v, vid in enumerate(videos)}
    p_video, p_label, p_seg, p_score, outside = load_predictions(preds, video_index)

    classes = _class_order(label_names)
    class_index = {k: c for c, k in enumerate(classes)}
    gt_cls = np.fromiter((class_index[k] for k in gt_label), np.int64, len(gt_label))
    p_cls = np.fromiter((class_index.get(k, -1) for k in p_label), np.int64, len(p_label))
    unknown = p_cls < 0
    if unknown.any():
        names = sorted({p_label[i] for i in np.flatnonzero(unknown)})
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        warn(f"{int(unknown.sum())} predictions have labels without any ground-truth segment ({shown}): ignored")
    if outside:
        warn(
            f"{outside} predicted videos are not in the evaluated ground truth: "
            "their predictions count as false positives"
        )
    keep = ~unknown
    p_cls, p_video, p_seg, p_score = p_cls[keep], p_video[keep], p_seg[keep], p_score[keep]

    # Rank each class's predictions by score (stable), then group them by (class, video).
    n_vid = len(videos) + 1  # the last slot holds predictions on videos outside the ground truth
    p_vslot = np.where(p_video < 0, len(videos), p_video)
    by_score = np.argsort(-p_score, kind="stable")
    by_rank = by_score[np.argsort(p_cls[by_score], kind="stable")]
    p_group = (p_cls * n_vid + p_vslot)[by_rank]
    g_group = gt_cls * n_vid + gt_video
    grouped = np.argsort(p_group, kind="stable")  # positions (in rank order) grouped, rank kept
    pg_sorted = p_group[grouped]
    keys, starts, counts = np.unique(pg_sorted, return_index=True, return_counts=True)
    ranks = np.arange(len(pg_sorted)) - np.repeat(starts, counts)
    rows = np.repeat(np.arange(len(keys)), counts)
    pred_spans = np.zeros((len(keys), int(counts.max()) if len(keys) else 0, 2))
    pred_spans[rows, ranks] = p_seg[by_rank][grouped]

    g_order = np.argsort(g_group, kind="stable")
    g_sorted = g_group[g_order]
    g_lo = np.searchsorted(g_sorted, keys, side="left")
    g_hi = np.searchsorted(g_sorted, keys, side="right")
    gt_counts = g_hi - g_lo
    gt_spans = np.zeros((len(keys), int(gt_counts.max()) if len(keys) else 0, 2))
    g_rows = np.repeat(np.arange(len(keys)), gt_counts)
    g_cols = np.arange(int(gt_counts.sum())) - np.repeat(np.cumsum(gt_counts) - gt_counts, gt_counts)
    g_src = g_order[np.repeat(g_lo, gt_counts) + g_cols]
    gt_spans[g_rows, g_cols] = gt_seg[g_src]

    tp_grouped = greedy_match(pred_spans, counts, gt_spans, gt_counts, thr)  # (Ng, T, K)
    tp_rank = np.zeros((len(thr), len(p_group)), dtype=bool)
    tp_rank[:, grouped] = tp_grouped[rows, :, ranks].T

    # AP per class over its contiguous block of ranked predictions.
    cls_sorted = p_cls[by_rank]
    bounds = np.searchsorted(cls_sorted, np.arange(len(classes) + 1), side="left")
    npos = np.bincount(gt_cls, minlength=len(classes))
    ap = np.zeros((len(classes), len(thr)))
    for c in range(len(classes)):
        lo, hi = bounds[c], bounds[c + 1]
        if hi > lo:
            ap[c] = detection_ap(tp_rank[:, lo:hi], npos[c])
    per_thr = ap.mean(axis=0)

    out: dict = {f"mAP@{threshold_key(t)}": pct(v) for t, v in zip(thr, per_thr)}
    out["average-mAP"] = pct(per_thr.mean())
    out["num-videos"] = len(videos)
    out["num-classes"] = len(classes)
    out["num-gt-segments"] = len(gt_label)
    out["num-predictions"] = int(len(p_score))
    if per_class:
        out["per-class"] = {
            str(label_names[k]): {
                **{f"AP@{threshold_key(t)}": pct(a) for t, a in zip(thr, ap[c])},
                "average": pct(ap[c].mean()),
                "num-gt": int(npos[c]),
            }
            for c, k in enumerate(classes)
        }
    return out
