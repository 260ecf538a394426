"""Temporal action localisation mAP, ActivityNet style (THUMOS14, EPIC-Kitchens, SADA benchmarks).

Inputs (plain structures or JSON paths):

- predictions ``{"results": {video: [{"segment": [st, ed], "label": str|int, "score": float}, ...]}}``
  or the bare ``{video: [...]}``;
- ground truth ``{"database": {video: {"subset": .., "duration": .., "annotations":
  [{"segment": [st, ed], "label": .., "label_id": ..}, ...]}}}`` (or the bare ``{video: {...}}``;
  ``label_id`` optional), restricted to one ``subset`` (case-insensitive; required when the file holds
  several).

The numbers are those of the official evaluators (ActivityNet's ``eval_detection.py`` and ActionFormer's
``ANETdetection``, ``compute_average_precision_detection``), ties included:

- Per class (classes with at least one GT segment), the class's predictions of all videos are taken in
  the order they were read (videos in file order, each video's list in order) and ranked by
  ``np.argsort(scores)[::-1]``, literally the official ``prediction['score'].values.argsort()[::-1]``:
  numpy's default ("quicksort") argsort, reversed. Tied scores therefore do NOT keep the file order.
  numpy's plain introsort sorts arrays under 17 elements by insertion (stable), so there the ties come
  in REVERSE file order; longer arrays, and any array where numpy's argsort runs SIMD sorting networks
  (x86-simd-sort, e.g. on AVX-512 CPUs since numpy 1.25, already from 4 elements), give another order,
  fixed by the values. Making the same call on the same array reproduces the official order on the
  machine (and numpy) that evaluates; a stable sort differs by several mAP points on tied scores.
- Each ranked prediction takes, at every threshold ``t``, the first still unmatched GT segment of the
  same class in the same video in the order ``np.argsort(tiou)[::-1]`` (GT segments in file order)
  whose tIoU is ``>= t``; the vectorised :func:`momentkit.metrics.matching.greedy_match` does this
  (highest tIoU first); the few (class, video) groups where a prediction has equal tIoU ``>= t`` with
  two different GT segments, where the argsort's tie order decides, are redone with the official loop.
- AP is the VOC all-points interpolated AP (:func:`momentkit.metrics.ap.detection_ap`, the official
  ``interpolated_prec_rec``). ``mAP@t`` = mean over classes; ``average-mAP`` = mean over thresholds of
  the unrounded values. Everything x100, 2 decimals.

Labels (``label_field``):

- ``"label"``: a prediction's ``label`` matches the GT ``label`` by value, ``3`` and ``"3"`` being the
  same label;
- ``"label_id"``: the classes are the GT ``label_id`` integers (every annotation needs one); a
  prediction's ``label`` (``3``, ``3.0`` or ``"3"``) matches them by integer value;
- ``"auto"`` (default): the classes are the GT ``label`` values (the ``label_id`` ones when no
  annotation has a ``label``). A prediction label that is an integer or a string of digits (class
  ids, as ActionFormer writes them) matches the GT ``label_id`` when the ground truth has label ids
  (integer ``label_id`` fields), any other label matches the GT ``label`` by value.

As in the official evaluator, predictions on videos outside the evaluated ground truth are false
positives (a warning counts them); predictions of labels without any GT segment cannot change any class
AP and are ignored (a warning counts them); when NO prediction label matches a GT class, which is a
label-field mismatch rather than a result, :class:`~momentkit.errors.InputError` names the labels seen
and expected. Thresholds: ``"thumos"`` 0.3:0.1:0.7 (default), ``"epic"`` 0.1:0.1:0.5, ``"activitynet"``
0.5:0.05:0.95, or any list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from momentkit.errors import InputError
from momentkit.metrics.ap import detection_ap
from momentkit.metrics.common import json_source, parse_thresholds, pct, threshold_key, warn
from momentkit.metrics.matching import greedy_match
from momentkit.spans import iou_np

DEFAULT_TIOU = "thumos"
LABEL_FIELDS = ("auto", "label", "label_id")
_INT = re.compile(r"[+-]?[0-9]+")
_PAIR_CHUNK = 1 << 22  # (prediction, GT) pairs per block of the tIoU tie check


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


def int_key(label) -> str | None:
    """The key of a class id: ``"3"`` for ``3``, ``3.0``, ``"3"`` or ``"03"``; None for anything else."""
    if isinstance(label, str):
        text = label.strip()
        return str(int(text)) if _INT.fullmatch(text) else None
    key = label_key(label)
    return key if key is not None and not isinstance(label, str) else None


def _segment(value, path, field) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise InputError(f"expected [start, end], got {value!r}", path=path, field=field)
    s, e = value[0], value[1]
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x) for x in (s, e)):
        raise InputError(f"expected two finite numbers, got {value!r}", path=path, field=field)
    if s > e:
        raise InputError(f"start > end ({s:g} > {e:g})", path=path, field=field)
    return float(s), float(e)


class GroundTruth(NamedTuple):
    videos: list  # evaluated video ids, file order
    labels: dict  # class key -> the label as written (per-class table keys)
    gt_video: np.ndarray  # (N,) video index of each segment, file order
    gt_label: list  # (N,) class key of each segment
    gt_seg: np.ndarray  # (N, 2)
    field: str  # the annotation field that defines the classes: "label" or "label_id"
    ids: dict  # auto mode: label_id key -> set of class keys (empty without integer label ids)
    path: str | None


def load_ground_truth(gt, subset: str | None = None, label_field: str = "auto") -> GroundTruth:
    """The evaluated segments of ``gt`` (see :class:`GroundTruth`), classes defined by ``label_field``."""
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
    for vid in chosen:
        if not isinstance(db[vid].get("annotations", []), list):
            raise InputError("expected a list", path=path, field=f"{prefix}{vid}.annotations")
    anns_of = {vid: db[vid].get("annotations", []) for vid in chosen}
    field = label_field
    if field == "auto":
        def has(name: str) -> bool:
            return any(isinstance(a, Mapping) and a.get(name) is not None for anns in anns_of.values() for a in anns)

        field = "label_id" if not has("label") and has("label_id") else "label"
    to_key = label_key if field == "label" else int_key

    labels: dict[str, object] = {}
    ids: dict[str, set] = {}
    gt_video, gt_label, gt_seg = [], [], []
    for v, vid in enumerate(chosen):
        for i, ann in enumerate(anns_of[vid]):
            where = f"{prefix}{vid}.annotations[{i}]"
            if not isinstance(ann, Mapping):
                raise InputError(f"expected an object with 'segment' and '{field}'", path=path, field=where)
            key = to_key(ann.get(field))
            if key is None:
                kind = "label" if field == "label" else "integer label_id"
                raise InputError(f"missing or unusable {kind} {ann.get(field)!r}", path=path, field=f"{where}.{field}")
            labels.setdefault(key, ann[field])
            if label_field == "auto" and field == "label":
                id_key = int_key(ann.get("label_id"))
                if id_key is not None:
                    ids.setdefault(id_key, set()).add(key)
            gt_video.append(v)
            gt_label.append(key)
            gt_seg.append(_segment(ann.get("segment"), path, f"{where}.segment"))
    if not gt_seg:
        raise InputError("the ground truth has no annotated segment in the chosen videos", path=path)
    return GroundTruth(
        chosen, labels, np.asarray(gt_video, np.int64), gt_label, np.asarray(gt_seg, np.float64).reshape(-1, 2),
        field, ids, path,
    )


def load_predictions(preds, video_index: Mapping[str, int]):
    """``(pred_video (P,) (-1 outside the GT), pred_label [key], segments (P, 2), scores (P,), written {key:
    first label as written}, n_outside_videos, path)``, in file order (videos in order, each list in order)."""
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
        return (*_predictions_fast(results, video_index), outside, path)
    except (KeyError, TypeError, ValueError, AttributeError):
        return (*_predictions_checked(results, video_index, path, prefix), outside, path)


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
    written: dict = {}
    for item in flat:
        raw = item["label"]
        key = cache.get((type(raw), raw))
        if key is None:
            key = cache[(type(raw), raw)] = label_key(raw)
            if key is None:
                raise ValueError
            written.setdefault(key, raw)
        labels.append(key)
    return p_video, labels, seg, score, written


def _predictions_checked(results: Mapping, video_index: Mapping[str, int], path, prefix: str):
    p_video, p_label, p_seg, p_score = [], [], [], []
    written: dict = {}
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
            written.setdefault(key, item["label"])
            p_video.append(v)
            p_label.append(key)
            p_seg.append(_segment(item.get("segment"), path, f"{where}.segment"))
            p_score.append(float(score))
    return (
        np.asarray(p_video, np.int64),
        p_label,
        np.asarray(p_seg, np.float64).reshape(-1, 2),
        np.asarray(p_score, np.float64),
        written,
    )


def _class_order(keys) -> list[str]:
    try:
        return sorted(keys, key=lambda k: (0, int(k), "") if k.lstrip("-").isdigit() else (1, 0, k))
    except ValueError:
        return sorted(keys)


def _shown(values, limit: int = 8) -> str:
    values = list(values)
    text = ", ".join(repr(v) for v in values[:limit])
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _prediction_classes(p_label: list, gt: GroundTruth, class_index: Mapping[str, int]) -> np.ndarray:
    """The class index of each prediction (-1: no GT class), following the ``label_field`` rule."""
    lookup: dict[str, int] = {}
    for key in set(p_label):
        if gt.field == "label_id":
            ik = int_key(key)
            lookup[key] = class_index.get(ik, -1) if ik is not None else -1
            continue
        ik = int_key(key) if gt.ids else None
        if ik is None:
            lookup[key] = class_index.get(key, -1)
            continue
        names = gt.ids.get(ik, ())
        if len(names) > 1:
            raise InputError(
                f"predictions use label {key!r}, but label_id {ik} is given to several ground-truth labels "
                f"({_shown(sorted(names))}): choose label_field 'label' or 'label_id'",
                path=gt.path,
                field="label_id",
            )
        lookup[key] = class_index[next(iter(names))] if names else -1
    return np.fromiter((lookup[k] for k in p_label), np.int64, len(p_label))


def _no_match_error(p_label: list, written: dict, gt: GroundTruth, label_field: str, path) -> InputError:
    keys = sorted(set(p_label), key=lambda k: (int_key(k) is None, int(int_key(k) or 0), k))
    seen = [written.get(k, k) for k in keys]
    if gt.field == "label_id":
        expected = f"ground-truth 'label_id' values {_shown(sorted(int(k) for k in gt.labels))}"
    else:
        expected = f"ground-truth 'label' values {_shown(gt.labels[k] for k in _class_order(gt.labels))}"
        if gt.ids:
            expected += f" (integer labels are matched to 'label_id': {_shown(sorted(int(k) for k in gt.ids))})"
    return InputError(
        f"none of the {len(p_label)} predictions has the label of a ground-truth class "
        f"(label_field {label_field!r}): predicted labels {_shown(seen)}; expected {expected}. "
        "Choose which ground-truth field the labels are ('label' or 'label_id') with label_field / --label-field",
        path=path,
        field="label",
    )


def _official_ranking(p_cls: np.ndarray, p_score: np.ndarray, n_classes: int) -> np.ndarray:
    """Prediction indices, class by class, each class ranked as the official evaluator ranks it.

    The indices of a class are in file order; its scores, in that order, get literally the official
    ``argsort()[::-1]`` (numpy's default sort), whose order of tied scores is the official one.
    """
    by_cls = np.argsort(p_cls, kind="stable")
    bounds = np.searchsorted(p_cls[by_cls], np.arange(n_classes + 1), side="left")
    by_rank = by_cls.copy()
    for c in range(n_classes):
        lo, hi = bounds[c], bounds[c + 1]
        if hi - lo > 1:
            idx = by_cls[lo:hi]
            by_rank[lo:hi] = idx[np.argsort(p_score[idx])[::-1]]
    return by_rank


def _tiou_tie_groups(p_seg, p_row, gt_seg, gt_lo, gt_counts, t_min: float) -> np.ndarray:
    """Groups where a prediction has the same tIoU ``>= t_min`` with two GT segments that differ.

    ``p_seg``/``p_row``: predictions and their group; ``gt_seg`` sorted by group, group ``g`` holding
    ``gt_seg[gt_lo[g]:gt_lo[g] + gt_counts[g]]``. Identical GT segments are interchangeable and never
    make a tie that matters.
    """
    n_groups = len(gt_counts)
    flagged = np.zeros(n_groups, dtype=bool)
    if len(gt_seg) == 0:
        return flagged
    # Distinct segments per group: an id shared by identical segments of the same group.
    group_of_gt = np.repeat(np.arange(n_groups), gt_counts)
    unique_rows, seg_id = np.unique(np.column_stack([group_of_gt, gt_seg]), axis=0, return_inverse=True)
    seg_id = seg_id.reshape(-1)
    distinct = np.bincount(unique_rows[:, 0].astype(np.int64), minlength=n_groups)
    cand = np.flatnonzero(distinct[p_row] >= 2)
    if len(cand) == 0:
        return flagged
    n_pairs = gt_counts[p_row[cand]]
    ends = np.cumsum(n_pairs)
    start = 0
    while start < len(cand):
        stop = max(start + 1, int(np.searchsorted(ends, (ends[start] - n_pairs[start]) + _PAIR_CHUNK, side="right")))
        part = cand[start:stop]
        counts = gt_counts[p_row[part]]
        owner = np.repeat(np.arange(len(part)), counts)
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        gi = gt_lo[p_row[part]][owner] + offset
        iou = iou_np(p_seg[part][owner], gt_seg[gi])
        order = np.lexsort((iou, owner))
        o, v, s = owner[order], iou[order], seg_id[gi][order]
        tie = (o[1:] == o[:-1]) & (v[1:] == v[:-1]) & (v[1:] >= t_min) & (s[1:] != s[:-1])
        flagged[p_row[part][o[1:][tie]]] = True
        start = stop
    return flagged


def _official_match(pred_spans: np.ndarray, gt_spans: np.ndarray, thr) -> np.ndarray:
    """``(T, K)`` true positives of one group, the official loop (``tiou.argsort()[::-1]``, lock, break)."""
    tp = np.zeros((len(thr), len(pred_spans)), dtype=bool)
    locked = np.zeros((len(thr), len(gt_spans)), dtype=bool)
    for k, span in enumerate(pred_spans):
        tiou = iou_np(np.broadcast_to(span, gt_spans.shape), gt_spans)
        order = np.argsort(tiou)[::-1]
        for t, t_min in enumerate(thr):
            for j in order:
                if tiou[j] < t_min:
                    break
                if locked[t, j]:
                    continue
                tp[t, k] = locked[t, j] = True
                break
    return tp


def evaluate_detection(
    preds, gt, *, subset: str | None = None, tiou=DEFAULT_TIOU, per_class: bool = True, label_field: str = "auto"
) -> dict:
    """ActivityNet-style detection mAP per tIoU threshold, their average and a per-class AP table.

    ``label_field`` ("auto", "label" or "label_id") says which ground-truth field the predicted
    labels are matched to (see the module notes).
    """
    if label_field not in LABEL_FIELDS:
        raise InputError(
            f"unknown label field {label_field!r} (choose from {', '.join(LABEL_FIELDS)})", field="label_field"
        )
    thr = parse_thresholds(tiou, DEFAULT_TIOU)
    g = load_ground_truth(gt, subset, label_field)
    videos, label_names, gt_video, gt_label, gt_seg = g.videos, g.labels, g.gt_video, g.gt_label, g.gt_seg
    video_index = {vid: v for v, vid in enumerate(videos)}
    p_video, p_label, p_seg, p_score, written, outside, pred_path = load_predictions(preds, video_index)

    classes = _class_order(label_names)
    class_index = {k: c for c, k in enumerate(classes)}
    gt_cls = np.fromiter((class_index[k] for k in gt_label), np.int64, len(gt_label))
    p_cls = _prediction_classes(p_label, g, class_index)
    unknown = p_cls < 0
    if unknown.any():
        if unknown.all():
            raise _no_match_error(p_label, written, g, label_field, pred_path)
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

    # Rank each class's predictions in the official order, then group them by (class, video).
    n_vid = len(videos) + 1  # the last slot holds predictions on videos outside the ground truth
    p_vslot = np.where(p_video < 0, len(videos), p_video)
    by_rank = _official_ranking(p_cls, p_score, len(classes))
    p_group = (p_cls * n_vid + p_vslot)[by_rank]
    g_group = gt_cls * n_vid + gt_video
    grouped = np.argsort(p_group, kind="stable")  # positions (in rank order) grouped, rank kept
    pg_sorted = p_group[grouped]
    keys, starts, counts = np.unique(pg_sorted, return_index=True, return_counts=True)
    ranks = np.arange(len(pg_sorted)) - np.repeat(starts, counts)
    rows = np.repeat(np.arange(len(keys)), counts)
    p_seg_grouped = p_seg[by_rank][grouped]
    pred_spans = np.zeros((len(keys), int(counts.max()) if len(keys) else 0, 2))
    pred_spans[rows, ranks] = p_seg_grouped

    g_order = np.argsort(g_group, kind="stable")  # GT segments grouped, file order kept
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
    # Where tied tIoUs make the official argsort's order decide, run the official loop.
    ties = _tiou_tie_groups(p_seg_grouped, rows, gt_seg[g_src], np.cumsum(gt_counts) - gt_counts, gt_counts,
                            min(thr))
    for r in np.flatnonzero(ties):
        tp_grouped[r, :, : counts[r]] = _official_match(pred_spans[r, : counts[r]], gt_spans[r, : gt_counts[r]], thr)
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
