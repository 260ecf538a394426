"""Object-Centric Sampling (Algorithm 1 of chapter 6) and its mirror for inversion.

Algorithm 1, with ``T`` training steps, ``N`` inference steps, ``Delta T = T / N``, blending ratio
``gamma`` (default 0.25), background acceleration ``phi > 1`` and a foreground mask ``m``::

    T_b = gamma * T
    z_T^f = gather(z_T, m);  z_T^b = gather(z_T, 1 - m)
    for t = T; t > T_b; t -= Delta T:        z^f <- one step of p(z^f | z_t^f)   # foreground
    for t = T; t > T_b; t -= phi * Delta T:  z^b <- one step of p(z^b | z_t^b)   # background
    z_{T_b} = scatter(normalize(z^f, z^b), z^b)
    for t = T_b; t > 0; t -= Delta T:        z <- one step of p(z | z_t)         # joint blending

Choices where the thesis is silent, and how gather/scatter are implemented:

- **Gather as a crop** (Sec. 6.4, implementation details): the mask is padded to a rectangle, the
  union of its bounding boxes over all frames (cross-frame attention needs every frame to have the
  same token count), grown to a multiple of the UNet's downsampling factor (centred, kept inside the
  frame) so the UNet's dense convolutions apply; ``gather(z, m)`` is that crop. The complement of a
  rectangle is not a rectangle, so the **background runs on the full frame** and ``scatter`` keeps
  its pixels outside the crop: ``scatter(z^f, z^b)`` is ``z^b`` with the crop replaced by ``z^f``.
- **Grids.** The blending stage has ``round(gamma * N)`` steps (halves up), so ``T_b = round(gamma * N) * Delta T``
  lies on the grid of the ordinary ``N``-step sampler. The background loop steps ``phi * Delta T``
  while ``t > T_b`` and its last step is clamped to ``T_b`` (``phi`` need not divide the
  interval). ``phi = inf`` skips the background stage: inversion pipelines then take the inverted
  latent at ``T_b`` as the background (the thesis' option for localized edits; the background stays
  the source's).
- **normalize**: per latent channel, the foreground crop is shifted and scaled to the mean and
  standard deviation of the background latent outside the crop, over all frames and positions
  (batch-normalization style). Off with ``normalize=False``.
- **Sampler state**: foreground and background have their own sampler; blending starts a fresh one
  (for DPM-Solver++ its first blending step is first order: the two histories lie at different
  times). When the crop is the whole frame (an all-ones mask) there is no background: the
  foreground process *is* the ordinary one (region ``joint``) and continues into blending with
  its own sampler, so Object-Centric Sampling reduces exactly to ordinary sampling.
- **Inversion** (inversion pipelines) mirrors the schedule: the full frame is inverted jointly from 0
  to ``T_b`` on the blending grid, then the crop from ``T_b`` to ``T`` on the foreground grid and the
  full frame on the background grid, so generation meets the same regions at the same times
  (stored attention maps and merge plans are keyed by region and time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from momentkit.edit.schedule import NoiseSchedule, ddim_invert_step, steps_of, strided_grid

Denoise = Callable[[torch.Tensor, int, str], torch.Tensor]  # (latents, time, region) -> model output


@dataclass(frozen=True)
class OCSamplingConfig:
    """Object-Centric Sampling: ``gamma`` blending ratio, ``phi`` background acceleration
    (``math.inf``: skip the background stage), ``normalize`` the foreground before merging."""

    enabled: bool = False
    gamma: float = 0.25
    phi: float = 2.0
    normalize: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if not self.phi > 1.0:
            raise ValueError(f"phi must be > 1 (or inf), got {self.phi}")

    @property
    def skip_background(self) -> bool:
        return math.isinf(self.phi)


@dataclass(frozen=True)
class Box:
    """A rectangle of latent cells ``[y0, y1) x [x0, x1)``."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def covers(self, h: int, w: int) -> bool:
        return self.y0 <= 0 and self.x0 <= 0 and self.y1 >= h and self.x1 >= w

    def scaled(self, factor: int) -> Box:
        return Box(self.y0 * factor, self.x0 * factor, self.y1 * factor, self.x1 * factor)

    def area_fraction(self, h: int, w: int) -> float:
        return self.height * self.width / float(h * w)


def _grow(lo: int, hi: int, size: int, multiple: int) -> tuple[int, int]:
    length = max(multiple, math.ceil((hi - lo) / multiple) * multiple)
    if length >= size:
        return 0, size
    lo = min(max(lo - (length - (hi - lo)) // 2, 0), size - length)
    return lo, lo + length


def foreground_box(mask: torch.Tensor, multiple: int = 1) -> Box:
    """The crop of Object-Centric Sampling for a foreground ``mask`` ``(F, h, w)`` at latent
    resolution: the union of the frames' bounding boxes, each side grown (centred, inside the frame)
    to a multiple of ``multiple``; the whole side when it cannot be. An empty mask is an error."""
    if mask.ndim != 3:
        raise ValueError(f"mask must be (frames, h, w), got {tuple(mask.shape)}")
    any_f = mask.bool().any(dim=0)
    if not bool(any_f.any()):
        raise ValueError("the foreground mask is empty")
    h, w = any_f.shape
    rows = torch.nonzero(any_f.any(dim=1)).flatten()
    cols = torch.nonzero(any_f.any(dim=0)).flatten()
    y0, y1 = _grow(int(rows[0]), int(rows[-1]) + 1, h, multiple)
    x0, x1 = _grow(int(cols[0]), int(cols[-1]) + 1, w, multiple)
    return Box(y0, x0, y1, x1)


def gather(z: torch.Tensor, box: Box) -> torch.Tensor:
    """The foreground crop ``z[..., y0:y1, x0:x1]``."""
    return z[..., box.y0: box.y1, box.x0: box.x1]


def scatter(z_fg: torch.Tensor, z_bg: torch.Tensor, box: Box) -> torch.Tensor:
    """``z_bg`` (full frame) with the crop replaced by ``z_fg``."""
    out = z_bg.clone()
    out[..., box.y0: box.y1, box.x0: box.x1] = z_fg
    return out


def outside(z: torch.Tensor, box: Box) -> torch.Tensor:
    """Bool mask ``(h, w)`` of the cells outside the crop."""
    keep = torch.ones(z.shape[-2:], dtype=torch.bool, device=z.device)
    keep[box.y0: box.y1, box.x0: box.x1] = False
    return keep


def normalize(z_fg: torch.Tensor, z_bg: torch.Tensor, box: Box, eps: float = 1e-6) -> torch.Tensor:
    """Shift and scale every channel of the foreground ``(F, C, h, w)`` to the mean and std of the
    background latent ``(F, C, H, W)`` outside the crop (over frames and positions)."""
    out_mask = outside(z_bg, box)
    if not bool(out_mask.any()):
        return z_fg
    bg = z_bg[..., out_mask]  # (F, C, n)
    bg = bg.transpose(0, 1).reshape(z_bg.shape[1], -1)
    fg = z_fg.transpose(0, 1).reshape(z_fg.shape[1], -1)
    shape = (1, -1, 1, 1)
    mu_f, sd_f = fg.mean(1).view(shape), fg.std(1).view(shape)
    mu_b, sd_b = bg.mean(1).view(shape), bg.std(1).view(shape)
    return (z_fg - mu_f) / (sd_f + eps) * sd_b + mu_b


@dataclass(frozen=True)
class OCGrids:
    """Time grids of Object-Centric Sampling (decreasing, each ending where the next stage starts)."""

    T: int
    N: int
    T_b: int
    fg: list[int]
    bg: list[int] | None  # None: background stage skipped
    blend: list[int]


def oc_grids(T: int, N: int, gamma: float = 0.25, phi: float = 2.0) -> OCGrids:
    """The grids of Algorithm 1 for ``T`` training steps and ``N`` inference steps."""
    if N < 1 or N > T:
        raise ValueError(f"the number of steps must be in 1..{T}, got {N}")
    dt = T / N
    n_blend = int(math.floor(gamma * N + 0.5))
    t_b = int(round(n_blend * dt))
    fg = strided_grid(T, t_b, dt)
    bg = None if math.isinf(phi) else strided_grid(T, t_b, phi * dt)
    blend = strided_grid(t_b, 0, dt) if t_b > 0 else [0]
    return OCGrids(T, N, t_b, fg, bg, blend)


@dataclass
class OCTrace:
    """What Object-Centric Sampling did: the times of every UNet evaluation by stage, and the latents
    at ``T_b`` (foreground after normalization, background, their scatter)."""

    box: Box | None = None
    fg_times: list[int] = field(default_factory=list)
    bg_times: list[int] = field(default_factory=list)
    blend_times: list[int] = field(default_factory=list)
    fg_latent: torch.Tensor | None = None
    fg_raw: torch.Tensor | None = None
    bg_latent: torch.Tensor | None = None
    blended: torch.Tensor | None = None


def run_grid(x: torch.Tensor, grid: list[int], denoise: Denoise, sampler, region: str,
             times: list[int] | None = None, tick: Callable[[], None] | None = None) -> torch.Tensor:
    """Sample along a decreasing grid: one ``denoise`` call and one sampler step per interval."""
    for t, t_next in steps_of(grid):
        out = denoise(x, t, region)
        x = sampler.step(out, t, t_next, x)
        if times is not None:
            times.append(t)
        if tick:
            tick()
    return x


def invert_grid(x: torch.Tensor, grid: list[int], denoise: Denoise, schedule: NoiseSchedule, region: str,
                times: list[int] | None = None, tick: Callable[[], None] | None = None) -> torch.Tensor:
    """DDIM-invert along a decreasing grid walked backwards (from its last time up to its first); the
    UNet is evaluated at the upper time of every interval, as generation evaluates it."""
    for t, t_prev in reversed(steps_of(grid)):
        out = denoise(x, t, region)
        x = ddim_invert_step(schedule, out, t_prev, t, x)
        if times is not None:
            times.append(t)
        if tick:
            tick()
    return x


def object_centric_sample(z_fg: torch.Tensor, z_bg: torch.Tensor | None, box: Box, grids: OCGrids,
                          denoise: Denoise, new_sampler: Callable[[], object], *, full_frame: bool,
                          normalize_fg: bool = True, tick=None) -> tuple[torch.Tensor, OCTrace]:
    """Algorithm 1 from given starting latents.

    ``z_fg``: foreground latents at ``T`` (the crop; the full latent when ``full_frame``).
    ``z_bg``: background latents, full frame, at ``T`` (or at ``T_b`` when ``grids.bg`` is None: the
    background stage is skipped). ``full_frame``: the crop covers the frame (no background).
    ``denoise(x, t, region)`` is called with region ``fg`` / ``bg`` / ``joint``.
    Returns the latents at time 0 and an :class:`OCTrace`.
    """
    trace = OCTrace(box=box)
    fg_sampler = new_sampler()
    if full_frame:
        z = run_grid(z_fg, grids.fg, denoise, fg_sampler, "joint", trace.fg_times, tick)
        trace.fg_latent = trace.fg_raw = trace.blended = z
        z = run_grid(z, grids.blend, denoise, fg_sampler, "joint", trace.blend_times, tick)
        return z, trace
    zf = run_grid(z_fg, grids.fg, denoise, fg_sampler, "fg", trace.fg_times, tick)
    if grids.bg is not None:
        zb = run_grid(z_bg, grids.bg, denoise, new_sampler(), "bg", trace.bg_times, tick)
    else:
        zb = z_bg
    trace.fg_raw = zf
    if normalize_fg:
        zf = normalize(zf, zb, box)
    z = scatter(zf, zb, box)
    trace.fg_latent, trace.bg_latent, trace.blended = zf, zb, z
    z = run_grid(z, grids.blend, denoise, new_sampler(), "joint", trace.blend_times, tick)
    return z, trace


def object_centric_invert(z0: torch.Tensor, box: Box, grids: OCGrids, denoise: Denoise,
                          schedule: NoiseSchedule, *, full_frame: bool,
                          tick=None) -> tuple[torch.Tensor, torch.Tensor | None, OCTrace]:
    """The inversion mirror of Algorithm 1: ``(z_fg at T, z_bg, trace)`` where ``z_bg`` is the full
    frame at ``T`` (or at ``T_b`` when the background stage is skipped; None when ``full_frame``)."""
    trace = OCTrace(box=box)
    z = invert_grid(z0, grids.blend, denoise, schedule, "joint", trace.blend_times, tick)
    if full_frame:
        z = invert_grid(z, grids.fg, denoise, schedule, "joint", trace.fg_times, tick)
        return z, None, trace
    zf = invert_grid(gather(z, box).contiguous(), grids.fg, denoise, schedule, "fg", trace.fg_times, tick)
    if grids.bg is not None:
        zb = invert_grid(z, grids.bg, denoise, schedule, "bg", trace.bg_times, tick)
    else:
        zb = z
    return zf, zb, trace


def evaluations(grids: OCGrids, *, full_frame: bool) -> tuple[int, int, int]:
    """UNet evaluations ``(foreground, background, blending)`` of one pass."""
    nb = 0 if (full_frame or grids.bg is None) else len(grids.bg) - 1
    return len(grids.fg) - 1, nb, len(grids.blend) - 1


__all__ = [
    "Box",
    "OCGrids",
    "OCSamplingConfig",
    "OCTrace",
    "evaluations",
    "foreground_box",
    "gather",
    "invert_grid",
    "normalize",
    "object_centric_invert",
    "object_centric_sample",
    "oc_grids",
    "outside",
    "run_grid",
    "scatter",
]
