"""Positional encodings for 1-D sequences (clips, tokens) and for spans (decoder references).

Sequence encodings take the validity mask ``(B, T)`` (1 = valid) and return ``(B, T, D)``; positions
count valid elements, so padding at the end never changes the encoding of the valid part.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from momentkit.errors import InputError


def _sine(x: torch.Tensor, dim: int, temperature: float) -> torch.Tensor:
    """Interleaved sin/cos features of ``x`` (...,) -> (..., dim), as in DETR."""
    i = torch.arange(dim, dtype=torch.float32, device=x.device)
    freq = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / dim)
    pos = x[..., None] / freq
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)


class PositionEmbeddingSine(nn.Module):
    """Sine encoding of the (1-based) position of each valid element, DETR / Moment-DETR style.

    With ``normalize``, positions are divided by the number of valid elements and scaled to
    ``scale`` (2*pi), so the encoding depends on the relative position in the valid sequence.
    """

    def __init__(self, dim: int = 256, temperature: float = 10000.0, normalize: bool = True,
                 scale: float | None = None):
        super().__init__()
        if dim % 2:
            raise ValueError(f"dim must be even, got {dim}")
        self.dim, self.temperature, self.normalize = dim, temperature, normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        x = mask.float().cumsum(1)
        if self.normalize:
            x = x / (x[:, -1:] + 1e-6) * self.scale
        return _sine(x, self.dim, self.temperature)


class PositionEmbeddingLearned(nn.Module):
    """A learned vector per index 0..max_len-1."""

    def __init__(self, max_len: int, dim: int = 256):
        super().__init__()
        self.embed = nn.Embedding(max_len, dim)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        b, t = mask.shape
        if t > self.embed.num_embeddings:
            raise InputError(
                f"sequence of {t} elements is longer than the learned position table "
                f"({self.embed.num_embeddings})",
                field="max_len",
            )
        return self.embed.weight[:t].unsqueeze(0).expand(b, t, -1)


class PositionEmbeddingZero(nn.Module):
    """No positional information (Moment-DETR's default for text tokens)."""

    def __init__(self, dim: int = 256):
        super().__init__()
        self.dim = dim

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.new_zeros(*mask.shape, self.dim, dtype=torch.float32)


def build_position_encoding(kind: str, dim: int, max_len: int = 75) -> nn.Module:
    """``sine`` | ``learned`` | ``zero``."""
    if kind == "sine":
        return PositionEmbeddingSine(dim, normalize=True)
    if kind == "learned":
        return PositionEmbeddingLearned(max_len, dim)
    if kind == "zero":
        return PositionEmbeddingZero(dim)
    raise InputError(f"unknown position encoding {kind!r}; use 'sine', 'learned' or 'zero'", field="position_encoding")


def span_sine_embedding(spans: torch.Tensor, dim: int = 256, temperature: float = 10000.0) -> torch.Tensor:
    """Sine encoding of normalised ``(centre, width)`` spans (..., 2) -> (..., dim), DAB-DETR style.

    Each coordinate gets ``dim // 2`` features of ``coordinate * 2*pi``.
    """
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4, got {dim}")
    x = spans * (2 * math.pi)
    return torch.cat([_sine(x[..., 0], dim // 2, temperature), _sine(x[..., 1], dim // 2, temperature)], dim=-1)


def temporal_endpoint_feature(mask: torch.Tensor) -> torch.Tensor:
    """Moment-DETR's TEF: ``[i / n, (i + 1) / n]`` for clip i of n valid clips, zeros on padding.

    ``mask (B, T)`` -> ``(B, T, 2)``.
    """
    valid = mask.bool()
    n = valid.sum(1, keepdim=True).clamp(min=1).float()
    i = torch.arange(mask.shape[1], device=mask.device, dtype=torch.float32)[None]
    return torch.stack([i / n, (i + 1) / n], dim=-1) * valid[..., None]
