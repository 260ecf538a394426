"""Tiny raw-video dense-detection data: short MP4 files with per-frame multi-label activities.

Each video shows coloured shapes moving over a dark background; an activity class is a kind and a
colour ("red square", "blue circle", ...) and an instance of it is the time a shape of that class
is on screen. Instances overlap in time (several labels in one frame) but never in space: each
runs along its own horizontal lane, so no shape hides another. Two instances of one class never
touch, so every segment is a separate appearance. The frames come from
:func:`momentkit.video.testing.make_video` (PyAV, H.264), whose left quarter is a grey marker strip
encoding the frame number.

Segment times are whole frames: an instance covering frames ``a .. b-1`` is written as
``[a / fps, b / fps]``, and frame ``i`` (shown from ``i / fps``, centre ``(i + 0.5) / fps``) carries
the label exactly when ``start <= i / fps < end``.

Layout written by :func:`generate_video_dense`::

    OUT/videos/{vid}.mp4               e.g. train_000.mp4, val_003.mp4
    OUT/annotations/dense.json         ActivityNet-style detection JSON ("detection-json"),
                                       subsets "training" / "validation", label = class name,
                                       label_id = class index
    OUT/classes.txt                    one class name per line, in label_id order
    OUT/synth.json                     config, seed, classes and counts

Everything follows from the seed; each video has its own random stream (from the seed, the split
name and the video's index), so adding videos to one split changes no other video.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from momentkit.data.annotations import write_annotations
from momentkit.data.records import DetectionSample, Segment
from momentkit.errors import InputError
from momentkit.io import atomic_write, check_output, write_json
from momentkit.video.testing import Shape, make_video

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (40, 200, 40),
    "blue": (40, 80, 240),
    "yellow": (230, 220, 40),
    "magenta": (220, 40, 220),
    "cyan": (40, 210, 220),
}
KINDS = ("square", "circle")
SUBSET_NAMES = {"train": "training", "val": "validation", "test": "testing"}
LANES = (0.2, 0.5, 0.8)  # vertical centres (fractions of the height) of the shapes' tracks


@dataclass
class VideoDenseConfig:
    """What :func:`generate_video_dense` makes. Durations and lengths are seconds, rounded to
    whole frames; ``instances`` is the (min, max) number of activity instances per video (fewer
    when they do not fit); ``shape_size`` is a fraction of the frame height (at most 0.28, so
    the three lanes never overlap)."""

    num_videos: dict[str, int] = field(default_factory=lambda: {"train": 16, "val": 8})
    fps: int = 8
    size: int = 64
    min_duration: float = 4.0
    max_duration: float = 8.0
    colors: tuple[str, ...] = ("red", "green", "blue")
    kinds: tuple[str, ...] = KINDS
    instances: tuple[int, int] = (2, 5)
    min_length: float = 1.0
    max_length: float = 3.0
    shape_size: float = 0.25
    crf: int = 18

    def __post_init__(self) -> None:
        self.colors, self.kinds = tuple(self.colors), tuple(self.kinds)
        self.instances = tuple(int(v) for v in self.instances)
        if not isinstance(self.num_videos, dict) or not self.num_videos:
            raise InputError(f"expected {{split: count}}, got {self.num_videos!r}", field="num_videos")
        for split, n in self.num_videos.items():
            if not isinstance(split, str) or not split or not isinstance(n, int) or n < 0:
                raise InputError(f"expected a split name and a count >= 0, got {split!r}: {n!r}",
                                 field="num_videos")
        if self.fps < 1:
            raise InputError(f"must be >= 1, got {self.fps}", field="fps")
        if self.size < 16:
            raise InputError(f"must be >= 16 pixels, got {self.size}", field="size")
        if self.size % 2:
            raise InputError(f"must be even (H.264 with 4:2:0 chroma), got {self.size}", field="size")
        unknown = [c for c in self.colors if c not in COLORS]
        if unknown or not self.colors:
            raise InputError(f"unknown colour(s) {unknown}; known: {', '.join(COLORS)}", field="colors")
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise InputError(f"kinds must be among {KINDS}, got {self.kinds}", field="kinds")
        if len(set(self.colors)) != len(self.colors) or len(set(self.kinds)) != len(self.kinds):
            raise InputError("colours and kinds must not repeat", field="colors")
        if not 0 < self.min_duration <= self.max_duration:
            raise InputError(f"need 0 < min_duration <= max_duration, got {self.min_duration}, "
                             f"{self.max_duration}", field="min_duration")
        if not 0 < self.min_length <= self.max_length:
            raise InputError(f"need 0 < min_length <= max_length, got {self.min_length}, {self.max_length}",
                             field="min_length")
        if self.min_length > self.min_duration:
            raise InputError(f"min_length {self.min_length} does not fit in min_duration {self.min_duration}",
                             field="min_length")
        if len(self.instances) != 2 or not 0 <= self.instances[0] <= self.instances[1]:
            raise InputError(f"expected (min, max) with 0 <= min <= max, got {self.instances}", field="instances")
        if not 0.05 <= self.shape_size <= 0.28:
            raise InputError(f"must be in [0.05, 0.28], got {self.shape_size}", field="shape_size")

    @property
    def classes(self) -> list[str]:
        """Class names in label_id order: colour-major ("red square", "red circle", "green square", ...)."""
        return [f"{c} {k}" for c in self.colors for k in self.kinds]

    def frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.fps)))


@dataclass
class VideoPlan:
    """One video before rendering: its frames and its shapes (``Shape.caption`` is the class
    name). ``labels()`` is the per-frame multi-hot target ``(num_frames, num_classes)``."""

    vid: str
    split: str
    subset: str
    num_frames: int
    fps: int
    shapes: tuple[Shape, ...]
    label_ids: tuple[int, ...]  # class index of each shape
    frame_spans: tuple[tuple[int, int], ...]  # [first, end) frame of each shape

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def segments(self) -> tuple[Segment, ...]:
        return tuple(Segment(a / self.fps, b / self.fps, s.caption, lid)
                     for s, lid, (a, b) in zip(self.shapes, self.label_ids, self.frame_spans))

    def labels(self, num_classes: int) -> np.ndarray:
        out = np.zeros((self.num_frames, num_classes), dtype=np.float32)
        for lid, (a, b) in zip(self.label_ids, self.frame_spans):
            out[a:b, lid] = 1.0
        return out


def shape_centre(shape: Shape, t: float, width: int, height: int) -> tuple[float, float]:
    """Pixel ``(x, y)`` of a shape's centre at ``t`` seconds, as
    :func:`momentkit.video.testing.render_frame` draws it (the scene lies right of the marker)."""
    marker_w = width // 4
    a = 0.0 if shape.end <= shape.start else (t - shape.start) / (shape.end - shape.start)
    fx = shape.start_xy[0] + a * (shape.end_xy[0] - shape.start_xy[0])
    fy = shape.start_xy[1] + a * (shape.end_xy[1] - shape.start_xy[1])
    return marker_w + fx * (width - marker_w), fy * height


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(index)])


def _plan_one(cfg: VideoDenseConfig, split: str, index: int, seed: int) -> VideoPlan:
    rng = _rng(seed, split, index)
    n = int(rng.integers(cfg.frames(cfg.min_duration), cfg.frames(cfg.max_duration) + 1))
    classes = cfg.classes
    lane_busy = np.zeros((len(LANES), n), dtype=bool)
    class_busy = np.zeros((len(classes), n + 2), dtype=bool)  # padded: same-class instances never touch
    want = int(rng.integers(cfg.instances[0], cfg.instances[1] + 1))
    lo, hi = cfg.frames(cfg.min_length), min(cfg.frames(cfg.max_length), n)
    placed: list[tuple[int, int, int, int]] = []  # (start, end, class, lane)
    for _ in range(30 * max(want, 1)):
        if len(placed) >= want:
            break
        cls = int(rng.integers(len(classes)))
        length = int(rng.integers(min(lo, hi), hi + 1))
        start = int(rng.integers(0, n - length + 1))
        end = start + length
        if class_busy[cls, start:end + 2].any():
            continue
        free = [j for j in range(len(LANES)) if not lane_busy[j, start:end].any()]
        if not free:
            continue
        lane = free[int(rng.integers(len(free)))]
        lane_busy[lane, start:end] = True
        class_busy[cls, start + 1:end + 1] = True
        placed.append((start, end, cls, lane))
    placed.sort()
    shapes, label_ids, spans = [], [], []
    for start, end, cls, lane in placed:
        color, kind = cfg.colors[cls // len(cfg.kinds)], cfg.kinds[cls % len(cfg.kinds)]
        x0 = float(rng.uniform(0.2, 0.8))
        x1 = float(np.clip(x0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.6), 0.2, 0.8))
        y = LANES[lane] + float(rng.uniform(-0.02, 0.02))
        shapes.append(Shape(kind, COLORS[color], start / cfg.fps, end / cfg.fps, (x0, y), (x1, y),
                            size=cfg.shape_size, caption=classes[cls]))
        label_ids.append(cls)
        spans.append((start, end))
    return VideoPlan(f"{split}_{index:03d}", split, SUBSET_NAMES.get(split, split), n, cfg.fps, tuple(shapes),
                     tuple(label_ids), tuple(spans))


def plan_video_dense(*, seed: int = 0, **options) -> list[VideoPlan]:
    """The videos :func:`generate_video_dense` would write with the same options, without writing
    anything (their shapes, frame spans and per-frame labels)."""
    cfg = options.pop("config", None) or VideoDenseConfig(**options)
    return [_plan_one(cfg, split, i, seed) for split, count in cfg.num_videos.items() for i in range(count)]


def generate_video_dense(out: str | os.PathLike, *, seed: int = 0, **options) -> dict:
    """Write the dataset to ``out`` (see the module docstring) and return the summary also written
    to ``OUT/synth.json``. ``options`` are the fields of :class:`VideoDenseConfig`
    (``num_videos={"train": 16, "val": 8}``, ``fps=8``, ``size=64``, ``min_duration=4``,
    ``max_duration=8``, ``colors``, ``kinds``, ...). Existing files of the same names are replaced."""
    t0 = time.perf_counter()
    cfg = VideoDenseConfig(**options)
    out = check_output(out, "dir", option="out")
    plans = plan_video_dense(seed=seed, config=cfg)
    classes = cfg.classes
    samples = []
    counts: dict[str, dict] = {}
    for plan in plans:
        make_video(out / "videos" / f"{plan.vid}.mp4", duration=plan.duration, fps=cfg.fps, width=cfg.size,
                   height=cfg.size, shapes=plan.shapes, crf=cfg.crf)
        samples.append(DetectionSample(plan.vid, plan.duration, plan.segments(), subset=plan.subset,
                                       fps=float(cfg.fps)))
        labels = plan.labels(len(classes))
        active = labels.sum(axis=1)
        c = counts.setdefault(plan.split, {"subset": plan.subset, "videos": 0, "segments": 0, "frames": 0,
                                           "background_frames": 0, "multi_label_frames": 0,
                                           "segments_per_class": {name: 0 for name in classes}})
        c["videos"] += 1
        c["segments"] += len(plan.shapes)
        c["frames"] += plan.num_frames
        c["background_frames"] += int((active == 0).sum())
        c["multi_label_frames"] += int((active > 1).sum())
        for lid in plan.label_ids:
            c["segments_per_class"][classes[lid]] += 1
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    write_annotations(out / "annotations" / "dense.json", samples, "detection-json")
    with atomic_write(out / "classes.txt") as fh:
        fh.write("".join(name + "\n" for name in classes))
    config = asdict(cfg)
    config["instances"] = list(cfg.instances)
    summary = {
        "generator": "video-dense",
        "seed": seed,
        "config": config,
        "classes": classes,
        "counts": counts,
        "files": {"videos": "videos/{vid}.mp4", "annotations": "annotations/dense.json",
                  "classes": "classes.txt"},
    }
    write_json(out / "synth.json", summary)
    return {**summary, "out": str(out), "seconds": round(time.perf_counter() - t0, 3)}


def generate_video_clips(out: str | os.PathLike, *, seed: int = 0, duration: float = 2.0, **options) -> dict:
    """Trimmed single-action clips of the same visual world (detection pretraining on raw frames):
    each clip shows one shape of one class for its whole ``duration``, moving along a random lane;
    labels are clip-level only. Writes ``OUT/videos/clip_{split}_{i:04d}.mp4``,
    ``OUT/annotations/clips.csv`` (``label,video,duration,split``, the ``clips-csv`` format),
    ``OUT/classes.txt`` and ``OUT/synth.json``. ``options``: the fields of :class:`VideoDenseConfig`
    (``num_videos``, ``fps``, ``size``, ``colors``, ``kinds``, ``shape_size``, ``crf``)."""
    import csv

    t0 = time.perf_counter()
    options.setdefault("num_videos", {"train": 96, "val": 24})
    cfg = VideoDenseConfig(min_duration=duration, max_duration=duration, min_length=duration,
                           max_length=duration, instances=(1, 1), **options)
    out = check_output(out, "dir", option="out")
    classes = cfg.classes
    n = cfg.frames(duration)
    rows, counts = [], {}
    for split, count in cfg.num_videos.items():
        for i in range(count):
            rng = _rng(seed, "clip-" + split, i)
            cls = int(rng.integers(len(classes)))
            color, kind = cfg.colors[cls // len(cfg.kinds)], cfg.kinds[cls % len(cfg.kinds)]
            x0 = float(rng.uniform(0.2, 0.8))
            x1 = float(np.clip(x0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.6), 0.2, 0.8))
            y = LANES[int(rng.integers(len(LANES)))] + float(rng.uniform(-0.02, 0.02))
            shape = Shape(kind, COLORS[color], 0.0, n / cfg.fps, (x0, y), (x1, y), size=cfg.shape_size,
                          caption=classes[cls])
            vid = f"clip_{split}_{i:04d}"
            make_video(out / "videos" / f"{vid}.mp4", duration=n / cfg.fps, fps=cfg.fps, width=cfg.size,
                       height=cfg.size, shapes=(shape,), crf=cfg.crf)
            rows.append((classes[cls], vid, n / cfg.fps, split))
            counts.setdefault(split, {"videos": 0, "segments": 0, "frames": 0, "multi_label_frames": 0})
            c = counts[split]
            c["videos"] += 1
            c["segments"] += 1
            c["frames"] += n
    with atomic_write(out / "annotations" / "clips.csv", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "video", "duration", "split"])
        w.writerows(rows)
    with atomic_write(out / "classes.txt") as fh:
        fh.write("".join(name + "\n" for name in classes))
    summary = {"generator": "video-clips", "seed": seed, "config": {**asdict(cfg), "instances": [1, 1]},
               "classes": classes, "counts": counts,
               "files": {"videos": "videos/{vid}.mp4", "annotations": "annotations/clips.csv",
                         "classes": "classes.txt"}}
    write_json(out / "synth.json", summary)
    return {**summary, "out": str(out), "seconds": round(time.perf_counter() - t0, 3)}


__all__ = [
    "COLORS",
    "KINDS",
    "VideoDenseConfig",
    "VideoPlan",
    "generate_video_clips",
    "generate_video_dense",
    "plan_video_dense",
    "shape_centre",
]
