"""Temporal spans: conversions, IoU and generalised IoU, for numpy arrays and torch tensors.

The one place where span arithmetic lives. Spans are ``[..., 2]`` arrays, either start-end
(``xx``) or centre-width (``cxw``). Temporal IoU follows the official evaluators:
``inter = max(0, min(e1, e2) - max(s1, s2))``, ``union = (e1 - s1) + (e2 - s2) - inter``.

Functions with a ``_np`` suffix take and return numpy arrays (used by metrics and NMS, no torch
import); the others take torch tensors (used by models and losses) and stay differentiable.
"""

from __future__ import annotations

import numpy as np


# ----------------------------------------------------------------------------- numpy
def pairwise_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every span in ``a`` (N, 2) with every span in ``b`` (M, 2): (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return out


def iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of spans ``a`` and ``b`` of the same shape (..., 2)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    inter = np.clip(np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


# ----------------------------------------------------------------------------- torch
def cxw_to_xx(spans):
    """(centre, width) -> (start, end), torch tensor (..., 2)."""
    import torch

    c, w = spans.unbind(-1)
    return torch.stack([c - 0.5 * w, c + 0.5 * w], dim=-1)


def xx_to_cxw(spans):
    """(start, end) -> (centre, width), torch tensor (..., 2)."""
    import torch

    s, e = spans.unbind(-1)
    return torch.stack([0.5 * (s + e), e - s], dim=-1)


def pairwise_iou(a, b, eps: float = 1e-6):
    """IoU and union of every pair of start-end spans: a (N, 2), b (M, 2) -> ((N, M), (N, M))."""
    left = a[:, None, 0].maximum(b[None, :, 0])
    right = a[:, None, 1].minimum(b[None, :, 1])
    inter = (right - left).clamp(min=0)
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    return inter / union.clamp(min=eps), union


def pairwise_giou(a, b, eps: float = 1e-6):
    """Generalised IoU of every pair of start-end spans: a (N, 2), b (M, 2) -> (N, M)."""
    iou, union = pairwise_iou(a, b, eps)
    left = a[:, None, 0].minimum(b[None, :, 0])
    right = a[:, None, 1].maximum(b[None, :, 1])
    hull = (right - left).clamp(min=0)
    return iou - (hull - union) / hull.clamp(min=eps)


def _elementwise_iou_union(a, b, eps: float):
    inter = (a[..., 1].minimum(b[..., 1]) - a[..., 0].maximum(b[..., 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    return inter / union.clamp(min=eps), union


def elementwise_iou(a, b, eps: float = 1e-6):
    """IoU of aligned start-end spans a, b (..., 2) -> (...)."""
    return _elementwise_iou_union(a, b, eps)[0]


def elementwise_giou(a, b, eps: float = 1e-6):
    """Generalised IoU of aligned start-end spans a, b (..., 2) -> (...)."""
    iou, union = _elementwise_iou_union(a, b, eps)
    hull = (a[..., 1].maximum(b[..., 1]) - a[..., 0].minimum(b[..., 0])).clamp(min=0)
    return iou - (hull - union) / hull.clamp(min=eps)

