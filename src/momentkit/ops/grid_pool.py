"""Temporal Grid Pool and Grid Unpool (Coarse-Fine Networks, Sec. 3.2.1), and the plain pooling
alternatives behind one interface.

Grid Pool is a learned temporal downsampling by ``1 / alpha``: a light head ``h`` scores each
interval of ``1 / alpha`` frames with a confidence ``p`` in (0, 1), the intervals get widths
``1 - p`` (confident intervals are narrow, so they are sampled densely), the normalised cumulative
widths give ``alpha * T`` grid locations, and the input is linearly interpolated there. Grid Unpool
maps a sequence on that grid back to the ``T`` input frames.

Every operator works on any tensor with a time axis; the two layouts used here are

- feature sequences ``(B, T, C)``: time is dim 1;
- video tensors ``(B, C, T, H, W)``: time is dim 2.

Locations are always ``(B, N)`` float tensors in input-frame units (frame ``t`` sits at ``t``).

Departures from the thesis (each one is said where it happens):

- :func:`grid_locations` uses the *exclusive* cumulative sum (the left edge of each interval), so
  uniform confidences give exactly the strided grid ``0, s, 2s, ...``; the thesis's inclusive sum
  would put the last location at ``T``, outside the input.
- :func:`grid_unpool` inverts the piecewise-linear grid at every output frame, which is the
  thesis's two steps ("re-sample at the inverse mapping of the cdf, then uniformly upsample")
  composed into one interpolation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from momentkit.errors import InputError

KINDS = ("grid", "stride", "max", "avg")


class GridPoolOutput(NamedTuple):
    """What every temporal pool returns.

    - ``pooled``: ``(B, N, C)`` or ``(B, C, N, H, W)``, ``N = alpha * T``;
    - ``locations``: ``(B, N)``, the input-frame location each output step stands for;
    - ``confidences``: ``(B, N)`` interval confidences ``p`` of Grid Pool, ``None`` for the others.
    """

    pooled: Tensor
    locations: Tensor
    confidences: Tensor | None


# --------------------------------------------------------------------------- grid arithmetic


def grid_locations(p: Tensor, length: int) -> Tensor:
    """Grid locations ``(B, N)`` in input-frame units from interval confidences ``p (B, N)``.

    ``q_t = length * sum_{i<t} (1 - p_i) / sum_i (1 - p_i)`` for ``t = 0 .. N-1``.

    The thesis (Eq. 3.2) sums *inclusively* (``i <= t``); here the sum is exclusive, i.e. ``q_t`` is
    the left edge of interval ``t``. Uniform ``p`` then gives exactly ``0, s, 2s, ...`` with
    ``s = length / N`` -- plain strided sampling ``x[:, ::s]`` -- and no location falls at
    ``length``, outside the input. Dividing by the sum is the thesis's "we normalize these
    confidence values since we need the relative confidence": scaling every ``1 - p_i`` by the same
    factor leaves the grid unchanged. Where every ``p_i`` is 1 (no interval preferred) the grid is
    uniform. Locations are non-decreasing; an interval with ``p = 1`` has zero width, so two
    consecutive locations coincide.

    The arithmetic runs in float64 and is cast back to ``p``'s dtype, so uniform confidences give
    the integer locations exactly (not ``3.9999998``). Differentiable w.r.t. ``p``.
    """
    if p.ndim != 2:
        raise ValueError(f"confidences must be (B, N), got shape {tuple(p.shape)}")
    w = 1.0 - p.double()  # (B, N) interval widths
    total = w.sum(dim=1, keepdim=True)  # (B, 1)
    degenerate = total <= 0
    w = torch.where(degenerate, torch.ones_like(w), w)
    total = torch.where(degenerate, torch.full_like(total, p.shape[1]), total)
    left = F.pad(torch.cumsum(w, dim=1)[:, :-1], (1, 0))  # exclusive cumulative sum, left[:, 0] = 0
    return (length * left / total).to(p.dtype)


def _time_first(x: Tensor, dim: int) -> tuple[Tensor, int]:
    dim = dim % x.ndim
    if dim == 0:
        raise ValueError("dim 0 is the batch; the time axis must be another one")
    return x.movedim(dim, 1), dim


def sample_time(x: Tensor, locations: Tensor, dim: int) -> Tensor:
    """Linear interpolation of ``x`` along ``dim`` at fractional ``locations (B, N)``.

    ``x`` has ``T`` steps along ``dim`` (batch on dim 0); the result has ``N`` there. Each location
    is clamped to ``[0, T - 1]`` and blends its floor and ceil frames:
    ``x[lo] + (q - lo) * (x[hi] - x[lo])``. Integer locations return the (finite) frames bit for bit, and
    so does any location between two equal frames. Differentiable w.r.t. ``x`` and ``locations``.
    """
    xt, dim = _time_first(x, dim)  # (B, T, ...)
    b, t = xt.shape[:2]
    if locations.ndim != 2 or locations.shape[0] != b:
        raise ValueError(f"locations must be (B={b}, N), got shape {tuple(locations.shape)}")
    q = locations.to(xt.dtype).clamp(0, t - 1)
    lo = q.detach().floor()
    frac = (q - lo).reshape(*q.shape, *([1] * (xt.ndim - 2)))  # (B, N, 1, ...)
    lo = lo.long()
    hi = (lo + 1).clamp(max=t - 1)
    batch = torch.arange(b, device=x.device)[:, None]
    x_lo, x_hi = xt[batch, lo], xt[batch, hi]  # (B, N, ...)
    return (x_lo + frac * (x_hi - x_lo)).movedim(1, dim)


def grid_pool(x: Tensor, confidences: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``(pooled, locations)``: ``x`` sampled along ``dim`` on the grid of ``confidences (B, N)``."""
    locations = grid_locations(confidences, x.shape[dim])
    return sample_time(x, locations, dim), locations


def unpool_index(locations: Tensor, length: int) -> Tensor:
    """``(B, length)``: for each output frame ``t``, the fractional grid index ``j*`` with
    ``locations(j*) = t``, ``locations(j)`` being the piecewise-linear map through ``(j, q_j)``.

    Frames before ``q_0`` get ``0``, frames at or after ``q_{N-1}`` get ``N - 1``. Equal
    consecutive locations are skipped (the search picks the last of them), so no division by zero
    occurs, in the value or its gradient. Differentiable w.r.t. ``locations``.
    """
    b, n = locations.shape
    t = torch.arange(length, device=locations.device, dtype=locations.dtype).expand(b, length)
    if n == 1:
        return torch.zeros_like(t)
    t = t.contiguous()
    k = torch.searchsorted(locations.detach().contiguous(), t, right=True) - 1  # q_k <= t < q_{k+1}
    kc = k.clamp(0, n - 2)
    q_lo, q_hi = locations.gather(1, kc), locations.gather(1, kc + 1)
    inside = (k >= 0) & (k <= n - 2)  # there q_hi > t >= q_lo, so the width is positive
    width = torch.where(inside, q_hi - q_lo, torch.ones_like(q_lo))
    frac = torch.where(inside, (t - q_lo) / width, torch.zeros_like(q_lo))
    j = kc.to(locations.dtype) + frac
    j = torch.where(k < 0, torch.zeros_like(j), j)
    return torch.where(k >= n - 1, torch.full_like(j, n - 1), j)


def grid_unpool(y: Tensor, locations: Tensor, length: int, dim: int) -> Tensor:
    """Grid Unpool: ``y`` with ``N`` steps along ``dim``, step ``j`` at input location
    ``locations[:, j]``, back to ``length`` steps. No parameters.

    Output frame ``t`` is ``y`` linearly interpolated at the fractional index where the
    piecewise-linear map ``j -> locations(j)`` equals ``t`` (:func:`unpool_index`; clamped below
    ``locations[:, 0]`` and above ``locations[:, -1]``). The thesis re-samples at the inverse of the
    cdf and then upsamples uniformly to the input length; inverting at every output frame is those
    two steps composed. For the uniform grid ``0, s, 2s, ...`` this is plain linear upsampling of
    ``y`` from those positions to ``0 .. length-1``.
    """
    return sample_time(y, unpool_index(locations, length), dim)


# --------------------------------------------------------------------------- modules


def pool_stride(alpha: float) -> int:
    """``1 / alpha`` as an int; it must be 2, 4 or 8 (``alpha < 1``, three stride-2-or-1 convs)."""
    inv = 1.0 / alpha if alpha > 0 else math.inf
    stride = round(inv) if math.isfinite(inv) else 0
    if not (math.isclose(inv, stride) and stride in (2, 4, 8)):
        raise ValueError(f"alpha must be 1/2, 1/4 or 1/8 (1/alpha a power of two up to 8), got {alpha}")
    return stride


def check_length(length: int, stride: int, name: str = "Grid Pool") -> None:
    """Raise :class:`InputError` unless ``length`` frames split into whole intervals of ``stride``."""
    if length < stride:
        raise InputError(f"a sequence of {length} frames is shorter than the {name} stride {stride}")
    if length % stride:
        raise InputError(f"a sequence of {length} frames is not a multiple of the {name} stride {stride}")


class ConfidenceHead(nn.Module):
    """``h``: three strided convolutions (temporal strides multiplying to ``1 / alpha``; for video
    also spatial stride 2 each, 8 in all, then spatial average pooling) and a sigmoid.

    ``(B, C, T)`` or ``(B, C, T, H, W)`` -> ``p (B, T * alpha)``. Kernels are 3 wide (padding 1),
    so a stride-2 layer halves an even length exactly.
    """

    def __init__(self, channels: int, stride: int, *, video: bool = False, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        strides = {2: (2, 1, 1), 4: (2, 2, 1), 8: (2, 2, 2)}[stride]
        dims = [channels, hidden, hidden, 1]
        conv = nn.Conv3d if video else nn.Conv1d
        self.video = video
        self.convs = nn.ModuleList(
            conv(a, b, 3, stride=(s, 2, 2) if video else s, padding=1)
            for a, b, s in zip(dims[:-1], dims[1:], strides)
        )

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.convs):
            x = layer(x)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        x = x.mean(dim=(-2, -1)) if self.video else x  # (B, 1, N)
        return torch.sigmoid(x[:, 0])


class GridPool(nn.Module):
    """Learned temporal downsampling by ``1 / alpha`` on a non-uniform grid.

    ``(B, T, C)`` -> ``(B, T * alpha, C)``, or with ``video=True`` ``(B, C, T, H, W)`` ->
    ``(B, C, T * alpha, H, W)`` (no spatial sampling). ``T`` must be a multiple of ``1 / alpha``.
    The head's confidences enter only relatively: the cdf in :func:`grid_locations` normalises them
    (the thesis's "we normalize these confidence values").
    """

    def __init__(self, channels: int, alpha: float = 0.25, *, video: bool = False, hidden: int | None = None):
        super().__init__()
        self.stride = pool_stride(alpha)
        self.video = video
        self.head = ConfidenceHead(channels, self.stride, video=video, hidden=hidden)

    def forward(self, x: Tensor) -> GridPoolOutput:
        time_dim = _check_input(x, self.video)
        check_length(x.shape[time_dim], self.stride)
        p = self.head(x if self.video else x.transpose(1, 2))  # (B, N)
        pooled, locations = grid_pool(x, p, time_dim)
        return GridPoolOutput(pooled, locations, p)


def _check_input(x: Tensor, video: bool) -> int:
    """The time dim of ``x`` after checking its rank: 2 for video, 1 for sequences."""
    want = 5 if video else 3
    if x.ndim != want:
        layout = "(B, C, T, H, W)" if video else "(B, T, C)"
        raise InputError(f"expected a {layout} tensor, got shape {tuple(x.shape)}")
    return 2 if video else 1


class TemporalPool(nn.Module):
    """Temporal downsampling by ``1 / alpha`` of one ``kind``, all with the output of
    :class:`GridPool` so that Grid Unpool and the fusion's Gaussians work after any of them.

    - ``"grid"``: :class:`GridPool`;
    - ``"stride"``: ``x[:, ::s]``, locations ``j * s``;
    - ``"max"`` / ``"avg"``: window (kernel = stride = ``s``) max / mean, locations at the window
      centres ``j * s + (s - 1) / 2``.

    ``s = 1 / alpha``; ``channels`` is used by ``"grid"`` only; ``confidences`` is ``None`` for the
    other kinds.
    """

    def __init__(self, kind: str, channels: int, alpha: float = 0.25, *, video: bool = False):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown temporal pool {kind!r}; use one of {KINDS}")
        self.kind, self.video = kind, video
        self.stride = pool_stride(alpha)
        self.grid = GridPool(channels, alpha, video=video) if kind == "grid" else None

    def forward(self, x: Tensor) -> GridPoolOutput:
        if self.grid is not None:
            return self.grid(x)
        time_dim = _check_input(x, self.video)
        s = self.stride
        check_length(x.shape[time_dim], s, name="temporal pooling")
        if self.kind == "stride":
            pooled = x[:, :, ::s] if self.video else x[:, ::s]
            offset = 0.0
        else:
            if self.video:
                pool = F.max_pool3d if self.kind == "max" else F.avg_pool3d
                pooled = pool(x, (s, 1, 1), (s, 1, 1))
            else:
                pool = F.max_pool1d if self.kind == "max" else F.avg_pool1d
                pooled = pool(x.transpose(1, 2), s, s).transpose(1, 2)
            offset = (s - 1) / 2
        n = pooled.shape[time_dim]
        locations = (torch.arange(n, device=x.device, dtype=x.dtype) * s + offset).expand(x.shape[0], n)
        return GridPoolOutput(pooled, locations, None)
