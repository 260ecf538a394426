"""Token merging (ToMe) of the keys and values of cross-frame attention, and Object-Centric ToMe.

Written in the project rather than taken from ``tomesd``: ``tomesd`` patches whole transformer blocks,
merges queries too (and un-merges the output), draws one destination pattern per image and computes
a fresh plan at every call, whereas the editing pipelines need (Sec. 6.2.1 and the appendix of the
thesis) plans that are *paired* between inversion and generation (computed once during inversion,
re-used at the same layer and diffusion step of generation, so stored attention maps and merged
tokens refer to the same locations), destinations *resampled per frame* (or per temporal window),
merging of keys and values only, search for matches within a temporal window, a floor on the tokens
kept in low-resolution layers, and the foreground-weighted similarity of Object-Centric ToMe.

One merge, over the key/value tokens of ``L`` frames of ``h x w`` tokens each (a pool of cross-frame
attention, see :mod:`momentkit.edit.attention`):

1. The frames are cut into temporal windows of ``stride[0]`` frames (the last may be shorter). In
   each window every cell of ``stride[0] x stride[1] x stride[2]`` (frames x rows x columns) holds one
   destination (*dst*) token at a random position of the cell; all other tokens are sources (*src*).
   With ``resample=True`` the positions are drawn anew for every window (every frame when
   ``stride[0] == 1``); with ``False`` the first window's pattern is repeated (the naive extension
   of ToMe for Stable Diffusion to video, kept for ablations).
2. Each source token finds its most similar destination *of the same window* (temporally-windowed
   search) with ``Sim(x_i, x_j) = (cos(x_i, x_j) + 1) / 2`` (Eq. 6.1), computed on the tokens
   themselves, as ToMe for Stable Diffusion does.
3. Object-Centric ToMe: the similarity of a foreground source token is multiplied by ``eta``
   (eta-Sim); ``eta = 1`` is plain ToMe. ``eta = 0`` excludes foreground sources altogether: they are
   never merged, and a window merges at most as many tokens as it has background sources.
4. The ``r = floor(ratio * n)`` sources of highest score in a window of ``n`` tokens are averaged into
   their destination (mean of the destination and all sources merged into it); ``r`` is capped so
   that every frame keeps at least ``ceil(min_keep * h * w)`` tokens (1/16: 4 tokens at 8x8 and 16 at
   16x16, as the thesis) and at the number of sources. The output is the unmerged sources followed
   by the destinations, in increasing position order inside each group.

Averaging the tokens before the key/value projections equals averaging the keys and values (the
projections are affine). Destination positions come from a generator seeded by the plan's key (the
layer, region and time), so a plan is a deterministic function of its inputs.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class ToMeConfig:
    """Token merging of cross-frame attention keys/values. ``ratio = 0`` turns it off.

    ``ratio``: fraction of the tokens of every temporal window merged away (at most
    ``1 - 1 / (stride[0] * stride[1] * stride[2])``: only sources merge). ``stride``: (frames, rows,
    columns) of the cell holding one destination; its frame count is also the temporal window of
    the search. ``resample``: new destination positions in every window. ``paired``: generation
    re-uses the plans computed during inversion at the same layer and step (inversion pipelines).
    ``min_keep``: fraction of every frame's tokens that always stays. ``eta``: Object-Centric ToMe
    weight of foreground sources (1 = plain ToMe). ``seed``: of the destination positions.
    """

    ratio: float = 0.0
    stride: tuple[int, int, int] = (2, 2, 2)
    resample: bool = True
    paired: bool = True
    min_keep: float = 1.0 / 16
    eta: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"ToMe ratio must be in [0, 1), got {self.ratio}")
        if len(self.stride) != 3 or min(self.stride) < 1:
            raise ValueError(f"ToMe stride must be three integers >= 1, got {self.stride}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if not 0.0 <= self.min_keep <= 1.0:
            raise ValueError(f"min_keep must be in [0, 1], got {self.min_keep}")

    @property
    def enabled(self) -> bool:
        return self.ratio > 0

    def with_(self, **changes) -> ToMeConfig:
        return replace(self, **changes)


@dataclass
class MergePlan:
    """Which tokens of ``num_tokens`` stay (``unm``: unmerged sources, ``dst``: destinations) and where
    each merged source goes (``src`` positions, ``into``: index in ``dst``); one row per pool."""

    unm: torch.Tensor  # (R, n_unm) positions
    dst: torch.Tensor  # (R, n_dst) positions
    src: torch.Tensor  # (R, n_merged) positions of the merged sources
    into: torch.Tensor  # (R, n_merged) index into dst
    num_tokens: int

    @property
    def rows(self) -> int:
        return self.unm.shape[0]

    @property
    def out_tokens(self) -> int:
        return self.unm.shape[1] + self.dst.shape[1]

    def repeat(self, copies: int) -> MergePlan:
        """The plan for ``copies`` stacked batches of the same pools (classifier-free guidance)."""
        if copies == 1:
            return self
        return MergePlan(*(t.repeat(copies, 1) for t in (self.unm, self.dst, self.src, self.into)),
                         self.num_tokens)

    def kept(self) -> torch.Tensor:
        """Positions of the output tokens, in output order (unmerged sources then destinations)."""
        return torch.cat([self.unm, self.dst], dim=1)

    def to(self, device) -> MergePlan:
        return MergePlan(*(t.to(device) for t in (self.unm, self.dst, self.src, self.into)), self.num_tokens)

    def equals(self, other: MergePlan) -> bool:
        return self.num_tokens == other.num_tokens and all(
            torch.equal(a, b) for a, b in zip((self.unm, self.dst, self.src, self.into),
                                              (other.unm, other.dst, other.src, other.into)))


def _seed_of(seed: int, key) -> int:
    return zlib.crc32(repr((seed, key)).encode()) & 0x7FFFFFFF


def _dst_positions(frames: int, h: int, w: int, stride: tuple[int, int, int], resample: bool,
                   gen: torch.Generator) -> list[torch.Tensor]:
    """Destination positions (flat, into the ``frames * h * w`` tokens) of every temporal window."""
    st, sy, sx = stride
    st = min(st, frames)
    cy, cx = math.ceil(h / sy), math.ceil(w / sx)
    ys = torch.arange(cy) * sy
    xs = torch.arange(cx) * sx
    hy = (h - ys).clamp(max=sy)  # rows available in each cell (edge cells may be smaller)
    wx = (w - xs).clamp(max=sx)
    out = []
    pattern = None
    for w0 in range(0, frames, st):
        lw = min(st, frames - w0)
        if pattern is None or resample:
            u = torch.rand(3, cy, cx, generator=gen)
            pattern = u
        u = pattern
        dt = (u[0] * lw).long().clamp(max=lw - 1)
        dy = (u[1] * hy[:, None]).long()
        dx = (u[2] * wx[None, :]).long()
        pos = (w0 + dt) * (h * w) + (ys[:, None] + dy) * w + (xs[None, :] + dx)
        out.append(pos.flatten().sort().values)
    return out


def plan_merge(x: torch.Tensor, frames: int, h: int, w: int, config: ToMeConfig, *,
               fg: torch.Tensor | None = None, key=None) -> MergePlan:
    """A merge plan for tokens ``x`` ``(R, frames * h * w, C)`` (frame-major, then rows, columns).

    ``fg``: ``(R, frames * h * w)`` bool, foreground tokens for Object-Centric ToMe (used when
    ``config.eta < 1``). ``key``: anything hashable naming the call (layer, region, time): the
    destination positions are drawn from a generator seeded by ``(config.seed, key)``.
    """
    R, n, _ = x.shape
    if n != frames * h * w:
        raise ValueError(f"{n} tokens do not make {frames} frames of {h}x{w}")
    device = x.device
    gen = torch.Generator().manual_seed(_seed_of(config.seed, key))
    windows = _dst_positions(frames, h, w, config.stride, config.resample, gen)
    st = min(config.stride[0], frames)
    keep_per_frame = math.ceil(config.min_keep * h * w)
    use_fg = fg is not None and config.eta < 1.0
    metric = torch.nn.functional.normalize(x.float(), dim=-1)
    unm_parts, dst_parts, src_parts, into_parts = [], [], [], []
    dst_offset = 0
    for i, dst in enumerate(windows):
        w0 = i * st
        lw = min(st, frames - w0)
        window = torch.arange(w0 * h * w, (w0 + lw) * h * w)
        is_dst = torch.zeros(window.numel(), dtype=torch.bool)
        is_dst[dst - w0 * h * w] = True
        src = window[~is_dst]
        nw = window.numel()
        r = min(int(math.floor(config.ratio * nw)), src.numel(), nw - lw * keep_per_frame)
        r = max(r, 0)
        src_d, dst_d = src.to(device), dst.to(device)
        score = None
        if r > 0:
            a = metric[:, src_d]
            b = metric[:, dst_d]
            sim = a @ b.transpose(1, 2)  # (R, ns, nd) cosine
            best, best_idx = sim.max(dim=-1)
            score = (best + 1.0) / 2.0  # Eq. 6.1
            if use_fg:
                fg_src = fg[:, src_d].to(torch.bool)
                if config.eta == 0.0:
                    score = torch.where(fg_src, torch.full_like(score, -1.0), score)
                    r = min(r, int((~fg_src).sum(dim=1).min()))
                else:
                    score = torch.where(fg_src, config.eta * score, score)
        if r > 0:
            order = score.argsort(dim=-1, descending=True, stable=True)
            merged = order[:, :r]
            rest = order[:, r:].sort(dim=-1).values
            unm_parts.append(src_d[rest])
            src_parts.append(src_d[merged])
            into_parts.append(best_idx.gather(1, merged) + dst_offset)
        else:
            unm_parts.append(src_d.expand(R, -1))
            src_parts.append(src_d.new_zeros(R, 0))
            into_parts.append(src_d.new_zeros(R, 0))
        dst_parts.append(dst_d.expand(R, -1))
        dst_offset += dst.numel()
    return MergePlan(torch.cat(unm_parts, 1), torch.cat(dst_parts, 1).contiguous(), torch.cat(src_parts, 1),
                     torch.cat(into_parts, 1), n)


def apply_merge(x: torch.Tensor, plan: MergePlan) -> torch.Tensor:
    """Merged tokens ``(R, plan.out_tokens, C)`` of ``x`` ``(R, num_tokens, C)``: the unmerged sources,
    then each destination averaged with the sources merged into it."""
    if x.shape[1] != plan.num_tokens or x.shape[0] != plan.rows:
        raise ValueError(f"plan for {plan.rows} x {plan.num_tokens} tokens applied to {tuple(x.shape[:2])}")
    c = x.shape[-1]

    def take(idx):
        return x.gather(1, idx[..., None].expand(-1, -1, c))

    unm = take(plan.unm)
    dst = take(plan.dst)
    if plan.src.shape[1]:
        dst = dst.scatter_reduce(1, plan.into[..., None].expand(-1, -1, c), take(plan.src), reduce="mean",
                                 include_self=True)
    return torch.cat([unm, dst], dim=1)


__all__ = ["MergePlan", "ToMeConfig", "apply_merge", "plan_merge"]
