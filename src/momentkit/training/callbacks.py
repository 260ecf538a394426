"""Callbacks of the runner: the learning curve and the exponential moving average of the weights."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch

from momentkit.io import atomic_write


class LearningCurve(L.Callback):
    """Records the flat validation metrics of every evaluation with the epoch (1-based), the step and
    the wall time since training started, and rewrites ``curve.csv`` after each one (so a run stopped
    early keeps its history). Survives resume (the elapsed time continues)."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.rows: list[dict] = []
        self.t0 = time.perf_counter()

    def state_dict(self) -> dict:
        return {"rows": self.rows, "elapsed": time.perf_counter() - self.t0}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state.get("rows", []))
        self.t0 = time.perf_counter() - float(state.get("elapsed", 0.0))

    def on_validation_end(self, trainer, module) -> None:  # after the module scored the epoch
        if trainer.sanity_checking or not module.last_metrics:
            return
        row = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
               "minutes": round((time.perf_counter() - self.t0) / 60, 4)}
        row.update({k: v for k, v in module.last_metrics.items() if isinstance(v, (int, float))})
        self.rows.append(row)
        if trainer.is_global_zero:
            write_curve_csv(self.out / "curve.csv", self.rows)


def write_curve_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_write(path) as fh:
        fh.write(",".join(keys) + "\n")
        for r in rows:
            fh.write(",".join(str(r.get(k, "")) for k in keys) + "\n")


def read_curve_csv(path: Path) -> list[dict]:
    """The rows of a ``curve.csv`` (numbers as floats, ``epoch`` and ``step`` as ints)."""
    import csv

    out = []
    with open(path, encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            row = {k: float(v) for k, v in r.items() if v not in ("", None)}
            for k in ("epoch", "step"):
                if k in row:
                    row[k] = int(row[k])
            out.append(row)
    return out


class EMA(L.Callback):
    """Exponential moving average of the model's weights into ``module.ema_model`` after every step.

    The decay is warmed up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so that short runs
    are not dominated by the initial weights; buffers that are not floating point are copied. The module
    evaluates with, and the runner exports, the averaged copy.
    """

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0

    def state_dict(self) -> dict:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state.get("updates", 0))

    @torch.no_grad()
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, p in zip(module.ema_model.state_dict().values(), module.model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
            else:
                e.copy_(p)
        self.updates += 1
