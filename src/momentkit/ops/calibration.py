"""Confidence a user can read: Platt scaling of window scores, fitted on validation predictions.

A model's window score ranks its windows but need not be a probability (SDST's
``sqrt(p_cls * actionness)`` stays below 0.01 while its top-1 window is right a third of the time).
:func:`fit_platt` fits ``p = sigmoid(a * logit(s) + b)`` to "is the top-1 window right" (IoU >= 0.5
with a ground-truth window) by maximum likelihood (L-BFGS on the logistic loss of standardised
logits, a little L2 for stability); :func:`apply_platt` maps scores with it. The map is increasing
(``a`` is kept positive), so the order of the windows -- and every ranking metric (R1, mAP) -- is
unchanged; only the numbers become calibrated probabilities.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(scores, correct, *, l2: float = 1e-4) -> tuple[float, float]:
    """``(a, b)`` of the Platt map fitted to ``scores (N,)`` in [0, 1] and ``correct (N,)`` bool.

    With no sample the identity ``(1.0, 0.0)`` is returned; with one outcome only, the map is flat at
    the (clipped) base rate.
    """
    from scipy.optimize import minimize

    x = _logit(scores)
    y = np.asarray(correct, dtype=np.float64)
    if x.size == 0:
        return 1.0, 0.0
    if y.min() == y.max():
        return 1e-3, float(_logit(np.clip(y.mean(), 0.01, 0.99)))
    mu, sd = float(x.mean()), float(x.std()) or 1.0
    z = (x - mu) / sd  # fit on standardised logits, then map back

    def loss(w):
        t = w[0] * z + w[1]
        nll = np.mean(np.logaddexp(0.0, t) - y * t)
        p = 1 / (1 + np.exp(-t))
        grad = np.array([np.mean((p - y) * z), np.mean(p - y)]) + l2 * w
        return nll + 0.5 * l2 * float(w @ w), grad

    w = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                 bounds=[(1e-6, None), (None, None)]).x
    a = float(w[0] / sd)
    return max(a, 1e-6), float(w[1] - a * mu)


def apply_platt(scores, a: float, b: float) -> np.ndarray:
    """``sigmoid(a * logit(scores) + b)``, elementwise."""
    return 1 / (1 + np.exp(-(a * _logit(scores) + b)))


def calibrate_rows(rows: list[dict], params: tuple[float, float], decimals: int | None = 4) -> list[dict]:
    """Copies of QVHighlights prediction rows with every window score mapped by the Platt ``params``."""
    a, b = params
    out = []
    for r in rows:
        windows = r.get("pred_relevant_windows") or []
        if windows:
            w = np.asarray(windows, dtype=np.float64)
            w[:, 2] = apply_platt(w[:, 2], a, b)
            if decimals is not None:
                w[:, 2] = np.round(w[:, 2], decimals)
            r = {**r, "pred_relevant_windows": w.tolist()}
        out.append(r)
    return out
