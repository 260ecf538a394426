"""Collect the labelled segments of a detection file, check them all at once, build the records.

Detection readers add videos and segments to a :class:`SegmentTable` as they parse, each segment
with its location in the file, then call :meth:`SegmentTable.build`, which applies the window rule
of :mod:`momentkit.data.annotations.windows` to every segment in one vectorised pass and groups
the kept segments by video (file order within a video).

Segments dropped with ``on_invalid="skip"`` are not lost: they are listed in the video's
``extra["invalid_segments"]`` (dicts with ``start``, ``end``, ``label``, ``label_id``, ``reason``),
for evaluation code that must count them (e.g. to reproduce a protocol that keeps them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from momentkit.data.annotations.windows import check_windows, enforce
from momentkit.data.records import DetectionSample, Segment
from momentkit.errors import InputError


@dataclass
class SegmentTable:
    videos: list[dict] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    label_ids: list[int | None] = field(default_factory=list)
    where: list[dict] = field(default_factory=list)
    per_segment: dict[str, list] = field(default_factory=dict)
    _label_to_id: dict[str, tuple[int, dict]] = field(default_factory=dict)

    def add_video(self, video: str, duration: float, subset: str | None = None, fps: float | None = None,
                  extra: dict | None = None) -> int:
        self.videos.append({"video": video, "duration": duration, "subset": subset, "fps": fps,
                            "extra": dict(extra or {})})
        return len(self.videos) - 1

    def add_segment(self, video_index: int, start: float, end: float, label: str, label_id: int | None,
                    where: dict, path: str | os.PathLike, **per_segment) -> None:
        """Add one segment; ``where`` is its ``line=``/``field=`` location; ``per_segment`` values are
        grouped into per-video tuples in ``extra`` (e.g. ``narration_ids``)."""
        if label_id is not None:
            seen = self._label_to_id.get(label)
            if seen is None:
                self._label_to_id[label] = (label_id, where)
            elif seen[0] != label_id:
                first = seen[1]
                at = f"line {first['line']}" if first.get("line") else first.get("field", "?")
                raise InputError(f"label {label!r} has label_id {label_id} here but {seen[0]} at {at}",
                                 path=path, **where)
        self.owner.append(video_index)
        self.starts.append(start)
        self.ends.append(end)
        self.labels.append(label)
        self.label_ids.append(label_id)
        self.where.append(where)
        for key, value in per_segment.items():
            self.per_segment.setdefault(key, []).append(value)

    def build(self, *, path: str | os.PathLike, on_invalid: str, clip_tolerance: float) -> list[DetectionSample]:
        owner = np.asarray(self.owner, dtype=np.int64)
        durations = np.array([v["duration"] for v in self.videos], dtype=np.float64)
        check = check_windows(self.starts, self.ends, durations[owner] if owner.size else [], clip_tolerance)
        keep = enforce(check, on_invalid=on_invalid, path=path, locate=lambda i: self.where[i], what="segment")
        starts, ends = check.starts.tolist(), check.ends.tolist()
        order = np.argsort(owner, kind="stable")
        bounds = np.searchsorted(owner[order], np.arange(len(self.videos) + 1))
        samples = []
        for v, info in enumerate(self.videos):
            idx = order[bounds[v]:bounds[v + 1]].tolist()
            kept = [i for i in idx if keep[i]]
            extra = info["extra"]
            for key, values in self.per_segment.items():
                extra[key] = tuple(values[i] for i in kept)
            dropped = [i for i in idx if not keep[i]]
            if dropped:
                extra["invalid_segments"] = tuple(
                    {"start": starts[i], "end": ends[i], "label": self.labels[i], "label_id": self.label_ids[i],
                     "reason": check.describe(i)} for i in dropped)
            samples.append(DetectionSample(
                video=info["video"], duration=info["duration"],
                segments=tuple(Segment(starts[i], ends[i], self.labels[i], self.label_ids[i]) for i in kept),
                subset=info["subset"], fps=info["fps"], extra=extra,
            ))
        return samples
