"""InternVideo2 (stage 2, 1B) as a frozen clip-level backbone, natively in torch.

The modules and parameter names follow OpenGVLab's ``InternVideo2/multi_modality`` code
(``models/backbones/internvideo2/internvideo2.py`` ``PretrainInternVideo2`` and
``models/internvideo2_stage2.py`` ``InternVideo2_Stage2``), so :func:`load_checkpoint` reads the
official checkpoint (e.g. ``InternVideo2-stage2_1b-224p-f4.pt``) key for key::

    vision_encoder.patch_embed.proj.{weight,bias}        Conv3d (tubelet 1 x 14 x 14)
    vision_encoder.cls_token, .pos_embed, .img_pos_embed  (1, 1 + T*16*16, 1408), (1, 1 + 16*16, 1408)
    vision_encoder.blocks.N.norm1.weight                 RMSNorm (eps 1e-6)
    vision_encoder.blocks.N.attn.qkv.weight              no bias in the 1B model
    vision_encoder.blocks.N.attn.{q_norm,k_norm}.weight  RMSNorm over all heads (qk-normalisation)
    vision_encoder.blocks.N.attn.proj.{weight,bias}
    vision_encoder.blocks.N.ls1.gamma, .ls2.gamma        LayerScale
    vision_encoder.blocks.N.norm2.weight, .mlp.fc1/.fc2.{weight,bias}
    vision_encoder.clip_projector.norm1_{q,k,v}.{weight,bias}            AttentionPoolingBlock
    vision_encoder.clip_projector.cross_attn.{q,k,v}.weight, .{q,k,v}_bias, .proj.{weight,bias}
    text_encoder.bert.embeddings.*, text_encoder.bert.encoder.layer.N.*   BERT-large
    vision_proj.{weight,bias} (768 -> 512), text_proj.{weight,bias} (1024 -> 512)

Keys the feature extractor does not use (the CLIP-distillation decoders ``clip_decoder.*``,
``final_clip_decoder.*``, ``clip_pos_embed``, ``clip_img_pos_embed``, the MLM head
``text_encoder.cls.*``, the fusion layers with cross-attention, ``itm_head``, ``temp``) are skipped.
A checkpoint made for another number of frames or image size gets its position embedding
interpolated exactly as the official ``interpolate_pos_embed_internvideo2`` does (linear in time,
bicubic in space).

Architecture (the defaults of :class:`InternVideo2Config` are the official 1B stage-2 model): a
pre-norm ViT over spatio-temporal 14x14 patches of ``num_frames`` frames at 224 px, 40 blocks of
width 1408, 16 heads, MLP ratio 48/11 (6144), RMSNorm, qk-normalisation, LayerScale; its final
token sequence is pooled by ``clip_projector``, an attention-pooling block whose query is the
mean token (output 768, the "AdaptivePool" of the SDST paper). The released model was trained with
flash-attn's fused MLP, whose activation is the tanh approximation of GELU
(``mlp_activation="gelu_tanh"``). The text encoder is BERT-large (``bert-large-uncased``
tokenizer) of which the first ``fusion_layer`` = 19 of 24 layers form the text-only encoder (the
rest are video-text fusion layers); the sentence vector is its CLS token.

Features:

- single layer (``layers=None``): ``vision_proj(clip_projector(final tokens))`` (512, the joint
  video-text space of retrieval); text ``pooler_output`` = ``text_proj(CLS)`` (512),
  ``last_hidden_state`` = the tokens of text layer 19 (1024);
- layered (``layers=[37, 38, 39, 40]``, SDST's choice): the tokens of each selected block pooled by
  ``pool``: ``"attn"`` (default) re-uses the frozen final ``clip_projector`` at every layer (SDST,
  section 4: V~_l = AdaptivePool(V^_l), width 768), ``"cls"`` the CLS token (1408), ``"avg"`` the
  mean of the patch tokens (1408); text ``features`` = the tokens of the selected text layers
  (default the last K of the 19), ``(K, L, 1024)``.

Each clip of ``clip_len`` seconds is one input of ``num_frames`` frames (4 for the ``f4``
checkpoint), resized to 224 x 224 (bilinear, no crop, as the official demo) and normalised with the
ImageNet mean and std.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from momentkit.errors import InputError
from momentkit.video.backbones.base import (
    VideoBackbone,
    freeze,
    normalize_pixels,
    resolve_device,
    resolve_dtype,
    resolve_layers,
)
from momentkit.video.backbones.registry import register_backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLS = ("attn", "cls", "avg")
DEFAULT_REPO = "OpenGVLab/InternVideo2-Stage2_1B-224p-f4"
DEFAULT_FILE = "InternVideo2-stage2_1b-224p-f4.pt"
CONFIG_NAME = "internvideo2_config.json"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")

# Official keys with no part in feature extraction (prefixes, after unwrapping).
IGNORED_PREFIXES = (
    "vision_encoder.clip_decoder.",
    "vision_encoder.final_clip_decoder.",
    "vision_encoder.clip_pos_embed",
    "vision_encoder.clip_img_pos_embed",
    "text_encoder.cls.",
    "text_encoder.bert.pooler.",
    "itm_head.",
    "temp",
    "clip_teacher.",
)


# ----------------------------------------------------------------------------- config
@dataclass
class InternVideo2Config:
    """Architecture of the model; the defaults are the official InternVideo2-1B stage-2 model."""

    img_size: int = 224
    patch_size: int = 14
    num_frames: int = 4
    tubelet_size: int = 1
    embed_dim: int = 1408
    depth: int = 40
    num_heads: int = 16
    mlp_ratio: float = 48 / 11
    qkv_bias: bool = False
    qk_normalization: bool = True
    init_values: float = 1e-5  # LayerScale; 0 disables it
    mlp_activation: str = "gelu_tanh"  # flash-attn FusedMLP's GELU; "gelu" for the exact one
    sep_image_video_pos_embed: bool = True
    attn_pool_num_heads: int = 16
    clip_embed_dim: int = 768
    # text encoder: BERT, of which the first `text_num_layers` (= fusion_layer) layers run on text
    vocab_size: int = 30522
    text_hidden_size: int = 1024
    text_num_layers: int = 19
    text_num_heads: int = 16
    text_intermediate_size: int = 4096
    text_max_position_embeddings: int = 512
    text_type_vocab_size: int = 2
    text_layer_norm_eps: float = 1e-12
    text_pad_token_id: int = 0
    # joint space
    joint_dim: int = 512
    tokenizer: str = "bert-large-uncased"
    max_text_len: int = 40

    @classmethod
    def from_dict(cls, d: dict, source: str | os.PathLike | None = None) -> InternVideo2Config:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"model_type", "architecture"})
        if unknown:
            raise InputError(f"unknown InternVideo2 config field(s): {', '.join(unknown)}", path=source)
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return {"model_type": "internvideo2", **asdict(self)}

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


# ----------------------------------------------------------------------------- vision modules
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # in float32, as the official force_fp32
        return (x.float() * self.gamma.float()).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, qk_normalization: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.qk_normalization = qk_normalization
        if qk_normalization:
            self.q_norm = RMSNorm(dim)
            self.k_norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, c).unbind(2)  # each (B, N, C), heads contiguous in C
        if self.qk_normalization:  # normalised over all heads together, as the official code
            q, k = self.q_norm(q), self.k_norm(k)
        h = self.num_heads
        q, k, v = (t.view(b, n, h, c // h).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale head_dim ** -0.5
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.approximate = {"gelu_tanh": "tanh", "gelu": "none"}[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))


class Block(nn.Module):
    def __init__(self, cfg: InternVideo2Config) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = RMSNorm(d)
        self.attn = Attention(d, cfg.num_heads, cfg.qkv_bias, cfg.qk_normalization)
        self.ls1 = LayerScale(d, cfg.init_values) if cfg.init_values else nn.Identity()
        self.norm2 = RMSNorm(d)
        self.mlp = Mlp(d, cfg.mlp_hidden, cfg.mlp_activation)
        self.ls2 = LayerScale(d, cfg.init_values) if cfg.init_values else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: InternVideo2Config) -> None:
        super().__init__()
        p, t = cfg.patch_size, cfg.tubelet_size
        self.proj = nn.Conv3d(3, cfg.embed_dim, kernel_size=(t, p, p), stride=(t, p, p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W) -> (B, T*h*w, C)
        return self.proj(x).flatten(2).transpose(1, 2)


class CrossAttention(nn.Module):
    """The official ``CrossAttention``: bias-free q/k/v projections plus separate ``*_bias``."""

    def __init__(self, dim: int, num_heads: int, out_dim: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.k_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.k_bias = self.v_bias = None
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q = F.linear(x, self.q.weight, self.q_bias).view(b, n, h, c // h).transpose(1, 2)
        k = F.linear(k, self.k.weight, self.k_bias).view(b, k.shape[1], h, c // h).transpose(1, 2)
        v = F.linear(v, self.v.weight, self.v_bias).view(b, v.shape[1], h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class AttentionPoolingBlock(nn.Module):
    """``clip_projector``: one query (the mean token) attends over all tokens -> ``(B, out_dim)``."""

    def __init__(self, dim: int, num_heads: int, out_dim: int) -> None:
        super().__init__()
        self.norm1_q = nn.LayerNorm(dim, eps=1e-5)
        self.norm1_k = nn.LayerNorm(dim, eps=1e-5)
        self.norm1_v = nn.LayerNorm(dim, eps=1e-5)
        self.cross_attn = CrossAttention(dim, num_heads, out_dim, qkv_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.norm1_q(x.mean(1, keepdim=True))
        return self.cross_attn(q, self.norm1_k(x), self.norm1_v(x)).squeeze(1)


class VisionEncoder(nn.Module):
    """``PretrainInternVideo2`` without the training-only CLIP decoders."""

    def __init__(self, cfg: InternVideo2Config) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        t = cfg.num_frames // cfg.tubelet_size
        n_img = cfg.grid * cfg.grid
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + t * n_img, d))
        if cfg.sep_image_video_pos_embed:
            self.img_pos_embed = nn.Parameter(torch.zeros(1, 1 + n_img, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.clip_projector = AttentionPoolingBlock(d, cfg.attn_pool_num_heads, cfg.clip_embed_dim)

    def init_weights(self) -> None:
        """Random initialisation as the official model (sin-cos position embeddings)."""
        cfg = self.cfg
        self.pos_embed.data.copy_(sincos_pos_embed_3d(cfg.embed_dim, cfg.grid, cfg.num_frames // cfg.tubelet_size))
        if cfg.sep_image_video_pos_embed:
            self.img_pos_embed.data.copy_(sincos_pos_embed_3d(cfg.embed_dim, cfg.grid, 1))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> tokens ``(B, 1 + T*h*w, C)`` with the CLS token and positions.

        A single frame (T = 1) of a video model gets the image position embedding
        (``img_pos_embed``; without one, the video embedding averaged over time), as officially."""
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        n_img = self.cfg.grid * self.cfg.grid
        if x.shape[1] == self.pos_embed.shape[1]:
            pos = self.pos_embed
        elif x.shape[1] == 1 + n_img:
            if self.cfg.sep_image_video_pos_embed:
                pos = self.img_pos_embed
            else:
                t = (self.pos_embed.shape[1] - 1) // n_img
                pos = torch.cat([self.pos_embed[:, :1],
                                 self.pos_embed[:, 1:].reshape(1, t, n_img, -1).mean(1)], dim=1)
        else:
            raise ValueError(f"{x.shape[1] - 1} patches do not match the position embedding "
                             f"({self.pos_embed.shape[1] - 1}); give {self.cfg.num_frames} frames "
                             f"of {self.cfg.img_size} px")
        return x + pos.to(x.dtype)

    def pool(self, x: torch.Tensor, pool: str) -> torch.Tensor:
        if pool == "attn":
            return self.clip_projector(x)
        if pool == "cls":
            return x[:, 0]
        if pool == "avg":
            return x[:, 1:].mean(1)
        raise ValueError(f"unknown pooling {pool!r}")

    def forward(self, x: torch.Tensor, layers: Sequence[int] | None = None, pool: str = "attn") -> torch.Tensor:
        """Pooled tokens of the given 1-based ``layers`` ``(B, K, D)``; ``layers=None``: the final
        layer pooled by ``clip_projector`` ``(B, clip_embed_dim)``. Blocks after the deepest
        requested layer are not run."""
        x = self.embed(x)
        wanted = tuple(layers) if layers is not None else (len(self.blocks),)
        order = {layer: i for i, layer in enumerate(wanted)}
        outs: list[torch.Tensor | None] = [None] * len(wanted)
        for n, blk in enumerate(self.blocks[: max(wanted)], start=1):
            x = blk(x)
            if n in order:
                outs[order[n]] = self.pool(x, pool if layers is not None else "attn")
        if layers is None:
            return outs[0]
        return torch.stack(outs, dim=1)


def sincos_pos_embed_3d(dim: int, grid: int, t: int) -> torch.Tensor:
    """The official 3D sin-cos embedding with a leading zero row for CLS: ``(1, 1 + t*grid*grid, dim)``.

    A quarter of the channels encode time, three quarters space (half height, half width), in the
    [T, H, W] token order."""

    def one_d(d: int, pos: torch.Tensor) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
        out = pos.double().reshape(-1, 1) * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    d_t, d_s = dim // 4, dim // 4 * 3
    gw, gh = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="xy")
    spatial = torch.cat([one_d(d_s // 2, gw.reshape(-1)), one_d(d_s // 2, gh.reshape(-1))], dim=1)
    temporal = one_d(d_t, torch.arange(t))
    emb = torch.cat([temporal[:, None].expand(t, grid * grid, d_t), spatial[None].expand(t, -1, d_s)], dim=-1)
    emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb.reshape(-1, dim)], dim=0)
    return emb[None].float()


# ----------------------------------------------------------------------------- text + model
class TextEncoder(nn.Module):
    """Holds the BERT text-only layers as ``bert`` (the checkpoint's ``text_encoder.bert.*``)."""

    def __init__(self, cfg: InternVideo2Config) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        bert_cfg = BertConfig(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.text_hidden_size,
            num_hidden_layers=cfg.text_num_layers,
            num_attention_heads=cfg.text_num_heads,
            intermediate_size=cfg.text_intermediate_size,
            max_position_embeddings=cfg.text_max_position_embeddings,
            type_vocab_size=cfg.text_type_vocab_size,
            layer_norm_eps=cfg.text_layer_norm_eps,
            pad_token_id=cfg.text_pad_token_id,
            hidden_act="gelu",
        )
        self.bert = BertModel(bert_cfg, add_pooling_layer=False)


class InternVideo2Stage2(nn.Module):
    """The parts of ``InternVideo2_Stage2`` that produce features, under the official names."""

    def __init__(self, cfg: InternVideo2Config, *, empty_vision: bool = False) -> None:
        """``empty_vision``: allocate the vision encoder without initialising it (its weights are
        about to be loaded; saves initialising a billion parameters)."""
        super().__init__()
        self.cfg = cfg
        if empty_vision:
            with torch.device("meta"):
                vision = VisionEncoder(cfg)
            self.vision_encoder = vision.to_empty(device="cpu")
        else:
            self.vision_encoder = VisionEncoder(cfg)
            self.vision_encoder.init_weights()
        self.text_encoder = TextEncoder(cfg)
        self.vision_proj = nn.Linear(cfg.clip_embed_dim, cfg.joint_dim)
        self.text_proj = nn.Linear(cfg.text_hidden_size, cfg.joint_dim)


# ----------------------------------------------------------------------------- checkpoints
def _unwrap(obj) -> dict:
    for key in ("module", "model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return _unwrap(obj[key])
    if not isinstance(obj, dict):
        raise InputError(f"expected a state dict, found {type(obj).__name__}")
    return obj


def read_state_dict(path: str | os.PathLike, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or torch (``.pt``/``.pth``/``.bin``) file, unwrapped from
    ``{"module": ...}`` (DeepSpeed), ``{"model": ...}`` or ``{"state_dict": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint file not found", path=path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=weights_only)
    except Exception as e:  # pickle/zip/safetensors errors have no common base class
        hint = ("; it holds objects other than tensors: re-save its state dict, or load it with "
                "weights_only=False if you trust the file") if "weights_only" in str(e) else ""
        raise InputError(f"cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]}){hint}",
                         path=path) from None
    try:
        sd = _unwrap(sd)
    except InputError as e:
        raise InputError(e.message, path=path) from None
    out = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        k = k[len("module."):] if k.startswith("module.") else k
        if k.startswith("text_encoder.") and not k.startswith(("text_encoder.bert.", "text_encoder.cls.")):
            k = "text_encoder.bert." + k[len("text_encoder."):]  # saved from a bare BertModel
        out[k] = v
    return out


def interpolate_pos_embed(pos: torch.Tensor, t_new: int, grid_new: int, t_old: int | None = None) -> torch.Tensor:
    """Resize a ``(1, 1 + T*g*g, C)`` position embedding to ``t_new`` frames and a ``grid_new`` grid:
    linear in time, then bicubic in space, the CLS row kept (``interpolate_pos_embed_internvideo2``)."""
    c = pos.shape[-1]
    n = pos.shape[1] - 1
    if t_old is None:
        t_old = t_new
    g_old = int(round(math.sqrt(n // t_old)))
    if t_old * g_old * g_old != n:
        raise ValueError(f"position embedding of {n} tokens is not {t_old} frames of a square grid")
    cls_row, tokens = pos[:, :1], pos[:, 1:].float()
    if t_old != t_new:
        x = tokens.reshape(1, t_old, -1, c).permute(0, 2, 3, 1).reshape(-1, c, t_old)
        x = F.interpolate(x, size=t_new, mode="linear")
        tokens = x.reshape(1, -1, c, t_new).permute(0, 3, 1, 2).reshape(1, -1, c)
    if g_old != grid_new:
        x = tokens.reshape(t_new, g_old, g_old, c).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(grid_new, grid_new), mode="bicubic", align_corners=False)
        tokens = x.permute(0, 2, 3, 1).reshape(1, -1, c)
    return torch.cat([cls_row, tokens.to(pos.dtype)], dim=1)


def _ignored(key: str, cfg: InternVideo2Config) -> bool:
    if key.startswith(IGNORED_PREFIXES) or key.endswith("position_ids"):
        return True
    prefix = "text_encoder.bert.encoder.layer."
    if key.startswith(prefix):  # fusion layers (index >= fusion_layer) are not text-only
        return int(key[len(prefix):].split(".")[0]) >= cfg.text_num_layers
    return False


def load_checkpoint(model: InternVideo2Stage2, state_dict: dict[str, torch.Tensor],
                    source: str | os.PathLike | None = None) -> list[str]:
    """Load official weights into ``model``; returns the checkpoint keys that were not used.

    Every weight of ``model`` must be in the checkpoint with the right shape (the position
    embeddings are interpolated when only the number of frames or the image size differs);
    otherwise :class:`InputError` names what is missing.
    """
    cfg = model.cfg
    sd = dict(state_dict)
    t_new = cfg.num_frames // cfg.tubelet_size
    for name, frames in (("vision_encoder.pos_embed", None), ("vision_encoder.img_pos_embed", 1)):
        if name in sd and name in model.state_dict() and sd[name].shape != model.state_dict()[name].shape:
            n_old = sd[name].shape[1] - 1
            if frames is None:  # infer the checkpoint's frame count from its grid (same patching)
                g_ckpt = _grid_of(sd, cfg)
                frames = max(1, n_old // (g_ckpt * g_ckpt))
            try:
                sd[name] = interpolate_pos_embed(sd[name], t_new if name.endswith(".pos_embed") else 1,
                                                 cfg.grid, t_old=frames)
            except ValueError as e:
                raise InputError(f"cannot adapt '{name}': {e}", path=source) from None
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        raise InputError(f"checkpoint lacks {len(missing)} weight(s) of the InternVideo2 model, e.g. "
                         f"{', '.join(missing[:4])}", path=source)
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if wrong:
        raise InputError(f"checkpoint shapes do not match the configured model: {'; '.join(wrong[:4])}",
                         path=source)
    model.load_state_dict({k: sd[k] for k in own}, strict=True)
    return sorted(k for k in sd if k not in own and not _ignored(k, cfg))


def _grid_of(sd: dict, cfg: InternVideo2Config) -> int:
    """Patch grid side of a checkpoint, from its image position embedding if present."""
    img = sd.get("vision_encoder.img_pos_embed")
    if img is not None:
        return int(round(math.sqrt(img.shape[1] - 1)))
    return cfg.grid


# ----------------------------------------------------------------------------- backbone
@register_backbone("internvideo2")
class InternVideo2Backbone(VideoBackbone):
    default_model = DEFAULT_REPO
    interpolation = "BILINEAR"

    def __init__(
        self,
        model: InternVideo2Stage2,
        tokenizer,
        *,
        layers: Sequence[int] | None = None,
        text_layers: Sequence[int] | None = None,
        pool: str = "attn",
        max_text_len: int | None = None,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise InputError(f"unknown pooling {pool!r} for InternVideo2 (expected one of {', '.join(POOLS)})",
                             field="pool")
        cfg = model.cfg
        self.cfg = cfg
        self.model = freeze(model)
        self.tokenizer = tokenizer
        self.pool = pool
        self.frames_per_clip = cfg.num_frames
        self.frame_size = (cfg.img_size, cfg.img_size)
        self.layers = resolve_layers(layers, cfg.depth, "layers")
        if self.layers is not None and text_layers is None:
            text_layers = list(range(-len(self.layers), 0))
        self.text_layers = resolve_layers(text_layers, cfg.text_num_layers, "text_layers")
        if self.layers is None:
            self.video_dim = cfg.joint_dim
        else:
            self.video_dim = cfg.clip_embed_dim if pool == "attn" else cfg.embed_dim
        limit = cfg.text_max_position_embeddings
        self.max_text_len = min(limit, int(max_text_len or cfg.max_text_len))

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        *,
        layers: Sequence[int] | None = None,
        text_layers: Sequence[int] | None = None,
        pool: str = "attn",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_text_len: int | None = None,
        tokenizer: str | os.PathLike | None = None,
        weights_only: bool = True,
        **config_overrides,
    ) -> InternVideo2Backbone:
        """Build the model and load official weights.

        ``name_or_path``: a checkpoint file (``.pt``/``.pth``/``.bin``/``.safetensors``); a folder
        holding one weights file, optionally an ``internvideo2_config.json`` (fields of
        :class:`InternVideo2Config`; default: the 1B model) and tokenizer files; or a Hugging Face
        repository id (``OWNER/NAME``, or ``OWNER/NAME/FILE`` to pick the file; default file for the
        official repository: ``InternVideo2-stage2_1b-224p-f4.pt``). ``tokenizer``: where the BERT
        tokenizer comes from (default: the folder if it has one, else ``config.tokenizer``).
        ``config_overrides``: config fields to change, e.g. ``num_frames=8`` (the position embedding
        is interpolated).
        """
        from transformers import AutoTokenizer

        from momentkit.video.backbones.clip import load_hf

        weights, folder = _locate(name_or_path or cls.default_model)
        cfg_dict = {}
        if folder is not None and (folder / CONFIG_NAME).is_file():
            from momentkit.io import read_json

            cfg_dict = read_json(folder / CONFIG_NAME)
            if not isinstance(cfg_dict, dict):
                raise InputError("expected a JSON object", path=folder / CONFIG_NAME)
        cfg = InternVideo2Config.from_dict({**cfg_dict, **config_overrides}, source=folder)
        dev = resolve_device(device)
        model = InternVideo2Stage2(cfg, empty_vision=True)
        sd = read_state_dict(weights, weights_only=weights_only)
        load_checkpoint(model, sd, source=weights)
        del sd
        model = model.to(device=dev, dtype=resolve_dtype(dtype, dev))
        if tokenizer is None:
            has_tok = folder is not None and any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt"))
            tokenizer = folder if has_tok else cfg.tokenizer
        tok = load_hf(AutoTokenizer.from_pretrained, tokenizer, "InternVideo2 text tokenizer")
        return cls(model, tok, layers=layers, text_layers=text_layers, pool=pool, max_text_len=max_text_len)

    def describe(self) -> dict:
        return {**super().describe(), "pool": self.pool if self.layered else "projection",
                "num_frames": self.cfg.num_frames}

    # ------------------------------------------------------------------ video
    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(frames).to(self.device)
        s = self.cfg.img_size
        if tuple(x.shape[1:3]) != (s, s):
            x = F.interpolate(x.permute(0, 3, 1, 2).float(), size=(s, s), mode="bilinear", align_corners=False,
                              antialias=True).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return normalize_pixels(x, IMAGENET_MEAN, IMAGENET_STD).to(self.dtype)

    def _encode_clips(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.transpose(1, 2)  # (B, F, 3, S, S) -> (B, 3, F, S, S)
        if self.layers is None:
            return self.model.vision_proj(self.model.vision_encoder(x))
        return self.model.vision_encoder(x, self.layers, self.pool)

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> list[dict[str, np.ndarray]]:
        texts = list(texts)
        if not texts:
            return []
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_text_len,
                             return_tensors="pt")
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        out = self.model.text_encoder.bert(input_ids=ids, attention_mask=mask,
                                           output_hidden_states=self.text_layers is not None)
        last = out.last_hidden_state
        pooled = self.model.text_proj(last[:, 0]).float().cpu().numpy()
        layered = None
        if self.text_layers is not None:
            layered = torch.stack([out.hidden_states[layer] for layer in self.text_layers], 1).float().cpu().numpy()
        last = last.float().cpu().numpy()
        rows = []
        for i, n in enumerate(mask.sum(1).cpu().numpy()):
            row = {"last_hidden_state": last[i, :n], "pooler_output": pooled[i]}
            if layered is not None:
                row["features"] = layered[i, :, :n]
            rows.append(row)
        return rows


def _locate(name_or_path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(weights file, folder with config/tokenizer or None) for a path or a Hugging Face id."""
    p = Path(name_or_path)
    if p.is_file():
        return p, p.parent if (p.parent / CONFIG_NAME).is_file() else None
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES))
        if len(files) != 1:
            found = ", ".join(f.name for f in files) or "none"
            raise InputError(f"expected exactly one weights file ({'/'.join(WEIGHT_SUFFIXES)}) in this folder, "
                             f"found {found}", path=p)
        return files[0], p
    name = str(name_or_path)
    parts = name.split("/")
    if len(parts) < 2 or os.path.isabs(name) or name.startswith("."):
        raise InputError("InternVideo2 checkpoint not found (neither a file, a folder nor a Hugging Face id)",
                         path=name)
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:]) or None
    try:
        from huggingface_hub import hf_hub_download, list_repo_files

        if filename is None:
            if repo == DEFAULT_REPO:
                filename = DEFAULT_FILE
            else:
                cands = [f for f in list_repo_files(repo) if f.endswith(WEIGHT_SUFFIXES)]
                if len(cands) != 1:
                    raise InputError(f"cannot tell which weights file of {repo} to use ({', '.join(cands) or 'none'}); "
                                     f"name it as {repo}/FILE", path=name)
                filename = cands[0]
        local = Path(hf_hub_download(repo, filename))
    except InputError:
        raise
    except Exception as e:  # hub errors: offline, gated repository, missing file
        raise InputError(f"cannot download {repo}/{filename or ''} from the Hugging Face hub "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})", path=name) from None
    cfg_file = None
    try:
        cfg_file = Path(hf_hub_download(repo, CONFIG_NAME))
    except Exception:
        pass
    return local, (cfg_file.parent if cfg_file is not None and cfg_file.parent == local.parent else None)


def save_pretrained(model: InternVideo2Stage2, folder: str | os.PathLike, tokenizer=None,
                    filename: str = "model.safetensors") -> Path:
    """Write ``internvideo2_config.json`` + weights (official key names) [+ tokenizer] into ``folder``."""
    from momentkit.io import atomic_save, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CONFIG_NAME, model.cfg.to_dict())
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if filename.endswith(".safetensors"):
        from safetensors.torch import save_file

        atomic_save(folder / filename, lambda tmp: save_file(sd, tmp))
    else:
        atomic_save(folder / filename, lambda tmp: torch.save(sd, tmp))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return folder


__all__ = [
    "AttentionPoolingBlock",
    "Block",
    "DEFAULT_FILE",
    "DEFAULT_REPO",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InternVideo2Backbone",
    "InternVideo2Config",
    "InternVideo2Stage2",
    "POOLS",
    "VisionEncoder",
    "interpolate_pos_embed",
    "load_checkpoint",
    "read_state_dict",
    "save_pretrained",
    "sincos_pos_embed_3d",
]
