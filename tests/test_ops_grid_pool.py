"""Grid Pool / Grid Unpool, the plain temporal pools and Multi-stage Fusion: hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from momentkit.errors import InputError
from momentkit.ops.fusion import FineFilter, MultiStageFusion, coarse_centric_gaussians
from momentkit.ops.grid_pool import (
    GridPool,
    TemporalPool,
    grid_locations,
    grid_pool,
    grid_unpool,
    sample_time,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def uniform_head(pool: GridPool) -> GridPool:
    """Zero the head's last conv: every confidence is sigmoid(0) = 0.5."""
    last = pool.head.convs[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return pool


# --------------------------------------------------------------------------- grid locations


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.5, 0.7, 0.97])
@pytest.mark.parametrize(("length", "stride"), [(8, 2), (12, 4), (40, 8), (128, 4)])
def test_uniform_confidences_give_the_strided_grid(p, length, stride):
    n = length // stride
    q = grid_locations(torch.full((2, n), p), length)
    assert torch.equal(q, (torch.arange(n) * stride).float().expand(2, n))


def test_grid_locations_hand():
    # widths 1 - p = [0.5, 1, 0.5, 1], sum 3; left edges [0, 0.5, 1.5, 2] -> 8/3 * that
    q = grid_locations(torch.tensor([[0.5, 0.0, 0.5, 0.0]]), 8)
    assert torch.allclose(q, torch.tensor([[0.0, 4 / 3, 4.0, 16 / 3]]), rtol=0, atol=1e-6)
    assert q[0, 0] == 0 and q[0, 2] == 4
    # only relative confidence matters: halving every width ([0.25, 0.5, 0.25, 0.5]) changes nothing
    assert torch.allclose(grid_locations(torch.tensor([[0.75, 0.5, 0.75, 0.5]]), 8), q, rtol=0, atol=1e-6)
    # every p = 1: no interval preferred, the grid is uniform (no NaN)
    assert torch.equal(grid_locations(torch.ones(1, 4), 8), torch.tensor([[0.0, 2.0, 4.0, 6.0]]))


def test_grid_pool_module_uniform_equals_striding():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 3)
    out = uniform_head(GridPool(3, alpha=0.25))(x)
    assert torch.equal(out.pooled, x[:, ::4])
    assert torch.equal(out.locations, torch.tensor([0.0, 4, 8, 12]).expand(2, 4))
    assert torch.equal(out.confidences, torch.full((2, 4), 0.5))

    v = torch.randn(2, 3, 16, 5, 6)  # (B, C, T, H, W)
    out = uniform_head(GridPool(3, alpha=1 / 8, video=True))(v)
    assert out.pooled.shape == (2, 3, 2, 5, 6)
    assert torch.equal(out.pooled, v[:, :, ::8])
    assert out.confidences.shape == (2, 2)


# --------------------------------------------------------------------------- sampling


def test_sample_time_hand():
    x = torch.tensor([0.0, 10.0, 20.0, 40.0]).reshape(1, 4, 1)  # (B, T, C)
    q = torch.tensor([[0.25, 2.5, 3.0, 5.0, -1.0]], requires_grad=True)
    y = sample_time(x, q, dim=1)
    # 0.25 -> 0 + 0.25*10; 2.5 -> 20 + 0.5*20; 3 -> 40; 5 and -1 clamp to frames 3 and 0
    assert torch.equal(y[0, :, 0], torch.tensor([2.5, 30.0, 40.0, 40.0, 0.0]))
    y.sum().backward()
    # d y / d q = x[hi] - x[lo] inside, 0 where clamped; at the last frame hi = lo
    assert torch.equal(q.grad, torch.tensor([[10.0, 20.0, 0.0, 0.0, 0.0]]))


def test_sample_time_integer_locations_are_exact_frames():
    torch.manual_seed(1)
    v = torch.randn(2, 3, 9, 4, 4)
    idx = torch.tensor([[0, 3, 3, 8], [7, 1, 2, 5]])
    got = sample_time(v, idx.float(), dim=2)
    want = torch.stack([v[b][:, idx[b]] for b in range(2)])
    assert torch.equal(got, want)
    # the same along a negative dim
    assert torch.equal(sample_time(v, idx.float(), dim=-3), want)


# --------------------------------------------------------------------------- unpooling


def test_unpool_uniform_is_linear_upsampling_hand():
    y = torch.tensor([0.0, 4.0, 16.0, 0.0]).reshape(1, 4, 1)
    q = torch.tensor([[0.0, 4.0, 8.0, 12.0]])
    out = grid_unpool(y, q, 16, dim=1)[0, :, 0]
    assert torch.equal(out, torch.tensor([0.0, 1, 2, 3, 4, 7, 10, 13, 16, 12, 8, 4, 0, 0, 0, 0]))


def test_unpool_equal_locations_no_nan():
    # widths [0.5, 0, 0.5, 0.5]: interval 1 has zero width -> locations [0, 4, 4, 8] for T = 12
    p = torch.tensor([[0.5, 1.0, 0.5, 0.5]], requires_grad=True)
    q = grid_locations(p, 12)
    assert torch.equal(q, torch.tensor([[0.0, 4.0, 4.0, 8.0]]))
    y = torch.tensor([0.0, 10.0, 20.0, 30.0]).reshape(1, 4, 1)
    out = grid_unpool(y, q, 12, dim=1)
    # t < 4: j = t/4 (0, 2.5, 5, 7.5); t = 4: the last step at 4 (j = 2); then j = 2 + (t-4)/4; t >= 8: j = 3
    want = torch.tensor([0.0, 2.5, 5, 7.5, 20, 22.5, 25, 27.5, 30, 30, 30, 30])
    assert torch.equal(out[0, :, 0], want)
    out.sum().backward()
    assert torch.isfinite(p.grad).all()


PIECES = [(0, 8, 0.1), (8, 24, 3.3), (24, 32, -0.7)]  # [start, stop) -> value (not exact in binary)


def piece_of(t: int) -> int:
    return next(k for k, (a, b, _) in enumerate(PIECES) if a <= t < b)


def test_unpool_of_pool_recovers_piecewise_constant():
    x = torch.zeros(1, 32, 2)
    for a, b, v in PIECES:
        x[:, a:b] = v
    # widths [.2, .2, .2, .2, 1, 1, .6, .6], sum 4: left edges * 8
    p = torch.tensor([[0.8, 0.8, 0.8, 0.8, 0.0, 0.0, 0.4, 0.4]])
    hand = [0.0, 1.6, 3.2, 4.8, 6.4, 14.4, 22.4, 27.2]
    pooled, q = grid_pool(x, p, dim=1)
    assert torch.allclose(q, torch.tensor([hand]), rtol=0, atol=1e-5)
    # every location's two neighbouring frames are in one piece
    assert torch.equal(pooled[0, :, 0], torch.tensor([0.1, 0.1, 0.1, 0.1, 0.1, 3.3, 3.3, -0.7]))

    out = grid_unpool(pooled, q, 32, dim=1)
    assert out.shape == x.shape
    # frame t lies between grid locations hand[k] <= t < hand[k + 1] (or after the last one); it is
    # recovered exactly when floor(hand[k]) and ceil(hand[k + 1]) are in t's piece
    exact = []
    for t in range(32):
        k = max(i for i, h in enumerate(hand) if h <= t)
        lo = math.floor(hand[k])
        hi = math.ceil(hand[k + 1]) if k + 1 < len(hand) else math.ceil(hand[k])
        if piece_of(lo) == piece_of(hi) == piece_of(t):
            exact.append(t)
    assert exact == [*range(0, 7), *range(15, 23), *range(28, 32)]  # 19 of 32, by hand
    assert torch.equal(out[:, exact], x[:, exact])
    assert not torch.equal(out, x)  # the frames across a boundary are blends


def test_unpool_uniform_blocks_video():
    # blocks of 8 frames, stride 4: pooled = x[::4]; frames with both neighbours 4j, 4j+4 in a block
    # are exact
    t_len, s = 32, 4
    x = (torch.arange(t_len) // 8).float().reshape(1, 1, t_len, 1, 1).expand(2, 3, t_len, 4, 5)
    out = uniform_head(GridPool(3, alpha=1 / s, video=True))(x)
    assert torch.equal(out.pooled, x[:, :, ::s])
    up = grid_unpool(out.pooled, out.locations, t_len, dim=2)
    assert up.shape == (2, 3, t_len, 4, 5)
    exact = [t for t in range(t_len) if t % 8 < 4 or t >= 28]  # 4j and 4j + 4 in one block of 8
    assert torch.equal(up[:, :, exact], x[:, :, exact])


# --------------------------------------------------------------------------- learning


def test_gradients_reach_the_confidence_head():
    torch.manual_seed(2)
    pool = GridPool(4, alpha=0.25)
    x = torch.randn(2, 16, 4)
    out = pool(x)
    (out.pooled * torch.randn_like(out.pooled)).sum().backward()
    for conv in pool.head.convs:
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- plain pools


@pytest.mark.parametrize("video", [False, True])
def test_temporal_pools_match_torch(video):
    torch.manual_seed(3)
    x = torch.randn(2, 3, 16, 2, 2) if video else torch.randn(2, 16, 3)
    seq = x if video else x.transpose(1, 2)  # channels before time
    for kind, want in [
        ("stride", seq[:, :, ::4]),
        ("max", F.max_pool3d(seq, (4, 1, 1)) if video else F.max_pool1d(seq, 4, 4)),
        ("avg", F.avg_pool3d(seq, (4, 1, 1)) if video else F.avg_pool1d(seq, 4, 4)),
    ]:
        out = TemporalPool(kind, 3, alpha=0.25, video=video)(x)
        assert torch.equal(out.pooled, want if video else want.transpose(1, 2))
        assert out.confidences is None
        centre = 0.0 if kind == "stride" else 1.5
        assert torch.equal(out.locations, (torch.tensor([0.0, 4, 8, 12]) + centre).expand(2, 4))
    assert TemporalPool("grid", 3, video=video)(x).confidences.shape == (2, 4)


# --------------------------------------------------------------------------- fusion


def test_coarse_centric_gaussians_hand():
    mu = torch.tensor([[0.0, 3.0, 7.0], [1.0, 2.5, 6.0]])
    g = coarse_centric_gaussians(mu, 8, sigma=2.0)
    assert g.shape == (2, 3, 8)
    peaks = torch.zeros(2, 3, 8, dtype=torch.bool)
    peaks[0, 0, 0] = peaks[0, 1, 3] = peaks[0, 2, 7] = peaks[1, 0, 1] = peaks[1, 2, 6] = True
    assert torch.equal(g[peaks], torch.ones(5))
    assert (g[~peaks] < 1).all()  # incl. the mask centred at 2.5, between frames
    assert math.isclose(g[0, 1, 4].item(), math.exp(-1 / 8), rel_tol=1e-6)  # (4-3)^2 / (2*4)
    assert math.isclose(g[1, 1, 2].item(), math.exp(-0.25 / 8), rel_tol=1e-6)


def test_fusion_calibration_hand():
    fine = torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(1, 4, 1)  # (B, T', C)
    q = torch.tensor([[0.0, 1.0, 1.5]])
    gauss = MultiStageFusion([1], 1, levels=[0], sigma_fraction=1 / 4, mask=False)  # sigma = 1
    assert torch.allclose(gauss.calibrate(fine, q)[0, :, 0], torch.tensor([1.0, math.exp(-0.5), math.exp(-1.125)]))
    direct = MultiStageFusion([1], 1, levels=[0], calibration="direct", mask=False)
    assert torch.equal(direct.calibrate(fine, q)[0, :, 0], torch.tensor([1.0, 0.0, 0.0]))


FINE_CH = [4, 6, 8]


@pytest.mark.parametrize("calibration", ["gaussian", "direct"])
@pytest.mark.parametrize("levels", [[0, 1, 2], [1], [2]])  # multi-stage, same-level (l = 1), late
def test_fusion_shapes(levels, calibration):
    torch.manual_seed(4)
    q = torch.tensor([[0.0, 3.5, 9.0, 15.0], [1.0, 2.0, 8.0, 12.5]])
    fuse = MultiStageFusion(FINE_CH, 5, levels=levels, calibration=calibration)
    fine = [torch.randn(2, 16, c) for c in FINE_CH]
    out = fuse(torch.randn(2, 4, 5), fine, q)
    assert out.shape == (2, 4, 5) and torch.isfinite(out).all()

    fuse = MultiStageFusion(FINE_CH, 5, levels=levels, calibration=calibration, video=True)
    fine = [torch.randn(2, c, 16, 8 // 2**i, 8 // 2**i) for i, c in enumerate(FINE_CH)]  # 8x8, 4x4, 2x2
    out = fuse(torch.randn(2, 5, 4, 4, 4), fine, q)
    assert out.shape == (2, 5, 4, 4, 4) and torch.isfinite(out).all()


def test_fusion_without_mask_has_no_filter():
    fuse = MultiStageFusion(FINE_CH, 5, levels=[0, 1, 2], mask=False)
    assert not any(isinstance(m, FineFilter) for m in fuse.modules())
    assert sum(p.numel() for p in fuse.parameters()) == 2 * (18 * 5 + 5)  # f_A and f_B only
    masked = MultiStageFusion(FINE_CH, 5, levels=[0, 2])
    assert sum(isinstance(m, FineFilter) for m in masked.modules()) == 2


# --------------------------------------------------------------------------- bad input


def test_bad_inputs():
    with pytest.raises(InputError, match="a sequence of 6 frames is shorter than the Grid Pool stride 8"):
        GridPool(3, alpha=1 / 8)(torch.randn(1, 6, 3))
    with pytest.raises(InputError, match="10 frames .* stride 4"):
        TemporalPool("max", 3)(torch.randn(1, 10, 3))
    with pytest.raises(InputError, match="shorter than the temporal pooling stride 4"):
        TemporalPool("stride", 3)(torch.randn(1, 2, 3))
    with pytest.raises(ValueError, match="alpha"):
        GridPool(3, alpha=1 / 3)
    with pytest.raises(ValueError, match="alpha"):
        GridPool(3, alpha=1 / 16)
    with pytest.raises(ValueError, match="temporal pool"):
        TemporalPool("median", 3)
    with pytest.raises(ValueError, match="levels"):
        MultiStageFusion(FINE_CH, 5, levels=[3])
