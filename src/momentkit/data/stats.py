"""Summary statistics of a list of annotation records (what ``momentkit data stats`` prints).

:func:`annotation_stats` returns a plain, JSON-ready dict. Grounding samples give query, video and
moment counts; detection samples give video, segment and class counts. Both give the distribution
of window lengths (seconds) with the QVHighlights length bins (short ``(0, 10]``, middle
``(10, 30]``, long ``(30, 150]``, and ``over_150`` for the rest) and the distribution of video
durations (one value per video, the first one seen). Grounding samples also give the number of queries
per number of moments (``queries_by_moments``, ``{"1": n, "2": n, ...}``), the groups by which the
QV-M2 metrics split mAP (1, 2, 3+ target moments).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from momentkit.data.records import DetectionSample, GroundingSample
from momentkit.errors import InputError

#: QVHighlights moment-length bins: (name, low, high], seconds.
LENGTH_BINS = (("short", 0.0, 10.0), ("middle", 10.0, 30.0), ("long", 30.0, 150.0))


def annotation_stats(samples: Sequence[GroundingSample] | Sequence[DetectionSample]) -> dict:
    """Statistics of grounding or detection samples (all of one kind)."""
    samples = list(samples)
    if not samples:
        raise InputError("no samples to summarise")
    if all(isinstance(s, GroundingSample) for s in samples):
        return grounding_stats(samples)
    if all(isinstance(s, DetectionSample) for s in samples):
        return detection_stats(samples)
    raise TypeError("samples must be all GroundingSample or all DetectionSample")


def grounding_stats(samples: Sequence[GroundingSample]) -> dict:
    per_query = np.array([len(s.windows) for s in samples])
    windows = np.array([w for s in samples for w in s.windows], dtype=np.float64).reshape(-1, 2)
    videos = _first_durations((s.vid, s.duration) for s in samples)
    per_video = np.unique([s.vid for s in samples], return_counts=True)[1]
    return {
        "kind": "grounding",
        "queries": len(samples),
        "videos": len(videos),
        "moments": int(per_query.sum()),
        "moments_per_query": {
            "mean": float(per_query.mean()),
            "max": int(per_query.max()),
            "multi_moment_pct": float(100.0 * np.mean(per_query > 1)),
        },
        "queries_by_moments": {str(n): int(c) for n, c in zip(*np.unique(per_query, return_counts=True))},
        "queries_per_video": {"mean": float(per_video.mean()), "max": int(per_video.max())},
        "with_saliency": sum(1 for s in samples if s.saliency_scores),
        "window_length": length_stats(windows[:, 1] - windows[:, 0]),
        "duration": _summary(np.fromiter(videos.values(), dtype=np.float64), ("min", "mean", "max")),
    }


def detection_stats(samples: Sequence[DetectionSample]) -> dict:
    per_video = np.array([len(s.segments) for s in samples])
    segs = [seg for s in samples for seg in s.segments]
    lengths = np.array([seg.end - seg.start for seg in segs], dtype=np.float64)
    labels = {seg.label for seg in segs if seg.label}
    subsets: dict[str, int] = {}
    for s in samples:
        key = "none" if s.subset is None else s.subset
        subsets[key] = subsets.get(key, 0) + 1
    videos = _first_durations((s.video, s.duration) for s in samples)
    return {
        "kind": "detection",
        "videos": len(videos),
        "segments": len(segs),
        "classes": len(labels),
        "unlabelled_segments": sum(1 for seg in segs if not seg.label),
        "segments_per_video": {
            "mean": float(per_video.mean()),
            "max": int(per_video.max()),
            "multi_segment_pct": float(100.0 * np.mean(per_video > 1)),
        },
        "subsets": subsets,
        "skipped_invalid_segments": sum(len(s.extra.get("invalid_segments", ())) for s in samples),
        "window_length": length_stats(lengths),
        "duration": _summary(np.fromiter(videos.values(), dtype=np.float64), ("min", "mean", "max")),
    }


def length_stats(lengths: np.ndarray) -> dict:
    """min/median/mean/max and counts in the QVHighlights bins (right-closed)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    out = _summary(lengths, ("min", "median", "mean", "max"))
    edges = [hi for _, _, hi in LENGTH_BINS]
    which = np.digitize(lengths, edges, right=True)  # 0: <= 10, 1: (10, 30], 2: (30, 150], 3: > 150
    counts = np.bincount(which, minlength=len(edges) + 1)
    out["bins"] = {name: int(counts[i]) for i, (name, _, _) in enumerate(LENGTH_BINS)}
    out["bins"]["over_150"] = int(counts[len(edges)])
    return out


def _summary(values: np.ndarray, keys: tuple[str, ...]) -> dict:
    if values.size == 0:
        return {k: None for k in keys}
    funcs = {"min": np.min, "median": np.median, "mean": np.mean, "max": np.max}
    return {k: float(funcs[k](values)) for k in keys}


def _first_durations(pairs) -> dict[str, float]:
    out: dict[str, float] = {}
    for vid, duration in pairs:
        out.setdefault(vid, float(duration))
    return out
