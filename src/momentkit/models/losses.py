"""Elementary losses of the moment-retrieval models; :class:`momentkit.models.criterion.SetCriterion`
names, weights and combines them (SDST's own ones are in :mod:`momentkit.models.sdst_losses`).

Plain tensor functions (no matching, no bookkeeping). The set losses take the predictions of any
number of leading "level" dimensions at once and reduce only their own axes: ``span_l1_loss`` and
``span_iou_loss`` map matched pairs ``(..., n, 2)`` to ``(...)``, ``label_ce_loss`` and
``label_focal_loss`` map logits ``(..., B, Q, C)`` to ``(...)``. Masks are 1 (True) at valid clips.
:func:`pack_spans` packs a batch's ground-truth windows once for every loss that reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from momentkit.models.heads import FOREGROUND
from momentkit.spans import cxw_to_xx, elementwise_giou, elementwise_iou


class PackedSpans(NamedTuple):
    """The windows of a batch: ``spans (N, 2)`` normalised (centre, width) float32 and ``owner (N,)``
    (the sample of each window) on the model's device; ``sizes``: the number of windows per sample."""

    spans: torch.Tensor
    owner: torch.Tensor
    sizes: tuple[int, ...]


def pack_spans(spans: Sequence[torch.Tensor] | PackedSpans, device=None) -> PackedSpans:
    """B tensors ``(n_i, 2)`` -> :class:`PackedSpans` on ``device`` (concatenated where they are, then
    copied once); a :class:`PackedSpans` is returned as it is."""
    if isinstance(spans, PackedSpans):
        return spans
    sizes = tuple(len(s) for s in spans)
    if not sizes:
        raise ValueError("no samples")
    home = {s.device for s in spans}
    parts = [s.reshape(-1, 2) for s in spans] if len(home) == 1 else [s.to(device).reshape(-1, 2) for s in spans]
    packed = torch.cat(parts).to(device=device, dtype=torch.float32)
    owner = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)).to(packed.device)
    return PackedSpans(packed, owner, sizes)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}")


def sigmoid_focal_loss(logits, targets, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "mean"):
    """Focal loss (Lin et al. 2017) on logits; ``targets`` in [0, 1] of the same shape. ``alpha < 0``: no weighting."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return _reduce(loss, reduction)


def span_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of matched spans ``(..., n, 2)`` over the n pairs and both coordinates -> ``(...)``;
    0 without pairs."""
    if not pred.shape[-2]:
        return pred.sum((-2, -1)) * 0.0
    return (pred - target).abs().mean((-2, -1))


def span_iou_loss(pred_cxw: torch.Tensor, target_cxw: torch.Tensor, kind: str = "giou") -> torch.Tensor:
    """Mean of ``1 - gIoU`` (``kind="giou"``) or ``1 - IoU`` (``"iou"``) of matched (centre, width) spans
    ``(..., n, 2)`` over the n pairs -> ``(...)``; 0 without pairs."""
    if kind not in ("giou", "iou"):
        raise ValueError(f"kind must be 'giou' or 'iou', got {kind!r}")
    if not pred_cxw.shape[-2]:
        return pred_cxw.sum((-2, -1)) * 0.0
    a, b = cxw_to_xx(pred_cxw), cxw_to_xx(target_cxw)
    sim = elementwise_giou(a, b) if kind == "giou" else elementwise_iou(a, b)
    return (1 - sim).mean(-1)


def saliency_margin_loss(scores, pos_idx, neg_idx, margin: float = 0.2, valid=None) -> torch.Tensor:
    """Moment-DETR hinge loss: ``max(0, margin + s[neg] - s[pos])`` over (B, P) clip pairs, times 2.

    ``valid`` (B,) bool keeps only the samples whose pairs exist (0 if none does).
    """
    if valid is not None:
        valid = valid.bool()
        if not bool(valid.any()):
            return scores.sum() * 0.0
        scores, pos_idx, neg_idx = scores[valid], pos_idx[valid], neg_idx[valid]
    pos = scores.gather(1, pos_idx)
    neg = scores.gather(1, neg_idx)
    return (margin + neg - pos).clamp(min=0).mean() * 2


def rank_contrastive_loss(scores, labels, mask, levels: int = 12, tau: float = 0.5, neg_scores=None):
    """QD-DETR / UMT rank-based contrastive saliency loss.

    For every rank threshold r in 1..levels-1, clips with ``labels >= r`` are positives of a softmax
    (temperature ``tau``) over all valid clips of the sample (and over the clips of the mismatched
    pair ``neg_scores``, labelled 0); the loss is the mean negative log-probability of the positives,
    averaged over samples (samples without a positive count as 0), summed over r and divided by
    ``levels``. ``labels`` are on the scale of the dense saliency target (QVHighlights: sum of the
    three annotators' scores, 0..12).
    """
    mask = mask.float()
    if neg_scores is not None:
        scores = torch.cat([scores, neg_scores], 1)
        labels = torch.cat([labels, torch.zeros_like(labels)], 1)
        mask = torch.cat([mask, mask], 1)
    logits = scores.masked_fill(mask == 0, -1e4) / tau
    log_prob = logits.log_softmax(1)  # (B, L)
    thresholds = torch.arange(1, levels, device=scores.device, dtype=labels.dtype)
    pos = (labels[None] >= thresholds[:, None, None]).float() * mask  # (R, B, L)
    n_pos = pos.sum(2)
    mean_log_prob = (pos * log_prob[None]).sum(2) / n_pos.clamp(min=1)
    return -(mean_log_prob * (n_pos > 0)).mean(1).sum() / levels


def neg_pair_saliency_loss(neg_scores, mask) -> torch.Tensor:
    """QD-DETR: push down saliency of clips paired with another sample's query:
    ``sum_t -log(1 - sigmoid(s_t))`` over valid clips, mean over samples."""
    return (F.softplus(neg_scores) * mask.float()).sum(1).mean()


def info_nce_loss(similarity, positives, temperature: float = 0.07, valid=None) -> torch.Tensor:
    """InfoNCE: cross-entropy of ``similarity / temperature`` (N, M) against the positives.

    ``positives`` is either a (N,) index tensor (one positive per row) or a (N, M) bool mask (the
    loss is the mean negative log-probability of a row's positives; rows without one are skipped).
    ``valid`` (N, M) bool excludes keys from the softmax.
    """
    logits = similarity / temperature
    if valid is not None:
        logits = logits.masked_fill(~valid.bool(), float("-inf"))
    if positives.dtype != torch.bool:
        return F.cross_entropy(logits, positives)
    log_prob = logits.log_softmax(1)
    pos = positives & torch.isfinite(log_prob)
    n = pos.sum(1)
    per_row = -torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1) / n.clamp(min=1)
    return per_row[n > 0].mean() if (n > 0).any() else logits.sum() * 0.0


def label_ce_loss(logits, matched: tuple[torch.Tensor, ...], eos_coef: float = 0.1) -> torch.Tensor:
    """Moment-DETR: 2-way softmax CE of ``logits (..., B, Q, 2)``, matched queries foreground, the rest
    background with weight ``eos_coef``; mean over the B * Q queries -> ``(...)``.

    ``matched``: one index tensor per dimension of ``logits.shape[:-1]`` (the matched queries)."""
    target = torch.full(logits.shape[:-1], 1 - FOREGROUND, dtype=torch.int64, device=logits.device)
    target[matched] = FOREGROUND
    weight = logits.new_ones(2)
    weight[1 - FOREGROUND] = eos_coef
    # (N, 2, Q) per group of B * Q queries, as F.cross_entropy wants the classes second
    ce = F.cross_entropy(logits.flatten(0, -3).transpose(1, 2), target.flatten(0, -2), weight, reduction="none")
    return ce.view(target.shape).mean((-2, -1))


def label_focal_loss(logits, matched: tuple[torch.Tensor, ...], alpha: float = 0.25,
                     gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss of a single foreground logit ``(..., B, Q, 1)``, matched queries positive; the
    sum over the B * Q queries divided by the number of matched queries among them (at least 1) -> ``(...)``.

    ``matched``: one index tensor per dimension of ``logits.shape[:-1]``; every group of B * Q queries
    has the same number of matched ones (one matching per level)."""
    target = torch.zeros(logits.shape[:-1], device=logits.device, dtype=logits.dtype)
    target[matched] = 1.0
    n = max(matched[0].numel() // logits.shape[:-3].numel(), 1)
    return sigmoid_focal_loss(logits[..., 0], target, alpha, gamma, reduction="none").sum((-2, -1)) / n


def frame_bce_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-frame multi-label sigmoid BCE: ``logits, labels (B, T, K)`` (labels may be soft), ``mask (B, T)``;
    summed over classes, averaged over valid frames (as the super-events / TGM training code does)."""
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(-1)
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp(min=1)


def video_bce_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Video-level sigmoid BCE of the temporal max of ``logits (B, T, K)`` against the temporal max of
    ``labels`` over the valid frames (``mask (B, T)``), averaged over videos and classes: the
    "classification" half of the super-events / TGM loss the Coarse-Fine thesis averages with the
    per-frame one."""
    neg = torch.finfo(logits.dtype).min
    pooled = logits.masked_fill(~mask.bool()[..., None], neg).amax(1)
    target = (labels * mask[..., None].to(labels.dtype)).amax(1)
    return F.binary_cross_entropy_with_logits(pooled, target)
