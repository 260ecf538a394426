"""Callbacks of the runner: the learning curve, the exponential moving average of the weights, the
clean stop on Ctrl-C (with its checkpoint) and what the terminal shows of progress."""

from __future__ import annotations

import os
import signal
import sys
import threading
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


class StopOnInterrupt(L.Callback):
    """Ctrl-C during training stops the run cleanly: the step under way finishes, then, before the next
    one starts, the training state is saved to ``path`` (the run's ``checkpoints/last.ckpt``) and a
    :class:`KeyboardInterrupt` ends the fit -- so ``momentkit train CONFIG --resume`` continues exactly
    where the run stopped, also when no epoch had ended yet. A second Ctrl-C stops at once and saves
    nothing (the last saved state stays). ``requested`` tells the runner a Ctrl-C came, also one that
    came too late to stop the fit (during the last epoch's end).

    Only in a single process (several processes would stop at different steps)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.requested = False
        self._stopping = False
        self._previous = None

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to stop at once, without saving)", file=sys.stderr,
              flush=True)

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_fit_start(self, trainer, module) -> None:
        self.requested = self._stopping = False
        if trainer.world_size == 1 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.requested:
            self._stopping = True
            raise KeyboardInterrupt

    def teardown(self, trainer, module, stage: str) -> None:
        self._restore()

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        try:
            if self._stopping:  # (Lightning ignores further Ctrl-C while it handles this one)
                self._save(trainer)
        finally:
            self._restore()

    def _save(self, trainer) -> None:
        # Lightning adds one to the logging step when it restarts from a checkpoint saved between two
        # steps (it expects them saved at the end of a step); take it back so the logs continue as they
        # would have
        loop = trainer.fit_loop.epoch_loop
        if hasattr(loop, "_batches_that_stepped"):
            loop._batches_that_stepped -= 1
        tmp = self.path.with_name(self.path.name + ".part")
        try:
            trainer.save_checkpoint(tmp, weights_only=False)  # the whole training state
            os.replace(tmp, self.path)
        except Exception:  # noqa: BLE001 - never mask the interruption; the previous last.ckpt stays
            tmp.unlink(missing_ok=True)


class EpochLog(L.Callback):
    """One line per training epoch on stdout (what a log file gets instead of a progress bar): the
    epoch, the optimiser step, the training loss, the monitored metric when the epoch was evaluated, and
    the wall time."""

    def __init__(self, monitor: str | None = None) -> None:
        self.monitor = monitor
        self.t0 = time.perf_counter()
        self.evaluated = False

    def on_validation_end(self, trainer, module) -> None:
        self.evaluated = not trainer.sanity_checking

    def on_train_epoch_end(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        parts = [f"epoch {trainer.current_epoch + 1}{epochs}", f"step {trainer.global_step}"]
        if "train/loss" in metrics:
            parts.append(f"train/loss {float(metrics['train/loss']):.4f}")
        if self.evaluated and self.monitor in metrics:
            parts.append(f"{self.monitor} {float(metrics[self.monitor]):.2f}")
        minutes, seconds = divmod(int(time.perf_counter() - self.t0), 60)
        parts.append(f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}")
        print("  ".join(parts), file=sys.stdout, flush=True)
        self.evaluated = False


def progress_bar() -> L.Callback:
    """Lightning's progress bar (rich when installed) without ``v_num``, the logger's version, which
    means nothing in a momentkit run folder."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
    from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

    class Bar(RichProgressBar if _RICH_AVAILABLE else TQDMProgressBar):
        def get_metrics(self, trainer, module) -> dict:
            metrics = super().get_metrics(trainer, module)
            metrics.pop("v_num", None)
            return metrics

    return Bar()
