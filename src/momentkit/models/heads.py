"""Prediction heads and how to read them.

Class logits follow Moment-DETR: with 2 classes (softmax), index 0 is FOREGROUND and index 1 is
background; with 1 class (sigmoid / focal loss) the single logit is the foreground score.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FOREGROUND = 0


def foreground_prob(logits: torch.Tensor) -> torch.Tensor:
    """Foreground probability from class logits ``(..., C)``: sigmoid if C == 1, else softmax[..., 0]."""
    if logits.shape[-1] == 1:
        return logits[..., 0].sigmoid()
    return logits.softmax(-1)[..., FOREGROUND]


class LinearSaliencyHead(nn.Module):
    """Moment-DETR: one linear score per encoded clip token. ``(B, T, D) -> (B, T)``."""

    def __init__(self, d_model: int):
        super().__init__()
        self.proj = nn.Linear(d_model, 1)

    def forward(self, clips: torch.Tensor, token: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(clips)[..., 0]


class TokenSaliencyHead(nn.Module):
    """QD-DETR: scaled dot product between projected clip tokens and the encoded [SAL] token.

    ``clips (B, T, D)``, ``token (B, D)`` -> ``(B, T)``.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.clip_proj = nn.Linear(d_model, d_model)
        self.token_proj = nn.Linear(d_model, d_model)
        self.scale = 1.0 / math.sqrt(d_model)

    def forward(self, clips: torch.Tensor, token: torch.Tensor | None = None) -> torch.Tensor:
        if token is None:
            raise ValueError("TokenSaliencyHead needs the encoded saliency token")
        return (self.clip_proj(clips) * self.token_proj(token)[:, None]).sum(-1) * self.scale
