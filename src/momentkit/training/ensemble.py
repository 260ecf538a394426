"""Model ensembling: several trained models of one task evaluated as one (``momentkit test --ckpt A B C``).

The ensemble averages the members' per-class probabilities (``sigmoid`` of their ``logits``, every
member on the same batch) and hands the result back as logits, so the first member's ``postprocess``
writes the task's rows. Models whose outputs carry no ``logits`` (the set-prediction grounding
models) cannot be averaged this way and are refused. This is the thesis's "model ensembling" of
detection-pretrained models (chapter 4): one model per volume augmentation, predictions averaged.
"""

from __future__ import annotations

import torch
from torch import nn

from momentkit.errors import InputError


class Ensemble(nn.Module):
    """``forward(batch) -> {"logits" (B, T, K): logit of the mean member probability, ...first member's}``."""

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        if len(models) < 2:
            raise InputError("an ensemble needs at least two models", field="--ckpt")
        self.members = nn.ModuleList(models)

    def forward(self, batch: dict) -> dict:
        outs = [m(batch) for m in self.members]
        if any("logits" not in o for o in outs):
            raise InputError("these models give no per-class logits to average (ensembles need dense or "
                             "classification models)", field="--ckpt")
        shapes = {tuple(o["logits"].shape) for o in outs}
        if len(shapes) > 1:
            raise InputError(f"the models' outputs differ in shape ({', '.join(map(str, sorted(shapes)))})",
                             field="--ckpt")
        prob = torch.stack([o["logits"].float().sigmoid() for o in outs]).mean(0)
        return {**outs[0], "logits": torch.logit(prob.clamp(1e-7, 1 - 1e-7))}

    def loss(self, outputs: dict, batch: dict):
        raise InputError("an ensemble is evaluated, not trained", field="--ckpt")

    def postprocess(self, outputs: dict, batch: dict, **options) -> list[dict]:
        return self.members[0].postprocess(outputs, batch, **options)
