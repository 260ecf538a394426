"""Transformer building blocks (batch first), DETR style, with pre-/post-norm and DropPath options.

Masks follow PyTorch: ``*_pad_mask`` is ``(B, L)`` bool with True at PADDED positions. Positional
embeddings are added to queries and keys, never to values (DETR).

- :class:`AttentionBlock` / :class:`FeedForwardBlock`: one residual sub-layer each.
- :class:`EncoderLayer`: self-attention + FFN.
- :class:`CrossAttentionLayer`: cross-attention + FFN (e.g. QD-DETR's text-to-video layer).
- :class:`DecoderLayer`: [self-attention] + cross-attention + FFN; self-attention can be switched off.
- :class:`TransformerEncoder` / :class:`TransformerDecoder`: stacks; the decoder returns every layer.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from momentkit.models.layers import DropPath, activation_fn


def _with_pos(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


class AttentionBlock(nn.Module):
    """Residual multi-head attention. Self-attention when ``memory`` is None, else cross-attention.

    ``fused=True`` computes the same attention from the same ``nn.MultiheadAttention`` parameters with
    one ``scaled_dot_product_attention`` call and no layout changes (fewer operations and far less
    Python per call; equal up to float rounding). It falls back to ``nn.MultiheadAttention`` for an
    ``attn_mask`` and for attention dropout in training (whose random draws would differ).
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dropout: float = 0.1,
        attn_dropout: float | None = None,
        pre_norm: bool = False,
        drop_path: float = 0.0,
        fused: bool = False,
    ):
        super().__init__()
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.attn = nn.MultiheadAttention(d_model, nhead, dropout=attn_dropout, batch_first=True)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)
        self.pre_norm = pre_norm
        self.fused = fused

    def forward(self, x, memory=None, key_pad_mask=None, pos=None, memory_pos=None, attn_mask=None):
        h = self.norm(x) if self.pre_norm else x
        if self.fused and attn_mask is None and not (self.training and self.attn.dropout > 0):
            out = self._fused_attention(h, memory, key_pad_mask, pos, memory_pos)
        else:
            if memory is None:
                memory, memory_pos = h, pos
            out = self.attn(
                _with_pos(h, pos), _with_pos(memory, memory_pos), memory,
                key_padding_mask=key_pad_mask, attn_mask=attn_mask, need_weights=False,
            )[0]
        x = x + self.drop_path(self.dropout(out))
        return x if self.pre_norm else self.norm(x)

    def _fused_attention(self, h, memory, key_pad_mask, pos, memory_pos):
        a = self.attn
        e, heads = a.embed_dim, a.num_heads
        w, bias = a.in_proj_weight, a.in_proj_bias
        b, n = h.shape[:2]
        query = _with_pos(h, pos)
        # one split per packed parameter (its gradient is one concatenation)
        if memory is None:  # self-attention: queries and keys from the same input, one product
            (w_qk, w_v), (b_qk, b_v) = w.split([2 * e, e]), bias.split([2 * e, e])
            q, k = F.linear(query, w_qk, b_qk).split(e, -1)
            memory = h
        else:
            (w_q, w_k, w_v), (b_q, b_k, b_v) = w.split(e), bias.split(e)
            q = F.linear(query, w_q, b_q)
            k = F.linear(_with_pos(memory, memory_pos), w_k, b_k)
        v = F.linear(memory, w_v, b_v)
        s = memory.shape[1]
        keep = None if key_pad_mask is None else ~key_pad_mask.bool()[:, None, None, :]  # True = attended
        out = F.scaled_dot_product_attention(
            q.view(b, n, heads, -1).transpose(1, 2), k.view(b, s, heads, -1).transpose(1, 2),
            v.view(b, s, heads, -1).transpose(1, 2), attn_mask=keep)
        return a.out_proj(out.transpose(1, 2).reshape(b, n, e))


class FeedForwardBlock(nn.Module):
    """Residual two-layer feed-forward network."""

    def __init__(self, d_model: int, dim_ff: int, dropout: float = 0.1, activation: str = "relu",
                 pre_norm: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_ff)
        self.linear2 = nn.Linear(dim_ff, d_model)
        self.activation = activation_fn(activation)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.drop_path = DropPath(drop_path)
        self.pre_norm = pre_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x) if self.pre_norm else x
        h = self.linear2(self.dropout1(self.activation(self.linear1(h))))
        x = x + self.drop_path(self.dropout2(h))
        return x if self.pre_norm else self.norm(x)


def _blocks(d_model, nhead, dim_ff, dropout, activation, pre_norm, drop_path, attn_dropout, n_attn):
    attn = [AttentionBlock(d_model, nhead, dropout, attn_dropout, pre_norm, drop_path) for _ in range(n_attn)]
    return attn, FeedForwardBlock(d_model, dim_ff, dropout, activation, pre_norm, drop_path)


class EncoderLayer(nn.Module):
    """Self-attention over the sequence, then FFN."""

    def __init__(self, d_model: int = 256, nhead: int = 8, dim_ff: int = 1024, dropout: float = 0.1,
                 activation: str = "relu", pre_norm: bool = False, drop_path: float = 0.0,
                 attn_dropout: float | None = None):
        super().__init__()
        attn, self.ffn = _blocks(d_model, nhead, dim_ff, dropout, activation, pre_norm, drop_path,
                                 attn_dropout, 1)
        self.self_attn = attn[0]

    def forward(self, x, pad_mask=None, pos=None):
        return self.ffn(self.self_attn(x, key_pad_mask=pad_mask, pos=pos))


class CrossAttentionLayer(nn.Module):
    """``x`` attends to ``memory`` (keys/values), then FFN; ``x`` keeps its length."""

    def __init__(self, d_model: int = 256, nhead: int = 8, dim_ff: int = 1024, dropout: float = 0.1,
                 activation: str = "relu", pre_norm: bool = False, drop_path: float = 0.0,
                 attn_dropout: float | None = None):
        super().__init__()
        attn, self.ffn = _blocks(d_model, nhead, dim_ff, dropout, activation, pre_norm, drop_path,
                                 attn_dropout, 1)
        self.cross_attn = attn[0]

    def forward(self, x, memory, memory_pad_mask=None, pos=None, memory_pos=None):
        return self.ffn(self.cross_attn(x, memory, memory_pad_mask, pos, memory_pos))


class DecoderLayer(nn.Module):
    """[Self-attention between queries] + cross-attention to memory + FFN.

    ``self_attn=False`` removes the query-to-query attention (search-query fix: decoder queries do
    not interact, ``Q' = FFN(CA(Q, memory))``).
    """

    def __init__(self, d_model: int = 256, nhead: int = 8, dim_ff: int = 1024, dropout: float = 0.1,
                 activation: str = "relu", pre_norm: bool = False, drop_path: float = 0.0,
                 attn_dropout: float | None = None, self_attn: bool = True):
        super().__init__()
        attn, self.ffn = _blocks(d_model, nhead, dim_ff, dropout, activation, pre_norm, drop_path,
                                 attn_dropout, 2 if self_attn else 1)
        self.self_attn = attn[0] if self_attn else None
        self.cross_attn = attn[-1]

    def forward(self, tgt, memory, memory_pad_mask=None, pos=None, query_pos=None, tgt_pad_mask=None):
        if self.self_attn is not None:
            tgt = self.self_attn(tgt, key_pad_mask=tgt_pad_mask, pos=query_pos)
        tgt = self.cross_attn(tgt, memory, memory_pad_mask, query_pos, pos)
        return self.ffn(tgt)


def clones(module: nn.Module, n: int) -> nn.ModuleList:
    """``n`` independent deep copies of ``module``."""
    return nn.ModuleList(copy.deepcopy(module) for _ in range(n))


class TransformerEncoder(nn.Module):
    """``num_layers`` copies of an :class:`EncoderLayer`; optional final LayerNorm (pre-norm models)."""

    def __init__(self, layer: EncoderLayer, num_layers: int, norm: nn.Module | None = None):
        super().__init__()
        self.layers = clones(layer, num_layers)
        self.norm = norm

    def forward(self, x, pad_mask=None, pos=None):
        for layer in self.layers:
            x = layer(x, pad_mask, pos)
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(nn.Module):
    """``num_layers`` copies of a :class:`DecoderLayer`; returns ``(num_layers, B, Q, D)``, each layer's
    output passed through the shared final LayerNorm (DETR, for auxiliary losses)."""

    def __init__(self, layer: DecoderLayer, num_layers: int, norm: nn.Module):
        super().__init__()
        self.layers = clones(layer, num_layers)
        self.norm = norm

    def forward(self, tgt, memory, memory_pad_mask=None, pos=None, query_pos=None, tgt_pad_mask=None):
        out = []
        for layer in self.layers:
            tgt = layer(tgt, memory, memory_pad_mask, pos, query_pos, tgt_pad_mask)
            out.append(self.norm(tgt))
        return torch.stack(out)
