"""Losses of DETR-style moment retrieval models and :class:`SetCriterion`, which combines them.

Functions are plain tensor -> scalar (unless ``reduction="none"``); :class:`SetCriterion` applies
the matcher, names every term (``loss_<name>``, ``loss_<name>_<i>`` for decoder layer i's auxiliary
copy) and returns ``(weighted_total, terms)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from momentkit.errors import InputError
from momentkit.models.heads import FOREGROUND
from momentkit.spans import cxw_to_xx, elementwise_giou, pairwise_iou


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
    """Mean absolute error over matched spans and both coordinates (Moment-DETR); 0 if none."""
    return F.l1_loss(pred, target) if len(pred) else pred.sum() * 0.0


def span_iou_loss(pred_cxw: torch.Tensor, target_cxw: torch.Tensor, kind: str = "giou") -> torch.Tensor:
    """Mean of ``1 - gIoU`` (``kind="giou"``) or ``1 - IoU`` (``"iou"``) over matched cxw spans; 0 if none."""
    if not len(pred_cxw):
        return pred_cxw.sum() * 0.0
    a, b = cxw_to_xx(pred_cxw), cxw_to_xx(target_cxw)
    if kind == "giou":
        sim = elementwise_giou(a, b)
    elif kind == "iou":
        sim = torch.diagonal(pairwise_iou(a, b)[0])
    else:
        raise ValueError(f"kind must be 'giou' or 'iou', got {kind!r}")
    return (1 - sim).mean()


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


def label_ce_loss(logits, matched: tuple[torch.Tensor, torch.Tensor], eos_coef: float = 0.1) -> torch.Tensor:
    """Moment-DETR: 2-way softmax CE, matched queries foreground (0), the rest background (1) with
    weight ``eos_coef``; mean over all queries."""
    target = torch.full(logits.shape[:2], 1 - FOREGROUND, dtype=torch.int64, device=logits.device)
    target[matched] = FOREGROUND
    weight = logits.new_ones(2)
    weight[1 - FOREGROUND] = eos_coef
    return F.cross_entropy(logits.transpose(1, 2), target, weight, reduction="none").mean()


def label_focal_loss(logits, matched, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss on a single foreground logit; matched queries are positives."""
    target = torch.zeros(logits.shape[:2], device=logits.device, dtype=logits.dtype)
    target[matched] = 1.0
    n = max(int(matched[0].numel()), 1)
    return sigmoid_focal_loss(logits[..., 0], target, alpha, gamma, reduction="sum") / n


def _on(x, device):
    return None if x is None else torch.as_tensor(x, device=device)


class SetCriterion(nn.Module):
    """Match predictions to targets and combine the weighted losses, DETR style.

    ``weights`` names the active terms: ``span`` (L1), ``giou`` (or ``iou`` with ``span_iou="iou"``),
    ``label``, applied to the last decoder layer and, with ``aux_loss``, to every other layer (its
    own matching); ``saliency`` (margin), ``rank`` (rank contrastive) and ``neg_pair`` on the
    saliency scores. Batch keys used: ``spans``, ``video_mask``, ``saliency_pos_idx`` /
    ``saliency_neg_idx`` (+ optional ``saliency_valid``), ``saliency`` (dense, for ``rank``); a
    saliency term whose inputs are missing is skipped.
    """

    SET_TERMS = ("span", "giou", "label")
    SALIENCY_TERMS = ("saliency", "rank", "neg_pair")

    def __init__(self, matcher: nn.Module, weights: dict[str, float], eos_coef: float = 0.1,
                 label_loss: str = "ce", focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 span_iou: str = "giou", saliency_margin: float = 0.2, rank_levels: int = 12,
                 rank_tau: float = 0.5, aux_loss: bool = True):
        super().__init__()
        if label_loss not in ("ce", "focal") or span_iou not in ("giou", "iou"):
            raise ValueError(f"label_loss must be 'ce' or 'focal' and span_iou 'giou' or 'iou', "
                             f"got {label_loss!r}, {span_iou!r}")
        unknown = set(weights) - set(self.SET_TERMS + self.SALIENCY_TERMS)
        if unknown:
            raise InputError(f"unknown loss term(s) {sorted(unknown)}", field="loss_weights")
        self.matcher, self.weights = matcher, dict(weights)
        self.eos_coef, self.label_loss, self.span_iou = eos_coef, label_loss, span_iou
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.saliency_margin, self.rank_levels, self.rank_tau = saliency_margin, rank_levels, rank_tau
        self.aux_loss = aux_loss

    def _set_losses(self, out: dict, targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        indices = self.matcher(out, targets)
        dev = out["pred_spans"].device
        batch_idx = torch.cat([torch.full_like(p, i) for i, (p, _) in enumerate(indices)]).to(dev)
        pred_idx = torch.cat([p for p, _ in indices]).to(dev)
        pred = out["pred_spans"][batch_idx, pred_idx]
        tgt = torch.cat([t.to(dev)[j] for t, (_, j) in zip(targets, indices)]).to(pred.dtype)
        terms = {}
        if "span" in self.weights:
            terms["span"] = span_l1_loss(pred, tgt)
        if "giou" in self.weights:
            terms["giou"] = span_iou_loss(pred, tgt, self.span_iou)
        if "label" in self.weights:
            if self.label_loss == "focal":
                terms["label"] = label_focal_loss(out["pred_logits"], (batch_idx, pred_idx),
                                                  self.focal_alpha, self.focal_gamma)
            else:
                terms["label"] = label_ce_loss(out["pred_logits"], (batch_idx, pred_idx), self.eos_coef)
        return terms

    def _saliency_losses(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        s = out["saliency_scores"]
        mask = batch["video_mask"].to(s.device)
        terms = {}
        if "saliency" in self.weights and "saliency_pos_idx" in batch:
            terms["saliency"] = saliency_margin_loss(
                s, batch["saliency_pos_idx"].to(s.device), batch["saliency_neg_idx"].to(s.device),
                self.saliency_margin, _on(batch.get("saliency_valid"), s.device))
        neg = out.get("saliency_scores_neg")
        if "rank" in self.weights and "saliency" in batch:
            terms["rank"] = rank_contrastive_loss(s, batch["saliency"].to(s), mask, self.rank_levels,
                                                  self.rank_tau, neg)
        if "neg_pair" in self.weights and neg is not None:
            terms["neg_pair"] = neg_pair_saliency_loss(neg, mask)
        return terms

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if "spans" not in batch:
            raise InputError("missing from the batch", field="spans")
        targets = batch["spans"]
        if len(targets) != outputs["pred_spans"].shape[0]:
            raise InputError(f"{len(targets)} target lists for a batch of {outputs['pred_spans'].shape[0]}",
                             field="spans")
        terms = self._set_losses(outputs, targets)
        terms.update(self._saliency_losses(outputs, batch))
        named = {f"loss_{k}": v for k, v in terms.items()}
        total = sum(self.weights[k] * v for k, v in terms.items())
        if self.aux_loss:
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                for k, v in self._set_losses(aux, targets).items():
                    named[f"loss_{k}_{i}"] = v
                    total = total + self.weights[k] * v
        return total, {k: v.detach() for k, v in named.items()}
