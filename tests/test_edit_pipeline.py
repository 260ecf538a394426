"""The editing pipelines on a tiny random Stable Diffusion (in memory): paired merge plans, Object-
Centric Sampling inside the pipelines (UNet timesteps and input shapes), its reduction to ordinary
sampling with an all-ones mask, word masks and the attention store."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from momentkit.edit.oc_sampling import OCSamplingConfig
from momentkit.edit.pipeline import EditConfig, VideoEditor, WordMask
from momentkit.edit.testing import tiny_sd
from momentkit.edit.tome import ToMeConfig
from momentkit.errors import InputError

F, H, W = 8, 32, 32  # latents 16 x 16


@pytest.fixture(scope="module")
def editor():
    torch.set_num_threads(1)
    return VideoEditor(tiny_sd(controlnet=True))


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (1, H, W, 3))
    return np.clip(base + rng.integers(-10, 10, (F, H, W, 3)), 0, 255).astype(np.uint8)


def box_mask(y0=8, y1=16, x0=4, x1=12):
    m = np.zeros((F, H, W), dtype=bool)
    m[:, y0:y1, x0:x1] = True
    return m


def optimized(style="fatezero", **changes):
    return EditConfig.preset("optimized", style, steps=4, **changes)


class UNetCalls:
    """Records (batch, height, width, timestep) of every UNet call."""

    def __init__(self, unet):
        self.unet = unet
        self.calls = []

    def __enter__(self):
        def hook(module, args, kwargs):
            sample, timestep = args[0], args[1] if len(args) > 1 else kwargs["timestep"]
            self.calls.append((sample.shape[0], sample.shape[2], sample.shape[3], int(timestep)))

        self.handle = self.unet.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_paired_merge_plans_are_identical_between_inversion_and_generation(editor, frames):
    cfg = optimized(oc_sampling=OCSamplingConfig(enabled=True), oc_tome=True)
    editor.state.plan_log = []
    try:
        editor.edit(frames, "a car", "a red car", cfg, mask=box_mask())
        log = editor.state.plan_log
    finally:
        editor.state.plan_log = None
    inverted = {key: plan for mode, key, plan in log if mode == "invert"}
    generated = [(key, plan) for mode, key, plan in log if mode == "generate"]
    assert generated and {k for k, _ in generated} == set(inverted)  # every layer, region and step
    assert {k[0] for k in inverted} == {"fg", "bg", "joint"}
    for key, plan in generated:
        inv = inverted[key]
        assert plan.rows == 2 * inv.rows  # unconditional and conditional copies
        assert plan.equals(inv.repeat(2)), key
        assert torch.equal(plan.kept()[0], inv.kept()[0])  # same dst and unm locations


def test_unpaired_plans_differ_between_inversion_and_generation(editor, frames):
    cfg = optimized(tome=ToMeConfig(ratio=0.75, paired=False))
    editor.state.plan_log = []
    try:
        editor.edit(frames, "a car", "a red car", cfg)
        log = editor.state.plan_log
    finally:
        editor.state.plan_log = None
    inverted = {key: plan for mode, key, plan in log if mode == "invert"}
    differ = [not plan.equals(inverted[key].repeat(2)) for mode, key, plan in log if mode == "generate"]
    assert any(differ)


@pytest.mark.parametrize("style", ["fatezero", "controlvideo"])
def test_all_ones_mask_makes_object_centric_sampling_ordinary_sampling(editor, frames, style):
    ones = np.ones((F, H, W), dtype=bool)
    plain = editor.edit(frames, "a car", "a red car", optimized(style), mask=ones)
    oc_cfg = optimized(style, oc_sampling=OCSamplingConfig(enabled=True, gamma=0.25, phi=2.0))
    oc = editor.edit(frames, "a car", "a red car", oc_cfg, mask=ones)
    assert oc.box is not None and oc.box.covers(H // 2, W // 2)
    assert np.array_equal(oc.frames, plain.frames)
    assert oc.evaluations == plain.evaluations
    # a real foreground makes it differ (the check can fail)
    part = editor.edit(frames, "a car", "a red car", oc_cfg, mask=box_mask())
    assert not np.array_equal(part.frames, plain.frames)


def test_object_centric_sampling_runs_the_unet_on_the_crop_at_the_foreground_times(editor, frames):
    cfg = optimized(oc_sampling=OCSamplingConfig(enabled=True, gamma=0.25, phi=2.0))
    with UNetCalls(editor.models.unet) as rec:
        result = editor.edit(frames, "a car", "a red car", cfg, mask=box_mask())
    box = result.box
    assert (box.height, box.width) == (4, 4)  # rows 4..8, cols 2..6 of the 16 x 16 latent, multiple of 2
    # N = 4, T_b = 250: foreground 1000, 750, 500; background (phi 2) 1000, 500; blending 250
    crop = [(b, t) for b, h, w, t in rec.calls if (h, w) == (4, 4)]
    full = [(b, t) for b, h, w, t in rec.calls if (h, w) == (16, 16)]
    assert len(crop) + len(full) == len(rec.calls)
    inv_crop = sorted(t for b, t in crop if b == F)
    gen_crop = [t for b, t in crop if b == 2 * F]
    assert inv_crop == [499, 749, 999] and gen_crop == [999, 749, 499]
    assert sorted(t for b, t in full if b == F) == [249, 499, 999]  # blending + background inversion
    assert [t for b, t in full if b == 2 * F] == [999, 499, 249]
    assert result.evaluations == {"inversion": 6, "generation": 6}
    trace = result.traces["generation"]
    assert trace.fg_times == [1000, 750, 500] and trace.bg_times == [1000, 500] and trace.blend_times == [250]


def test_controlnet_pipeline_conditions_the_crop(editor, frames):
    cfg = optimized("controlvideo", oc_sampling=OCSamplingConfig(enabled=True, phi=2.0))
    shapes = []
    handle = editor.models.controlnet.register_forward_pre_hook(
        lambda m, args, kwargs: shapes.append((tuple(args[0].shape[-2:]), tuple(kwargs["controlnet_cond"].shape[-2:]))),
        with_kwargs=True)
    try:
        result = editor.edit(frames, "a car", "a red car", cfg, mask=box_mask())
    finally:
        handle.remove()
    assert "inversion" not in result.evaluations and result.control.shape == (F, 3, H, W)
    assert ((4, 4), (8, 8)) in shapes and ((16, 16), (32, 32)) in shapes
    assert all(c == (2 * h, 2 * w) for (h, w), c in shapes)


def test_attention_maps_are_stored_only_when_reused(editor, frames):
    stored = editor.edit(frames, "a car", "a red car", optimized())
    assert stored.attention_store_bytes > 0
    none = editor.edit(frames, "a car", "a red car", optimized(self_replace=0.0, cross_replace=0.0))
    assert none.attention_store_bytes == 0
    assert not np.array_equal(none.frames, stored.frames)  # fusing the maps changes the edit
    cv = editor.edit(frames, "a car", "a red car", optimized("controlvideo"))
    assert cv.attention_store_bytes == 0


def test_token_counts_of_the_processors(editor, frames):
    result = editor.edit(frames, "a car", "a red car", optimized())  # ratio 0.75, dense
    first = result.tokens["down_blocks.0.attentions.0.transformer_blocks.0.attn1"]
    assert first == (F * 256, F * 256 // 4)


def test_word_mask_and_its_errors(editor, frames):
    cfg = optimized(oc_sampling=OCSamplingConfig(enabled=True))
    result = editor.edit(frames, "a car", "a red car", cfg, mask=WordMask("car", threshold=0.5))
    assert result.mask.shape == (F, H, W) and result.mask.dtype == bool and result.mask.any()
    with pytest.raises(InputError, match="not in the source prompt"):
        editor.edit(frames, "a car", "a red car", cfg, mask=WordMask("truck"))
    with pytest.raises(InputError, match="need a foreground mask"):
        editor.edit(frames, "a car", "a red car", cfg)
    with pytest.raises(InputError, match="multiple of 4"):
        editor.edit(frames[:, :30], "a car", "a red car", optimized())


def test_presets():
    plain = EditConfig.preset("plain")
    assert (plain.sampler, plain.steps, plain.attention, plain.tome.enabled) == ("ddim", 50, "dense", False)
    opt = EditConfig.preset("optimized", "controlvideo")
    assert (opt.sampler, opt.steps, opt.attention) == ("dpm++", 20, "dense")
    assert (opt.tome.ratio, opt.tome.stride, opt.tome.paired, opt.tome.resample) == (0.75, (2, 2, 2), True, True)
    ocd = EditConfig.preset("ocd")
    assert ocd.oc_sampling.enabled and ocd.oc_sampling.gamma == 0.25 and ocd.oc_tome and ocd.needs_mask
    with pytest.raises(InputError, match="needs token merging"):
        replace(plain, oc_tome=True)
    with pytest.raises(InputError, match="phi must be finite"):
        EditConfig.preset("ocd", "controlvideo", oc_sampling=OCSamplingConfig(enabled=True, phi=float("inf")))
