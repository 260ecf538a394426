"""Deformable attention over 1-D sequences: RDSA (SDST) and deformable cross-attention.

Positions are normalised times in [0, 1] over the VALID part of a sequence of ``n`` clips: clip ``t``
covers ``[t / n, (t + 1) / n]`` and its feature sits at its centre ``(t + 0.5) / n`` (grid_sample's
``align_corners=False`` convention). Sampling is linear interpolation between the two nearest clip
centres (the 1-D case of bilinear sampling); positions are clamped to the valid clips ``[0, n - 1]``,
so padding is never read and a position before the start / after the end reads the first / last clip.
Everything is vectorised over batch, queries, heads and points (no Python loops): the two clips
around each point are whole rows gathered with ``index_select`` from the flattened features and
blended with ``lerp`` (per-head values stay in their ``(B, T, H, C)`` layout).

- :func:`clip_index`, :func:`sample_1d`, :func:`sample_heads`: normalised position -> continuous clip
  index -> features.
- :func:`roi_align_1d`: ``size`` evenly spaced samples inside each segment (RoI pooling).
- :class:`DeformableAttention1D`: the multi-head deformable attention core. Per query, head and point
  an offset ``Delta`` in units of the reference width and a weight (softmax over the points):
  ``S = W_o concat_h sum_p A_hp V_h[c + w * Delta_hp]`` with ``V = W_v X``. ``Delta = -0.5 / +0.5``
  are the current segment boundaries.
- :class:`ContextCNN`: two 1-D convolutions (LayerNorm, ReLU between) giving clips local context,
  computed channels-last as matrix products over the windows of shifted clips.
- :class:`RDSA` (Reference-based Deformable Self-Attention): offsets and weights come from the dense
  features themselves, sampled (after the context CNN) at the left edge, centre and right edge of each
  reference segment, so queries and keys live in the same space.
- :class:`DeformableCrossAttention`: the Deformable-DETR baseline; offsets and weights come from the
  query latents (plus their positional query).
- :class:`DeformableAttentionBlock`: residual + dropout + DropPath + LayerNorm (post- or pre-norm)
  around either of them.

Initialisation follows Deformable DETR: the offset head has zero weights and a bias that spreads the
points of each head along one direction (even heads to the left, odd heads to the right; head pair
``k`` of ``ceil(H / 2)`` reaches ``(k + 1) / ceil(H / 2)`` widths from the centre, its points evenly
spaced up to there), the weight head starts uniform (zero weights and bias), the value and output
projections are Xavier-initialised with zero biases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from momentkit.models.layers import DropPath

SAMPLE_POINTS = {"c": (0.0,), "l-r": (-0.5, 0.5), "l-c-r": (-0.5, 0.0, 0.5)}


# ----------------------------------------------------------------------------- sampling
def clip_index(pos: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Normalised positions ``(N, ...)`` -> continuous clip indices clamped to ``[0, n - 1]``.

    ``lengths (N,)`` is the number of valid clips of each row; ``index = pos * n - 0.5``.
    """
    n = lengths.to(pos.dtype).view(-1, *([1] * (pos.ndim - 1)))
    return (pos * n - 0.5).clamp(min=0.0).minimum(n - 1)


def _neighbours(index: torch.Tensor, lengths: torch.Tensor):
    """The clips on either side of continuous indices ``index (N, *S)`` (int64, clamped to each row's
    valid clips) and the weight of the right one (differentiable in ``index``)."""
    n = index.shape[0]
    last = (lengths.to(torch.int64) - 1).view(n, *([1] * (index.ndim - 1)))
    i0 = index.detach().floor().to(torch.int64).clamp(min=0).minimum(last)
    i1 = (i0 + 1).minimum(last)
    return i0, i1, index - i0.to(index.dtype)


def _blend_rows(table: torch.Tensor, rows0: torch.Tensor, rows1: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
    """``(1 - w1) table[rows0] + w1 table[rows1]`` for a ``(R, C)`` table and row indices ``(*S)`` -> ``(*S, C)``.

    Rows are copied with ``index_select`` (contiguous rows; its gradient is one ``index_add``).
    """
    v0 = table.index_select(0, rows0.reshape(-1))
    v1 = table.index_select(0, rows1.reshape(-1))
    return torch.lerp(v0, v1, w1.reshape(-1, 1).to(table.dtype)).view(*rows0.shape, table.shape[-1])


def sample_1d(values: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``values (N, T, C)`` at continuous indices ``index (N, *S)``.

    Indices must lie in ``[0, lengths - 1]`` (see :func:`clip_index`); returns ``(N, *S, C)``.
    Differentiable in ``values`` and in ``index``.
    """
    n, t, c = values.shape
    i0, i1, w1 = _neighbours(index, lengths)
    start = (torch.arange(n, device=values.device) * t).view(n, *([1] * (index.ndim - 1)))
    return _blend_rows(values.reshape(n * t, c), i0 + start, i1 + start, w1)


def sample_heads(values: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """:func:`sample_1d` of per-head values ``(N, T, H, C)`` at per-head indices ``(N, *S, H, P)``
    (head ``h``'s points read head ``h``'s channels) -> ``(N, *S, H, P, C)``, without moving the
    head axis in memory."""
    n, t, h, c = values.shape
    i0, i1, w1 = _neighbours(index, lengths)
    lead, dev = (1,) * (index.ndim - 3), values.device
    start = torch.arange(n, device=dev).view(n, *lead, 1, 1) * (t * h) + torch.arange(h, device=dev).view(*lead, h, 1)
    return _blend_rows(values.reshape(n * t * h, c), i0 * h + start, i1 * h + start, w1)


def roi_align_1d(values: torch.Tensor, spans: torch.Tensor, lengths: torch.Tensor, size: int = 16) -> torch.Tensor:
    """``size`` samples at the bin centres of each segment: ``values (B, T, C)``, ``spans (B, M, 2)``
    normalised (centre, width) -> ``(B, M, size, C)``."""
    spans = spans.float()
    bins = (torch.arange(size, device=spans.device, dtype=spans.dtype) + 0.5) / size - 0.5
    pos = spans[..., :1] + spans[..., 1:] * bins  # (B, M, size), float32
    return sample_1d(values, clip_index(pos, lengths), lengths)


def initial_offsets(nheads: int, npoints: int) -> torch.Tensor:
    """The ``(H, P)`` offsets (in reference widths) the offset head starts from; see the module doc."""
    pairs = math.ceil(nheads / 2)
    h = torch.arange(nheads)
    direction = torch.where(h % 2 == 0, -1.0, 1.0)
    reach = (h // 2 + 1).float() / pairs
    steps = (torch.arange(npoints) + 1).float() / npoints
    return direction[:, None] * reach[:, None] * steps[None, :]


# ----------------------------------------------------------------------------- attention
class DeformableAttention1D(nn.Module):
    """Multi-head deformable attention over a 1-D sequence around reference segments.

    ``forward(query (B, M, Q), refs (B, M, 2) cxw, values (B, T, D), lengths (B,))`` -> ``(B, M, D)``;
    with ``return_sampling`` also a dict of ``offsets`` and ``positions`` (normalised) ``(B, M, H, P)``
    and the point ``weights`` ``(B, M, H, P)``.
    """

    def __init__(self, d_model: int = 256, nheads: int = 8, npoints: int = 4, query_dim: int | None = None):
        super().__init__()
        if d_model % nheads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of nheads ({nheads})")
        query_dim = d_model if query_dim is None else query_dim
        self.d_model, self.nheads, self.npoints = d_model, nheads, npoints
        self.offsets = nn.Linear(query_dim, nheads * npoints)
        self.weights = nn.Linear(query_dim, nheads * npoints)
        self.value_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.offsets.weight)
        with torch.no_grad():
            self.offsets.bias.copy_(initial_offsets(self.nheads, self.npoints).flatten())
        nn.init.zeros_(self.weights.weight)
        nn.init.zeros_(self.weights.bias)
        for lin in (self.value_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query, refs, values, lengths, return_sampling: bool = False):
        b, m, _ = query.shape
        t, d = values.shape[1], self.d_model
        h, p = self.nheads, self.npoints
        delta = self.offsets(query).view(b, m, h, p)
        attn = self.weights(query).view(b, m, h, p).softmax(-1)
        refs = refs.float()  # positions in float32 (half precision is too coarse for long videos)
        pos = refs[..., 0, None, None] + refs[..., 1, None, None] * delta.float()  # (B, M, H, P)
        v = self.value_proj(values).view(b, t, h, d // h)
        s = sample_heads(v, clip_index(pos, lengths), lengths)  # (B, M, H, P, C)
        out = self.out_proj((s * attn.to(s.dtype)[..., None]).sum(3).view(b, m, d))
        if return_sampling:
            return out, {"offsets": delta, "positions": pos, "weights": attn}
        return out


class ContextCNN(nn.Module):
    """``Conv1d -> LayerNorm -> ReLU -> Conv1d`` over time, ``(B, T, D) -> (B, T, D)``.

    Padded clips are zeroed before each convolution, so they look like the zero padding at the
    sequence ends and the output on valid clips does not depend on how much padding follows.
    """

    def __init__(self, d_model: int = 256, hidden: int = 256, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.conv1 = nn.Conv1d(d_model, hidden, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(hidden)
        self.conv2 = nn.Conv1d(hidden, d_model, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        h = _conv_over_time(self.conv1, x * m)
        h = F.relu(self.norm(h)) * m
        return _conv_over_time(self.conv2, h)


def _conv_over_time(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` (stride 1, ``kernel // 2`` zero padding) applied to channels-last ``x (B, T, C)`` as one
    matrix product over the unfolded windows: the convolution's result without moving channels
    first and back (faster on the CPU, the same parameters). Each window is laid out ``(k, C)``, the
    ``k`` shifted copies of the clips side by side (one concatenation, whose gradient is ``k`` slices;
    the weight is permuted to match), and the windows of all samples are one matrix."""
    b, t, c = x.shape
    k = conv.kernel_size[0]
    padded = F.pad(x, (0, 0, k // 2, k // 2))
    windows = torch.cat([padded[:, j : j + t] for j in range(k)], dim=-1)  # (B, T, k * C)
    weight = conv.weight.transpose(1, 2).reshape(conv.out_channels, k * c)  # (out, k * C)
    return F.linear(windows.view(b * t, k * c), weight, conv.bias).view(b, t, -1)


class RDSA(nn.Module):
    """Reference-based Deformable Self-Attention (SDST, Eq. 4.12-4.13 of the thesis).

    ``X^Q = CNN(D)[l, c, r]`` (the ``sample_points`` of each reference, concatenated), ``Q = ReLU(W X^Q)``
    (``query_dim`` wide), then offsets and weights from ``Q`` and deformable sampling of ``D``.
    ``forward(latents, refs, dense, mask, query_pos=None)``; the latents are not used (the queries come
    from the dense features), the argument keeps the interface of :class:`DeformableCrossAttention`.
    """

    def __init__(self, d_model: int = 256, nheads: int = 8, npoints: int = 4, query_dim: int = 64,
                 sample_points: str = "l-c-r", context_cnn: bool = True, cnn_hidden: int = 256,
                 cnn_kernel: int = 3):
        super().__init__()
        if sample_points not in SAMPLE_POINTS:
            raise ValueError(f"sample_points must be one of {list(SAMPLE_POINTS)}, got {sample_points!r}")
        self.register_buffer("anchors", torch.tensor(SAMPLE_POINTS[sample_points]), persistent=False)
        self.cnn = ContextCNN(d_model, cnn_hidden, cnn_kernel) if context_cnn else None
        self.query_proj = nn.Sequential(nn.Linear(len(SAMPLE_POINTS[sample_points]) * d_model, query_dim), nn.ReLU())
        self.attn = DeformableAttention1D(d_model, nheads, npoints, query_dim)

    def query_features(self, refs: torch.Tensor, dense: torch.Tensor, mask: torch.Tensor,
                       lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``X^Q (B, M, S * D)``: the (context) features at the sample points of each reference
        (``lengths``: ``mask.sum(1)`` if already at hand)."""
        lengths = mask.sum(1) if lengths is None else lengths
        x = self.cnn(dense, mask) if self.cnn is not None else dense
        pos = refs[..., :1].float() + refs[..., 1:].float() * self.anchors  # (B, M, S), float32
        return sample_1d(x, clip_index(pos, lengths), lengths).flatten(2)

    def forward(self, latents, refs, dense, mask, query_pos=None, return_sampling: bool = False):
        lengths = mask.sum(1)
        q = self.query_proj(self.query_features(refs, dense, mask, lengths))
        return self.attn(q, refs, dense, lengths, return_sampling)


class DeformableCrossAttention(nn.Module):
    """Deformable cross-attention (Deformable DETR / TadTR): offsets and weights from ``latents +
    query_pos``; same call as :class:`RDSA`."""

    def __init__(self, d_model: int = 256, nheads: int = 8, npoints: int = 4):
        super().__init__()
        self.attn = DeformableAttention1D(d_model, nheads, npoints, d_model)

    def forward(self, latents, refs, dense, mask, query_pos=None, return_sampling: bool = False):
        q = latents if query_pos is None else latents + query_pos
        return self.attn(q, refs, dense, mask.sum(1), return_sampling)


class DeformableAttentionBlock(nn.Module):
    """Residual sub-layer around :class:`RDSA` or :class:`DeformableCrossAttention`:
    ``norm(h + DropPath(Dropout(attn(h, ...))))`` (post-norm) or ``h + DropPath(Dropout(attn(norm(h))))``.

    ``forward(h (B, M, D), refs (B, M, 2), dense (B, T, D), mask (B, T) bool valid, query_pos)``.
    """

    def __init__(self, attn: nn.Module, d_model: int, dropout: float = 0.0, drop_path: float = 0.0,
                 pre_norm: bool = False):
        super().__init__()
        self.attn = attn
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)
        self.pre_norm = pre_norm

    def forward(self, h, refs, dense, mask, query_pos=None):
        x = self.norm(h) if self.pre_norm else h
        h = h + self.drop_path(self.dropout(self.attn(x, refs, dense, mask, query_pos)))
        return h if self.pre_norm else self.norm(h)
