"""Evaluation of edits as in Sec. 6.4 and its appendix: CLIP-score, temporal consistency, latency.

- **CLIP-score**: cosine similarity between the CLIP image embedding of every edited frame and the
  CLIP text embedding of the target prompt, averaged over frames (the thesis aggregates over all
  frames and sequences; reported as a plain cosine, e.g. 0.334, not x100).
- **Temporal consistency**: cosine similarity between the CLIP image embeddings of consecutive
  frames, averaged over the pairs.
- **Latency**: wall-clock seconds per phase, inversion and generation separately
  (:attr:`momentkit.edit.pipeline.EditResult.latency`).

The CLIP model is loaded by name (Hugging Face id or folder; default ``openai/clip-vit-large-patch14``,
the ViT-L/14 FateZero and ControlVideo evaluate with) through
:class:`momentkit.video.backbones.clip.CLIPBackbone`: frames resized (shorter side, bicubic),
centre-cropped and normalised as OpenAI's preprocessing. Quality figures need real weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"


@dataclass
class ClipMetrics:
    clip_score: float
    temporal_consistency: float | None  # None for a single frame

    def as_dict(self) -> dict:
        return {"clip_score": self.clip_score, "temporal_consistency": self.temporal_consistency}


class ClipEvaluator:
    """CLIP-score and temporal consistency with one CLIP model."""

    def __init__(self, backbone) -> None:
        self.backbone = backbone

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike | None = None, *, device="cpu") -> ClipEvaluator:
        from momentkit.video.backbones.clip import CLIPBackbone

        return cls(CLIPBackbone.from_pretrained(name or DEFAULT_CLIP_MODEL, device=device, dtype="float32"))

    @torch.no_grad()
    def image_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        """L2-normalised image embeddings ``(F, D)`` of ``(F, H, W, 3)`` uint8 frames."""
        pixels = self.backbone.preprocess(torch.as_tensor(np.asarray(frames, dtype=np.uint8)))
        emb = self.backbone._encode_frames(pixels).float()
        return torch.nn.functional.normalize(emb, dim=-1).cpu()

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        row = self.backbone.encode_text([prompt])[0]
        return torch.nn.functional.normalize(torch.as_tensor(row["pooler_output"]).float(), dim=-1)

    def __call__(self, frames: np.ndarray, prompt: str) -> ClipMetrics:
        img = self.image_embeddings(frames)
        return ClipMetrics(clip_score(img, self.text_embedding(prompt)), temporal_consistency(img))


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> float:
    """Mean cosine between every frame's image embedding ``(F, D)`` and the text embedding ``(D,)``."""
    img = torch.nn.functional.normalize(image_emb.float(), dim=-1)
    txt = torch.nn.functional.normalize(text_emb.float(), dim=-1)
    return float((img @ txt).mean())


def temporal_consistency(image_emb: torch.Tensor) -> float | None:
    """Mean cosine between the image embeddings of consecutive frames; None for one frame."""
    if image_emb.shape[0] < 2:
        return None
    img = torch.nn.functional.normalize(image_emb.float(), dim=-1)
    return float((img[1:] * img[:-1]).sum(-1).mean())


__all__ = ["ClipEvaluator", "ClipMetrics", "DEFAULT_CLIP_MODEL", "clip_score", "temporal_consistency"]
