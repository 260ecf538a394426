"""SDST's loss terms beyond the DETR set losses of :mod:`momentkit.models.losses` (which it reuses).

- :func:`sampled_nce_loss`: R2-Tuning's SampledNCE saliency ranking (highlight detection).
- :func:`clips_in_spans`: which clips overlap a ground-truth window (the alignment positives).
- :func:`video_alignment_loss` / :func:`layer_alignment_loss`: the video-level and layer-wise InfoNCE
  between projected clip features ``V^l`` and the pooled query ``T^l`` of every level.
- :func:`max_iou_targets` / :func:`actionness_loss`: the actionness target (max IoU of each predicted
  segment with any ground-truth window) and its L1 loss.

All functions take batched tensors and are vectorised; similarities are computed in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from momentkit.models.losses import info_nce_loss
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
    if not bool(ok.any()):
        return similarity.sum() * 0.0
    pos_sal = sal.gather(1, pos_idx)  # (B, P)
    allowed = (sal[:, None, :] <= pos_sal[..., None]) & mask[:, None, :]  # (B, P, T)
    logits = sim[:, None, :].masked_fill(~allowed, -1e4)  # finite: a fully masked row stays NaN-free
    loss = sim.new_zeros(())
    if "row" in directions:
        lp = logits.log_softmax(-1).gather(-1, pos_idx[..., None])[..., 0]  # (B, P)
        loss = loss - lp[ok].mean()
    if "col" in directions:
        per_p = logits.permute(1, 0, 2)  # (P, B', T)
        cols = per_p.gather(2, pos_idx.t()[:, None, :].expand(-1, b, -1))  # (P, B', B): [p, b', b]
        lp = cols.log_softmax(1).diagonal(dim1=1, dim2=2).t()  # (B, P)
        loss = loss - lp[ok].mean()
    return loss


def clips_in_spans(spans: Sequence[torch.Tensor], mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(B, T)`` bool: valid clips that overlap (by more than ``eps``) a window of their sample.

    ``spans``: B tensors (n_i, 2) of normalised (centre, width) windows over the ``n`` valid clips
    (clip ``t`` covers ``[t / n, (t + 1) / n]``, as the grounding dataset normalises).
    """
    mask = mask.bool()
    b, t = mask.shape
    out = torch.zeros(b, t, device=mask.device)
    sizes = [len(s) for s in spans]
    if sum(sizes) == 0:
        return out.bool()
    xx = cxw_to_xx(torch.cat([s.to(mask.device).reshape(-1, 2).float() for s in spans]))
    owner = torch.repeat_interleave(torch.arange(b, device=mask.device), torch.tensor(sizes, device=mask.device))
    n = mask.sum(1).float()[owner, None]  # (N, 1)
    step = torch.arange(t, device=mask.device, dtype=torch.float32)[None]
    overlap = (torch.minimum((step + 1) / n, xx[:, 1:]) - torch.maximum(step / n, xx[:, :1])) > eps
    out.index_add_(0, owner, overlap.float())
    return (out > 0) & mask


def _same_video(meta: Sequence[dict] | None, b: int, device) -> torch.Tensor | None:
    if not meta or any("vid" not in m for m in meta):
        return None
    index: dict = {}
    ids = torch.tensor([index.setdefault(m["vid"], len(index)) for m in meta], device=device)
    if len(index) == b:
        return None
    return (ids[:, None] == ids[None, :]) & ~torch.eye(b, dtype=torch.bool, device=device)


def video_alignment_loss(video, text, positives, mask, temperature: float = 0.07, meta=None) -> torch.Tensor:
    """Video-level InfoNCE at every level, averaged.

    ``video (K, B, T, F)`` clip features, ``text (K, B, F)`` pooled queries, ``positives (B, T)``
    clips inside a window of their query. For a positive clip ``t`` of sample ``b`` at level ``l``
    the logits are ``cos(video[l, b', t], text[l, b]) / temperature`` over the samples ``b'`` whose
    clip ``t`` is valid; the positive is ``b' = b`` (the negatives are the same clip index in the other
    videos of the batch). Other queries about the same video (``meta[i]["vid"]``) are left out of the
    negatives. 0 when there is no positive clip.
    """
    v = F.normalize(video.float(), dim=-1)
    q = F.normalize(text.float(), dim=-1)
    k, b = q.shape[:2]
    bi, ti = positives.bool().nonzero(as_tuple=True)
    if not len(bi):
        return video.sum() * 0.0
    # every (query b, clip t, video c) score first (small: K*B*T*B), then the rows of the positives:
    # sim[l, n, c] = cos(video[l, c, t_n], text[l, b_n])
    sim = (v.flatten(1, 2) @ q.transpose(1, 2)).view(k, b, -1, b)[:, :, ti, bi].transpose(1, 2)
    valid = mask.bool()[:, ti].t()  # (N, C)
    same = _same_video(meta, b, mask.device)
    if same is not None:
        valid = valid & ~same[bi]
    n = len(bi)
    return info_nce_loss(sim.reshape(k * n, b), bi.repeat(k), temperature,
                         valid.unsqueeze(0).expand(k, -1, -1).reshape(k * n, b))


def layer_alignment_loss(video, text, positives, temperature: float = 0.07) -> torch.Tensor:
    """Layer-wise InfoNCE: for a positive clip ``t`` of sample ``b`` and level ``l``, logits
    ``cos(video[l', b, t], text[l, b]) / temperature`` over the levels ``l'``; the positive is ``l' = l``
    (the negatives are the same clip at the other levels). 0 with a single level or no positive."""
    k = video.shape[0]
    bi, ti = positives.bool().nonzero(as_tuple=True)
    if k < 2 or not len(bi):
        return video.sum() * 0.0
    v = F.normalize(video.float()[:, bi, ti], dim=-1)  # (K, N, F)
    q = F.normalize(text.float()[:, bi], dim=-1)  # (K, N, F)
    sim = torch.einsum("mnf,lnf->nlm", v, q)  # [n, l, l'] = cos(video[l', n], text[l, n])
    n = len(bi)
    return info_nce_loss(sim.reshape(n * k, k), torch.arange(k, device=sim.device).repeat(n), temperature)


def max_iou_targets(pred_spans: torch.Tensor, targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(B, M)``: the largest IoU of each predicted (centre, width) span with a target of its sample
    (0 for samples without targets)."""
    b, m = pred_spans.shape[:2]
    out = pred_spans.new_zeros(b, m, dtype=torch.float32)
    sizes = [len(t) for t in targets]
    if sum(sizes) == 0:
        return out
    dev = pred_spans.device
    gt = cxw_to_xx(torch.cat([t.to(dev).reshape(-1, 2).float() for t in targets]))
    iou, _ = pairwise_iou(cxw_to_xx(pred_spans.detach().float().reshape(-1, 2)), gt)  # (B*M, N)
    owner = torch.repeat_interleave(torch.arange(b, device=dev), torch.tensor(sizes, device=dev))
    mine = owner[None, :] == torch.arange(b, device=dev).repeat_interleave(m)[:, None]
    return iou.masked_fill(~mine, 0.0).amax(1).view(b, m)


def actionness_loss(actionness: torch.Tensor, pred_spans: torch.Tensor,
                    targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean absolute error between predicted actionness ``(B, M)`` and :func:`max_iou_targets`."""
    return F.l1_loss(actionness.float(), max_iou_targets(pred_spans, targets))
