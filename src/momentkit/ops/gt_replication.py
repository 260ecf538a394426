"""GT replication: a training augmentation that pastes copies of ground-truth moments elsewhere in the
video, so that single-moment training samples look like multi-moment ones.

Thesis 001, chapter 3 (Sec. 3.6.1, Tab. 3.5 "+data_augmentation"): "data-augmentation techniques that
replicate GT moments in different video locations"; the thesis finds that it does not help (the copies
break the video's temporal coherence). It gives no further detail; the choices here:

- Each sample of the batch is augmented with probability ``p``; an augmented sample gets ``copies``
  copies, one after the other. For each: one of its windows (the original ones, uniformly), the clips
  it covers (``floor(s * n) .. ceil(e * n) - 1`` of the ``n`` valid clips: windows are normalised over
  the valid clips, as :class:`momentkit.data.datasets.GroundingDataset` makes them), and a destination
  drawn uniformly among the starts where the copy overlaps no window (original or pasted) and stays
  inside the valid clips. A window that covers every clip, or one with no free place, is not copied.
- The destination clips' features are overwritten with the source clips' features, except the TEF
  (the last two dimensions ``[t / n, (t + 1) / n]``, when the features carry it: each clip keeps its
  own position).
- The copy's window is the source window moved by the same number of clips (its sub-clip offsets
  kept), appended to the sample's ``spans``.
- ``saliency (B, T)``: the destination clips take the source clips' values; a margin-loss negative
  (``saliency_neg_idx``) that falls inside a copy is moved to a random valid clip outside every window
  (left where it is when there is none). ``saliency_pos_idx`` is unchanged (its clips are untouched).

Random draws come from ``generator`` (CPU; the global generator when None), so a seeded run is
reproducible.
"""

from __future__ import annotations

import math

import torch

from momentkit.errors import InputError
from momentkit.spans import cxw_to_xx, xx_to_cxw


def _has_tef(feats: torch.Tensor, mask: torch.Tensor) -> bool:
    """True when the last two feature dims of every valid clip are the TEF ``[t / n, (t + 1) / n]``."""
    if feats.shape[-1] < 3:
        return False
    from momentkit.models.position_encoding import temporal_endpoint_feature

    tef = temporal_endpoint_feature(mask).to(feats.device)
    valid = mask.bool()[..., None].expand_as(tef)
    return bool(torch.allclose(feats[..., -2:].float()[valid], tef[valid], atol=1e-5))


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high, (1,), generator=generator))


def _clip_range(span_xx: torch.Tensor, n: int) -> tuple[int, int]:
    """First and one-past-last clip covered by a normalised ``[start, end]`` window of ``n`` clips."""
    a = max(0, min(n - 1, math.floor(float(span_xx[0]) * n + 1e-6)))
    b = max(a + 1, min(n, math.ceil(float(span_xx[1]) * n - 1e-6)))
    return a, b


def replicate_moments(batch: dict, p: float, copies: int = 1, generator: torch.Generator | None = None) -> dict:
    """The batch keys that change, for a training step with GT replication (see the module docstring).

    ``batch``: ``video_feats (B, T, D)``, ``video_mask (B, T)``, ``spans`` (B tensors ``(n_i, 2)``,
    normalised centre-width), optionally ``saliency (B, T)`` and ``saliency_neg_idx (B, P)``. Returns
    new ``video_feats``, ``spans`` and, when given, ``saliency`` / ``saliency_neg_idx``; the inputs are
    not modified.
    """
    if not 0.0 <= p <= 1.0:
        raise InputError(f"must be in [0, 1], got {p}", field="gt_replication")
    if copies < 1:
        raise InputError(f"must be at least 1, got {copies}", field="gt_replication_copies")
    for key in ("video_feats", "video_mask", "spans"):
        if key not in batch:
            raise InputError("missing from the batch", field=key)
    feats, mask = batch["video_feats"], batch["video_mask"].bool()
    if feats.ndim != 3:
        raise InputError(f"expected shape (B, T, D), got {tuple(feats.shape)}", field="video_feats")
    keep = feats.shape[-1] - 2 if _has_tef(feats, mask) else feats.shape[-1]  # the TEF is not copied
    feats = feats.clone()
    saliency = batch["saliency"].clone() if "saliency" in batch else None
    neg = batch["saliency_neg_idx"].clone() if "saliency_neg_idx" in batch else None
    spans = []
    for i, sp in enumerate(batch["spans"]):
        n = int(mask[i].sum())
        if len(sp) == 0 or n < 2 or float(torch.rand(1, generator=generator)) >= p:
            spans.append(sp)
            continue
        xx = cxw_to_xx(sp.detach().float().cpu())
        occupied = [_clip_range(w, n) for w in xx]
        new = []
        for _ in range(copies):
            j = _randint(len(xx), generator)
            a, b = _clip_range(xx[j], n)
            length = b - a
            free = [s for s in range(n - length + 1) if all(s + length <= lo or s >= hi for lo, hi in occupied)]
            if not free:
                continue
            dest = free[_randint(len(free), generator)]
            feats[i, dest:dest + length, :keep] = batch["video_feats"][i, a:b, :keep]
            if saliency is not None:
                saliency[i, dest:dest + length] = batch["saliency"][i, a:b]
            occupied.append((dest, dest + length))
            new.append(xx[j] + (dest - a) / n)
        if not new:
            spans.append(sp)
            continue
        spans.append(torch.cat([sp, xx_to_cxw(torch.stack(new)).to(sp)]))
        if neg is not None:
            windows, pasted = torch.zeros(mask.shape[1], dtype=torch.bool), torch.zeros(mask.shape[1], dtype=torch.bool)
            for k, (lo, hi) in enumerate(occupied):
                windows[lo:hi] = True
                pasted[lo:hi] |= k >= len(xx)
            outside = torch.nonzero(~windows[:n]).flatten()
            for k, idx in enumerate(neg[i].tolist()):
                if pasted[idx] and len(outside):
                    neg[i, k] = int(outside[_randint(len(outside), generator)])
    out = {"video_feats": feats, "spans": spans}
    if saliency is not None:
        out["saliency"] = saliency
    if neg is not None:
        out["saliency_neg_idx"] = neg
    return out
