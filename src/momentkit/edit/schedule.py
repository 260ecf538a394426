"""Noise schedule, time grids and the two samplers (DDIM, DPM-Solver++ 2M) of video editing.

Times follow Algorithm 1 of the thesis: an integer *algorithm time* ``t`` runs from ``T`` (pure
noise; ``T`` = the model's ``num_train_timesteps``, 1000 for Stable Diffusion) down to 0 (the clean
latent). A step goes from ``t`` to a smaller ``t_next``; the denoiser is evaluated at model timestep
``t - 1`` (the 0-based index of the training step; diffusers' ``timestep_spacing="trailing"``), so
N uniform steps of ``Delta T = T / N`` evaluate the UNet at 999, 949, ..., 49 for N = 20 and end on
the clean latent, whose ``alpha_bar`` is 1.

The samplers work on any decreasing (generation) or increasing (inversion) grid of such times, which
is what Object-Centric Sampling needs: the foreground grid with step ``Delta T``, the background grid
with step ``phi * Delta T`` and the blending grid (:mod:`momentkit.edit.oc_sampling`).

- :class:`DDIMSampler`: deterministic DDIM (eta = 0). On the uniform grid it equals diffusers'
  ``DDIMScheduler(timestep_spacing="trailing", set_alpha_to_one=True)`` step for step.
- :class:`DPMSolverPP`: DPM-Solver++ multistep of order 2 (data prediction, midpoint form), first
  order at the first step and at the last step onto ``t = 0``; on the uniform grid it equals
  diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
  timestep_spacing="trailing", final_sigmas_type="zero")``. Its history is only used when a step
  starts where the previous one ended (:meth:`DPMSolverPP.step`), otherwise the step is first order.
- :func:`ddim_invert_step`: DDIM inversion as FateZero / Prompt-to-Prompt do it: the step from
  ``t_prev`` up to ``t`` uses the noise predicted at timestep ``t`` (``t - 1`` for the model) from the
  latent at ``t_prev``, so inversion evaluates the UNet at exactly the timesteps generation evaluates
  it at; this pairs stored attention maps and token-merging plans step by step.

Inversion is always DDIM (the inversion FateZero uses); the generation sampler is DDIM (the plain
pipeline, 50 steps) or DPM-Solver++ (the optimized one, 20 steps), as in Sec. 6.2.1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

SAMPLERS = ("ddim", "dpm++")


class NoiseSchedule:
    """``alpha_bar(t)`` of a diffusion model (from its diffusers scheduler config) and the conversions
    of its output (``epsilon`` or ``v_prediction``) to noise and clean-latent predictions."""

    def __init__(self, alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon") -> None:
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported prediction_type {prediction_type!r} (epsilon or v_prediction)")
        self.alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        self.T = int(self.alphas_cumprod.numel())
        self.prediction_type = prediction_type

    @classmethod
    def from_config(cls, config) -> NoiseSchedule:
        """From a diffusers scheduler config (any scheduler class: only the beta settings are used)."""
        from diffusers import DDPMScheduler

        sched = DDPMScheduler.from_config(config)
        return cls(sched.alphas_cumprod, getattr(sched.config, "prediction_type", "epsilon"))

    def alpha_bar(self, t: int) -> float:
        """``alpha_bar`` at algorithm time ``t`` (``t = 0``: the clean latent, 1.0)."""
        if not 0 <= t <= self.T:
            raise ValueError(f"time {t} outside [0, {self.T}]")
        return 1.0 if t == 0 else float(self.alphas_cumprod[t - 1])

    def model_timestep(self, t: int) -> int:
        """The model's timestep index for algorithm time ``t`` (>= 1)."""
        if not 1 <= t <= self.T:
            raise ValueError(f"the model is evaluated at times 1..{self.T}, got {t}")
        return t - 1

    def split(self, output: torch.Tensor, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(eps, x0)`` predicted from the model ``output`` for latent ``x`` at time ``t``."""
        a = self.alpha_bar(t)
        sa, sb = math.sqrt(a), math.sqrt(1.0 - a)
        if self.prediction_type == "epsilon":
            eps = output
            x0 = (x - sb * eps) / sa
        else:  # v = sqrt(a) eps - sqrt(1 - a) x0
            x0 = sa * x - sb * output
            eps = sb * x + sa * output
        return eps, x0


# ----------------------------------------------------------------------------- grids
def uniform_grid(T: int, N: int) -> list[int]:
    """``[T, T - Delta T, ..., 0]`` with ``Delta T = T / N`` (times rounded to integers)."""
    if N < 1 or N > T:
        raise ValueError(f"the number of steps must be in 1..{T}, got {N}")
    return [int(round(T - k * T / N)) for k in range(N + 1)]


def strided_grid(start: float, stop: int, stride: float) -> list[int]:
    """``[start, start - stride, ...]`` while above ``stop``, then ``stop``: the loop
    ``for t = start; t > stop; t -= stride`` of Algorithm 1, whose last step is clamped to ``stop``
    (a stride that does not divide ``start - stop`` would otherwise step past it)."""
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    times = []
    k = 0
    while True:
        t = start - k * stride
        if t <= stop + 1e-9:
            break
        times.append(int(round(t)))
        k += 1
    times.append(int(stop))
    # rounding may merge neighbours of a non-integer stride; keep the grid strictly decreasing
    return [t for i, t in enumerate(times) if i == 0 or t < times[i - 1]]


# ----------------------------------------------------------------------------- samplers
class DDIMSampler:
    """Deterministic DDIM (eta = 0): ``x_next = sqrt(a_next) x0 + sqrt(1 - a_next) eps``."""

    name = "ddim"

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule

    def reset(self) -> None:
        pass

    def step(self, output: torch.Tensor, t: int, t_next: int, x: torch.Tensor) -> torch.Tensor:
        eps, x0 = self.schedule.split(output, x, t)
        a_next = self.schedule.alpha_bar(t_next)
        return math.sqrt(a_next) * x0 + math.sqrt(1.0 - a_next) * eps


class DPMSolverPP:
    """DPM-Solver++(2M), data prediction, midpoint form (Lu et al. 2022, as diffusers implements it).

    With ``lambda = log(alpha / sigma)``, ``h = lambda_next - lambda_t`` and ``D`` the clean-latent
    prediction, a first-order step is ``x_next = (sigma_next / sigma_t) x - alpha_next (e^-h - 1) D_t``;
    the second-order step replaces ``D_t`` by ``D_t + (D_t - D_prev) / (2 r)`` with ``r = h_prev / h``.
    The previous prediction is used only when this step starts where the last one ended; the step onto
    ``t = 0`` is first order (``final_sigmas_type="zero"``).
    """

    name = "dpm++"

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self.reset()

    def reset(self) -> None:
        self._prev: tuple[int, int, torch.Tensor] | None = None  # (t_prev, t, D_prev)

    def _lam(self, t: int) -> tuple[float, float, float]:
        a = self.schedule.alpha_bar(t)
        alpha, sigma = math.sqrt(a), math.sqrt(1.0 - a)
        lam = math.inf if sigma == 0 else math.log(alpha) - math.log(sigma)
        return alpha, sigma, lam

    def step(self, output: torch.Tensor, t: int, t_next: int, x: torch.Tensor) -> torch.Tensor:
        _, x0 = self.schedule.split(output, x, t)
        _, sigma_s, lam_s = self._lam(t)
        alpha_t, sigma_t, lam_t = self._lam(t_next)
        if sigma_t == 0:  # onto the clean latent: first order, x_next = alpha_t * x0
            out = alpha_t * x0
        else:
            h = lam_t - lam_s
            d = x0
            if self._prev is not None and self._prev[1] == t:
                t_prev, _, d_prev = self._prev
                h_prev = lam_s - self._lam(t_prev)[2]
                r = h_prev / h
                d = x0 + 0.5 * (x0 - d_prev) / r
            out = (sigma_t / sigma_s) * x - alpha_t * math.expm1(-h) * d
        self._prev = (t, t_next, x0)
        return out


def make_sampler(name: str, schedule: NoiseSchedule):
    """A fresh sampler: ``"ddim"`` or ``"dpm++"``."""
    if name == "ddim":
        return DDIMSampler(schedule)
    if name in ("dpm++", "dpmpp", "dpm"):
        return DPMSolverPP(schedule)
    raise ValueError(f"unknown sampler {name!r} (expected one of {', '.join(SAMPLERS)})")


def ddim_invert_step(schedule: NoiseSchedule, output: torch.Tensor, t_prev: int, t: int,
                     x: torch.Tensor) -> torch.Tensor:
    """One DDIM inversion step from ``t_prev`` up to ``t > t_prev``: ``output`` is the model's
    prediction for latent ``x`` (at ``t_prev``) evaluated at time ``t``."""
    a_prev, a = schedule.alpha_bar(t_prev), schedule.alpha_bar(t)
    if schedule.prediction_type == "epsilon":
        eps = output
    else:  # v at time t for a latent taken as if at t
        eps = math.sqrt(1.0 - a) * x + math.sqrt(a) * output
    x0 = (x - math.sqrt(1.0 - a_prev) * eps) / math.sqrt(a_prev)
    return math.sqrt(a) * x0 + math.sqrt(1.0 - a) * eps


def steps_of(grid: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive ``(t, t_next)`` pairs of a grid."""
    return list(zip(grid[:-1], grid[1:]))


__all__ = [
    "DDIMSampler",
    "DPMSolverPP",
    "NoiseSchedule",
    "SAMPLERS",
    "ddim_invert_step",
    "make_sampler",
    "steps_of",
    "strided_grid",
    "uniform_grid",
]
