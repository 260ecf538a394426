"""SDST's elementary losses beyond those of :mod:`momentkit.models.losses`; the terms of
:class:`momentkit.models.criterion.SetCriterion` that SDST uses call them.

- :func:`sampled_nce_loss`: R2-Tuning's SampledNCE saliency ranking (highlight detection).
- :func:`clips_in_spans`: which clips overlap a ground-truth window (the alignment positives).
- :func:`video_alignment_loss` / :func:`layer_alignment_loss`: the video-level and layer-wise InfoNCE
  between projected clip features ``V^l`` and the pooled query ``T^l`` of every level.
- :func:`max_iou_targets` / :func:`actionness_loss`: the actionness target (max IoU of each predicted
  segment with any ground-truth window) and its L1 loss.

Ground-truth windows are B tensors ``(n_i, 2)`` or :func:`momentkit.models.losses.pack_spans` (packed
once per batch by the criterion); masks are True at valid clips. All functions take batched tensors
and are vectorised; similarities are computed in float32. None of them waits for the device: no
boolean-mask indexing, ``nonzero`` or ``.item()`` (masks are applied as weights, means divide by counts
clamped to 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from momentkit.models.losses import PackedSpans, pack_spans
from momentkit.spans import cxw_to_xx, pairwise_iou


def sampled_nce_loss(similarity, saliency, pos_idx, mask, temperature: float = 0.07, valid=None,
                     directions: Sequence[str] = ("row", "col")) -> torch.Tensor:
    """SampledNCE (R2-Tuning): each sampled positive clip against the clips it should outrank.

    ``similarity (B, T)`` (e.g. cosine of clip and query), ``saliency (B, T)`` targets, ``pos_idx (B, P)``
    sampled positive clips, ``mask (B, T)`` valid clips, ``valid (B,)`` samples that have positives.
    For positive ``p`` of sample ``b`` at clip ``t``, the clips ``t'`` of sample ``b'`` that take part are
    the valid ones with ``saliency[b', t'] <= saliency[b', pos_idx[b', p]]`` (never a more salient clip).

    - ``row``: softmax over the clips of sample ``b``; the loss is ``-log p(t)``.
    - ``col``: softmax over the samples ``b'`` of the scores at the same clip index ``t``; ``-log p(b)``.

    Each direction is the mean over the positives of the valid samples; the result is their sum
    (0 when no sample is valid).
    """
    sim = similarity.float() / temperature
    sal = saliency.float()
    mask = mask.bool()
    pos_idx = pos_idx.long()
    b, t = sim.shape
    ok = mask.gather(1, pos_idx).all(1)
    ok = ok if valid is None else ok & valid.bool().to(ok.device)
    ok = ok[:, None].expand(-1, pos_idx.shape[1])  # (B, P): the positives that count
    count = ok.sum().clamp(min=1)
    pos_sal = sal.gather(1, pos_idx)  # (B, P)
    allowed = (sal[:, None, :] <= pos_sal[..., None]) & mask[:, None, :]  # (B, P, T)
    logits = sim[:, None, :].masked_fill(~allowed, -1e4)  # finite: a fully masked row stays NaN-free
    loss = sim.new_zeros(())
    if "row" in directions:
        lp = logits.log_softmax(-1).gather(-1, pos_idx[..., None])[..., 0]  # (B, P)
        loss = loss - torch.where(ok, lp, 0.0).sum() / count
    if "col" in directions:
        per_p = logits.permute(1, 0, 2)  # (P, B', T)
        cols = per_p.gather(2, pos_idx.t()[:, None, :].expand(-1, b, -1))  # (P, B', B): [p, b', b]
        lp = cols.log_softmax(1).diagonal(dim1=1, dim2=2).t()  # (B, P)
        loss = loss - torch.where(ok, lp, 0.0).sum() / count
    return loss


def clips_in_spans(spans: Sequence[torch.Tensor] | PackedSpans, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(B, T)`` bool: valid clips that overlap (by more than ``eps``) a window of their sample.

    ``spans``: B tensors (n_i, 2) of normalised (centre, width) windows over the ``n`` valid clips
    (clip ``t`` covers ``[t / n, (t + 1) / n]``, as the grounding dataset normalises), or :func:`pack_spans`.
    """
    mask = mask.bool()
    b, t = mask.shape
    packed = pack_spans(spans, mask.device)
    out = torch.zeros(b, t, device=mask.device)
    if sum(packed.sizes) == 0:
        return out.bool()
    xx, owner = cxw_to_xx(packed.spans), packed.owner
    n = mask.sum(1).float()[owner, None]  # (N, 1)
    step = torch.arange(t, device=mask.device, dtype=torch.float32)[None]
    overlap = (torch.minimum((step + 1) / n, xx[:, 1:]) - torch.maximum(step / n, xx[:, :1])) > eps
    out.index_add_(0, owner, overlap.float())
    return (out > 0) & mask


def _same_video(meta: Sequence[dict] | None, b: int, device) -> torch.Tensor | None:
    if not meta or any("vid" not in m for m in meta):
        return None
    index: dict = {}
    ids = [index.setdefault(m["vid"], len(index)) for m in meta]
    if len(index) == b:
        return None
    ids = torch.tensor(ids, device=device)
    return (ids[:, None] == ids[None, :]) & ~torch.eye(b, dtype=torch.bool, device=device)


def _unit(x: torch.Tensor, normalized: bool) -> torch.Tensor:
    return x.float() if normalized else F.normalize(x.float(), dim=-1)


def _mean_where(values: torch.Tensor, keep: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` where ``keep`` over ``count`` (clamped to 1): a masked mean without a sync."""
    return torch.where(keep, values, 0.0).sum() / count.clamp(min=1)


def video_alignment_loss(video, text, positives, mask, temperature: float = 0.07, meta=None,
                         normalized: bool = False) -> torch.Tensor:
    """Video-level InfoNCE at every level, averaged.

    ``video (K, B, T, F)`` clip features, ``text (K, B, F)`` pooled queries (``normalized``: both are
    unit vectors already), ``positives (B, T)`` clips inside a window of their query. For a positive
    clip ``t`` of sample ``b`` at level ``l`` the logits are ``cos(video[l, b', t], text[l, b]) /
    temperature`` over the samples ``b'`` whose clip ``t`` is valid; the positive is ``b' = b`` (the
    negatives are the same clip index in the other videos of the batch). Other queries about the same
    video (``meta[i]["vid"]``) are left out of the negatives. 0 when there is no positive clip.

    Every (level, query, clip) row is scored (small: K*B*T*B) and the positives' rows averaged.
    """
    v, q = _unit(video, normalized), _unit(text, normalized)
    k, b, t = v.shape[:3]
    pos = positives.bool()
    # logits[l, b, t, c] = cos(video[l, c, t], text[l, b]) / temperature
    logits = (v.flatten(1, 2) @ q.transpose(1, 2)).view(k, b, t, b).permute(0, 3, 2, 1) / temperature
    valid = mask.bool().t()[None]  # (1, T, C): clip t of video c exists
    same = _same_video(meta, b, mask.device)
    if same is not None:
        valid = valid & ~same[:, None, :]
    # a finite fill: identical to -inf in rows with a valid key (the positive's rows always have
    # their own clip), and no NaN in the rows that are left out
    logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
    lp = logits.log_softmax(-1).diagonal(dim1=1, dim2=3)  # (K, T, B): log p(c = b)
    return -_mean_where(lp, pos.t()[None], k * pos.sum())


def layer_alignment_loss(video, text, positives, temperature: float = 0.07, normalized: bool = False) -> torch.Tensor:
    """Layer-wise InfoNCE: for a positive clip ``t`` of sample ``b`` and level ``l``, logits
    ``cos(video[l', b, t], text[l, b]) / temperature`` over the levels ``l'``; the positive is ``l' = l``
    (the negatives are the same clip at the other levels). 0 with a single level or no positive.
    ``normalized``: ``video`` and ``text`` are unit vectors already."""
    if video.shape[0] < 2:
        return video.sum() * 0.0
    v, q = _unit(video, normalized), _unit(text, normalized)
    pos = positives.bool()
    k, b, t, f = v.shape
    # [b, t, l, l'] = cos(video[l', b, t], text[l, b]); one bmm over the samples (no copy when the
    # clips are laid out (B, K, T, F) in memory, as SDST's are)
    sim = (v.transpose(0, 1).reshape(b, k * t, f) @ q.permute(1, 2, 0)).view(b, k, t, k).permute(0, 2, 3, 1)
    lp = (sim / temperature).log_softmax(-1).diagonal(dim1=2, dim2=3)  # (B, T, K)
    return -_mean_where(lp, pos[..., None], k * pos.sum())


def max_iou_targets(pred_spans: torch.Tensor, targets: Sequence[torch.Tensor] | PackedSpans) -> torch.Tensor:
    """``(B, M)``: the largest IoU of each predicted (centre, width) span with a target of its sample
    (0 for samples without targets); ``targets``: B tensors ``(n_i, 2)`` or :func:`pack_spans`."""
    b, m = pred_spans.shape[:2]
    dev = pred_spans.device
    out = pred_spans.new_zeros(b, m, dtype=torch.float32)
    packed = pack_spans(targets, dev)
    if sum(packed.sizes) == 0:
        return out
    iou, _ = pairwise_iou(cxw_to_xx(pred_spans.detach().float().reshape(-1, 2)), cxw_to_xx(packed.spans))  # (B*M, N)
    mine = packed.owner[None, :] == torch.arange(b, device=dev).repeat_interleave(m)[:, None]
    return iou.masked_fill(~mine, 0.0).amax(1).view(b, m)


def actionness_loss(actionness: torch.Tensor, pred_spans: torch.Tensor,
                    targets: Sequence[torch.Tensor] | PackedSpans) -> torch.Tensor:
    """Mean absolute error between predicted actionness ``(B, M)`` and :func:`max_iou_targets`."""
    return F.l1_loss(actionness.float(), max_iou_targets(pred_spans, targets))
