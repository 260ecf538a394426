"""Frozen backbones: CLIP (transformers) and the native InternVideo2, on tiny random configs loaded
through the real loading code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from momentkit.errors import InputError  # noqa: E402
from momentkit.video.backbones import create_backbone, list_backbones  # noqa: E402
from momentkit.video.backbones.base import clip_mean, middle_indices, resolve_layers  # noqa: E402
from momentkit.video.backbones.clip import CLIP_MEAN, CLIP_STD, CLIPBackbone  # noqa: E402
from momentkit.video.backbones.internvideo2 import (  # noqa: E402
    InternVideo2Backbone,
    InternVideo2Config,
    InternVideo2Stage2,
    VisionEncoder,
    interpolate_pos_embed,
    load_checkpoint,
    read_state_dict,
    sincos_pos_embed_3d,
)
from momentkit.video.testing import (  # noqa: E402
    make_tiny_clip,
    make_tiny_internvideo2,
    tiny_bert_tokenizer,
    tiny_internvideo2_config,
)

torch.set_num_threads(1)
# The references below are computed on the CPU: the backbones are loaded there too, also where a GPU is.


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def iv2_dir(tmp_path_factory):
    return make_tiny_internvideo2(tmp_path_factory.mktemp("iv2") / "tiny-iv2")


def _frames(n, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), generator=g, dtype=torch.uint8)


# ----------------------------------------------------------------------------- shared pieces
def test_registry():
    assert {"clip", "internvideo2"} <= set(list_backbones())
    with pytest.raises(InputError, match="unknown backbone 'vjepa'"):
        create_backbone("vjepa")


def test_resolve_layers():
    assert resolve_layers([37, 38, 39, 40], 40) == (37, 38, 39, 40)
    assert resolve_layers([-4, -1], 40) == (37, 40)
    assert resolve_layers(None, 40) is None
    for bad in ([0], [41], [-41], [3, 3]):
        with pytest.raises(InputError):
            resolve_layers(bad, 40)


def test_clip_mean_and_middle_indices_by_hand():
    feats = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 8.0]])
    out = clip_mean(feats, torch.tensor([0, 0, 0, 1]), 2)
    assert torch.allclose(out, torch.tensor([[3.0, 2.0], [7.0, 8.0]]))
    # clips of 1, 3 and 5 frames, 2 frames each: middles of 2 equal segments
    idx = middle_indices(torch.tensor([0, 1, 1, 1, 2, 2, 2, 2, 2]), 3, 2)
    assert idx.tolist() == [[0, 0], [1, 3], [5, 7]]


# ----------------------------------------------------------------------------- CLIP
def test_clip_loads_from_a_folder_frozen(clip_dir):
    b = create_backbone("clip", str(clip_dir), device="cpu")
    assert isinstance(b, CLIPBackbone)
    assert not any(p.requires_grad for p in b.parameters()) and not b.model.training
    assert b.frame_size == 32 and b.frames_per_clip is None and b.video_dim == 16


def test_clip_missing_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot load the CLIP model") as e:
        CLIPBackbone.from_pretrained(tmp_path / "no-such-model")
    assert "no-such-model" in str(e.value)


def test_clip_preprocessing_normalises_and_centre_crops(clip_dir):
    b = create_backbone("clip", str(clip_dir), device="cpu")
    flat = torch.full((1, 32, 32, 3), 200, dtype=torch.uint8)
    x = b.preprocess(flat)
    assert x.shape == (1, 3, 32, 32)
    for c in range(3):
        assert torch.allclose(x[0, c], torch.tensor((200 / 255 - CLIP_MEAN[c]) / CLIP_STD[c]), atol=1e-6)
    # 32 x 48 frame: red, green, blue thirds of 16 columns; the centre crop keeps columns 8..39
    wide = torch.zeros((1, 32, 48, 3), dtype=torch.uint8)
    wide[..., :8, 0] = 255
    wide[..., 8:40, 1] = 255
    wide[..., 40:, 2] = 255
    y = b.preprocess(wide)
    g = (1.0 - CLIP_MEAN[1]) / CLIP_STD[1]
    r0 = (0.0 - CLIP_MEAN[0]) / CLIP_STD[0]
    assert y.shape == (1, 3, 32, 32)
    assert torch.allclose(y[0, 1], torch.tensor(g), atol=1e-6) and torch.allclose(y[0, 0], torch.tensor(r0), atol=1e-6)


def test_clip_single_layer_is_the_projected_image_embedding_averaged_per_clip(clip_dir):
    b = create_backbone("clip", str(clip_dir), device="cpu")
    frames = _frames(5)
    per_frame = b.encode_video(frames, torch.arange(5), 5)
    with torch.no_grad():  # CLIPModel's own forward gives the L2-normalised image embeddings
        emb = b.model(pixel_values=b.preprocess(frames), input_ids=torch.tensor([[0, 1]])).image_embeds
    assert torch.allclose(per_frame / per_frame.norm(dim=-1, keepdim=True), emb, atol=1e-5)
    out = b.encode_video(frames, torch.tensor([0, 0, 1, 1, 1]), 2)
    assert out.shape == (2, 16)
    assert torch.allclose(out, torch.stack([per_frame[:2].mean(0), per_frame[2:].mean(0)]), atol=1e-5)


def test_clip_layered_pools_each_layer(clip_dir):
    b = create_backbone("clip", str(clip_dir), device="cpu", layers=[-2, -1])
    assert b.layers == (2, 3) and b.text_layers == (2, 3) and b.video_dim == 32
    frames = _frames(3, seed=1)
    out = b.encode_video(frames, torch.tensor([0, 1, 1]), 2)
    assert out.shape == (2, 2, 32)
    # run the vision tower layer by layer by hand
    vm = b.model.vision_model
    with torch.no_grad():
        x = vm.pre_layrnorm(vm.embeddings(b.preprocess(frames)))
        hidden = []
        for layer in vm.encoder.layers:
            y = layer(x, None)
            x = y[0] if isinstance(y, tuple) else y
            hidden.append(x)
    cls2, cls3 = hidden[1][:, 0], hidden[2][:, 0]
    assert torch.allclose(out[0, 0], cls2[0], atol=1e-5) and torch.allclose(out[0, 1], cls3[0], atol=1e-5)
    assert torch.allclose(out[1, 1], cls3[1:].mean(0), atol=1e-5)
    avg_backbone = create_backbone("clip", str(clip_dir), device="cpu", layers=[3], pool="avg")
    avg = avg_backbone.encode_video(frames, torch.tensor([0, 1, 1]), 2)
    assert torch.allclose(avg[0, 0], hidden[2][0, 1:].mean(0), atol=1e-5)
    # the final head re-used on the last layer gives the single-layer embedding
    proj = create_backbone("clip", str(clip_dir), device="cpu", layers=[-1], pool="proj")
    single = create_backbone("clip", str(clip_dir), device="cpu")
    assert proj.video_dim == 16
    assert torch.allclose(proj.encode_video(frames, torch.tensor([0, 1, 1]), 2)[:, 0],
                          single.encode_video(frames, torch.tensor([0, 1, 1]), 2), atol=1e-5)


def test_clip_text_features(clip_dir):
    b = create_backbone("clip", str(clip_dir), device="cpu", layers=[1, 3])
    rows = b.encode_text(["ab", "a red square moves"])
    # "ab" -> <start> a b</w> <end>: 4 tokens
    assert rows[0]["last_hidden_state"].shape == (4, 32)
    assert rows[0]["features"].shape == (2, 4, 32)
    assert rows[1]["last_hidden_state"].shape == (len("a red square moves".replace(" ", "")) + 2, 32)
    with torch.no_grad():
        enc = b.tokenizer(["ab"], return_tensors="pt")
        ref = b.model(input_ids=enc["input_ids"], pixel_values=torch.zeros(1, 3, 32, 32)).text_embeds[0]
        final = b.model.text_model.final_layer_norm(torch.from_numpy(rows[0]["features"][1]))
    pooled = rows[0]["pooler_output"]
    assert np.allclose(pooled / np.linalg.norm(pooled), ref.numpy(), atol=1e-5)  # CLIPModel normalises
    assert np.allclose(final.numpy(), rows[0]["last_hidden_state"], atol=1e-5)  # layer 3 is the last
    alone = b.encode_text(["ab"])[0]  # padding in a batch changes nothing
    for k in alone:
        assert np.allclose(alone[k], rows[0][k], atol=1e-5)


# ----------------------------------------------------------------------------- InternVideo2
OFFICIAL_KEYS = [  # names in OpenGVLab's PretrainInternVideo2 / InternVideo2_Stage2 state dicts
    "vision_encoder.patch_embed.proj.weight", "vision_encoder.patch_embed.proj.bias",
    "vision_encoder.cls_token", "vision_encoder.pos_embed", "vision_encoder.img_pos_embed",
    "vision_encoder.blocks.0.norm1.weight", "vision_encoder.blocks.0.attn.qkv.weight",
    "vision_encoder.blocks.0.attn.q_norm.weight", "vision_encoder.blocks.0.attn.k_norm.weight",
    "vision_encoder.blocks.0.attn.proj.weight", "vision_encoder.blocks.0.attn.proj.bias",
    "vision_encoder.blocks.0.ls1.gamma", "vision_encoder.blocks.0.norm2.weight",
    "vision_encoder.blocks.0.mlp.fc1.weight", "vision_encoder.blocks.0.mlp.fc1.bias",
    "vision_encoder.blocks.0.mlp.fc2.weight", "vision_encoder.blocks.2.ls2.gamma",
    "vision_encoder.clip_projector.norm1_q.weight", "vision_encoder.clip_projector.norm1_k.bias",
    "vision_encoder.clip_projector.norm1_v.weight", "vision_encoder.clip_projector.cross_attn.q.weight",
    "vision_encoder.clip_projector.cross_attn.k.weight", "vision_encoder.clip_projector.cross_attn.v.weight",
    "vision_encoder.clip_projector.cross_attn.q_bias", "vision_encoder.clip_projector.cross_attn.k_bias",
    "vision_encoder.clip_projector.cross_attn.v_bias", "vision_encoder.clip_projector.cross_attn.proj.weight",
    "vision_encoder.clip_projector.cross_attn.proj.bias",
    "text_encoder.bert.embeddings.word_embeddings.weight", "text_encoder.bert.embeddings.LayerNorm.weight",
    "text_encoder.bert.encoder.layer.0.attention.self.query.weight",
    "text_encoder.bert.encoder.layer.1.output.LayerNorm.bias",
    "vision_proj.weight", "vision_proj.bias", "text_proj.weight", "text_proj.bias",
]


def test_internvideo2_uses_the_official_key_names():
    keys = set(InternVideo2Stage2(tiny_internvideo2_config()).state_dict())
    assert set(OFFICIAL_KEYS) <= keys
    assert "vision_encoder.blocks.0.attn.qkv.bias" not in keys  # qkv_bias=False in the 1B model


def test_internvideo2_1b_shapes_and_size_by_hand():
    cfg = InternVideo2Config()
    with torch.device("meta"):
        enc = VisionEncoder(cfg)
    sd = enc.state_dict()
    d, h = 1408, 6144  # int(1408 * 48 / 11)
    assert sd["pos_embed"].shape == (1, 1 + 4 * 16 * 16, d) and sd["img_pos_embed"].shape == (1, 257, d)
    assert sd["patch_embed.proj.weight"].shape == (d, 3, 1, 14, 14)
    assert sd["blocks.39.mlp.fc1.weight"].shape == (h, d)
    assert sd["clip_projector.cross_attn.proj.weight"].shape == (768, d)
    block = 3 * d * d + (d * d + d) + (d * h + h) + (h * d + d) + 6 * d  # qkv, proj, fc1, fc2, norms+gammas
    pool = 3 * 2 * d + 3 * d * d + 3 * d + (d * 768 + 768)
    embed = (3 * 14 * 14 * d + d) + d + 1025 * d + 257 * d
    total = sum(p.numel() for p in enc.parameters())
    assert total == 40 * block + pool + embed
    assert 1.0e9 < total < 1.05e9  # "1B"


def _rms(x, w, eps=1e-6):
    return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def _reference_layers(model, x):
    """The official forward written out from its formulas, one head at a time: every layer's tokens."""
    ve, cfg = model.vision_encoder, model.cfg
    t = ve.patch_embed.proj(x).flatten(2).transpose(1, 2)
    t = torch.cat([ve.cls_token.expand(len(t), -1, -1), t], 1) + ve.pos_embed
    outs = []
    nh, d = cfg.num_heads, cfg.embed_dim // cfg.num_heads
    for blk in ve.blocks:
        y = _rms(t, blk.norm1.weight)
        qkv = y @ blk.attn.qkv.weight.T
        q, k, v = qkv[..., :cfg.embed_dim], qkv[..., cfg.embed_dim:2 * cfg.embed_dim], qkv[..., 2 * cfg.embed_dim:]
        q, k = _rms(q, blk.attn.q_norm.weight), _rms(k, blk.attn.k_norm.weight)
        heads = []
        for i in range(nh):
            s = slice(i * d, (i + 1) * d)
            a = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / math.sqrt(d), -1)
            heads.append(a @ v[..., s])
        att = torch.cat(heads, -1) @ blk.attn.proj.weight.T + blk.attn.proj.bias
        t = t + blk.ls1.gamma * att
        y = _rms(t, blk.norm2.weight)
        hid = y @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias
        hid = 0.5 * hid * (1 + torch.tanh(math.sqrt(2 / math.pi) * (hid + 0.044715 * hid ** 3)))
        t = t + blk.ls2.gamma * (hid @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias)
        outs.append(t)
    return outs


def _reference_attention_pool(pool, x):
    ln = torch.nn.functional.layer_norm
    ca = pool.cross_attn
    q = ln(x.mean(1, keepdim=True), x.shape[-1:], pool.norm1_q.weight, pool.norm1_q.bias, 1e-5)
    k = ln(x, x.shape[-1:], pool.norm1_k.weight, pool.norm1_k.bias, 1e-5)
    v = ln(x, x.shape[-1:], pool.norm1_v.weight, pool.norm1_v.bias, 1e-5)
    q, k, v = q @ ca.q.weight.T + ca.q_bias, k @ ca.k.weight.T + ca.k_bias, v @ ca.v.weight.T + ca.v_bias
    nh = ca.num_heads
    d = q.shape[-1] // nh
    heads = []
    for i in range(nh):
        s = slice(i * d, (i + 1) * d)
        heads.append(torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / math.sqrt(d), -1) @ v[..., s])
    return (torch.cat(heads, -1) @ ca.proj.weight.T + ca.proj.bias).squeeze(1)


def test_internvideo2_layers_match_the_formulas(iv2_dir):
    b = create_backbone("internvideo2", str(iv2_dir), device="cpu", layers=[2, 3])
    cfg = b.cfg
    assert b.frames_per_clip == 2 and b.frame_size == (28, 28) and b.video_dim == 24
    frames = _frames(4, 28, 28, seed=3)
    out = b.encode_video(frames, torch.tensor([0, 0, 1, 1]), 2)
    assert out.shape == (2, 2, 24)
    x = b.preprocess(frames).view(2, 2, 3, 28, 28).transpose(1, 2)
    with torch.no_grad():
        ref = _reference_layers(b.model, x)
        pool = b.model.vision_encoder.clip_projector
        expected = torch.stack([_reference_attention_pool(pool, ref[1]), _reference_attention_pool(pool, ref[2])], 1)
    assert torch.allclose(out, expected, atol=1e-4)
    two = torch.tensor([0, 0, 1, 1])
    cls = create_backbone("internvideo2", str(iv2_dir), device="cpu", layers=[1], pool="cls").encode_video(frames, two, 2)
    avg = create_backbone("internvideo2", str(iv2_dir), device="cpu", layers=[1], pool="avg").encode_video(frames, two, 2)
    assert cls.shape == (2, 1, cfg.embed_dim)
    assert torch.allclose(cls[:, 0], ref[0][:, 0], atol=1e-4)
    assert torch.allclose(avg[:, 0], ref[0][:, 1:].mean(1), atol=1e-4)
    # single layer = the retrieval embedding: vision_proj of the final AdaptivePool
    single = create_backbone("internvideo2", str(iv2_dir), device="cpu").encode_video(frames, torch.tensor([0, 0, 1, 1]), 2)
    assert single.shape == (2, cfg.joint_dim)
    with torch.no_grad():
        assert torch.allclose(single, b.model.vision_proj(expected[:, 1]), atol=1e-4)


def test_internvideo2_resamples_clips_to_its_frame_count(iv2_dir):
    b = create_backbone("internvideo2", str(iv2_dir), device="cpu", layers=[3])
    frames = _frames(4, 28, 28, seed=4)
    # clip 0 has 3 frames -> middles of 2 segments: frames 0 and 2; clip 1 has 1 frame -> repeated
    out = b.encode_video(frames, torch.tensor([0, 0, 0, 1]), 2)
    direct = b.encode_video(frames[[0, 2, 3, 3]], torch.tensor([0, 0, 1, 1]), 2)
    assert torch.allclose(out, direct, atol=1e-6)


def test_internvideo2_text(iv2_dir):
    b = create_backbone("internvideo2", str(iv2_dir), device="cpu", layers=[-2, -1])
    assert b.text_layers == (1, 2)
    rows = b.encode_text(["red square", "a blue circle moves left"])
    # [CLS] red square [SEP]
    assert rows[0]["last_hidden_state"].shape == (4, 16) and rows[0]["pooler_output"].shape == (8,)
    assert rows[0]["features"].shape == (2, 4, 16)
    assert np.allclose(rows[0]["features"][1], rows[0]["last_hidden_state"], atol=1e-6)
    from transformers import BertModel

    bert = BertModel(b.model.text_encoder.bert.config, add_pooling_layer=False).eval()
    bert.load_state_dict(b.model.text_encoder.bert.state_dict())
    enc = tiny_bert_tokenizer()(["red square"], return_tensors="pt")
    with torch.no_grad():
        hid = bert(**enc).last_hidden_state[0]
        pooled = b.model.text_proj(hid[0])
    assert np.allclose(rows[0]["last_hidden_state"], hid.numpy(), atol=1e-5)
    assert np.allclose(rows[0]["pooler_output"], pooled.numpy(), atol=1e-5)


def _official_style_checkpoint(model):
    """The tiny model's weights as the official training code saves them (DeepSpeed 'module' wrapper,
    BertForMaskedLM text keys, distillation heads, fusion layers, ITM head, temperature)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    d = model.cfg.embed_dim
    sd.update({
        "vision_encoder.clip_decoder.0.head.weight": torch.zeros(5, d),
        "vision_encoder.final_clip_decoder.head.weight": torch.zeros(5, 24),
        "vision_encoder.clip_pos_embed": torch.zeros_like(sd["vision_encoder.pos_embed"]),
        "vision_encoder.clip_img_pos_embed": torch.zeros_like(sd["vision_encoder.img_pos_embed"]),
        "text_encoder.cls.predictions.bias": torch.zeros(7),
        "text_encoder.bert.encoder.layer.2.crossattention.self.query.weight": torch.zeros(16, 16),
        "text_encoder.bert.embeddings.position_ids": torch.arange(40)[None],
        "itm_head.weight": torch.zeros(2, 16),
        "temp": torch.tensor(0.07),
    })
    return {"module": sd}


def test_internvideo2_loads_an_official_style_checkpoint(tmp_path, iv2_dir):
    torch.manual_seed(5)
    model = InternVideo2Stage2(tiny_internvideo2_config()).eval()
    ckpt = tmp_path / "InternVideo2-stage2_tiny.pt"
    torch.save(_official_style_checkpoint(model), ckpt)
    sd = read_state_dict(ckpt)
    fresh = InternVideo2Stage2(tiny_internvideo2_config(), empty_vision=True)
    assert load_checkpoint(fresh, sd, source=ckpt) == []  # every extra key is a known official one
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    # the same through from_pretrained: file + explicit config + tokenizer folder
    arch = {k: v for k, v in tiny_internvideo2_config().__dict__.items() if k != "tokenizer"}
    b = InternVideo2Backbone.from_pretrained(ckpt, tokenizer=iv2_dir, device="cpu", **arch)
    frames = _frames(2, 28, 28, seed=6)
    with torch.no_grad():
        x = b.preprocess(frames).view(1, 2, 3, 28, 28).transpose(1, 2)
        ref = model.vision_proj(model.vision_encoder(x))
    assert torch.allclose(b.encode_video(frames, torch.tensor([0, 0]), 1), ref, atol=1e-5)


def test_internvideo2_checkpoint_problems_are_input_errors(tmp_path):
    model = InternVideo2Stage2(tiny_internvideo2_config())
    sd = model.state_dict()
    incomplete = {k: v for k, v in sd.items() if "blocks.1." not in k}
    with pytest.raises(InputError, match="lacks .* weight"):
        load_checkpoint(InternVideo2Stage2(tiny_internvideo2_config()), incomplete, source="x.pt")
    wider = InternVideo2Stage2(tiny_internvideo2_config(clip_embed_dim=12))
    with pytest.raises(InputError, match="shapes do not match"):
        load_checkpoint(wider, sd, source="x.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint") as e:
        read_state_dict(bad)
    assert "bad.pt" in str(e.value)
    with pytest.raises(InputError, match="not found"):
        InternVideo2Backbone.from_pretrained(tmp_path / "missing.pt")


def test_bert_model_keys_are_remapped(tmp_path):
    model = InternVideo2Stage2(tiny_internvideo2_config())
    sd = {k.replace("text_encoder.bert.", "text_encoder."): v for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "bare.pth")
    assert set(read_state_dict(tmp_path / "bare.pth")) == set(model.state_dict())


def test_position_embedding_interpolation_by_hand():
    # 2 frames of a 1x1 grid, 1 channel: time positions [CLS]=9, t0=0, t1=4
    pos = torch.tensor([[[9.0], [0.0], [4.0]]])
    out = interpolate_pos_embed(pos, t_new=4, grid_new=1, t_old=2)
    # linear, align_corners=False: new j samples old coordinate j/2 - 1/4 (clamped)
    assert out.flatten().tolist() == pytest.approx([9.0, 0.0, 1.0, 3.0, 4.0])
    # loading a 2-frame checkpoint into a 4-frame model goes through it
    small = InternVideo2Stage2(tiny_internvideo2_config())
    big = InternVideo2Stage2(tiny_internvideo2_config(num_frames=4))
    load_checkpoint(big, small.state_dict())
    assert big.vision_encoder.pos_embed.shape[1] == 1 + 4 * 4


def test_sincos_position_embedding_by_hand():
    emb = sincos_pos_embed_3d(16, 2, 3)[0]  # 4 temporal, 12 spatial channels; CLS row of zeros
    assert emb.shape == (1 + 3 * 4, 16)
    assert torch.equal(emb[0], torch.zeros(16))
    first = emb[1]  # t = 0, h = w = 0: sin 0 = 0, cos 0 = 1 everywhere
    assert first[:2].tolist() == [0.0, 0.0] and first[2:4].tolist() == [1.0, 1.0]
    t1 = emb[1 + 4]  # t = 1: temporal channels sin(1 * omega), omega = 1 / 10000 ** (i / 2)
    assert t1[:2].tolist() == pytest.approx([math.sin(1.0), math.sin(1.0 / 100.0)], abs=1e-6)


def test_mlp_uses_the_fused_mlp_tanh_gelu():
    from momentkit.video.backbones.internvideo2 import Mlp

    mlp = Mlp(1, 1, "gelu_tanh")
    exact = Mlp(1, 1, "gelu")
    for m in (mlp, exact):
        torch.nn.init.ones_(m.fc1.weight), torch.nn.init.zeros_(m.fc1.bias)
        torch.nn.init.ones_(m.fc2.weight), torch.nn.init.zeros_(m.fc2.bias)
    x = torch.tensor([[2.0]])
    # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) at x = 2: 1.9545977; erf GELU: 1.9544997
    assert mlp(x).item() == pytest.approx(1.9545977, abs=1e-6)
    assert exact(x).item() == pytest.approx(1.9544997, abs=1e-6)
