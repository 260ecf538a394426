"""Model inputs of grounding: the one place where clip and token features become what a model reads.

Training and evaluation (:class:`momentkit.data.datasets.GroundingDataset` and
:func:`~momentkit.data.datasets.collate_grounding`) and inference (:class:`momentkit.predict.Predictor`,
per window of a long video) all go through these functions, so a trained model sees at inference
exactly what it saw in training.

Per item (float32 tensors):

- :func:`video_inputs` ``(feats, max_len, use_tef, layer)``: clip features ``(T, Dv)`` or layered
  ``(K, T, Dv)`` -> ``(T', Dv + 2 * use_tef)`` or ``(K, T', Dv + 2 * use_tef)``: layer ``layer`` only
  when given (layered features), cut to the first ``T' = min(T, max_len)`` clips, then the TEF
  ``[t / T', (t + 1) / T']`` of the *kept* clips appended (to each layer). A window of a long video
  starting at clip ``s`` is ``video_inputs(feats[..., s:, :], window, ...)``: its TEF is relative to
  the window, as a training item's is relative to its truncated video.
- :func:`text_inputs` ``(feats, max_len, normalize, layer)``: token features ``(L, Dt)``, ``(Dt,)``
  (one token) or layered ``(K, L, Dt)`` -> ``(L', Dt)`` / ``(K, L', Dt)``: layer ``layer`` only when
  given, cut to ``L' = min(L, max_len)`` tokens, then L2-normalised per token when ``normalize``.

Batch (:func:`batch_inputs`, items right-padded with zeros on the time axis):

- ``video_feats`` ``(B, T, Dv)`` or ``(B, K, T, Dv)`` float32, ``video_mask`` ``(B, T)`` bool;
- ``text_feats`` ``(B, L, Dt)`` or ``(B, K, L, Dt)`` float32, ``text_mask`` ``(B, L)`` bool;
  ``T`` / ``L``: the longest item of the batch.

**Mask polarity.** Batch masks are ``True`` at a *valid* (real) position and ``False`` at padding;
losses and post-processing read them that way. The attention layers of
:mod:`momentkit.models.transformer` take PyTorch key-padding masks, ``True`` at a *padded* position:
the models convert with ``~mask`` inside ``forward``, where they call those layers (e.g.
``MomentDETR._encode``, ``SDST.forward``); nothing before the model does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from momentkit.data.features import l2_normalize
from momentkit.errors import InputError


def tef(num_clips: int) -> np.ndarray:
    """Temporal endpoint features ``[t / T, (t + 1) / T]`` of ``num_clips`` clips, (T, 2) float32."""
    st = np.arange(num_clips, dtype=np.float32) / num_clips
    return np.stack([st, st + np.float32(1.0 / num_clips)], axis=1)


def append_tef(feats: np.ndarray) -> np.ndarray:
    """``feats`` ``(..., T, D)`` with :func:`tef` of its ``T`` steps appended to every row: ``(..., T, D + 2)``."""
    t = tef(feats.shape[-2])
    t = np.broadcast_to(t, (*feats.shape[:-2], *t.shape))
    return np.concatenate([feats, t], axis=-1)


def pick_layer(feats: np.ndarray, layer: int | None, what: str = "features") -> np.ndarray:
    """Layer ``layer`` of layered ``(K, N, D)`` features; other features, or ``layer=None``, unchanged."""
    if layer is None or feats.ndim != 3:
        return feats
    if not -feats.shape[0] <= layer < feats.shape[0]:
        raise InputError(f"data.layer={layer} but the {what} have {feats.shape[0]} layers", field="data.layer")
    return feats[layer]


def video_inputs(feats: np.ndarray, max_len: int, use_tef: bool = True, layer: int | None = None,
                 what: str = "video features") -> torch.Tensor:
    """One item's video input, ``(T', Dv [+ 2])`` or ``(K, T', Dv [+ 2])`` float32; see the module docstring."""
    video = pick_layer(feats, layer, what)[..., :max_len, :]
    if use_tef:
        video = append_tef(video)
    return torch.from_numpy(np.ascontiguousarray(video, dtype=np.float32))


def text_inputs(feats, max_len: int, normalize: bool = True, layer: int | None = None,
                what: str = "text features") -> torch.Tensor:
    """One query's text input, ``(L', Dt)`` or ``(K, L', Dt)`` float32; see the module docstring."""
    text = pick_layer(np.asarray(feats, dtype=np.float32), layer, what)
    if text.ndim == 1:
        text = text[None]
    text = text[..., :max_len, :]
    if normalize:
        text = l2_normalize(text).astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(text))


def pad_time(seqs: Sequence[torch.Tensor], min_len: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad tensors ``(..., T_i, D)`` with zeros on the time axis (-2).

    Returns ``(B, ..., T, D)`` and a bool mask ``(B, T)``, True on real steps;
    ``T = max(max_i T_i, min_len)``.
    """
    first = seqs[0]
    lens = [s.shape[-2] for s in seqs]
    for s in seqs:
        if s.shape[:-2] != first.shape[:-2] or s.shape[-1] != first.shape[-1]:
            raise ValueError(f"cannot pad shapes {tuple(first.shape)} and {tuple(s.shape)} together")
    t = max(max(lens), min_len)
    out = first.new_zeros((len(seqs), *first.shape[:-2], t, first.shape[-1]))
    mask = torch.zeros((len(seqs), t), dtype=torch.bool)
    for i, (s, n) in enumerate(zip(seqs, lens)):
        out[i, ..., :n, :] = s
        mask[i, :n] = True
    return out, mask


def batch_inputs(videos: Sequence[torch.Tensor], texts: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``video_feats``, ``video_mask``, ``text_feats``, ``text_mask`` of items from :func:`video_inputs`
    and :func:`text_inputs` (row ``b`` = ``videos[b]`` with ``texts[b]``); masks True = valid."""
    if len(videos) != len(texts) or not videos:
        raise ValueError(f"need as many videos as texts, at least one ({len(videos)} and {len(texts)})")
    video, video_mask = pad_time(videos)
    text, text_mask = pad_time(texts)
    return {"video_feats": video, "video_mask": video_mask, "text_feats": text, "text_mask": text_mask}


__all__ = ["append_tef", "batch_inputs", "pad_time", "pick_layer", "tef", "text_inputs", "video_inputs"]
