"""Dense (per-frame, multi-label) activity detection items: frames on a uniform grid, soft targets.

One convention everywhere (training targets, prediction files, :func:`momentkit.metrics.evaluate_dense`):
a video of ``duration`` seconds seen as ``T`` frames has frame ``i`` at time ``i * duration / T``, and
that frame is positive for class ``c`` when a segment ``[s, e]`` of ``c`` has ``s < t < e``
(:func:`frame_labels`, the rule of the MultiTHUMOS / Charades per-frame loaders).

Two ways to turn a video into model inputs (``sampling``):

- ``"resize"``: the whole video as exactly ``frames`` frames (features linearly interpolated on the
  time axis, raw frames picked nearest in time) -- Charades-length videos, the thesis's "entire
  input capped at T' frames";
- ``"window"``: the video's own steps (one per feature step, or decoded frames at ``fps``) cut into
  windows of ``frames`` steps: a random window per video and epoch for training, consecutive windows
  covering the video for evaluation (the last one edge-padded; ``mask`` is False there) -- long
  videos (MultiTHUMOS).

Inputs are feature sequences ``(T_v, D)`` from a feature store, or raw frames decoded from
``videos/<id>.mp4`` (``(C, T, H, W)`` float, normalised like X3D / Kinetics: ``(x / 255 - 0.45) / 0.225``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from momentkit.data.records import DetectionSample
from momentkit.errors import InputError

MEAN, STD = 0.45, 0.225
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def frame_times(duration: float, num_frames: int) -> np.ndarray:
    """``(T,)`` times in seconds of ``num_frames`` frames spread over ``duration`` (frame i at i*d/T)."""
    return np.arange(num_frames, dtype=np.float64) * float(duration) / int(num_frames)


def frame_labels(times: np.ndarray, spans: np.ndarray, columns: np.ndarray, num_classes: int) -> np.ndarray:
    """``(T, K)`` 0/1 labels: frame at ``times[i]`` is positive for ``columns[j]`` when
    ``spans[j, 0] < times[i] < spans[j, 1]``. ``spans (n, 2)`` seconds, ``columns (n,)`` class columns."""
    labels = np.zeros((len(times), num_classes), dtype=np.float32)
    for (s, e), c in zip(np.asarray(spans, dtype=np.float64).reshape(-1, 2), np.asarray(columns)):
        labels[(times > s) & (times < e), int(c)] = 1.0
    return labels


def class_columns(samples: Sequence[DetectionSample], classes: Sequence[str] | None, *, path=None
                  ) -> tuple[list[str], dict[str, int]]:
    """The class list and the label -> column map.

    With ``classes`` given, a segment's column is the index of its label in the list, else its
    ``label_id`` when that is within the list. Without, the columns are the ``label_id`` s when every
    segment has one (names from the labels; a gap gets its id as name), else the sorted labels.
    A label that maps to no column is an :class:`InputError` naming the video and the label.
    """
    segs = [(s.video, g) for s in samples for g in s.segments]
    if classes is None:
        if segs and all(g.label_id is not None for _, g in segs):
            k = max(g.label_id for _, g in segs) + 1
            names = [str(i) for i in range(k)]
            for _, g in segs:
                names[g.label_id] = g.label
            classes = names
        else:
            classes = sorted({g.label for _, g in segs})
    classes = [str(c) for c in classes]
    index = {c: i for i, c in enumerate(classes)}
    mapping: dict[str, int] = {}
    for video, g in segs:
        if g.label in index:
            mapping[g.label] = index[g.label]
        elif g.label_id is not None and 0 <= g.label_id < len(classes):
            mapping[g.label] = g.label_id
        else:
            ident = f" (id {g.label_id})" if g.label_id is not None else ""
            raise InputError(f"video '{video}': label {g.label!r}{ident} is not one of the "
                             f"{len(classes)} classes", path=path, field="label")
    return classes, mapping


def _interp_rows(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of the rows of ``x (T, D)`` at fractional row positions ``pos``."""
    pos = np.clip(pos, 0, len(x) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(x) - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return x[lo] * (1 - w) + x[hi] * w


class DenseDataset(Dataset):
    """Items ``{"inputs": (T, D) features or (C, T, H, W) frames, "labels": (T, K), "mask": (T,),
    "meta": {...}}`` from :class:`DetectionSample` records (see the module docstring).

    ``store``: a feature store (feature input) or None with ``videos`` (a folder of video files) for
    raw frames, decoded at ``fps`` frames per second (window sampling) and resized to ``frame_size``
    (shorter side; square crop at the centre).
    """

    def __init__(self, samples: Sequence[DetectionSample], columns: dict[str, int], num_classes: int, *,
                 frames: int, sampling: str = "resize", store=None, videos: Path | None = None,
                 fps: float | None = None, frame_size: int = 32, training: bool = False, seed: int = 0,
                 path=None, clip_labels: bool = False, augment=None) -> None:
        if sampling not in ("resize", "window"):
            raise InputError(f"expected 'resize' or 'window', got {sampling!r}", field="data.sampling")
        self.samples = list(samples)
        self.columns, self.num_classes = columns, num_classes
        self.frames, self.sampling, self.store = int(frames), sampling, store
        self.videos, self.fps, self.frame_size = (Path(videos) if videos else None), fps, int(frame_size)
        self.training, self.seed, self.epoch = training, seed, 0
        self.clip_labels = clip_labels
        self.augment = augment if training else None  # a VolumeAugmentConfig (momentkit.tasks.dense)
        self._decoded: dict[str, np.ndarray] = {}
        for s in self.samples:
            if not s.duration or s.duration <= 0:
                raise InputError(f"video '{s.video}' has no positive duration", path=path,
                                 field=f"{s.video}.duration")
            for g in s.segments:
                if g.start < -1e-6 or g.end > s.duration + 1e-6:
                    raise InputError(f"video '{s.video}': segment [{g.start:g}, {g.end:g}] ({g.label}) is outside "
                                     f"the video (0 to {s.duration:g} s)", path=path, field=f"{s.video}.segment")
        if store is not None:
            missing = store.missing([s.video for s in self.samples])
            if missing:
                raise InputError(f"{len(missing)} videos have no features (first: '{missing[0]}') in {store.source}",
                                 field="data.video_features")
        elif self.videos is None:
            raise InputError("give feature folders or a video folder", field="data.video_features")
        else:
            for s in self.samples:
                p = self._video_path(s.video)
                if p.stat().st_size == 0:
                    raise InputError("the video file is empty (no frames)", path=p, field="data.videos")
        # evaluation: one item per window of each video
        self.index: list[tuple[int, int]] = []
        for i, s in enumerate(self.samples):
            if training or sampling == "resize":
                self.index.append((i, 0))
            else:
                steps = self.num_steps(i)
                self.index += [(i, start) for start in range(0, steps, self.frames)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------------ inputs
    def _video_path(self, video: str) -> Path:
        for suffix in VIDEO_SUFFIXES:
            p = self.videos / f"{video}{suffix}"
            if p.is_file():
                return p
        raise InputError(f"no video file for '{video}' in {self.videos}", path=self.videos, field="data.videos")

    def _frames_of(self, index: int) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 decoded frames of sample ``index`` (cached)."""
        s = self.samples[index]
        if s.video not in self._decoded:
            from momentkit.video.decode import read_frames

            path = self._video_path(s.video)
            chunk = read_frames(path, self.fps, size=(self.frame_size, self.frame_size))
            if len(chunk) == 0:
                raise InputError("the video has no frames", path=path, field="data.videos")
            self._decoded[s.video] = chunk.frames
        return self._decoded[s.video]

    def num_steps(self, index: int) -> int:
        """Native steps of a video (feature steps, or decoded frames)."""
        if self.store is not None:
            n = self.store.get(self.samples[index].video).shape[-2]
            if n == 0:
                raise InputError(f"video '{self.samples[index].video}' has an empty feature sequence",
                                 field="data.video_features")
            return n
        return len(self._frames_of(index))

    def _native(self, index: int) -> np.ndarray:
        if self.store is not None:
            x = self.store.get(self.samples[index].video)
            if x.ndim != 2:
                raise InputError(f"expected (T, D) features, got shape {x.shape}", field="data.video_features")
            if len(x) == 0:
                raise InputError(f"video '{self.samples[index].video}' has an empty feature sequence",
                                 field="data.video_features")
            return x
        return self._frames_of(index)

    def __getitem__(self, item: int) -> dict:
        out = self._item(item)
        aug = self.augment
        if aug is None or not (aug.freeze or aug.mixup or aug.cutmix):
            return out
        return self._augmented(item, out)

    def _augmented(self, item: int, out: dict) -> dict:
        """Volume augmentations (:mod:`momentkit.ops.volume`) of a training item, with another random
        item of the set as the second clip of MixUp / CutMix; ``joint: single`` draws at most one,
        ``several`` draws each with its own probability, in the order Freeze, MixUp, CutMix."""
        from momentkit.ops.volume import VolumeAugment

        aug = self.augment
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, item, 101)) % (2**63))
        frames = out["inputs"].ndim == 4
        time_dim = 1 if frames else 0
        other = (item + 1 + int(torch.randint(max(len(self) - 1, 1), (), generator=g))) % len(self)
        partner = self._item(other)
        x, labels = out["inputs"], out["labels"]
        names = [VolumeAugment(aug.freeze, aug.mixup, aug.cutmix).choose(g)] if aug.joint == "single" else \
            [n for n in ("freeze", "mixup", "cutmix") if float(torch.rand((), generator=g)) < getattr(aug, n)]
        for name in names:
            if name == "none" or (name == "cutmix" and not frames):
                continue  # CutMix is spatial: feature sequences get Freeze and MixUp only
            t = VolumeAugment(cutmix_mode=aug.cutmix_mode, mixup_scenario=aug.mixup_scenario,
                              time_dim=time_dim)
            x, labels = t.apply(name, x, labels, partner["inputs"], partner["labels"], generator=g)
        return {**out, "inputs": x, "labels": labels.to(torch.float32)}

    def _item(self, item: int) -> dict:
        i, start = self.index[item]
        s = self.samples[i]
        x = self._native(i)
        steps = len(x)
        if self.sampling == "resize":
            total, start = self.frames, 0
            pos = np.arange(self.frames) * steps / self.frames  # frame i at i*d/T on the native grid
            x = _interp_rows(x.reshape(steps, -1).astype(np.float32), pos).reshape(self.frames, *x.shape[1:]) \
                if self.store is not None else x[np.minimum(np.round(pos).astype(np.int64), steps - 1)]
            valid = self.frames
        else:
            total = steps
            if self.training:
                rng = np.random.default_rng((self.seed, self.epoch, i))
                start = int(rng.integers(0, max(steps - self.frames, 0) + 1))
            take = np.minimum(np.arange(start, start + self.frames), steps - 1)  # edge padding
            valid = min(self.frames, steps - start)
            x = x[take]
        times = frame_times(s.duration, total)[np.minimum(np.arange(start, start + self.frames), total - 1)]
        spans = np.array([(g.start, g.end) for g in s.segments], dtype=np.float64).reshape(-1, 2)
        cols = np.array([self.columns[g.label] for g in s.segments], dtype=np.int64)
        if self.clip_labels:  # frame-level pseudo labels: every frame takes the clip's label(s)
            labels = np.zeros((self.frames, self.num_classes), dtype=np.float32)
            labels[:, np.unique(cols)] = 1.0
        else:
            labels = frame_labels(times, spans, cols, self.num_classes)
        mask = np.arange(self.frames) < valid
        if self.store is not None:
            inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        else:
            inputs = torch.from_numpy(np.ascontiguousarray(x)).permute(3, 0, 1, 2).float().div_(255).sub_(MEAN).div_(STD)
        return {
            "inputs": inputs,
            "labels": torch.from_numpy(labels),
            "mask": torch.from_numpy(mask),
            "meta": {"video": s.video, "duration": s.duration, "frame_start": start, "num_valid": int(valid),
                     "num_frames": int(total)},
        }


def collate_dense(batch: Sequence[dict]) -> dict:
    """Stack :class:`DenseDataset` items (every item has the same ``frames``): ``feats (B, T, D)`` or
    ``frames (B, C, T, H, W)``, ``labels (B, T, K)``, ``mask (B, T)`` bool, ``meta`` B dicts."""
    x = torch.stack([b["inputs"] for b in batch])
    out = {"feats": x} if x.ndim == 3 else {"frames": x}
    out.update(labels=torch.stack([b["labels"] for b in batch]), mask=torch.stack([b["mask"] for b in batch]),
               meta=[b["meta"] for b in batch])
    return out
