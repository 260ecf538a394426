"""Moment retrieval on real video files: generated MP4s of moving shapes with templated queries.

Each video shows coloured squares and circles that appear, cross the scene left or right along one
of three lanes and disappear, over a dark background (the frames of
:func:`momentkit.video.testing.make_video`; its left quarter is a grey strip encoding the frame
number). Every shape is one moment and one query, written from a template: "a red circle moves
left", "the green square slides right", ... Within a video each colour-and-kind appears once, so
every query has exactly one moment, and videos often hold a shape of the same colour or the same
kind as the queried one (a model has to read both words). Moments start and end on the clip grid
(``clip_len``, 2 s by default, as QVHighlights windows do).

Unlike the feature-level presets of :mod:`momentkit.synth` these are files a backbone reads:
``momentkit extract`` makes their features, a model trained on them carries the extraction recipe,
and ``momentkit predict`` / ``momentkit serve`` answer on any new video of this world
(:func:`make_moment_video` writes one). It knows nothing else: a model trained here has never seen a
real video.

Layout written by :func:`generate_video_moments`::

    OUT/videos/{vid}.mp4               train_000.mp4, ..., val_007.mp4
    OUT/annotations/train.jsonl        QVHighlights JSON Lines: qid, query, vid, duration,
    OUT/annotations/val.jsonl          relevant_windows (one per query); qids unique across splits
    OUT/synth.json                     config, seed and counts

Everything follows from the seed; each video has its own random stream (seed, split, index).
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from momentkit.errors import InputError
from momentkit.io import check_output, write_json, write_jsonl
from momentkit.synth.video_dense import COLORS, KINDS, LANES
from momentkit.video.testing import Shape, make_video

TEMPLATES = ("a {color} {kind} moves {direction}", "the {color} {kind} slides {direction}",
             "a {color} {kind} goes {direction}")


@dataclass
class VideoMomentsConfig:
    """What :func:`generate_video_moments` makes. ``duration`` and ``length`` are (min, max) seconds,
    rounded to whole clips of ``clip_len``; ``shapes`` is the (min, max) number of shapes (moments,
    queries) per video, fewer when they do not fit; ``shape_size`` a fraction of the frame height."""

    num_videos: dict[str, int] = field(default_factory=lambda: {"train": 160, "val": 32})
    fps: int = 4
    size: int = 64
    clip_len: float = 2.0
    duration: tuple[float, float] = (16.0, 32.0)
    length: tuple[float, float] = (4.0, 10.0)
    shapes: tuple[int, int] = (2, 4)
    colors: tuple[str, ...] = ("red", "green", "blue", "yellow")
    kinds: tuple[str, ...] = KINDS
    shape_size: float = 0.26
    crf: int = 18

    def __post_init__(self) -> None:
        self.colors, self.kinds = tuple(self.colors), tuple(self.kinds)
        self.duration = tuple(float(v) for v in self.duration)
        self.length = tuple(float(v) for v in self.length)
        self.shapes = tuple(int(v) for v in self.shapes)
        if not isinstance(self.num_videos, dict) or not self.num_videos:
            raise InputError(f"expected {{split: count}}, got {self.num_videos!r}", field="num_videos")
        for split, n in self.num_videos.items():
            if not isinstance(split, str) or not split or not isinstance(n, int) or n < 0:
                raise InputError(f"expected a split name and a count >= 0, got {split!r}: {n!r}",
                                 field="num_videos")
        if self.fps < 1:
            raise InputError(f"must be >= 1, got {self.fps}", field="fps")
        if self.size < 16 or self.size % 2:
            raise InputError(f"must be an even number of pixels >= 16, got {self.size}", field="size")
        if not self.clip_len > 0 or self.fps * self.clip_len < 1:
            raise InputError(f"need clip_len > 0 with at least one frame per clip, got {self.clip_len}",
                             field="clip_len")
        unknown = [c for c in self.colors if c not in COLORS]
        if unknown or not self.colors or len(set(self.colors)) != len(self.colors):
            raise InputError(f"colours must be distinct, among {', '.join(COLORS)}; got {self.colors}",
                             field="colors")
        if not self.kinds or any(k not in KINDS for k in self.kinds) or len(set(self.kinds)) != len(self.kinds):
            raise InputError(f"kinds must be distinct, among {KINDS}; got {self.kinds}", field="kinds")
        if len(self.duration) != 2 or not 0 < self.duration[0] <= self.duration[1]:
            raise InputError(f"need 0 < min <= max, got {self.duration}", field="duration")
        if len(self.length) != 2 or not 0 < self.length[0] <= self.length[1]:
            raise InputError(f"need 0 < min <= max, got {self.length}", field="length")
        if self.clips(self.length[0]) > self.clips(self.duration[0]):
            raise InputError(f"the shortest moment ({self.length[0]} s) does not fit in the shortest video "
                             f"({self.duration[0]} s)", field="length")
        if len(self.shapes) != 2 or not 1 <= self.shapes[0] <= self.shapes[1]:
            raise InputError(f"expected (min, max) with 1 <= min <= max, got {self.shapes}", field="shapes")
        if not 0.05 <= self.shape_size <= 0.28:
            raise InputError(f"must be in [0.05, 0.28], got {self.shape_size}", field="shape_size")

    @property
    def classes(self) -> list[str]:
        """The colour-and-kind names ("red square", "red circle", ...)."""
        return [f"{c} {k}" for c in self.colors for k in self.kinds]

    def clips(self, seconds: float) -> int:
        return max(1, int(round(seconds / self.clip_len)))


@dataclass
class MomentVideo:
    """One video before (or after) rendering: its shapes and, per shape, the query and its window."""

    vid: str
    split: str
    duration: float
    shapes: tuple[Shape, ...]
    queries: tuple[str, ...]
    windows: tuple[tuple[float, float], ...]  # seconds, one per shape / query

    def rows(self, first_qid: int = 0) -> list[dict]:
        """QVHighlights JSON Lines rows, qids from ``first_qid``."""
        return [{"qid": first_qid + i, "query": q, "vid": self.vid, "duration": self.duration,
                 "relevant_windows": [[s, e]]} for i, (q, (s, e)) in enumerate(zip(self.queries, self.windows))]


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(("moments-" + split).encode()), int(index)])


def plan_moment_video(cfg: VideoMomentsConfig, rng: np.random.Generator, vid: str = "video",
                      split: str = "") -> MomentVideo:
    """Draw one video of the world: duration, shapes on free lanes, their queries and windows."""
    n = int(rng.integers(cfg.clips(cfg.duration[0]), cfg.clips(cfg.duration[1]) + 1))  # clips
    lo, hi = cfg.clips(cfg.length[0]), min(cfg.clips(cfg.length[1]), n)
    classes = [(c, k) for c in cfg.colors for k in cfg.kinds]
    want = int(rng.integers(cfg.shapes[0], cfg.shapes[1] + 1))
    lane_busy = np.zeros((len(LANES), n), dtype=bool)
    order = rng.permutation(len(classes))  # distinct classes: one moment per query
    placed = []
    for cls in order:
        if len(placed) >= want:
            break
        for _ in range(20):
            length = int(rng.integers(min(lo, hi), hi + 1))
            start = int(rng.integers(0, n - length + 1))
            free = [j for j in range(len(LANES)) if not lane_busy[j, start:start + length].any()]
            if free:
                lane = free[int(rng.integers(len(free)))]
                lane_busy[lane, start:start + length] = True
                placed.append((start, start + length, int(cls), lane))
                break
    placed.sort()
    shapes, queries, windows = [], [], []
    for start, end, cls, lane in placed:
        color, kind = classes[cls]
        right = bool(rng.integers(2))
        x0, x1 = float(rng.uniform(0.1, 0.3)), float(rng.uniform(0.7, 0.9))
        if not right:
            x0, x1 = 1.0 - x0, 1.0 - x1
        y = LANES[lane] + float(rng.uniform(-0.02, 0.02))
        s, e = start * cfg.clip_len, end * cfg.clip_len
        query = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(
            color=color, kind=kind, direction="right" if right else "left")
        shapes.append(Shape(kind, COLORS[color], s, e, (x0, y), (x1, y), size=cfg.shape_size, caption=query))
        queries.append(query)
        windows.append((s, e))
    return MomentVideo(vid, split, n * cfg.clip_len, tuple(shapes), tuple(queries), tuple(windows))


def plan_video_moments(*, seed: int = 0, config: VideoMomentsConfig | None = None, **options) -> list[MomentVideo]:
    """The videos :func:`generate_video_moments` would write with the same options, without writing."""
    cfg = config or VideoMomentsConfig(**options)
    return [plan_moment_video(cfg, _rng(seed, split, i), f"{split}_{i:03d}", split)
            for split, count in cfg.num_videos.items() for i in range(count)]


def render(video: MomentVideo, path: str | os.PathLike, cfg: VideoMomentsConfig) -> Path:
    """Write the MP4 of a planned video."""
    make_video(path, duration=video.duration, fps=cfg.fps, width=cfg.size, height=cfg.size,
               shapes=video.shapes, crf=cfg.crf)
    return Path(path)


def make_moment_video(path: str | os.PathLike, *, seed: int = 0, **options) -> MomentVideo:
    """Write one new video of the world to ``path`` (drawn from ``seed`` apart from every video of
    :func:`generate_video_moments`); its queries and windows are returned."""
    cfg = VideoMomentsConfig(**options)
    video = plan_moment_video(cfg, _rng(seed, "example", 0), Path(path).stem, "example")
    render(video, path, cfg)
    return video


def generate_video_moments(out: str | os.PathLike, *, seed: int = 0, **options) -> dict:
    """Write the dataset to ``out`` (see the module docstring) and return the summary also written
    to ``OUT/synth.json``. ``options`` are the fields of :class:`VideoMomentsConfig`
    (``num_videos={"train": 160, "val": 32}``, ``fps=4``, ``size=64``, ``clip_len=2``,
    ``duration=(16, 32)``, ``length=(4, 10)``, ``shapes=(2, 4)``, ``colors``, ``kinds``, ...).
    Existing files of the same names are replaced."""
    t0 = time.perf_counter()
    try:
        cfg = VideoMomentsConfig(**options)
    except TypeError as e:
        raise InputError(f"unknown setting ({e})", field="--set") from None
    out = check_output(out, "dir", option="out")
    rows: dict[str, list[dict]] = {split: [] for split in cfg.num_videos}
    counts: dict[str, dict] = {}
    qid = 0
    for video in plan_video_moments(seed=seed, config=cfg):
        render(video, out / "videos" / f"{video.vid}.mp4", cfg)
        rows[video.split] += video.rows(qid)
        qid += len(video.queries)
        frames = int(round(video.duration * cfg.fps))
        active = np.zeros(frames, dtype=np.int64)
        for s, e in video.windows:
            active[int(round(s * cfg.fps)):int(round(e * cfg.fps))] += 1
        c = counts.setdefault(video.split, {"videos": 0, "segments": 0, "queries": 0, "frames": 0,
                                            "multi_label_frames": 0, "seconds": 0.0})
        c["videos"] += 1
        c["segments"] += len(video.windows)
        c["queries"] += len(video.queries)
        c["frames"] += frames
        c["multi_label_frames"] += int((active > 1).sum())
        c["seconds"] += video.duration
    for split, r in rows.items():
        write_jsonl(out / "annotations" / f"{split}.jsonl", r)
    summary = {
        "generator": "video-moments",
        "seed": seed,
        "config": {**asdict(cfg), "duration": list(cfg.duration), "length": list(cfg.length),
                   "shapes": list(cfg.shapes), "colors": list(cfg.colors), "kinds": list(cfg.kinds)},
        "classes": cfg.classes,
        "templates": list(TEMPLATES),
        "counts": counts,
        "files": {"videos": "videos/{vid}.mp4", "annotations": "annotations/{split}.jsonl"},
    }
    write_json(out / "synth.json", summary)
    return {**summary, "out": str(out), "seconds": round(time.perf_counter() - t0, 3)}


__all__ = [
    "MomentVideo",
    "TEMPLATES",
    "VideoMomentsConfig",
    "generate_video_moments",
    "make_moment_video",
    "plan_moment_video",
    "plan_video_moments",
    "render",
]
