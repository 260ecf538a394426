"""Multi-stage Fusion (Coarse-Fine Networks, Sec. 3.2.2 and 3.2.3): fine-stream context into the
coarse stream as a scale and shift.

One :class:`MultiStageFusion` is one lateral connection at a coarse level ``l``. For each fine
abstraction level ``i`` it reads:

1. filter: ``Xbar_i = X_i * g(X_i)``, ``g`` = point-wise conv, ReLU, point-wise conv, sigmoid
   (:class:`FineFilter`);
2. calibrate to the coarse frames: Coarse-centric Gaussians centred at the coarse locations
   (:func:`coarse_centric_gaussians`), or the direct frame correspondence of SlowFast;
3. max-pool spatially to the coarse level's ``H_l x W_l``;

then concatenates the levels channel-wise and returns ``coarse * A + B`` with
``A = sigmoid(f_A(.))`` and ``B = f_B(.)``, one point-wise conv each.

Layouts: sequences ``(B, T, C)`` (point-wise conv = ``nn.Linear`` on the last dim) or, with
``video=True``, ``(B, C, T, H, W)`` (point-wise conv = ``1x1x1`` ``nn.Conv3d``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from momentkit.errors import InputError
from momentkit.ops.grid_pool import sample_time

CALIBRATIONS = ("gaussian", "direct")


def coarse_centric_gaussians(locations: Tensor, length: int, sigma: float) -> Tensor:
    """``G (B, N, length)``: ``G[b, j, t] = exp(-(t - mu_j)^2 / (2 sigma^2))``, ``mu_j = locations[b, j]``,
    ``t = 0 .. length-1``.

    The thesis prints the density ``1 / sqrt(2 pi sigma^2) exp(...)`` but then says "the peak
    magnitude of each mask is normalized to 1" (Sec. 3.2.3); this follows the latter, so a mask is
    exactly 1 at an integer centre. No parameters: centres and ``sigma`` are not learned.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    t = torch.arange(length, device=locations.device, dtype=locations.dtype)
    return torch.exp(-((t - locations[..., None]) ** 2) / (2 * sigma**2))


def pointwise(in_channels: int, out_channels: int, video: bool) -> nn.Module:
    """A point-wise convolution: ``nn.Linear`` over the last dim of ``(B, T, C)``, or a ``1x1x1``
    ``nn.Conv3d`` over dim 1 of ``(B, C, T, H, W)``."""
    return nn.Conv3d(in_channels, out_channels, 1) if video else nn.Linear(in_channels, out_channels)


class FineFilter(nn.Module):
    """The self-attention mask ``g`` on fine features: ``X * sigmoid(pw(relu(pw(X))))``.

    ``(B, T, C)`` or ``(B, C, T, H, W)`` -> same shape. Both point-wise convs keep ``channels``
    (the thesis gives no reduction).
    """

    def __init__(self, channels: int, *, video: bool = False):
        super().__init__()
        self.conv1 = pointwise(channels, channels, video)
        self.conv2 = pointwise(channels, channels, video)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.conv2(F.relu(self.conv1(x))))


class MultiStageFusion(nn.Module):
    """One fusion connection into the coarse stream.

    ``fine_channels``: channels of *every* fine level, in order; ``levels``: the indices of those
    this connection reads. The ablation's fusion locations (Table 3.3a) are choices of ``levels``:

    - late fusion (only before the logits): one connection with ``levels=[n - 1]``;
    - same-level (one-to-one, as SlowFast): the connection at level ``l`` has ``levels=[l]``;
    - multi-stage (the thesis's): every connection has ``levels=range(n)``.

    ``calibration="gaussian"`` weights the fine frames with Coarse-centric Gaussians of
    ``sigma = sigma_fraction * T'`` (``T'/8`` in the thesis): ``X_hat[j] = sum_t Xbar[t] G[j, t]``.
    With peak-normalised masks this is a weighted *sum* (about ``2.5 sigma`` frames of weight), not
    an average; the point-wise heads absorb the scale. ``"direct"`` linearly samples the fine frames
    at the coarse locations (the SlowFast-style frame correspondence of the ``SlowFast_det``
    baseline). ``mask=False`` drops the :class:`FineFilter` (Table 3.3c, "none").

    Parameters use PyTorch's default initialisation: the thesis trains the fusion from scratch
    (with a 10x learning rate), so nothing starts it near the identity.
    """

    def __init__(
        self,
        fine_channels: Sequence[int],
        coarse_channels: int,
        *,
        levels: Sequence[int],
        calibration: str = "gaussian",
        sigma_fraction: float = 1 / 8,
        mask: bool = True,
        video: bool = False,
    ):
        super().__init__()
        n = len(fine_channels)
        levels = [int(i) for i in levels]
        if not levels or len(set(levels)) != len(levels) or not all(0 <= i < n for i in levels):
            raise ValueError(f"levels must be distinct indices into {n} fine levels, got {levels}")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration {calibration!r}; use one of {CALIBRATIONS}")
        if not sigma_fraction > 0:
            raise ValueError(f"sigma_fraction must be positive, got {sigma_fraction}")
        self.num_fine = n
        self.levels = levels
        self.calibration = calibration
        self.sigma_fraction = sigma_fraction
        self.video = video
        self.filters = nn.ModuleList(FineFilter(fine_channels[i], video=video) for i in levels) if mask else None
        fused = sum(fine_channels[i] for i in levels)
        self.scale = pointwise(fused, coarse_channels, video)  # f_A
        self.shift = pointwise(fused, coarse_channels, video)  # f_B

    def calibrate(self, fine: Tensor, locations: Tensor) -> Tensor:
        """Fine ``(B, T', C)`` / ``(B, C, T', H, W)`` -> ``(B, N, C)`` / ``(B, C, N, H, W)`` at the
        coarse ``locations (B, N)`` (fine-frame units)."""
        time_dim = 2 if self.video else 1
        if self.calibration == "direct":
            return sample_time(fine, locations, time_dim)
        length = fine.shape[time_dim]
        g = coarse_centric_gaussians(locations.to(fine.dtype), length, self.sigma_fraction * length)
        if self.video:
            return torch.einsum("bnt,bcthw->bcnhw", g, fine)
        return torch.einsum("bnt,btc->bnc", g, fine)

    def forward(self, coarse: Tensor, fine: Sequence[Tensor], locations: Tensor) -> Tensor:
        """``coarse * A + B``.

        - ``coarse``: ``(B, N, C_l)`` or ``(B, C_l, N, H_l, W_l)``;
        - ``fine``: every fine level (``len == len(fine_channels)``), each ``(B, T', C_i)`` or
          ``(B, C_i, T', H_i, W_i)``; only ``levels`` are read;
        - ``locations``: ``(B, N)``, where each coarse step sits, in the fine stream's frame units.
        """
        if len(fine) != self.num_fine:
            raise InputError(f"expected {self.num_fine} fine levels, got {len(fine)}")
        parts = []
        for k, i in enumerate(self.levels):
            x = fine[i] if self.filters is None else self.filters[k](fine[i])
            x = self.calibrate(x, locations)
            if self.video and x.shape[-2:] != coarse.shape[-2:]:
                x = F.adaptive_max_pool3d(x, (None, *coarse.shape[-2:]))
            parts.append(x)
        x = torch.cat(parts, dim=1 if self.video else -1)
        return coarse * torch.sigmoid(self.scale(x)) + self.shift(x)
