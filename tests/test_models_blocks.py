"""Building blocks: layers, positional encodings, transformer layers."""

from __future__ import annotations

import math

import pytest
import torch

from momentkit.errors import InputError
from momentkit.models.layers import MLP, DropPath, input_projection, inverse_sigmoid
from momentkit.models.position_encoding import (
    PositionEmbeddingLearned,
    PositionEmbeddingSine,
    build_position_encoding,
    span_sine_embedding,
    temporal_endpoint_feature,
)
from momentkit.models.transformer import (
    CrossAttentionLayer,
    DecoderLayer,
    EncoderLayer,
    TransformerDecoder,
    TransformerEncoder,
)


def test_sine_hand_values():
    pe = PositionEmbeddingSine(dim=4, normalize=False)
    out = pe(torch.tensor([[1, 1, 0]]))
    # frequencies 10000 ** (2 * (i // 2) / 4) = [1, 1, 100, 100]; position of clip 1 is 2
    expected = torch.tensor([math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)])
    assert out.shape == (1, 3, 4)
    assert torch.allclose(out[0, 1], expected)


def test_sine_normalised_ignores_padding():
    pe = PositionEmbeddingSine(dim=8, normalize=True)
    short = pe(torch.ones(1, 3))
    padded = pe(torch.tensor([[1, 1, 1, 0, 0]]))
    assert torch.allclose(short, padded[:, :3])
    # last valid clip sits at 2*pi: first feature sin(2*pi) ~ 0, second cos(2*pi) = 1
    assert torch.allclose(short[0, -1, :2], torch.tensor([0.0, 1.0]), atol=1e-5)


def test_learned_and_zero_encodings():
    pe = PositionEmbeddingLearned(max_len=4, dim=6)
    out = pe(torch.ones(2, 3))
    assert out.shape == (2, 3, 6) and torch.equal(out[0], pe.embed.weight[:3])
    with pytest.raises(InputError, match="max_len"):
        pe(torch.ones(1, 5))
    assert torch.count_nonzero(build_position_encoding("zero", 6)(torch.ones(2, 3))) == 0
    with pytest.raises(InputError, match="position_encoding"):
        build_position_encoding("rotary", 6)


def test_span_sine_embedding():
    e = span_sine_embedding(torch.tensor([[0.5, 0.25]]), dim=8)
    # centre 0.5 -> x = pi: [sin(pi), cos(pi), sin(pi/100), cos(pi/100)]; width 0.25 -> pi/2
    c = torch.tensor([0.0, -1.0, math.sin(math.pi / 100), math.cos(math.pi / 100)])
    w = torch.tensor([1.0, 0.0, math.sin(math.pi / 200), math.cos(math.pi / 200)])
    assert torch.allclose(e[0], torch.cat([c, w]), atol=1e-6)


def test_temporal_endpoint_feature():
    tef = temporal_endpoint_feature(torch.tensor([[1, 1, 1, 1, 0]]))
    expected = torch.tensor([[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0], [0, 0]])
    assert torch.allclose(tef[0], expected)


def test_mlp_inverse_sigmoid_droppath():
    mlp = MLP(3, 8, 2, 3)
    assert [tuple(layer.weight.shape) for layer in mlp.layers] == [(8, 3), (8, 8), (2, 8)]
    x = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(inverse_sigmoid(x).sigmoid(), x)
    proj = input_projection(5, 4, num_layers=2, dropout=0.0)
    assert proj(torch.randn(2, 3, 5)).shape == (2, 3, 4)
    dp = DropPath(0.5)
    y = torch.ones(2000, 3)
    dp.train()
    out = dp(y)
    kept = out[:, 0] != 0
    assert torch.all(out[kept] == 2.0) and torch.all(out[~kept] == 0.0)  # whole rows, rescaled by 1/(1-p)
    assert 800 < kept.sum() < 1200
    dp.eval()
    assert torch.equal(dp(y), y)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_encoder_padding_invariance(pre_norm):
    torch.manual_seed(0)
    enc = TransformerEncoder(EncoderLayer(16, 4, 32, dropout=0.0, pre_norm=pre_norm), 2,
                             torch.nn.LayerNorm(16) if pre_norm else None).eval()
    x = torch.randn(1, 5, 16)
    pos = torch.randn(1, 5, 16)
    xp = torch.cat([x, 100 * torch.randn(1, 3, 16)], 1)
    posp = torch.cat([pos, torch.randn(1, 3, 16)], 1)
    pad = torch.tensor([[False] * 5 + [True] * 3])
    assert torch.allclose(enc(x, None, pos), enc(xp, pad, posp)[:, :5], atol=1e-5)


def test_post_norm_output_is_normalised_pre_norm_is_not():
    torch.manual_seed(0)
    x = 5 + 3 * torch.randn(2, 4, 16)
    post = EncoderLayer(16, 4, 32, dropout=0.0, pre_norm=False).eval()(x)
    pre = EncoderLayer(16, 4, 32, dropout=0.0, pre_norm=True).eval()(x)
    assert torch.allclose(post.mean(-1), torch.zeros(2, 4), atol=1e-5)
    assert pre.mean(-1).abs().min() > 1  # residual stream keeps the input offset


def test_cross_attention_layer_ignores_padded_memory():
    torch.manual_seed(0)
    layer = CrossAttentionLayer(16, 4, 32, dropout=0.0).eval()
    x, mem = torch.randn(2, 3, 16), torch.randn(2, 4, 16)
    mem_pad = torch.tensor([[False, False, True, True]] * 2)
    a = layer(x, mem, mem_pad)
    b = layer(x, torch.cat([mem[:, :2], torch.randn(2, 2, 16)], 1), mem_pad)
    assert a.shape == (2, 3, 16) and torch.allclose(a, b, atol=1e-6)


def test_decoder_self_attention_switch():
    torch.manual_seed(0)
    with_sa = DecoderLayer(16, 4, 32, dropout=0.0, self_attn=True).eval()
    without = DecoderLayer(16, 4, 32, dropout=0.0, self_attn=False).eval()
    assert without.self_attn is None
    mem, tgt = torch.randn(1, 6, 16), torch.randn(1, 3, 16)
    tgt2 = tgt.clone()
    tgt2[0, 2] += 1.0  # perturb query 2 only
    for layer, others_change in ((with_sa, True), (without, False)):
        a, b = layer(tgt, mem), layer(tgt2, mem)
        assert not torch.allclose(a[0, 2], b[0, 2])
        assert torch.allclose(a[0, :2], b[0, :2]) != others_change


def test_decoder_returns_every_layer():
    dec = TransformerDecoder(DecoderLayer(16, 4, 32), 3, torch.nn.LayerNorm(16))
    out = dec(torch.zeros(2, 5, 16), torch.randn(2, 7, 16), query_pos=torch.randn(2, 5, 16))
    assert out.shape == (3, 2, 5, 16)
    # three independent copies
    assert dec.layers[0].ffn.linear1.weight.data_ptr() != dec.layers[1].ffn.linear1.weight.data_ptr()
