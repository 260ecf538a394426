"""The Lightning module that trains and evaluates any registered grounding model.

Every model of :mod:`momentkit.models` has the same interface (``forward(batch)``,
``loss(outputs, batch)``, ``postprocess(outputs, batch)``), so this one module serves them all.
Validation collects predictions in the QVHighlights JSON Lines format and scores them with
:mod:`momentkit.metrics`, exactly as ``momentkit evaluate`` would.
"""

from __future__ import annotations

import lightning as L
import torch

from momentkit.training.config import ExperimentConfig
from momentkit.config import from_dict


class GroundingModule(L.LightningModule):
    def __init__(self, config: dict, gt: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: ExperimentConfig = from_dict(ExperimentConfig, config)
        from momentkit.models import create_model

        self.model = create_model(**self.cfg.model)
        self.gt = gt or {}  # split -> list of ground-truth dicts (QVHighlights format)
        self._preds: list[dict] = []
        self.last_metrics: dict = {}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "resume_from"):
            dm.resume_from = (int(checkpoint.get("global_step", 0)), int(checkpoint.get("epoch", 0)))

    # ------------------------------------------------------------------ steps
    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # randomness of a step depends only on (seed, step): a resumed run replays the same steps
        torch.manual_seed(self.cfg.train.seed * 1_000_003 + self.global_step)

    def training_step(self, batch, batch_idx: int):
        outputs = self.model(batch)
        loss, terms = self.model.loss(outputs, batch)
        bs = batch["video_feats"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in terms.items():
            self.log(f"train/{k}", v, batch_size=bs)
        return loss

    def _eval_step(self, batch) -> None:
        outputs = self.model(batch)
        self._preds.extend(self.model.postprocess(outputs, batch, max_windows=self.cfg.eval.max_windows,
                                                  nms=self.cfg.eval.nms,
                                                  nms_threshold=self.cfg.eval.nms_threshold))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_start(self) -> None:
        self._preds = []

    on_test_epoch_start = on_validation_epoch_start

    def _gather_predictions(self) -> list[dict]:
        preds = self._preds
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, preds)
            seen, preds = set(), []
            for part in parts:  # a distributed sampler pads with repeats: keep each qid once
                for p in part:
                    if p["qid"] not in seen:
                        seen.add(p["qid"])
                        preds.append(p)
        return preds

    def _score(self, split: str) -> dict:
        from momentkit.training.evaluation import score_predictions

        preds = self._gather_predictions()
        self.predictions = preds
        if split not in self.gt or self.trainer.sanity_checking:
            return {}
        metrics = score_predictions(preds, self.gt[split], self.cfg.eval.task,
                                    active_threshold=self.cfg.eval.active_threshold)
        self.last_metrics = metrics
        return metrics

    def on_validation_epoch_end(self) -> None:
        metrics = self._score("val")
        if metrics:
            self.log_dict({f"val/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
            self.log(self.cfg.train.monitor, float(metrics.get(self.cfg.train.monitor) or 0.0), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        metrics = self._score(getattr(self, "test_split", "test"))
        if metrics:
            self.log_dict({f"test/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))})

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        t = self.cfg.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        if not t.lr_drop and not t.warmup_steps:
            return opt
        steps_per_epoch = max(1, self.trainer.estimated_stepping_batches // max(1, t.epochs))

        def factor(step: int) -> float:
            f = 1.0
            if t.warmup_steps and step < t.warmup_steps:
                f = 0.001 + (1 - 0.001) * step / t.warmup_steps
            if t.lr_drop:
                f *= 0.1 ** ((step // steps_per_epoch) // t.lr_drop)
            return f

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
