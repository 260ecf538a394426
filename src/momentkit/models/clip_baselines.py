"""Baselines of VicTR in the same task (``classification``), the families of the thesis's Fig. 5.3:

- ``clip_zero_shot``: CLIP zero-shot with mean-pooled frames, ``logit^x = s * cos(mean_t e_img^t, e_txt^x)``.
  No training is needed: its one parameter is the temperature ``s`` (CLIP's ``logit_scale``, 100), which
  changes no ranking, so the accuracy of a run is the training-free one (train it for one epoch to
  get a run folder for ``momentkit test`` / ``classify``).
- ``linear_probe``: a linear classifier on the mean-pooled (L2-normalised) frame embeddings, one output
  per training class (the text is discarded, as EVL [99]); cannot score another vocabulary.
- ``temporal_transformer``: "text unchanged" (CLIP4Clip / ActionCLIP): learnable temporal position
  embeddings, ``layers`` pre-norm transformer layers over the frames, the mean over time plus the mean of
  the input frames (ActionCLIP's residual), ``logit^x = s * cos(e_vid, e_txt^x)`` with the class texts
  fixed and ``s`` learnable (initialised at ``1 / 0.07``).

Batches: :class:`momentkit.models.contract.ClassificationBatch`; rows as :mod:`momentkit.models.victr`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from momentkit.errors import InputError
from momentkit.models.registry import register_model
from momentkit.models.victr import (
    LogitScale,
    _batch_inputs,
    affinity,
    classification_loss,
    classification_rows,
)


class _Classifier(nn.Module):
    """``forward`` gives ``{"logits": (B, V, K)}``; the loss and rows every baseline shares."""

    def video_logits(self, frames: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    needs_text = True

    def forward(self, batch: dict) -> dict:
        feats = _batch_inputs(batch, text_needed=self.needs_text)
        b, v, t, d = feats.shape
        logits = self.video_logits(feats.reshape(b * v, t, d), batch.get("class_text"))
        return {"logits": logits.reshape(b, v, -1)}

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cls = classification_loss(outputs["logits"], batch["labels"], bool(batch.get("multi_label", False)))
        return cls, {"loss_cls": cls.detach()}

    @torch.no_grad()
    def postprocess(self, outputs: dict, batch: dict, **_) -> list[dict]:
        return classification_rows(outputs, batch)


def _joint_space(input_dim: int, text_dim: int) -> None:
    if input_dim and text_dim and input_dim != text_dim:
        raise InputError(f"frame embeddings ({input_dim}) and class texts ({text_dim}) must share one joint space "
                         "(same width)", field="text_dim")


# ----------------------------------------------------------------------------- CLIP zero-shot
@dataclass
class ClipZeroShotConfig:
    input_dim: int = 0
    text_dim: int = 0
    logit_scale: float = 100.0

    def __post_init__(self) -> None:
        _joint_space(self.input_dim, self.text_dim)


class ClipZeroShot(_Classifier):
    def __init__(self, cfg: ClipZeroShotConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = LogitScale(cfg.logit_scale)

    def video_logits(self, frames, text):
        return self.scale() * affinity(frames.mean(1)[:, None], text.to(frames.dtype))[:, 0]


@register_model("clip_zero_shot", config=ClipZeroShotConfig, task="classification")
def clip_zero_shot(**options) -> ClipZeroShot:
    """CLIP zero-shot on mean-pooled frames (no training needed)."""
    from momentkit.models.registry import model_config

    return ClipZeroShot(model_config("clip_zero_shot", options))


# ----------------------------------------------------------------------------- linear probe
@dataclass
class LinearProbeConfig:
    input_dim: int = 0
    num_classes: int = 0
    normalize: bool = True  # L2-normalise the pooled frame embedding first
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.dropout < 1:
            raise InputError(f"must be in [0, 1), got {self.dropout}", field="dropout")

    @property
    def fixed_vocabulary(self) -> bool:
        return True


class LinearProbe(_Classifier):
    needs_text = False

    def __init__(self, cfg: LinearProbeConfig) -> None:
        super().__init__()
        if cfg.input_dim < 1 or cfg.num_classes < 1:
            raise InputError("input_dim and num_classes must be set (they come from the data)",
                             field="model.input_dim")
        self.cfg = cfg
        self.drop = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(cfg.input_dim, cfg.num_classes)

    def video_logits(self, frames, text):
        x = frames.mean(1)
        if self.cfg.normalize:
            x = F.normalize(x, dim=-1, eps=1e-6)
        return self.fc(self.drop(x))


@register_model("linear_probe", config=LinearProbeConfig, task="classification")
def linear_probe(**options) -> LinearProbe:
    """A linear classifier of mean-pooled frame embeddings (one output per training class)."""
    from momentkit.models.registry import model_config

    return LinearProbe(model_config("linear_probe", options))


# ----------------------------------------------------------------------------- temporal transformer
@dataclass
class TemporalTransformerConfig:
    input_dim: int = 0
    text_dim: int = 0
    frames: int = 0
    layers: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _joint_space(self.input_dim, self.text_dim)
        if self.layers < 1 or self.heads < 1:
            raise InputError("layers and heads must be >= 1", field="layers")
        if self.input_dim and self.input_dim % self.heads:
            raise InputError(f"the width {self.input_dim} is not divisible by {self.heads} heads", field="heads")


class TemporalTransformer(_Classifier):
    def __init__(self, cfg: TemporalTransformerConfig) -> None:
        super().__init__()
        if cfg.input_dim < 1:
            raise InputError("input_dim must be set (it comes from the data)", field="model.input_dim")
        self.cfg = cfg
        d = cfg.input_dim
        self.pos = nn.Parameter(torch.zeros(max(cfg.frames, 1), d))
        layer = nn.TransformerEncoderLayer(d, cfg.heads, round(d * cfg.mlp_ratio), cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.scale = LogitScale()

    def video_logits(self, frames, text):
        if frames.shape[1] > self.pos.shape[0]:
            raise InputError(f"{frames.shape[1]} frames per view, the model was built for {self.pos.shape[0]}",
                             field="data.frames")
        x = self.encoder(frames + self.pos[: frames.shape[1]])
        video = x.mean(1) + frames.mean(1)
        return self.scale() * affinity(video[:, None], text.to(frames.dtype))[:, 0]


@register_model("temporal_transformer", config=TemporalTransformerConfig, task="classification")
def temporal_transformer(**options) -> TemporalTransformer:
    """A temporal transformer over the frames, scored against the fixed class texts."""
    from momentkit.models.registry import model_config

    return TemporalTransformer(model_config("temporal_transformer", options))
