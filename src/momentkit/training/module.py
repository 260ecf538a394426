"""The one Lightning module: trains and evaluates any registered model of any task.

Every model follows :class:`momentkit.models.contract.Model` (``forward(batch)``, ``loss(outputs,
batch)``, ``postprocess(outputs, batch, **options)``), so this module serves them all; what differs
between tasks (data, metrics, prediction formats) comes from the task (:mod:`momentkit.tasks`) and
its data module. Evaluation collects prediction rows of every evaluation set of a split, scores them
with the task's metrics (exactly what ``momentkit evaluate`` computes) and logs the flat metrics; the
checkpoint monitor is one of them.
"""

from __future__ import annotations

import copy

import lightning as L
import torch

from momentkit.errors import InputError
from momentkit.tasks import set_metric_key
from momentkit.training.config import ExperimentConfig, parse_config
from momentkit.training.schedule import lr_factor


class TaskModule(L.LightningModule):
    """``config``: a resolved experiment config as a plain mapping (saved with every checkpoint);
    ``model``: an already built (e.g. trained) model to use instead of a new one."""

    def __init__(self, config: dict, model: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: ExperimentConfig = parse_config(config)
        from momentkit.models import create_model
        from momentkit.tasks import get_task

        self.task = get_task(self.cfg.task)
        self.model = model if model is not None else create_model(**self.cfg.model)
        # the EMA copy (updated by momentkit.training.callbacks.EMA) evaluates and is exported
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False) if self.cfg.train.ema_decay else None
        # the fitted score calibration of the task (NaN: none), restored with the best checkpoint
        cal = (config.get("eval") or {}).get("calibration") if isinstance(config.get("eval"), dict) else None
        self.register_buffer("calibration", torch.tensor(cal if cal else [float("nan")] * 2, dtype=torch.float64))
        self._rows: dict[str, list[dict]] = {}
        self._sets: list[str] = []
        self.split = "val"
        self.predictions: dict[str, list[dict]] = {}  # set -> rows of the last evaluation
        self.last_metrics: dict = {}  # flat metrics of the last validation
        self._compiled: tuple | None = None  # train.compile: the compiled forward and loss

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema_model if self.ema_model is not None else self.model

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "resume_from"):
            dm.resume_from = (int(checkpoint.get("global_step", 0)), int(checkpoint.get("epoch", 0)))

    # ------------------------------------------------------------------ training
    def on_train_start(self) -> None:
        self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        for obj in (getattr(loader, "batch_sampler", None), getattr(loader, "dataset", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # randomness of a step depends only on (seed, step): a resumed run replays the same steps
        torch.manual_seed(self.cfg.train.seed * 1_000_003 + self.global_step)
        if hasattr(self.model, "set_progress"):
            self.model.set_progress(min(1.0, self.global_step / self._total_steps))

    def training_fns(self):
        """``(forward, loss)`` of the training step: the model's own, or with ``train.compile`` their
        ``torch.compile`` d forms (made once; kept out of the module's state, so checkpoints and the EMA
        copy see the plain model)."""
        if not self.cfg.train.compile:
            return self.model, self.model.loss
        if self._compiled is None:
            self._compiled = (torch.compile(self.model.forward), torch.compile(self.model.loss))
        return self._compiled

    def training_step(self, batch, batch_idx: int):
        forward, loss_fn = self.training_fns()
        outputs = forward(batch)
        loss, terms = loss_fn(outputs, batch)
        bs = len(batch["meta"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in terms.items():
            self.log(f"train/{k}", v, batch_size=bs)
        return loss

    # ------------------------------------------------------------------ evaluation
    def _start(self, split: str) -> None:
        self.split = split
        self._sets = self.trainer.datamodule.eval_sets(split)
        self._rows = {s: [] for s in self._sets}

    def on_validation_epoch_start(self) -> None:
        self._start("val")

    def on_test_epoch_start(self) -> None:
        self._start(self.trainer.datamodule.test_split)

    def _eval_step(self, batch, dataloader_idx: int) -> None:
        model = self.eval_model
        outputs = model(batch)
        self._rows[self._sets[dataloader_idx]].extend(
            model.postprocess(outputs, batch, **self.task.postprocess_options(self.cfg)))

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def _gather(self, rows: list[dict]) -> list[dict]:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return rows
        parts = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, rows)
        seen, out = set(), []
        for part in parts:  # a distributed sampler pads with repeats: keep each sample once
            for r in part:
                key = self.task.row_key(r)
                if key not in seen:
                    seen.add(key)
                    out.append(r)
        return out

    def score(self, full: bool = False) -> dict:
        """Metrics of the rows collected in this evaluation: flat (prefixed per set, see
        :func:`momentkit.tasks.set_metric_key`) or, with ``full``, what ``metrics_{split}.json`` holds."""
        dm = self.trainer.datamodule
        self.predictions = {s: self._calibrated(s, self._gather(self._rows[s]), dm) for s in self._sets}
        per_set = {s: self.task.score(self.predictions[s], dm.ground_truth(s), self.cfg, dm, full=full)
                   for s in self._sets}
        if full and self._sets == [self.split]:
            return per_set[self.split]
        flat = {set_metric_key(s, self.split, k): v for s in self._sets
                for k, v in (per_set[s]["brief"] if full else per_set[s]).items()}
        return {"brief": flat, **per_set} if full else flat

    def _calibrated(self, set_name: str, rows: list[dict], dm) -> list[dict]:
        """Rows with the task's calibrated scores: the map is fitted on the first validation set and
        applied elsewhere (see :meth:`momentkit.tasks.Task.fit_calibration`)."""
        if self.split == "val" and set_name == self._sets[0]:
            params, rows = self.task.fit_calibration(rows, dm.ground_truth(set_name), self.cfg)
            if params is not None:
                self.calibration.copy_(torch.tensor(params, dtype=torch.float64))
            return rows
        if not torch.isnan(self.calibration).any():
            return self.task.calibrate(rows, self.calibration.tolist())
        return rows

    def calibration_params(self) -> list[float] | None:
        """The fitted calibration, or None."""
        return None if torch.isnan(self.calibration).any() else self.calibration.tolist()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        metrics = self.score()
        self.last_metrics = metrics
        monitor = self.cfg.train.monitor
        if monitor not in metrics:
            raise InputError(f"the validation produced no {monitor!r}; it produced: {', '.join(metrics)}",
                             field="train.monitor")
        self.log_dict({f"val/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        self.log(monitor, float(metrics[monitor]), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self.test_metrics = self.score(full=True)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        t = self.cfg.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        if t.weight_decay_1d:
            groups = [{"params": params, "weight_decay": t.weight_decay}]
        else:
            groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": t.weight_decay},
                      {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)
        if not t.lr_drop and not t.warmup_steps and not t.warmup_epochs and t.schedule == "step":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, total // max(1, t.epochs))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, t, steps_per_epoch, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
