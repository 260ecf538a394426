"""Small generic layers shared by DETR-style models: MLP, input projection, DropPath."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def activation_fn(name: str):
    """``relu`` or ``gelu`` as a function."""
    try:
        return {"relu": F.relu, "gelu": F.gelu}[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; use 'relu' or 'gelu'") from None


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU in between (none after the last), as in DETR."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [out_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class LinearLayer(nn.Module):
    """LayerNorm -> Dropout -> Linear (-> ReLU): one step of the Moment-DETR input projection."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1, relu: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, out_dim)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(self.dropout(self.norm(x)))
        return F.relu(x) if self.relu else x


def input_projection(in_dim: int, hidden_dim: int, num_layers: int = 2, dropout: float = 0.5) -> nn.Sequential:
    """Stack of :class:`LinearLayer` from ``in_dim`` to ``hidden_dim``; ReLU on all but the last."""
    dims = [in_dim] + [hidden_dim] * num_layers
    return nn.Sequential(
        *(LinearLayer(dims[i], dims[i + 1], dropout, relu=i < num_layers - 1) for i in range(num_layers))
    )


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch for a whole sample with probability ``p`` (training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Logit of ``x`` clamped to [eps, 1 - eps] (for reference refinement in logit space)."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))
