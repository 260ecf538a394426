"""Samplers and Object-Centric Sampling (Algorithm 1) on fake denoisers: the times visited by the
foreground, background and blending stages, the blended latent, inversion pairing, and the
reduction to ordinary sampling when the crop is the whole frame."""

from __future__ import annotations

import math

import pytest
import torch

from momentkit.edit.oc_sampling import (
    Box,
    foreground_box,
    gather,
    invert_grid,
    normalize,
    object_centric_invert,
    object_centric_sample,
    oc_grids,
    run_grid,
    scatter,
)
from momentkit.edit.schedule import NoiseSchedule, make_sampler, steps_of, strided_grid, uniform_grid

SD_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


@pytest.fixture(scope="module")
def schedule():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return NoiseSchedule(torch.cumprod(1 - betas, 0))


class Recorder:
    """A denoiser whose output depends on the input, the time and the region; records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, region):
        self.calls.append((t, region, tuple(x.shape), x.clone()))
        return 0.3 * torch.tanh(x) + 0.001 * t

    def times(self, region):
        return [t for t, r, _, _ in self.calls if r == region]


def test_schedule_matches_the_sd_betas_of_diffusers(schedule):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(**SD_BETAS).alphas_cumprod.double()
    assert torch.allclose(schedule.alphas_cumprod, ref, atol=1e-6)
    assert schedule.alpha_bar(0) == 1.0 and schedule.model_timestep(1000) == 999


@pytest.mark.parametrize("name", ["ddim", "dpm++"])
def test_samplers_equal_diffusers_on_the_uniform_grid(name):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if name == "ddim":
        ref = DDIMScheduler(**SD_BETAS, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    else:
        ref = DPMSolverMultistepScheduler(**SD_BETAS, algorithm_type="dpmsolver++", solver_order=2,
                                          timestep_spacing="trailing", final_sigmas_type="zero")
    ref.set_timesteps(20)
    ours = make_sampler(name, NoiseSchedule.from_config(ref.config))
    grid = uniform_grid(1000, 20)
    assert [t - 1 for t in grid[:-1]] == ref.timesteps.tolist()  # 999, 949, ..., 49
    x = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    for (t, t_next), timestep in zip(steps_of(grid), ref.timesteps):
        x = ours.step(0.7 * torch.tanh(x) + 0.1, t, t_next, x)
        y = ref.step(0.7 * torch.tanh(y) + 0.1, timestep, y).prev_sample
    assert torch.allclose(x.float(), y, atol=1e-4), (x - y).abs().max()


def test_grids_of_algorithm_1():
    g = oc_grids(1000, 20, gamma=0.25, phi=2.0)
    assert g.T_b == 250
    assert g.fg == list(range(1000, 249, -50))  # 1000, 950, ..., 300, 250: 15 steps of Delta T = 50
    assert g.bg == [1000, 900, 800, 700, 600, 500, 400, 300, 250]  # phi * Delta T = 100, last clamped
    assert g.blend == [250, 200, 150, 100, 50, 0]
    g3 = oc_grids(1000, 20, gamma=0.25, phi=3.0)
    assert g3.bg == [1000, 850, 700, 550, 400, 250]
    assert oc_grids(1000, 20, phi=math.inf).bg is None
    assert oc_grids(1000, 20, gamma=1.0).fg == [1000] and oc_grids(1000, 20, gamma=1.0).blend == uniform_grid(1000, 20)
    assert oc_grids(1000, 50, gamma=0.25).T_b == 260  # 0.25 * 50 = 12.5, rounded up: 13 blending steps of 20
    assert strided_grid(1000, 250, 50 * 2.5) == [1000, 875, 750, 625, 500, 375, 250]


def test_object_centric_sampling_visits_the_expected_times_and_blends_the_scatter(schedule):
    grids = oc_grids(1000, 20, gamma=0.25, phi=2.0)
    box = Box(2, 4, 6, 8)
    z = torch.randn(3, 4, 8, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rec = Recorder()
    out, trace = object_centric_sample(gather(z, box), z, box, grids, rec,
                                       lambda: make_sampler("dpm++", schedule), full_frame=False)
    assert rec.times("fg") == trace.fg_times == list(range(1000, 299, -50))  # t > T_b at the normal rate
    assert rec.times("bg") == trace.bg_times == [1000, 900, 800, 700, 600, 500, 400, 300]  # phi times faster
    assert rec.times("joint") == trace.blend_times == [250, 200, 150, 100, 50]  # gamma * N blending steps
    assert {s for t, r, s, _ in rec.calls if r == "fg"} == {(3, 4, 4, 4)}  # the crop
    assert {s for t, r, s, _ in rec.calls if r != "fg"} == {(3, 4, 8, 12)}  # full frame
    # the blended latent is the scatter of the normalized foreground and the background at T_b ...
    assert torch.equal(trace.blended, scatter(trace.fg_latent, trace.bg_latent, box))
    assert torch.equal(trace.blended[..., 2:6, 4:8], trace.fg_latent)
    keep = torch.ones(8, 12, dtype=torch.bool)
    keep[2:6, 4:8] = False
    assert torch.equal(trace.blended[..., keep], trace.bg_latent[..., keep])
    # ... and the first blending step starts from it
    first_blend = next(x for t, r, _, x in rec.calls if r == "joint")
    assert torch.equal(first_blend, trace.blended)
    # normalize: per channel, the crop takes the mean and std of the background outside the crop
    bg = trace.bg_latent[..., keep].transpose(0, 1).reshape(4, -1)
    fg = trace.fg_latent.transpose(0, 1).reshape(4, -1)
    assert torch.allclose(fg.mean(1), bg.mean(1), atol=1e-9) and torch.allclose(fg.std(1), bg.std(1), atol=1e-6)
    assert not torch.allclose(trace.fg_raw.transpose(0, 1).reshape(4, -1).mean(1), bg.mean(1), atol=1e-3)
    assert out.shape == z.shape


def test_skipped_background_keeps_the_given_latent(schedule):
    grids = oc_grids(1000, 10, gamma=0.3, phi=math.inf)
    box = Box(0, 0, 4, 4)
    z_bg = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rec = Recorder()
    _, trace = object_centric_sample(torch.randn(2, 4, 4, 4, dtype=torch.float64), z_bg, box, grids, rec,
                                     lambda: make_sampler("ddim", schedule), full_frame=False, normalize_fg=False)
    assert rec.times("bg") == [] and trace.bg_latent is z_bg
    assert torch.equal(trace.blended[..., 4:, :], z_bg[..., 4:, :])
    assert rec.times("joint") == [300, 200, 100]


@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
def test_whole_frame_crop_is_ordinary_sampling(schedule, sampler):
    grids = oc_grids(1000, 20, gamma=0.25, phi=2.0)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    box = foreground_box(torch.ones(2, 8, 8, dtype=torch.bool), multiple=4)
    assert box.covers(8, 8)
    oc, _ = object_centric_sample(z, z, box, grids, Recorder(), lambda: make_sampler(sampler, schedule),
                                  full_frame=True)
    plain = run_grid(z, uniform_grid(1000, 20), Recorder(), make_sampler(sampler, schedule), "joint")
    assert torch.equal(oc, plain)


def test_ddim_inversion_pairs_times_with_generation(schedule):
    """A denoiser that depends on the time only makes DDIM inversion then DDIM sampling exact, iff
    inversion evaluates it at the times generation does."""
    eps = lambda x, t, region: torch.full_like(x, math.sin(t / 97.0))  # noqa: E731
    z0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    grid = uniform_grid(1000, 20)
    zT = invert_grid(z0, grid, eps, schedule, "joint")
    back = run_grid(zT, grid, eps, make_sampler("ddim", schedule), "joint")
    assert torch.allclose(back, z0, atol=1e-8)
    # Object-Centric inversion and sampling meet the same regions at the same times
    grids = oc_grids(1000, 20, gamma=0.25, phi=2.0)
    box = Box(2, 2, 6, 6)
    rec_inv = []
    zf, zb, trace = object_centric_invert(z0, box, grids, lambda x, t, r: rec_inv.append((t, r)) or eps(x, t, r),
                                          schedule, full_frame=False)
    rec_gen = []
    back, gtrace = object_centric_sample(zf, zb, box, grids, lambda x, t, r: rec_gen.append((t, r)) or eps(x, t, r),
                                         lambda: make_sampler("ddim", schedule), full_frame=False,
                                         normalize_fg=False)
    assert sorted(rec_inv) == sorted(rec_gen)
    assert torch.allclose(back, z0, atol=1e-8)


def test_foreground_box_pads_to_the_unet_multiple():
    mask = torch.zeros(3, 16, 16, dtype=torch.bool)
    mask[0, 5:7, 6:9] = True
    mask[2, 6:9, 2:4] = True  # union over frames: rows 5..8, cols 2..8
    box = foreground_box(mask, multiple=4)
    assert (box.height, box.width) == (4, 8)
    assert box.y0 <= 5 and box.y1 >= 9 and box.x0 <= 2 and box.x1 >= 9
    assert box.y0 % 1 == 0 and 0 <= box.y0 and box.y1 <= 16
    edge = torch.zeros(1, 16, 16, dtype=torch.bool)
    edge[0, 15, 15] = True
    assert foreground_box(edge, multiple=8) == Box(8, 8, 16, 16)
    with pytest.raises(ValueError, match="empty"):
        foreground_box(torch.zeros(1, 4, 4, dtype=torch.bool))


def test_normalize_is_identity_without_background():
    z = torch.randn(2, 4, 4, 4)
    assert normalize(z, z, Box(0, 0, 4, 4)) is z
