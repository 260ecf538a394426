"""Token merging of cross-frame attention keys/values and Object-Centric ToMe, on hand-made tokens,
and the cross-frame attention spans of the processors."""

from __future__ import annotations

import math

import pytest
import torch

from momentkit.edit.tome import ToMeConfig, apply_merge, plan_merge


def tokens(frames=4, h=8, w=8, c=16, seed=0, rows=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, frames * h * w, c, generator=g)


def positions(plan, row=0):
    return set(plan.unm[row].tolist()), set(plan.dst[row].tolist()), set(plan.src[row].tolist())


@pytest.mark.parametrize("ratio, stride, expected_out", [
    (0.5, (2, 2, 2), 128),      # 256 tokens, windows of 2 frames x 64: 64 merged in each
    (0.75, (2, 2, 2), 64),
    (0.9, (1, 2, 2), 64),       # at most the 3/4 sources merge: one destination per 2x2 cell stays
    (0.99, (1, 4, 4), 16),      # a 4x4 cell: 15/16 could merge; every frame keeps 64 / 16 = 4
    (0.3, (4, 2, 2), 256 - 76),  # one window of 4 frames: floor(0.3 * 256) = 76
])
def test_token_count_falls_by_the_configured_ratio(ratio, stride, expected_out):
    x = tokens()
    plan = plan_merge(x, 4, 8, 8, ToMeConfig(ratio=ratio, stride=stride), key="k")
    assert plan.out_tokens == expected_out
    out = apply_merge(x, plan)
    assert out.shape == (1, expected_out, 16)
    unm, dst, src = positions(plan)
    # every token is kept, or merged exactly once; destinations one per cell
    assert unm.isdisjoint(dst) and unm.isdisjoint(src) and dst.isdisjoint(src)
    assert len(unm | dst | src) == 256
    st, sy, sx = stride
    assert len(dst) == math.ceil(4 / st) * (8 // sy) * (8 // sx)


def test_merge_averages_sources_into_their_destination():
    x = tokens(frames=1, h=2, w=2, c=3)
    plan = plan_merge(x, 1, 2, 2, ToMeConfig(ratio=0.75, stride=(1, 2, 2)), key=0)
    assert plan.out_tokens == 1 and plan.src.shape[1] == 3
    out = apply_merge(x, plan)
    assert torch.allclose(out[0, 0], x[0].mean(0), atol=1e-6)


def test_destinations_are_resampled_per_window_and_deterministic():
    x = tokens(frames=4)
    cfg = ToMeConfig(ratio=0.5, stride=(1, 2, 2))
    plan = plan_merge(x, 4, 8, 8, cfg, key=("joint", "layer", 951))
    dst = plan.dst[0].view(4, 16) % 64  # positions inside each frame
    assert len({tuple(d.tolist()) for d in dst}) > 1  # frames have different patterns
    same = plan_merge(x, 4, 8, 8, ToMeConfig(ratio=0.5, stride=(1, 2, 2), resample=False), key=("joint", "layer", 951))
    sdst = same.dst[0].view(4, 16) % 64
    assert all(torch.equal(sdst[0], d) for d in sdst)  # the naive extension repeats one pattern
    again = plan_merge(x, 4, 8, 8, cfg, key=("joint", "layer", 951))
    assert again.equals(plan)
    other = plan_merge(x, 4, 8, 8, cfg, key=("joint", "layer", 901))
    assert not torch.equal(other.dst, plan.dst)


def test_search_stays_inside_the_temporal_window():
    x = tokens(frames=4)
    plan = plan_merge(x, 4, 8, 8, ToMeConfig(ratio=0.8, stride=(2, 2, 2)), key=1)
    src_window = plan.src[0] // 128
    dst_window = plan.dst[0][plan.into[0]] // 128
    assert torch.equal(src_window, dst_window)


def _foreground_magnet(frames=2, h=8, w=8):
    """Tokens where foreground tokens copy a destination-like direction (highly similar), background
    tokens are random: plain ToMe merges the foreground first."""
    x = tokens(frames=frames, h=h, w=w, seed=5)
    fg = torch.zeros(1, frames * h * w, dtype=torch.bool)
    grid = fg.view(frames, h, w)
    grid[:, 2:6, 2:6] = True
    x[fg] = torch.ones(16) + 0.01 * torch.randn(int(fg.sum()), 16, generator=torch.Generator().manual_seed(6))
    return x, fg


def test_object_centric_tome_never_merges_foreground_when_eta_excludes_it():
    x, fg = _foreground_magnet()
    cfg = ToMeConfig(ratio=0.5, stride=(1, 2, 2))
    plain = plan_merge(x, 2, 8, 8, cfg, fg=fg, key=3)  # eta = 1: plain ToMe
    fg_pos = set(torch.nonzero(fg[0]).flatten().tolist())
    assert len(fg_pos & set(plain.src[0].tolist())) > 0  # plain ToMe does merge foreground sources
    excluded = plan_merge(x, 2, 8, 8, cfg.with_(eta=0.0), fg=fg, key=3)
    unm, dst, src = positions(excluded)
    assert not (fg_pos & src)  # no foreground source is merged
    assert (fg_pos - dst) <= unm  # every foreground source stays
    assert excluded.out_tokens == plain.out_tokens == 64  # the background gives the same reduction
    # 0 < eta < 1 spares foreground progressively
    merged_fg = [len(fg_pos & positions(plan_merge(x, 2, 8, 8, cfg.with_(eta=e), fg=fg, key=3))[2])
                 for e in (1.0, 0.8, 0.5, 0.0)]
    assert merged_fg[0] >= merged_fg[1] > merged_fg[2] >= merged_fg[3] == 0


def test_eta_zero_caps_the_merge_at_the_background_sources():
    x, fg = _foreground_magnet(frames=1)
    fg2 = fg.clone()
    fg2.view(1, 8, 8)[:, :, :7] = True  # almost all foreground
    plan = plan_merge(x, 1, 8, 8, ToMeConfig(ratio=0.7, stride=(1, 2, 2), eta=0.0), fg=fg2, key=0)
    fg_pos = set(torch.nonzero(fg2[0]).flatten().tolist())
    assert not (fg_pos & set(plan.src[0].tolist()))
    bg_src = set(range(64)) - fg_pos - set(plan.dst[0].tolist())
    assert plan.src.shape[1] == len(bg_src)


def test_plans_repeat_for_guidance_copies():
    x = tokens(rows=2)
    plan = plan_merge(x[:1], 4, 8, 8, ToMeConfig(ratio=0.5), key=0)
    double = plan.repeat(2)
    assert double.rows == 2 and torch.equal(double.kept()[0], double.kept()[1])
    assert apply_merge(x, double).shape == (2, 128, 16)


# ----------------------------------------------------------------------------- attention spans
def _attention(span, frames=4, n=4, c=8, tome=None):
    from diffusers.models.attention_processor import Attention

    from momentkit.edit.attention import EditState, FrameAttnProcessor

    torch.manual_seed(0)
    attn = Attention(query_dim=c, heads=2, dim_head=4).eval()
    state = EditState(num_frames=frames, span=span, latent_hw=(2, 2), tome=tome or ToMeConfig())
    attn.set_processor(FrameAttnProcessor(state, "attn1"))
    return attn, state


@pytest.mark.parametrize("span, depends_on", [
    ("self", {3}), ("sparse", {0, 2, 3}), ("dense", {0, 1, 2, 3}),
])
def test_cross_frame_span(span, depends_on):
    """Frame 3's output changes when a frame of its span changes, and only then."""
    attn, _ = _attention(span)
    x = torch.randn(4, 4, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = attn(x)[3]
        seen = set()
        for f in range(4):
            y = x.clone()
            y[f] += 1.0
            if not torch.allclose(attn(y)[3], base, atol=1e-6):
                seen.add(f)
    assert seen == depends_on


def test_dense_attention_equals_attention_over_all_frames():
    attn, _ = _attention("dense")
    x = torch.randn(4, 4, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        q = attn.to_q(x).view(16, 2, 4).transpose(0, 1)
        k = attn.to_k(x).view(16, 2, 4).transpose(0, 1)
        v = attn.to_v(x).view(16, 2, 4).transpose(0, 1)
        ref = ((q @ k.transpose(1, 2)) / 2.0).softmax(-1) @ v
        ref = attn.to_out[0](ref.transpose(0, 1).reshape(4, 4, 8))
        assert torch.allclose(attn(x), ref, atol=1e-5)


def test_merged_keys_reach_the_attention():
    attn, state = _attention("dense", tome=ToMeConfig(ratio=0.5, stride=(2, 2, 2)))
    x = torch.randn(4, 4, 8)
    with torch.no_grad():
        attn(x)
    assert state.tokens_seen["attn1"] == (16, 8)
