"""Typed records every reader produces and every writer consumes.

Times are always seconds. A grounding sample is one text query about one video with one or more
ground-truth windows; a detection sample is one video with labelled segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class GroundingSample:
    """One query about one video.

    ``saliency`` follows the QVHighlights layout: ``relevant_clip_ids[i]`` is a clip index (clips of
    ``clip_len`` seconds, from 0) and ``saliency_scores[i]`` holds one score per annotator
    (0 = Very Bad ... 4 = Very Good). Both are empty when the dataset has no saliency.
    """

    qid: int | str
    query: str
    vid: str
    duration: float
    windows: tuple[tuple[float, float], ...]
    relevant_clip_ids: tuple[int, ...] = ()
    saliency_scores: tuple[tuple[float, ...], ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def num_annotators(self) -> int:
        return len(self.saliency_scores[0]) if self.saliency_scores else 0

    def clip_saliency(self, num_clips: int, clip_len: float = 2.0) -> np.ndarray:
        """Dense per-clip saliency, shape ``(num_clips, num_annotators)``; 0 outside relevant clips.

        Without annotated saliency, clips that overlap a GT window get 1 (the common convention for
        Charades-STA and TACoS training) in a single annotator column.
        """
        if self.saliency_scores:
            out = np.zeros((num_clips, self.num_annotators), dtype=np.float32)
            for cid, scores in zip(self.relevant_clip_ids, self.saliency_scores):
                if 0 <= cid < num_clips:
                    out[cid] = scores
            return out
        out = np.zeros((num_clips, 1), dtype=np.float32)
        starts = np.arange(num_clips) * clip_len
        for st, ed in self.windows:
            out[(starts < ed) & (starts + clip_len > st), 0] = 1.0
        return out


@dataclass(frozen=True, slots=True)
class Segment:
    """A labelled temporal segment in seconds. ``label_id`` is the class index when one is known."""

    start: float
    end: float
    label: str
    label_id: int | None = None


@dataclass(frozen=True, slots=True)
class DetectionSample:
    """One video with its labelled segments (temporal action localisation, dense detection)."""

    video: str
    duration: float
    segments: tuple[Segment, ...]
    subset: str | None = None
    fps: float | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(s.label for s in self.segments)
