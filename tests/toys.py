"""Toy models of each task for engine tests: a few thousand weights, deterministic on the CPU; each
follows :class:`momentkit.models.contract.Model`. Tests register them under names of their own."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass
class ToyGroundingConfig:
    video_dim: int = 0  # filled from the data by the runner
    text_dim: int = 0
    hidden: int = 8


class ToyGrounding(nn.Module):
    """One span per query from pooled video + text; per-clip saliency from a linear layer."""

    def __init__(self, cfg: ToyGroundingConfig) -> None:
        super().__init__()
        self.v, self.t = nn.Linear(cfg.video_dim, cfg.hidden), nn.Linear(cfg.text_dim, cfg.hidden)
        self.span, self.sal = nn.Linear(cfg.hidden, 2), nn.Linear(cfg.hidden, 1)

    def forward(self, batch):
        v = self.v(batch["video_feats"])  # (B, T, H)
        t = self.t(batch["text_feats"]).mean(1, keepdim=True)  # (B, 1, H)
        pooled = (v * batch["video_mask"][..., None]).sum(1) / batch["video_mask"].sum(1, keepdim=True)
        return {"pred_spans": self.span(pooled + t[:, 0]).sigmoid()[:, None],  # (B, 1, 2) cxw
                "pred_logits": torch.zeros(v.shape[0], 1, 2), "saliency_scores": self.sal(v + t)[..., 0]}

    def loss(self, outputs, batch):
        first = torch.stack([s[0] if len(s) else torch.tensor([0.5, 1.0]) for s in batch["spans"]])
        span = (outputs["pred_spans"][:, 0] - first).abs().mean()
        return span, {"loss_span": span.detach()}

    def postprocess(self, outputs, batch, **options):
        from momentkit.models.postprocess import postprocess

        return postprocess(outputs, batch, **options)


@dataclasses.dataclass
class ToyDetectionConfig:
    input_dim: int = 0  # filled from the data
    num_classes: int = 0


class ToyDetection(nn.Module):
    """Per-step class logits; predicts every video's first second as class 0."""

    def __init__(self, cfg: ToyDetectionConfig) -> None:
        super().__init__()
        self.head = nn.Linear(cfg.input_dim, cfg.num_classes)

    def forward(self, batch):
        return {"logits": self.head(batch["feats"])}

    def loss(self, outputs, batch):
        loss = outputs["logits"].sigmoid().mean()
        return loss, {"loss_cls": loss.detach()}

    def postprocess(self, outputs, batch, **options):
        return [{"video": m["video"], "detections": [{"segment": [0.0, 1.0], "label": 0, "score": 0.5}]}
                for m in batch["meta"]]
