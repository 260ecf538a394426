"""Temporal non-maximum suppression (greedy) and soft-NMS (Bodla et al. 2017) on numpy arrays.

Windows are ``(N, 3)`` arrays of ``[start, end, score]``. Every function returns a new ``(K, 3)``
float64 array ordered as the windows were selected (descending score for hard NMS; for soft-NMS the
scores are the decayed ones, in selection order, which is also descending). Ties keep input order.
The IoU matrix is computed once (:func:`momentkit.spans.pairwise_iou_np`); the selection loop only
does vectorised row updates.
"""

from __future__ import annotations

import numpy as np

from momentkit.errors import InputError
from momentkit.spans import pairwise_iou_np

METHODS = ("hard", "gaussian", "linear")


def _as_windows(windows) -> np.ndarray:
    w = np.asarray(windows, dtype=np.float64)
    if w.size == 0:
        return w.reshape(0, 3)
    if w.ndim != 2 or w.shape[1] != 3:
        raise InputError(f"expected an (N, 3) array of [start, end, score], got shape {w.shape}", field="windows")
    if not np.isfinite(w).all():
        raise InputError("windows contain NaN or infinite values", field="windows")
    return w


def _check_max_keep(max_keep: int | None) -> None:
    if max_keep is not None and max_keep < 1:
        raise InputError(f"must be a positive integer or None, got {max_keep}", field="max_keep")


def temporal_nms(windows, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS: keep the best window, drop every window with IoU > ``iou_threshold`` to it, repeat.

    Matches the rule of the QVHighlights reference code (strict ``>``), so a threshold of 1 keeps all.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise InputError(f"must be in [0, 1], got {iou_threshold}", field="iou_threshold")
    _check_max_keep(max_keep)
    w = _as_windows(windows)
    w = w[np.argsort(-w[:, 2], kind="stable")]
    iou = pairwise_iou_np(w[:, :2], w[:, :2])
    keep = np.zeros(len(w), dtype=bool)
    suppressed = np.zeros(len(w), dtype=bool)
    for i in range(len(w)):
        if suppressed[i]:
            continue
        keep[i] = True
        if max_keep is not None and keep.sum() >= max_keep:
            break
        suppressed |= iou[i] > iou_threshold
    return w[keep]


def soft_nms(
    windows,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 1e-3,
    max_keep: int | None = None,
    relative: bool = False,
) -> np.ndarray:
    """Soft-NMS: pick the best window, decay the scores of the others by their IoU with it, repeat.

    ``gaussian``: ``s *= exp(-iou**2 / sigma)`` for every remaining window. ``linear``:
    ``s *= 1 - iou`` where ``iou > iou_threshold``. Windows whose score is below ``score_threshold``
    (before or after decay) are dropped. The threshold is absolute (ActionFormer's ``min_score``) or,
    with ``relative``, a fraction of the best input score: then the best window is always kept,
    however small the scores of a model are.
    """
    if method not in ("gaussian", "linear"):
        raise InputError(f"unknown soft-NMS method {method!r}; use 'gaussian' or 'linear'", field="method")
    if sigma <= 0:
        raise InputError(f"must be positive, got {sigma}", field="sigma")
    _check_max_keep(max_keep)
    w = _as_windows(windows)
    spans, scores = w[:, :2], w[:, 2].copy()
    if relative and len(scores):
        score_threshold = score_threshold * float(scores.max())
    iou = pairwise_iou_np(spans, spans)
    alive = scores >= score_threshold
    picked, picked_scores = [], []
    while alive.any() and (max_keep is None or len(picked) < max_keep):
        i = int(np.argmax(np.where(alive, scores, -np.inf)))  # first maximum: ties keep input order
        picked.append(i)
        picked_scores.append(scores[i])
        alive[i] = False
        if method == "gaussian":
            decay = np.exp(-(iou[i] ** 2) / sigma)
        else:
            decay = np.where(iou[i] > iou_threshold, 1.0 - iou[i], 1.0)
        scores = np.where(alive, scores * decay, scores)
        alive &= scores >= score_threshold
    out = np.empty((len(picked), 3))
    out[:, :2] = spans[picked]
    out[:, 2] = picked_scores
    return out


def nms(
    windows,
    method: str = "hard",
    iou_threshold: float = 0.7,
    sigma: float = 0.5,
    score_threshold: float = 1e-3,
    max_keep: int | None = None,
    relative: bool = False,
) -> np.ndarray:
    """Dispatch to :func:`temporal_nms` (``method="hard"``) or :func:`soft_nms` (``gaussian``/``linear``)."""
    if method == "hard":
        return temporal_nms(windows, iou_threshold, max_keep=max_keep)
    if method in ("gaussian", "linear"):
        return soft_nms(windows, method, sigma, iou_threshold, score_threshold, max_keep, relative)
    raise InputError(f"unknown NMS method {method!r}; use one of {', '.join(METHODS)}", field="nms")
