"""Dense (per-frame, multi-label) activity detection mAP: Charades "localize" and per-frame mAP.

Inputs (plain structures or JSON paths):

- predictions: ``{video: [[score per class] per frame]}`` (or under ``"results"``), frames spread
  uniformly over the video (frame ``i`` of ``T`` is at time ``i * duration / T``);
- ground truth, either per-frame binary labels of the same shape ``{video: [[0/1 per class] ...]}``,
  or segments ``{"database": {video: {"duration", "subset", "annotations": [{"segment", "label"}]}}}``
  rasterised at the frame times (a frame at time ``t`` is positive for ``[s, e]`` when ``s < t < e``, as
  the per-frame loaders of the MultiTHUMOS / Charades codebases do). Segment labels name the class
  column: ``label_id`` if present, else an integer ``label``, else the label's index in ``classes``.

Per class, AP is the non-interpolated AP over all evaluated frames of all videos
(:func:`~momentkit.metrics.ap.positive_precision_ap`: ranking by score, ties in input order). Classes
without any positive frame get no AP (``None``) and are left out of the means.

Protocols:

- ``"per-frame"`` (MultiTHUMOS, ablations): every frame, ``mAP`` = unweighted mean over classes;
- ``"charades"`` (Charades localize): ``num_frames`` = 25 equally spaced frames per video (frame
  ``floor(i * T / 25)``), frames without any positive label ranked last for every class (as the
  Charades evaluation code does), ``mAP`` plus ``weighted-mAP`` (class APs weighted by their
  number of positive frames).

Every video of the ground truth needs predictions (an :class:`InputError` names the missing ones);
predictions on other videos are ignored with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from momentkit.errors import InputError
from momentkit.metrics.ap import positive_precision_ap
from momentkit.metrics.common import json_source, pct, warn

PROTOCOLS = ("per-frame", "charades")
CHARADES_FRAMES = 25


def _matrix(value, path, field, *, binary: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("expected a list of per-frame lists of numbers", path=path, field=field) from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(
            f"expected a non-empty (frames x classes) matrix, got shape {arr.shape}", path=path, field=field
        )
    if not np.all(np.isfinite(arr)):
        frame, cls = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"frame {frame}, class {cls}: not a finite number", path=path, field=field)
    if binary and not np.all((arr == 0) | (arr == 1)):
        raise InputError("per-frame labels must be 0 or 1", path=path, field=field)
    return arr


def _class_column(ann: Mapping, classes: Sequence[str] | None, num_classes: int, path, field) -> int:
    label = ann.get("label_id", ann.get("label"))
    if isinstance(label, str) and classes is not None:
        if label not in classes:
            raise InputError(f"label {label!r} is not in the class list", path=path, field=field)
        return list(classes).index(label)
    if isinstance(label, bool) or not isinstance(label, (int, float)) or label != int(label):
        raise InputError(
            f"cannot map label {label!r} to a class column (give 'label_id' or a class list)", path=path, field=field
        )
    col = int(label)
    if not 0 <= col < num_classes:
        raise InputError(f"class {col} is outside the {num_classes} predicted classes", path=path, field=field)
    return col


def _rasterise(
    info: Mapping, num_frames_total: int, frames: np.ndarray, num_classes: int, classes, path, prefix
) -> np.ndarray:
    duration = info.get("duration")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
        raise InputError(f"expected a positive duration, got {duration!r}", path=path, field=f"{prefix}.duration")
    times = frames * float(duration) / num_frames_total
    labels = np.zeros((len(frames), num_classes))
    anns = info.get("annotations", [])
    if not isinstance(anns, list):
        raise InputError("expected a list", path=path, field=f"{prefix}.annotations")
    for i, ann in enumerate(anns):
        where = f"{prefix}.annotations[{i}]"
        if not isinstance(ann, Mapping):
            raise InputError("expected an object with 'segment' and 'label'", path=path, field=where)
        seg = ann.get("segment")
        if (
            not isinstance(seg, (list, tuple))
            or len(seg) < 2
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x) for x in seg[:2])
        ):
            raise InputError(f"expected [start, end], got {seg!r}", path=path, field=f"{where}.segment")
        if seg[0] > seg[1]:
            raise InputError(f"start > end ({seg[0]:g} > {seg[1]:g})", path=path, field=f"{where}.segment")
        col = _class_column(ann, classes, num_classes, path, f"{where}.label")
        labels[(times > seg[0]) & (times < seg[1]), col] = 1.0
    return labels


def evaluate_dense(
    preds,
    gt,
    *,
    protocol: str = "per-frame",
    num_frames: int | None = None,
    weighted: bool | None = None,
    classes: Sequence[str] | None = None,
    subset: str | None = None,
) -> dict:
    """Per-frame multi-label mAP (see the module notes for the two protocols)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown dense protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})", field="protocol")
    charades = protocol == "charades"
    if num_frames is None and charades:
        num_frames = CHARADES_FRAMES
    if num_frames is not None and int(num_frames) < 1:
        raise InputError(f"num_frames must be >= 1, got {num_frames}", field="num_frames")
    weighted = charades if weighted is None else weighted

    pred_data, ppath = json_source(preds)
    gt_data, gpath = json_source(gt)
    if not isinstance(pred_data, Mapping):
        raise InputError("expected a JSON object {video: per-frame scores}", path=ppath)
    if not isinstance(gt_data, Mapping):
        raise InputError("expected a JSON object {video: per-frame labels} or a 'database'", path=gpath)
    results = pred_data["results"] if isinstance(pred_data.get("results"), Mapping) else pred_data
    p_prefix = "results." if results is not pred_data else ""
    db = gt_data.get("database", gt_data)
    g_prefix = "database." if "database" in gt_data else ""
    if not isinstance(db, Mapping) or not db:
        raise InputError("no videos in the ground truth", path=gpath)
    if subset is not None:
        want = str(subset).lower()
        db = {v: i for v, i in db.items() if isinstance(i, Mapping) and str(i.get("subset", "")).lower() == want}
        if not db:
            raise InputError(f"no video of subset {subset!r}", path=gpath, field="subset")

    missing = [v for v in db if v not in results]
    if missing:
        shown = ", ".join(repr(v) for v in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InputError(
            f"{len(missing)} of {len(db)} ground-truth videos have no prediction ({shown})", path=ppath, field="video"
        )
    extra = sum(1 for v in results if v not in db)
    if extra:
        warn(f"{extra} predicted videos are not in the ground truth: ignored")

    score_parts, label_parts = [], []
    num_classes = None
    for vid in db:
        scores = _matrix(results[vid], ppath, f"{p_prefix}{vid}")
        if num_classes is None:
            num_classes = scores.shape[1]
        elif scores.shape[1] != num_classes:
            raise InputError(
                f"{scores.shape[1]} class scores per frame, expected {num_classes}",
                path=ppath,
                field=f"{p_prefix}{vid}",
            )
        total = scores.shape[0]
        frames = np.arange(total) if num_frames is None else (np.arange(int(num_frames)) * total) // int(num_frames)
        info = db[vid]
        if isinstance(info, Mapping):
            labels = _rasterise(info, total, frames, num_classes, classes, gpath, f"{g_prefix}{vid}")
        else:
            full = _matrix(info, gpath, f"{g_prefix}{vid}", binary=True)
            if full.shape != scores.shape:
                raise InputError(
                    f"labels have shape {full.shape}, predictions {scores.shape}", path=gpath, field=f"{g_prefix}{vid}"
                )
            labels = full[frames]
        score_parts.append(scores[frames])
        label_parts.append(labels)
    scores = np.concatenate(score_parts)
    labels = np.concatenate(label_parts)
    if charades:
        scores = np.where(labels.any(axis=1, keepdims=True), scores, -np.inf)

    ap = positive_precision_ap(labels, scores)
    npos = labels.sum(axis=0)
    present = npos > 0
    if not present.any():
        raise InputError("no frame of the ground truth has a positive label", path=gpath)
    names = [str(c) for c in range(num_classes)]
    if classes is not None and len(classes) == num_classes:
        names = list(classes)
    out: dict = {"mAP": pct(np.mean(ap[present]))}
    if weighted:
        out["weighted-mAP"] = pct(np.sum(ap[present] * npos[present]) / np.sum(npos[present]))
    out["num-videos"] = len(db)
    out["num-frames"] = int(len(scores))
    out["num-classes"] = int(present.sum())
    out["per-class"] = {names[c]: (pct(ap[c]) if present[c] else None) for c in range(num_classes)}
    return out
