"""CLIP (transformers ``CLIPModel``) as a frozen frame-level backbone.

Video: frames are decoded with their shorter side at the model's ``image_size`` (bicubic, as
OpenAI's preprocessing), centre-cropped to a square, scaled to [0, 1] and normalised with CLIP's
mean and std, all in torch on the model's device. Each frame is embedded on its own and the frames
of a clip are averaged (the extraction job decodes ``fps`` frames per second and groups them into
clips of ``clip_len`` seconds; one frame per 2-second clip reproduces the Moment-DETR / QVHighlights
CLIP features).

- single layer (``layers=None``): the image embedding of the joint space,
  ``visual_projection(post_layernorm(CLS of the last layer))``, width ``projection_dim``;
- layered (``layers=[...]``, 1-based block numbers, negatives from the end): one row per selected
  vision layer, the layer's tokens pooled by ``pool``:
  ``"cls"`` the CLS token (width ``hidden_size``, default), ``"avg"`` the mean of the patch tokens
  (``hidden_size``), ``"proj"`` the CLS token passed through the frozen final ``post_layernorm`` and
  ``visual_projection`` (``projection_dim``; the final head re-used at every layer).

Text: ``last_hidden_state`` = the final-layer-normalised tokens ``(L, hidden)`` including the start
and end tokens, ``pooler_output`` = the text embedding of the joint space (``text_projection`` of
the end token), and for layered output ``features`` = the raw outputs of the selected text layers
``(K, L, hidden)`` (default: the last K layers, K = the number of vision layers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from momentkit.errors import InputError
from momentkit.video.backbones.base import (
    VideoBackbone,
    center_crop,
    freeze,
    normalize_pixels,
    resolve_device,
    resolve_dtype,
    resolve_layers,
)
from momentkit.video.backbones.registry import register_backbone

# OpenAI CLIP's preprocessing constants
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
POOLS = ("cls", "avg", "proj")


def load_hf(loader, name_or_path: str | os.PathLike, what: str):
    """``loader(name_or_path)`` with transformers/hub failures turned into an InputError."""
    try:
        return loader(str(name_or_path))
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load the {what} ({first})", path=name_or_path) from None


@register_backbone("clip")
class CLIPBackbone(VideoBackbone):
    default_model = "openai/clip-vit-base-patch32"
    interpolation = "BICUBIC"
    frames_per_clip = None

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        layers: Sequence[int] | None = None,
        text_layers: Sequence[int] | None = None,
        pool: str = "cls",
        max_text_len: int | None = None,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise InputError(f"unknown pooling {pool!r} for CLIP (expected one of {', '.join(POOLS)})", field="pool")
        self.model = freeze(model)
        self.tokenizer = tokenizer
        vcfg, tcfg = model.config.vision_config, model.config.text_config
        self.image_size = int(vcfg.image_size)
        self.frame_size = self.image_size
        self.pool = pool
        self.layers = resolve_layers(layers, int(vcfg.num_hidden_layers), "layers")
        if self.layers is not None and text_layers is None:
            text_layers = list(range(-len(self.layers), 0))
        self.text_layers = resolve_layers(text_layers, int(tcfg.num_hidden_layers), "text_layers")
        if self.layers is None:
            self.video_dim = int(model.config.projection_dim)
        else:
            self.video_dim = int(model.config.projection_dim if pool == "proj" else vcfg.hidden_size)
        limit = int(tcfg.max_position_embeddings)
        self.max_text_len = min(limit, int(max_text_len)) if max_text_len else limit

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        *,
        layers: Sequence[int] | None = None,
        text_layers: Sequence[int] | None = None,
        pool: str = "cls",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_text_len: int | None = None,
    ) -> CLIPBackbone:
        """Load a ``CLIPModel`` and its tokenizer from a Hugging Face id or a local folder."""
        from transformers import AutoTokenizer, CLIPModel

        name_or_path = name_or_path or cls.default_model
        dev = resolve_device(device)
        model = load_hf(CLIPModel.from_pretrained, name_or_path, "CLIP model")
        tokenizer = load_hf(AutoTokenizer.from_pretrained, name_or_path, "CLIP tokenizer")
        model = model.to(device=dev, dtype=resolve_dtype(dtype, dev))
        return cls(model, tokenizer, layers=layers, text_layers=text_layers, pool=pool, max_text_len=max_text_len)

    def describe(self) -> dict:
        return {**super().describe(), "pool": self.pool if self.layered else "projection",
                "model": getattr(self.model.config, "_name_or_path", None)}

    # ------------------------------------------------------------------ video
    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(frames).to(self.device).permute(0, 3, 1, 2)
        s = self.image_size
        if min(x.shape[-2:]) != s:  # frames not decoded at the model's size: resize here
            h, w = x.shape[-2:]
            size = (s, max(1, round(w * s / h))) if h <= w else (max(1, round(h * s / w)), s)
            x = nn.functional.interpolate(x.float(), size=size, mode="bicubic", antialias=True,
                                          align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
        x = center_crop(x, s).permute(0, 2, 3, 1)
        return normalize_pixels(x, CLIP_MEAN, CLIP_STD).to(self.dtype)

    def _encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        vision = self.model.vision_model
        if self.layers is None:
            out = vision(pixel_values=pixels)
            return self.model.visual_projection(out.pooler_output)
        out = vision(pixel_values=pixels, output_hidden_states=True)
        # hidden_states[0] is the embedding output; hidden_states[l] the output of block l
        sel = torch.stack([out.hidden_states[layer] for layer in self.layers], dim=1)  # (N, K, P, C)
        if self.pool == "cls":
            return sel[:, :, 0]
        if self.pool == "avg":
            return sel[:, :, 1:].mean(dim=2)
        return self.model.visual_projection(vision.post_layernorm(sel[:, :, 0]))

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
        out = self.model.text_model(input_ids=ids, attention_mask=mask,
                                    output_hidden_states=self.text_layers is not None)
        pooled = self.model.text_projection(out.pooler_output).float().cpu().numpy()
        last = out.last_hidden_state.float().cpu().numpy()
        layered = None
        if self.text_layers is not None:
            layered = torch.stack([out.hidden_states[layer] for layer in self.text_layers], 1).float().cpu().numpy()
        lengths = mask.sum(1).cpu().numpy()
        rows = []
        for i, n in enumerate(lengths):
            row = {"last_hidden_state": last[i, :n], "pooler_output": pooled[i]}
            if layered is not None:
                row["features"] = layered[i, :, :n]
            rows.append(row)
        return rows


__all__ = ["CLIPBackbone", "CLIP_MEAN", "CLIP_STD", "POOLS", "load_hf"]
