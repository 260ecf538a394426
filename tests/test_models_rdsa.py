"""1-D deformable sampling, RDSA and deformable cross-attention: hand-computed sampling, boundary
clips, masks and padding, gradients, parameter counts."""

from __future__ import annotations

import pytest
import torch

from momentkit.models import count_parameters
from momentkit.models.rdsa import (
    RDSA,
    ContextCNN,
    DeformableAttention1D,
    DeformableAttentionBlock,
    DeformableCrossAttention,
    clip_index,
    initial_offsets,
    roi_align_1d,
    sample_1d,
    sample_heads,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def one_hot_clips(t: int = 8) -> torch.Tensor:
    """(1, T, T): clip t's feature is the one-hot vector e_t."""
    return torch.eye(t)[None]


def identity_attention(nheads: int, npoints: int, offsets: list[float], d: int = 8, query_dim: int = 3):
    """Deformable attention with identity value/output projections and fixed offsets per head."""
    attn = DeformableAttention1D(d, nheads, npoints, query_dim)
    with torch.no_grad():
        attn.value_proj.weight.copy_(torch.eye(d))
        attn.out_proj.weight.copy_(torch.eye(d))
        attn.offsets.bias.copy_(torch.tensor(offsets).repeat_interleave(npoints))
    return attn


# ----------------------------------------------------------------------------- sampling
def test_sample_1d_hand_and_clamping():
    # 5 valid clips worth 0, 10, ..., 40; the padded 6th clip holds 999 and must never be read
    values = torch.tensor([0.0, 10, 20, 30, 40, 999])[None, :, None]
    lengths = torch.tensor([5])
    # clip t's centre is (t + 0.5) / 5; 0.62 -> index 2.6; 0.0 / 1.0 / 1.7 / -0.3 lie outside the centres
    pos = torch.tensor([[0.1, 0.2, 0.5, 0.62, 0.9, 0.0, 1.0, 1.7, -0.3]])
    idx = clip_index(pos, lengths)
    assert torch.allclose(idx, torch.tensor([[0.0, 0.5, 2.0, 2.6, 4.0, 0.0, 4.0, 4.0, 0.0]]))
    out = sample_1d(values, idx, lengths)[..., 0]
    assert torch.allclose(out, torch.tensor([[0.0, 5.0, 20.0, 26.0, 40.0, 0.0, 40.0, 40.0, 0.0]]))


def test_sample_1d_gradient_in_position():
    values = torch.tensor([0.0, 10, 20, 30])[None, :, None]
    pos = torch.tensor([[0.25]], requires_grad=True)  # index 0.5 over 4 clips, between 0 and 10
    out = sample_1d(values, clip_index(pos, torch.tensor([4])), torch.tensor([4]))
    out.sum().backward()
    assert torch.isclose(out.sum(), torch.tensor(5.0))
    assert torch.isclose(pos.grad, torch.tensor([[40.0]]))  # 10 per clip, 4 clips per unit


def test_sample_1d_keeps_rows_apart():
    values = torch.stack([torch.arange(4.0), 100 + torch.arange(4.0)])[..., None]  # (2, 4, 1)
    lengths = torch.tensor([4, 2])
    idx = clip_index(torch.tensor([[0.875], [0.875]]), lengths)  # last clip of row 0; beyond row 1's end
    assert sample_1d(values, idx, lengths)[..., 0].tolist() == [[3.0], [101.0]]


def test_sample_heads_reads_each_heads_own_channels():
    # values[n, t, h, c] = 100 n + 10 t + h + c / 10: every (sample, clip, head, channel) is distinct
    n, t, h, c = 2, 5, 3, 2
    values = (100 * torch.arange(n)[:, None, None, None] + 10 * torch.arange(t)[None, :, None, None]
              + torch.arange(h)[None, None, :, None] + torch.arange(c)[None, None, None, :] / 10).float()
    lengths = torch.tensor([5, 3])
    index = torch.tensor([[[[0.0, 1.5], [2.25, 4.0], [3.5, 0.75]]],  # sample 0: 1 query, 3 heads, 2 points
                          [[[0.5, 2.0], [1.0, 0.0], [1.75, 2.0]]]])  # sample 1 has 3 valid clips
    out = sample_heads(values, index, lengths)
    assert out.shape == (n, 1, h, 2, c)
    for i in range(n):
        for head in range(h):
            for p in range(2):
                x = float(index[i, 0, head, p])
                lo = int(x)
                hi = min(lo + 1, int(lengths[i]) - 1)
                expected = (1 - (x - lo)) * values[i, lo, head] + (x - lo) * values[i, hi, head]
                assert torch.allclose(out[i, 0, head, p], expected), (i, head, p)


def test_sampling_gradients_pass_gradcheck():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([6, 4])
    values = torch.randn(2, 6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    # positions away from clip centres, where linear interpolation is differentiable
    index = (torch.tensor([[0.3, 1.6, 4.2, 2.7], [0.1, 2.9, 1.4, 2.2]], dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda v, i: sample_1d(v, i, lengths), (values, index))
    heads = torch.randn(2, 6, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    hindex = index.detach()[:, None, None, :].expand(-1, 1, 2, -1).contiguous().requires_grad_()
    assert torch.autograd.gradcheck(lambda v, i: sample_heads(v, i, lengths), (heads, hindex))


def test_roi_align_1d_bin_centres():
    values = torch.arange(8.0)[None, :, None]
    spans = torch.tensor([[[0.5, 0.5]]])  # [0.25, 0.75]; 4 bins centred at 0.3125, 0.4375, ...
    out = roi_align_1d(values, spans, torch.tensor([8]), size=4)
    assert out.shape == (1, 1, 4, 1)
    assert out.flatten().tolist() == [2.0, 3.0, 4.0, 5.0]


def test_initial_offsets_spread_left_and_right():
    off = initial_offsets(8, 4)
    assert off.shape == (8, 4)
    assert torch.allclose(off[0], torch.tensor([-0.0625, -0.125, -0.1875, -0.25]))
    assert torch.allclose(off[3], torch.tensor([0.125, 0.25, 0.375, 0.5]))  # pair 1 reaches the boundary
    assert torch.allclose(off[7], torch.tensor([0.25, 0.5, 0.75, 1.0]))


# ----------------------------------------------------------------------------- deformable attention
def test_boundary_offsets_sample_the_boundary_clips():
    # segment from the centre of clip 2 to the centre of clip 5 of 8: c = 0.5, w = 3/8
    refs = torch.tensor([[[0.5, 3 / 8]]])
    attn = identity_attention(nheads=2, npoints=2, offsets=[-0.5, 0.5])
    out, info = attn(torch.randn(1, 1, 3), refs, one_hot_clips(), torch.tensor([8]), return_sampling=True)
    # head 0 (channels 0-3) reads clip 2 = e_2, head 1 (channels 4-7) reads clip 5 = e_5
    expected = torch.zeros(8)
    expected[2] = expected[5] = 1.0
    assert torch.allclose(out[0, 0], expected, atol=1e-6)
    assert torch.allclose(info["positions"][0, 0, 0], torch.tensor([2.5 / 8, 2.5 / 8]))
    assert torch.allclose(info["positions"][0, 0, 1], torch.tensor([5.5 / 8, 5.5 / 8]))
    assert torch.allclose(info["weights"].sum(-1), torch.ones(1, 1, 2))


def test_offsets_beyond_the_video_read_the_last_valid_clip():
    dense = torch.cat([one_hot_clips(8)[:, :5], torch.full((1, 3, 8), 1e6)], dim=1)  # 5 valid clips
    attn = identity_attention(nheads=2, npoints=2, offsets=[3.0, 3.0])
    out = attn(torch.zeros(1, 1, 3), torch.tensor([[[0.9, 0.5]]]), dense, torch.tensor([5]))
    expected = torch.zeros(8)
    expected[4] = 1.0  # channel 4 = head 1's first channel holds e_4 of the last valid clip
    assert torch.allclose(out[0, 0], expected)


def test_rdsa_query_features_at_left_centre_right():
    refs = torch.tensor([[[0.5, 3 / 8]]])  # left = clip 2, centre = between clips 3 and 4, right = clip 5
    dense, mask = one_hot_clips(), torch.ones(1, 8, dtype=torch.bool)
    e = torch.eye(8)
    expect = {"l-c-r": [e[2], (e[3] + e[4]) / 2, e[5]], "l-r": [e[2], e[5]], "c": [(e[3] + e[4]) / 2]}
    for points, parts in expect.items():
        rdsa = RDSA(8, 2, 2, query_dim=4, sample_points=points, context_cnn=False)
        assert torch.allclose(rdsa.query_features(refs, dense, mask)[0, 0], torch.cat(parts))


def test_rdsa_shapes_and_padding_invariance():
    torch.manual_seed(0)
    rdsa = RDSA(16, 4, 3, query_dim=8, cnn_hidden=12).eval()
    with torch.no_grad():  # non-zero heads so the queries (and the CNN) matter
        rdsa.attn.offsets.weight.normal_()
        rdsa.attn.weights.weight.normal_()
    dense = torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    refs = torch.tensor([[[0.8, 0.6], [0.1, 0.3], [0.5, 1.0]], [[0.5, 0.2], [0.9, 0.9], [0.3, 0.05]]])
    out = rdsa(None, refs, dense, mask)
    assert out.shape == (2, 3, 16)
    padded = torch.cat([dense, 1e3 * torch.randn(2, 4, 16)], dim=1)
    padded[0, 4:6] = -1e3  # sample 0's padding changes too
    pmask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    assert torch.allclose(rdsa(None, refs, padded, pmask), out, atol=1e-5)


def test_context_cnn_ignores_padding():
    torch.manual_seed(0)
    cnn = ContextCNN(4, 6, 3)
    x = torch.randn(1, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool)
    y = cnn(x, mask)
    x2 = x.clone()
    x2[0, 3:] = 100.0
    assert torch.allclose(cnn(x2, mask)[0, :3], y[0, :3])
    # the last valid clip sees zeros after it, as at the end of an unpadded sequence
    assert torch.allclose(cnn(x[:, :3], mask[:, :3])[0], y[0, :3], atol=1e-6)


def test_context_cnn_is_the_two_convolutions():
    # the channels-last matrix-product form gives torch's conv1d result, for the output and the
    # gradients of the convolution weights
    torch.manual_seed(0)
    for kernel in (3, 5):
        cnn = ContextCNN(4, 6, kernel)
        x = torch.randn(2, 7, 4)
        mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2], dtype=torch.bool)
        m = mask[..., None].float()
        conv = torch.nn.functional.conv1d
        h = conv((x * m).transpose(1, 2), cnn.conv1.weight, cnn.conv1.bias, padding=kernel // 2).transpose(1, 2)
        h = torch.relu(cnn.norm(h)) * m
        ref = conv(h.transpose(1, 2), cnn.conv2.weight, cnn.conv2.bias, padding=kernel // 2).transpose(1, 2)
        out = cnn(x, mask)
        assert torch.allclose(out, ref, atol=1e-6)
        g_out = torch.autograd.grad(out.square().sum(), [cnn.conv1.weight, cnn.conv2.weight])
        g_ref = torch.autograd.grad(ref.square().sum(), [cnn.conv1.weight, cnn.conv2.weight])
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_out, g_ref))


def test_rdsa_gradients_reach_every_part():
    torch.manual_seed(0)
    rdsa = RDSA(16, 4, 3, query_dim=8, cnn_hidden=12)
    dense = torch.randn(2, 7, 16, requires_grad=True)
    refs = torch.tensor([[[0.4, 0.3]], [[0.6, 0.5]]], requires_grad=True)
    mask = torch.ones(2, 7, dtype=torch.bool)
    rdsa(None, refs, dense, mask).pow(2).sum().backward()
    for name in ("attn.offsets.weight", "attn.weights.weight", "attn.value_proj.weight", "attn.out_proj.weight"):
        g = dict(rdsa.named_parameters())[name].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    assert dense.grad.abs().sum() > 0 and refs.grad.abs().sum() > 0
    # at initialisation the offset/weight heads ignore their input (Deformable DETR), so the CNN
    # gets gradient only once they do
    assert rdsa.cnn.conv1.weight.grad.abs().sum() == 0
    with torch.no_grad():
        rdsa.attn.offsets.weight.normal_()
    rdsa.zero_grad()
    rdsa(None, refs, dense, mask).pow(2).sum().backward()
    for p in rdsa.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert rdsa.cnn.conv1.weight.grad.abs().sum() > 0 and rdsa.query_proj[0].weight.grad.abs().sum() > 0


def test_rdsa_ignores_latents_deformable_ca_uses_them():
    torch.manual_seed(0)
    dense, mask = torch.randn(1, 6, 8), torch.ones(1, 6, dtype=torch.bool)
    refs = torch.tensor([[[0.5, 0.4], [0.2, 0.2]]])
    h1, h2 = torch.randn(1, 2, 8), torch.randn(1, 2, 8)
    rdsa, dca = RDSA(8, 2, 2, query_dim=4, cnn_hidden=8), DeformableCrossAttention(8, 2, 2)
    for m in (rdsa, dca):
        with torch.no_grad():
            m.attn.offsets.weight.normal_()
    assert torch.equal(rdsa(h1, refs, dense, mask), rdsa(h2, refs, dense, mask))
    assert not torch.allclose(dca(h1, refs, dense, mask), dca(h2, refs, dense, mask))


def test_parameter_counts_by_hand():
    d, hid, k, h, p, q = 16, 12, 3, 4, 2, 8
    conv = d * hid * k + hid + 2 * hid + hid * d * k + d  # conv1, LayerNorm, conv2
    core = 2 * (q * h * p + h * p) + 2 * (d * d + d)  # offset and weight heads; value and output
    assert count_parameters(RDSA(d, h, p, q, "l-c-r", True, hid, k)) == conv + 3 * d * q + q + core
    assert count_parameters(RDSA(d, h, p, q, "c", False, hid, k)) == d * q + q + core
    assert count_parameters(DeformableCrossAttention(d, h, p)) == 2 * (d * h * p + h * p) + 2 * (d * d + d)


def test_block_is_residual_with_post_norm():
    torch.manual_seed(0)
    attn = DeformableCrossAttention(8, 2, 2)
    with torch.no_grad():
        attn.attn.out_proj.weight.zero_()  # attention output 0: the block is LayerNorm(h)
    block = DeformableAttentionBlock(attn, 8)
    h = torch.randn(1, 3, 8)
    out = block(h, torch.rand(1, 3, 2), torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool))
    assert torch.allclose(out, torch.nn.functional.layer_norm(h, (8,)), atol=1e-6)


def test_sampling_is_batched_over_heads_and_queries():
    torch.manual_seed(0)
    attn = DeformableAttention1D(8, 2, 3, 4)
    with torch.no_grad():
        attn.offsets.weight.normal_()
        attn.weights.weight.normal_()
    q, refs = torch.randn(3, 5, 4), torch.rand(3, 5, 2)
    values, lengths = torch.randn(3, 9, 8), torch.tensor([9, 4, 6])
    out = attn(q, refs, values, lengths)
    # the same queries one sample at a time, without padding, give the same answer
    for i in range(3):
        n = int(lengths[i])
        single = attn(q[i : i + 1], refs[i : i + 1], values[i : i + 1, :n], lengths[i : i + 1])
        assert torch.allclose(out[i], single[0], atol=1e-6)
