"""Torch datasets over feature stores, and their collate functions.

:class:`GroundingDataset` (moment retrieval / highlight detection) follows Moment-DETR's
``StartEndDataset``; :class:`DetectionDataset` (temporal action localisation) follows
ActionFormer's THUMOS14 dataset. Both take records from :mod:`momentkit.data.records` and features
from :mod:`momentkit.data.features`. Every random choice draws from ``np.random.default_rng((seed,
epoch, index))``: results do not depend on worker order; call ``set_epoch`` to get new draws.

Grounding targets
-----------------
- Video features are cut to the first ``max_v_len`` clips; T below is the number kept.
- Windows (seconds) become normalised centre/width as Moment-DETR's ``get_span_labels``:
  ``[st, ed] / (T * clip_len)`` then ``(centre, width)`` -- the normaliser is the duration the kept
  clips cover, not the annotated duration. Windows are first clipped to ``[0, T * clip_len]``;
  windows starting at or after ``T * clip_len`` are dropped. A sample whose windows all fall beyond
  the kept clips stays in the dataset with no spans and ``meta["out_of_view"] = True``, so a
  training loop can skip it or keep it (its saliency targets still count).
- At most ``max_windows`` windows are kept (a random subset, Moment-DETR uses 5); None keeps all.
- Saliency: ``GroundingSample.clip_saliency(T, clip_len)`` gives the dense ``(T, A)`` scores
  (``saliency_dense``); ``saliency`` is their sum over annotators, as QD-DETR's ``saliency_all_labels``.
  Samples without annotated saliency get 1 on clips overlapping a window when
  ``synthetic_saliency`` (the Charades-STA / TACoS convention), else no saliency targets.
- Margin-loss pairs, Moment-DETR's ``get_saliency_labels`` with ``max_n = saliency_pairs``: the
  ``max_n`` highest- and lowest-scored relevant clips (hard positives / negatives), then ``max_n``
  random relevant clips and ``max_n`` random clips outside the relevant ones (easy pairs; the hard
  ones are repeated when there are too few clips outside). With synthetic (binary) saliency all
  pairs are random relevant vs random non-relevant clips. Only clips inside the kept T are used;
  ``saliency_valid`` is False (and the indices 0) when no pair can be formed.
- Model inputs (the truncation above and the TEF, layer and text points below, padding and masks)
  come from :mod:`momentkit.data.inputs`, which :class:`momentkit.predict.Predictor` uses too.
- TEF (``use_tef``): ``[t / T, (t + 1) / T]`` appended to every clip's features (to each layer of
  layered features), as Moment-DETR does.
- ``layer``: with layered features ``(K, T, D)`` / ``(K, L, D)``, keep only layer ``layer`` (e.g.
  -1, the last) for models that take one layer (Moment-DETR, QD-DETR on a side-tuning data set).
- Text features are cut to ``max_q_len`` tokens and L2-normalised (``normalize_text``, as
  Moment-DETR's ``normalize_t``). Video features are used as the store gives them; use
  :class:`~momentkit.data.features.ConcatStore` for Moment-DETR's per-source normalisation.

Detection targets
-----------------
Segment times become feature-step units as ActionFormer: ``(t * fps - 0.5 * num_frames) /
feat_stride`` (frames), or ``(t - feat_offset_seconds) / feat_stride_seconds``. In training with
``max_seq_len``, longer sequences are randomly cropped to ``max_seq_len`` steps (ActionFormer's
``truncate_feats``: up to 200 tries to keep a segment with at least ``trunc_thresh`` of it inside;
segments are clipped to the crop and those below the threshold dropped); ``crop_ratio`` also crops
shorter ones. Evaluation keeps full sequences. ``meta`` carries what maps steps back to seconds:
``seconds = (step + crop_start) * stride_seconds + offset_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from momentkit.data.features import FeatureStore
from momentkit.data.inputs import batch_inputs, pad_time, text_inputs, video_inputs
from momentkit.data.inputs import tef  # noqa: F401 - re-exported, where it has always been importable
from momentkit.data.records import DetectionSample, GroundingSample
from momentkit.errors import InputError
from momentkit.spans import xx_to_cxw


def _check_present(store: FeatureStore, keys: Sequence[str], what: str, label: Callable[[int], str]) -> None:
    """Fail early, naming the first few samples whose features ``store`` lacks."""
    missing = [i for i, k in enumerate(keys) if k not in store]
    if missing:
        first = ", ".join(label(i) for i in missing[:3])
        raise InputError(f"{len(missing)} of {len(keys)} samples have no {what} features "
                         f"(first: {first})", path=store.source)


# ----------------------------------------------------------------------------- grounding
class GroundingDataset(Dataset):
    """Moment retrieval / highlight detection items from ``GroundingSample`` records.

    ``video_store`` is keyed by ``vid``; text comes from ``text_store`` (keyed by ``str(qid)``) or
    from ``text_feature_fn(sample)``. Items are dicts; see :func:`collate_grounding`.
    """

    def __init__(
        self,
        samples: Sequence[GroundingSample],
        video_store: FeatureStore,
        text_store: FeatureStore | None = None,
        *,
        clip_len: float = 2.0,
        max_v_len: int = 75,
        max_q_len: int = 32,
        text_feature_fn: Callable[[GroundingSample], np.ndarray] | None = None,
        use_tef: bool = True,
        synthetic_saliency: bool = True,
        normalize_text: bool = True,
        max_windows: int | None = 5,
        saliency_pairs: int = 1,
        layer: int | None = None,
        seed: int = 0,
        check: bool = True,
    ) -> None:
        if (text_store is None) == (text_feature_fn is None):
            raise ValueError("give exactly one of text_store and text_feature_fn")
        if clip_len <= 0 or max_v_len < 1 or max_q_len < 1 or saliency_pairs < 1:
            raise ValueError("clip_len, max_v_len, max_q_len and saliency_pairs must be positive")
        self.samples = list(samples)
        self.video_store = video_store
        self.text_store = text_store
        self.text_feature_fn = text_feature_fn
        self.clip_len = float(clip_len)
        self.max_v_len = int(max_v_len)
        self.max_q_len = int(max_q_len)
        self.use_tef = use_tef
        self.synthetic_saliency = synthetic_saliency
        self.normalize_text = normalize_text
        self.max_windows = max_windows
        self.saliency_pairs = int(saliency_pairs)
        self.layer = layer
        self.seed = seed
        self.epoch = 0
        if check:
            label = lambda i: f"vid '{self.samples[i].vid}' of qid {self.samples[i].qid}"  # noqa: E731
            _check_present(video_store, [s.vid for s in self.samples], "video", label)
            if text_store is not None:
                _check_present(text_store, [str(s.qid) for s in self.samples], "text",
                               lambda i: f"qid {self.samples[i].qid}")

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws (window subsets, saliency pairs) of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        rng = self._rng(index)

        video = self.video_store.get(s.vid)
        full_len = video.shape[-2]
        video = video_inputs(video, self.max_v_len, self.use_tef, self.layer, f"video features of '{s.vid}'")
        n_clips = video.shape[-2]

        text = self.text_feature_fn(s) if self.text_feature_fn is not None else self.text_store.get(s.qid)
        text = np.asarray(text, dtype=np.float32)
        full_q = text.shape[-2] if text.ndim > 1 else 1
        text = text_inputs(text, self.max_q_len, self.normalize_text, self.layer, f"text features of qid {s.qid}")

        windows, spans = self.span_targets(s.windows, n_clips, rng)
        sal_dense, relevant = self.saliency_targets(s, n_clips)
        pos, neg, valid = self.saliency_pairs_for(sal_dense, relevant, synthetic=not s.saliency_scores, rng=rng)

        meta = {
            "qid": s.qid,
            "vid": s.vid,
            "query": s.query,
            "duration": s.duration,
            "clip_len": self.clip_len,
            "num_clips": n_clips,
            "video_truncated": full_len > n_clips,
            "text_truncated": full_q > text.shape[-2],
            "windows": windows.tolist(),
            "out_of_view": len(s.windows) > 0 and len(windows) == 0,
        }
        return {
            "video_feats": video,
            "text_feats": text,
            "spans": spans,
            "saliency": torch.from_numpy(sal_dense.sum(axis=1)),
            "saliency_dense": torch.from_numpy(sal_dense),
            "saliency_pos_idx": torch.from_numpy(pos),
            "saliency_neg_idx": torch.from_numpy(neg),
            "saliency_valid": valid,
            "meta": meta,
        }

    # -- targets
    def span_targets(self, windows, n_clips: int, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
        """Windows clipped to the kept clips (seconds, (n, 2)) and their normalised cxw spans."""
        w = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
        covered = n_clips * self.clip_len
        w = w[w[:, 0] < covered]
        w = np.clip(w, 0.0, covered)
        if self.max_windows is not None and len(w) > self.max_windows:
            w = w[np.sort(rng.permutation(len(w))[: self.max_windows])]
        spans = xx_to_cxw(torch.from_numpy(w / covered).float())
        return w, spans

    def saliency_targets(self, s: GroundingSample, n_clips: int) -> tuple[np.ndarray, np.ndarray]:
        """Dense saliency (T, A) float32 and the bool mask of relevant clips (T,)."""
        if s.saliency_scores:
            dense = s.clip_saliency(n_clips, self.clip_len)
            relevant = np.zeros(n_clips, dtype=bool)
            ids = np.asarray(s.relevant_clip_ids, dtype=np.int64)
            relevant[ids[(ids >= 0) & (ids < n_clips)]] = True
        elif self.synthetic_saliency:
            dense = s.clip_saliency(n_clips, self.clip_len)
            relevant = dense[:, 0] > 0
        else:
            dense = np.zeros((n_clips, 1), dtype=np.float32)
            relevant = np.zeros(n_clips, dtype=bool)
        return dense.astype(np.float32, copy=False), relevant

    def saliency_pairs_for(
        self, dense: np.ndarray, relevant: np.ndarray, *, synthetic: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Positive and negative clip indices (2 * saliency_pairs each) and whether they are valid."""
        m = self.saliency_pairs
        rel = np.flatnonzero(relevant)
        out_pool = np.flatnonzero(~relevant)
        empty = np.zeros(2 * m, dtype=np.int64)
        if rel.size == 0:
            return empty, empty.copy(), False
        if synthetic:
            if out_pool.size == 0:
                return empty, empty.copy(), False
            pos = rng.choice(rel, 2 * m, replace=rel.size < 2 * m)
            neg = rng.choice(out_pool, 2 * m, replace=out_pool.size < 2 * m)
            return pos.astype(np.int64), neg.astype(np.int64), True
        agg = dense.sum(axis=1)
        order = rel[np.argsort(agg[rel], kind="stable")]  # increasing score
        hard_pos = np.resize(order[::-1], m)
        hard_neg = np.resize(order, m)
        if out_pool.size >= m:
            easy_pos = rng.choice(rel, m, replace=rel.size < m)
            easy_neg = rng.choice(out_pool, m, replace=False)
        else:
            easy_pos, easy_neg = hard_pos, hard_neg
        pos = np.concatenate([hard_pos, easy_pos]).astype(np.int64)
        neg = np.concatenate([hard_neg, easy_neg]).astype(np.int64)
        return pos, neg, True


def collate_grounding(batch: Sequence[dict]) -> dict:
    """Batch :class:`GroundingDataset` items.

    Returns ``video_feats`` (B, T, Dv) or (B, K, T, Dv) and ``video_mask`` (B, T) bool (True = real
    clip); ``text_feats`` (B, L, Dt) or (B, K, L, Dt) and ``text_mask`` (B, L); ``spans``: list of
    (n_i, 2) normalised cxw tensors; ``saliency`` (B, T) (0 on padding); ``saliency_pos_idx`` /
    ``saliency_neg_idx`` (B, 2 * pairs) long; ``saliency_valid`` (B,) bool; ``meta``: list of dicts.
    """
    inputs = batch_inputs([b["video_feats"] for b in batch], [b["text_feats"] for b in batch])
    sal, _ = pad_time([b["saliency"][:, None] for b in batch])
    return {
        **inputs,
        "spans": [b["spans"] for b in batch],
        "saliency": sal[..., 0],
        "saliency_pos_idx": torch.stack([b["saliency_pos_idx"] for b in batch]),
        "saliency_neg_idx": torch.stack([b["saliency_neg_idx"] for b in batch]),
        "saliency_valid": torch.tensor([b["saliency_valid"] for b in batch], dtype=torch.bool),
        "meta": [b["meta"] for b in batch],
    }


# ----------------------------------------------------------------------------- detection
class DetectionDataset(Dataset):
    """Temporal action localisation items from ``DetectionSample`` records (ActionFormer style).

    The feature grid is given either in frames (``feat_stride``, ``num_frames`` -- default
    ``feat_stride`` -- and the fps: ``default_fps`` when given, else each sample's ``fps``) or in
    seconds (``feat_stride_seconds``, ``feat_offset_seconds``). ``classes`` is a list of names
    (index = class id) or a name -> id mapping. ``downsample_rate`` keeps every r-th feature step.
    """

    def __init__(
        self,
        samples: Sequence[DetectionSample],
        video_store: FeatureStore,
        classes: Sequence[str] | Mapping[str, int],
        *,
        feat_stride: int | None = None,
        num_frames: int | None = None,
        default_fps: float | None = None,
        feat_stride_seconds: float | None = None,
        feat_offset_seconds: float = 0.0,
        downsample_rate: int = 1,
        max_seq_len: int | None = None,
        training: bool = False,
        trunc_thresh: float = 0.5,
        crop_ratio: tuple[float, float] | None = None,
        skip_unknown_labels: bool = False,
        seed: int = 0,
        check: bool = True,
    ) -> None:
        if (feat_stride is None) == (feat_stride_seconds is None):
            raise ValueError("give exactly one of feat_stride (frames) and feat_stride_seconds")
        if downsample_rate < 1:
            raise ValueError("downsample_rate must be >= 1")
        self.samples = list(samples)
        self.video_store = video_store
        self.class_to_id = dict(classes) if isinstance(classes, Mapping) else {c: i for i, c in enumerate(classes)}
        self.num_classes = len(set(self.class_to_id.values()))
        self.max_seq_len = max_seq_len
        self.training = training
        self.trunc_thresh = trunc_thresh
        self.crop_ratio = crop_ratio
        self.downsample_rate = int(downsample_rate)
        self.seed = seed
        self.epoch = 0

        self._grid: list[tuple[float, float]] = []  # (stride_seconds, offset_seconds) per sample
        self._targets: list[tuple[np.ndarray, np.ndarray]] = []  # (segments in steps, labels)
        for s in self.samples:
            if feat_stride is not None:
                fps = default_fps if default_fps is not None else s.fps
                if not fps or fps <= 0:
                    raise InputError(f"video '{s.video}' has no fps; give default_fps", field="fps")
                stride_s = feat_stride * self.downsample_rate / fps
                offset_s = 0.5 * (num_frames if num_frames is not None else feat_stride) / fps
            else:
                stride_s = feat_stride_seconds * self.downsample_rate
                offset_s = feat_offset_seconds
            self._grid.append((stride_s, offset_s))
            segs, labels = [], []
            for seg in s.segments:
                if seg.label not in self.class_to_id:
                    if skip_unknown_labels:
                        continue
                    raise InputError(f"segment label {seg.label!r} of video '{s.video}' is not one of the "
                                     f"{len(self.class_to_id)} classes", field="label")
                segs.append((seg.start, seg.end))
                labels.append(self.class_to_id[seg.label])
            segs = (np.asarray(segs, dtype=np.float64).reshape(-1, 2) - offset_s) / stride_s
            self._targets.append((segs.astype(np.float32), np.asarray(labels, dtype=np.int64)))
        if check:
            _check_present(video_store, [s.video for s in self.samples], "video",
                           lambda i: f"video '{self.samples[i].video}'")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        s = self.samples[index]
        stride_s, offset_s = self._grid[index]
        feats = self.video_store.get(s.video)[..., :: self.downsample_rate, :]
        segs, labels = self._targets[index]
        start = 0
        if self.training and self.max_seq_len is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            start, length, keep, segs = self._crop(feats.shape[-2], segs, rng)
            feats = feats[..., start : start + length, :]
            labels = labels[keep]
        meta = {
            "video": s.video,
            "duration": s.duration,
            "fps": s.fps,
            "stride_seconds": stride_s,
            "offset_seconds": offset_s,
            "crop_start": start,
            "num_steps": feats.shape[-2],
        }
        return {
            "feats": torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)),
            "segments": torch.from_numpy(np.ascontiguousarray(segs, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels)),
            "meta": meta,
        }

    def _crop(self, feat_len: int, segs: np.ndarray, rng: np.random.Generator):
        """ActionFormer's ``truncate_feats``: (start, length, kept-segment mask, shifted segments)."""
        max_len = self.max_seq_len
        if feat_len <= max_len:
            if self.crop_ratio is None:
                return 0, feat_len, np.ones(len(segs), dtype=bool), segs
            lo = max(round(self.crop_ratio[0] * feat_len), 1)
            hi = min(round(self.crop_ratio[1] * feat_len), feat_len)
            max_len = int(rng.integers(lo, hi + 1))
            if max_len == feat_len:
                return 0, feat_len, np.ones(len(segs), dtype=bool), segs
        for _ in range(200):
            st = int(rng.integers(0, feat_len - max_len + 1))
            left = np.maximum(segs[:, 0], st)
            right = np.minimum(segs[:, 1], st + max_len)
            inter = np.clip(right - left, 0, None)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = inter / np.abs(segs[:, 1] - segs[:, 0])
            keep = ratio >= self.trunc_thresh
            if keep.any() or len(segs) == 0:
                break
        new = np.stack([left[keep], right[keep]], axis=1) - st
        return st, max_len, keep, new.astype(np.float32)


def collate_detection(batch: Sequence[dict], pad_to: int | None = None) -> dict:
    """Batch :class:`DetectionDataset` items: ``feats`` (B, T, D) (or (B, K, T, D)) zero-padded to the
    longest item or ``pad_to`` steps, ``mask`` (B, T) bool (True = real step), ``segments`` list of
    (n_i, 2) in feature steps, ``labels`` list of (n_i,) long, ``meta`` list of dicts."""
    feats, mask = pad_time([b["feats"] for b in batch], min_len=pad_to or 0)
    return {
        "feats": feats,
        "mask": mask,
        "segments": [b["segments"] for b in batch],
        "labels": [b["labels"] for b in batch],
        "meta": [b["meta"] for b in batch],
    }
