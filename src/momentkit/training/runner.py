"""The one runner: ``momentkit train`` and ``momentkit test`` for every task.

:func:`train` builds the task's data module and the :class:`~momentkit.training.module.TaskModule`,
fits with Lightning, keeps the best checkpoint by ``train.monitor``, evaluates it and writes the
outputs. Every run, whatever its task, has the same layout (``train.out_dir``)::

    config.yaml                 the resolved config (what the checkpoint also carries)
    checkpoints/best.ckpt       best validation checkpoint by ``train.monitor``
    checkpoints/last.ckpt       latest state, at each epoch's end and on Ctrl-C (resume with --resume)
    model.safetensors           weights of the best checkpoint (the EMA copy when train.ema_decay), for inference
    logs/                       CSV and TensorBoard logs (metric vs epoch, step and wall time; a resumed
                                run continues them)
    curve.csv, curve.png        learning curve: validation metrics per evaluation with wall time
    predictions_<set>.*         predictions of the best model in the task's community format
    metrics_<split>.json        their metrics (identical to `momentkit evaluate`)

:func:`test` evaluates a checkpoint on any split; :func:`load_run` loads a trained model and its
config from a run folder, a checkpoint or a ``model.safetensors`` (what ``momentkit predict`` uses).
Both check ``train.accelerator`` / ``train.devices`` against the machine first
(:mod:`momentkit.training.devices`).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml

from momentkit.errors import InputError
from momentkit.io import atomic_write, write_json
from momentkit.training.callbacks import EMA, EpochLog, LearningCurve, StopOnInterrupt, progress_bar
from momentkit.training.config import ExperimentConfig, parse_config
from momentkit.training.devices import check_accelerator, launched_devices


class Interrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C) at optimiser step ``step``; ``checkpoint`` is the ``last.ckpt``
    that ``--resume`` continues from, saved at step ``saved_step`` (None when the run stopped before it
    had any state to save)."""

    def __init__(self, checkpoint: Path | None, step: int | None = None, saved_step: int | None = None) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.step = step
        self.saved_step = saved_step


def _fill_model_inputs(cfg: ExperimentConfig, inputs: dict) -> None:
    """Set the model options the data decides (feature widths, class count) unless the config set them;
    a configured value that disagrees with the data is an error."""
    from momentkit.models.registry import config_fields

    fields = config_fields(cfg.model["name"])
    for key, value in inputs.items():
        if fields and key not in fields:
            continue
        given = cfg.model.get(key)
        if given in (None, 0):
            cfg.model[key] = value
        elif given != value:
            raise InputError(f"the model expects {given} but the data gives {value}", field=f"model.{key}")


def build(cfg: ExperimentConfig):
    """The task's data module and the Lightning module of ``cfg`` (completed from the data)."""
    from momentkit.tasks import get_task
    from momentkit.training.module import TaskModule

    dm = get_task(cfg.task).datamodule(cfg, seed=cfg.train.seed)
    _fill_model_inputs(cfg, dm.model_inputs())
    cfg.data = dm.resolved_data()
    return dm, TaskModule(cfg.to_dict())


def _init_from(cfg: ExperimentConfig, module) -> None:
    """Copy ``model.init_from`` weights into the new model (and its EMA copy); print what was loaded."""
    from momentkit.training.init import init_weights

    report = init_weights(module.model, cfg.model["init_from"], cfg.model.get("init_exclude") or ())
    if module.ema_model is not None:
        module.ema_model.load_state_dict(module.model.state_dict())
    if trainer_is_zero():
        for line in report.lines():
            print(f"init_from: {line}", flush=True)


def _trainer(cfg: ExperimentConfig, out: Path, callbacks, enable_checkpointing=True, loggers=True, resuming=False):
    """The Lightning trainer of a run. Progress: Lightning's bar when stdout is a terminal; otherwise
    (a log file, a pipe) one line per training epoch. ``resuming``: the CSV log keeps its earlier rows.
    Under ``torchrun``, ``train.devices`` / ``train.num_nodes`` left at their defaults are what it launched."""
    from lightning.pytorch.loggers import TensorBoardLogger

    t = cfg.train
    logs = []
    if loggers:
        logs = [_csv_logger(out / "logs", keep_rows=resuming)]
        try:
            logs.append(TensorBoardLogger(out / "logs", name="", version="tensorboard"))
        except ModuleNotFoundError:
            pass
    bar = bool(t.progress) and sys.stdout.isatty()
    callbacks = list(callbacks)
    if bar:
        callbacks.append(progress_bar())
    elif t.progress and enable_checkpointing:  # training (evaluation alone prints its table at the end)
        callbacks.append(EpochLog(t.monitor))
    devices, num_nodes = launched_devices(t.devices, t.num_nodes)
    return L.Trainer(
        default_root_dir=out, max_epochs=t.epochs, max_steps=t.max_steps,
        max_time={"minutes": t.max_time_minutes} if t.max_time_minutes else None,
        accelerator=t.accelerator, devices=devices, num_nodes=num_nodes, strategy=t.strategy,
        precision=t.precision, deterministic=t.deterministic, gradient_clip_val=t.grad_clip or None,
        check_val_every_n_epoch=t.eval_every, callbacks=callbacks, logger=logs or False,
        enable_progress_bar=bar, enable_model_summary=False,
        enable_checkpointing=enable_checkpointing, use_distributed_sampler=False, log_every_n_steps=5,
        num_sanity_val_steps=0,
    )


def _csv_logger(root: Path, keep_rows: bool):
    """``logs/csv/metrics.csv``. Lightning's CSV logger starts the file afresh (it deletes it when it
    opens its folder); for a resumed run the rows of the earlier part are kept: those before the first
    step the resumed run logs (later ones, from beyond the checkpoint, are logged again)."""
    import csv

    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.utilities import rank_zero_only

    class RunCSVLogger(CSVLogger):
        def __init__(self) -> None:
            super().__init__(root, name="", version="csv")
            self._earlier: tuple[list[str], list[dict]] | None = None
            path = Path(self.log_dir) / "metrics.csv"
            if keep_rows and path.is_file():
                with open(path, newline="", encoding="utf-8") as fh:
                    reader = csv.DictReader(fh)
                    self._earlier = (list(reader.fieldnames or []), list(reader))

        def _restore(self, before: int | None) -> None:
            if self._earlier is None:
                return
            keys, rows = self._earlier
            self._earlier = None
            writer = self.experiment  # opening it deleted the file
            rows = [r for r in rows if before is None or (r.get("step") or "").isdigit() and int(r["step"]) < before]
            if rows:
                with open(Path(self.log_dir) / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
                    out = csv.DictWriter(fh, fieldnames=keys)
                    out.writeheader()
                    out.writerows(rows)
                writer.metrics_keys = list(keys)  # so that it appends (or rewrites with a wider header)

        @rank_zero_only
        def log_metrics(self, metrics, step=None) -> None:
            self._restore(before=step)
            super().log_metrics(metrics, step)

        @rank_zero_only
        def finalize(self, status: str) -> None:
            self._restore(before=None)  # nothing logged since the resume: every earlier row stays
            super().finalize(status)

    return RunCSVLogger()


def train(cfg: ExperimentConfig, resume: str | None = None) -> dict:
    """Train, keep the best checkpoint, evaluate it on val (and test when configured).

    ``resume``: ``"last"`` (the run's ``checkpoints/last.ckpt``) or a checkpoint to continue from.
    Everything the run can check without data (devices, the checkpoint to resume) is checked first, and
    the run folder is created only once the data and the model agree, so a refused run leaves nothing.
    Ctrl-C stops after the step under way, saves ``checkpoints/last.ckpt`` and raises :class:`Interrupted`
    (see :class:`~momentkit.training.callbacks.StopOnInterrupt`).

    Returns ``{"best_checkpoint", "curve": [rows], "val": metrics, "test": metrics}``."""
    from momentkit.io import check_output

    devices, _ = launched_devices(cfg.train.devices, cfg.train.num_nodes)  # agrees with torchrun
    check_accelerator(cfg.train.accelerator, devices)
    out = Path(cfg.train.out_dir)
    check_output(out, "dir", option="train.out_dir")
    ckpt_dir = out / "checkpoints"
    ckpt_path = _resume_checkpoint(resume, ckpt_dir)
    started = time.time()
    trainer = None
    try:
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        L.seed_everything(cfg.train.seed, workers=True, verbose=False)
        dm, module = build(cfg)
        if cfg.model.get("init_from") and ckpt_path is None:
            _init_from(cfg, module)
        from momentkit.video.recipe import check_run_recipe, run_recipe, save_run_recipe

        module.recipe = run_recipe(cfg.data)  # how the input features were made, for `momentkit predict`
        if hasattr(cfg.data, "clip_len"):
            check_run_recipe(module.recipe, cfg.data.clip_len)
        out.mkdir(parents=True, exist_ok=True)
        _write_config(out, module)
        if trainer_is_zero():
            save_run_recipe(out, module.recipe)
        trainer, best_cb, curve_cb, stop_cb = _fit_trainer(cfg, out, ckpt_dir, resuming=ckpt_path is not None)
        _interruptible(trainer, trainer.fit, module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
        if stop_cb.requested:  # Ctrl-C during the last epoch's end: the fit ended, the run stops here
            raise KeyboardInterrupt
        if curve_cb.rows and trainer.is_global_zero:
            from momentkit.viz import plot_learning_curve

            plot_learning_curve(curve_cb.rows, cfg.train.monitor, out / "curve.png")
        best = best_cb.best_model_path or str(ckpt_dir / "last.ckpt")
        result = {"best_checkpoint": best, "curve": curve_cb.rows}
        if Path(best).is_file():
            module.load_state_dict(load_checkpoint(best)["state_dict"])
            calibration = module.calibration_params()
            if calibration is not None:  # the best model's score map goes with the model
                module.hparams["config"]["eval"]["calibration"] = calibration
                cfg.eval.calibration = calibration
                _write_config(out, module)
            if trainer_is_zero():
                export_weights(module, out)
            for split in ("val", "test"):
                if dm.has_split(split):
                    result[split] = evaluate_split(cfg, module, dm, split, out)
        return result
    except KeyboardInterrupt:
        last = ckpt_dir / "last.ckpt"
        if not (last.is_file() and (resume is not None or last.stat().st_mtime >= started)):
            raise Interrupted(None) from None
        try:
            saved_step = int(load_checkpoint(last, mmap=True).get("global_step", -1))
        except InputError:
            saved_step = None
        raise Interrupted(last, None if trainer is None else trainer.global_step, saved_step) from None


def _fit_trainer(cfg: ExperimentConfig, out: Path, ckpt_dir: Path, resuming: bool = False):
    """The training trainer: best / last / every-N-steps checkpoints, the learning curve, the EMA and
    the clean stop on Ctrl-C. Returns ``(trainer, best checkpoint callback, learning curve, stop callback)``."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    best_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=cfg.train.monitor, mode="max",
                              save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    last_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, save_on_train_epoch_end=True,
                              enable_version_counter=False)
    curve_cb = LearningCurve(out)
    stop_cb = StopOnInterrupt(ckpt_dir / "last.ckpt")
    callbacks = [best_cb, curve_cb, last_cb, stop_cb]
    if cfg.train.ema_decay:
        callbacks.append(EMA(cfg.train.ema_decay))
    if cfg.train.checkpoint_every_steps:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="step", save_top_k=1, save_last=False,
                                         every_n_train_steps=cfg.train.checkpoint_every_steps,
                                         enable_version_counter=False))
    return _trainer(cfg, out, callbacks, resuming=resuming), best_cb, curve_cb, stop_cb


def _resume_checkpoint(resume: str | None, ckpt_dir: Path) -> str | None:
    """The checkpoint ``--resume`` names, checked to be a momentkit training checkpoint."""
    if not resume:
        return None
    path = ckpt_dir / "last.ckpt" if resume == "last" else Path(resume)
    if resume == "last" and not path.is_file():
        where = "this run folder has no checkpoints/last.ckpt" if ckpt_dir.parent.is_dir() else "no run folder here"
        raise InputError(f"nothing to resume: {where} (train.out_dir; start the run without --resume)",
                         path=ckpt_dir.parent)
    if not path.is_file():
        raise InputError("checkpoint to resume from not found", path=path)
    ckpt = load_checkpoint(path, mmap=True)
    if not isinstance((ckpt.get("hyper_parameters") or {}).get("config"), dict) or "loops" not in ckpt:
        raise InputError("not a momentkit training checkpoint (no training state or config in it)", path=path)
    return str(path)


def _interruptible(trainer, fn, *args, **kwargs):
    """``trainer.fit`` / ``trainer.test``, where Ctrl-C is a :class:`KeyboardInterrupt`: Lightning catches
    it, runs the ``on_exception`` hooks and calls ``sys.exit(1)``, after setting SIGINT to be ignored;
    here it is a :class:`KeyboardInterrupt` again and the SIGINT handler is restored."""
    main_thread = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        return fn(*args, **kwargs)
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def evaluate_split(cfg: ExperimentConfig, module, dm, split: str, out: Path) -> dict:
    """Predict ``split`` with ``module``, write predictions and metrics; return the metrics."""
    dm.test_split = split
    trainer = _trainer(cfg, out, [], enable_checkpointing=False, loggers=False)
    _interruptible(trainer, trainer.test, module, datamodule=dm, verbose=False)
    metrics = module.test_metrics
    if trainer.is_global_zero:
        for set_name, rows in module.predictions.items():
            module.task.write_predictions(out, set_name, rows, dm)
        write_json(out / f"metrics_{split}.json", metrics)
    return metrics


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """Load a Lightning checkpoint without executing pickled code (``weights_only=True``); anything else
    (another pickle, a text file, a folder) is one short :class:`InputError` naming the file."""
    import pickle
    import re

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols of foreign files
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise InputError("checkpoint not found", path=path) from None
    except IsADirectoryError:
        raise InputError("not a momentkit checkpoint (a folder; give a .ckpt file)", path=path) from None
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f"it pickles {found.group(1)}, which momentkit does not unpickle" if found else \
            "not a PyTorch checkpoint file"
        raise InputError(f"not a momentkit checkpoint ({what})", path=path) from None
    except Exception:  # noqa: BLE001 - any other parse failure is a bad file for the user
        raise InputError("not a momentkit checkpoint (not a PyTorch checkpoint file)", path=path) from None


def trainer_is_zero() -> bool:
    """Whether this process writes the run's files (rank 0, or no distributed run); before the process
    group exists (the start of a run under ``torchrun``), the rank the launcher set."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _write_config(out: Path, module) -> None:
    if trainer_is_zero():
        with atomic_write(out / "config.yaml") as fh:
            yaml.safe_dump(module.hparams["config"], fh, sort_keys=False)


def export_weights(module, out: Path) -> Path:
    """``model.safetensors``: the weights the module evaluates with; the config (with the fitted score
    calibration) and the input features' recipe in the metadata."""
    from safetensors.torch import save_file

    from momentkit.io import atomic_save
    from momentkit.video.recipe import recipe_metadata

    state = {k: v.detach().cpu().contiguous() for k, v in module.eval_model.state_dict().items()}
    path = out / "model.safetensors"
    metadata = {"config": yaml.safe_dump(module.hparams["config"]), **recipe_metadata(getattr(module, "recipe", None))}
    atomic_save(path, lambda tmp: save_file(state, tmp, metadata=metadata))
    return path


def _stored_config(raw, path) -> ExperimentConfig:
    """The config a checkpoint or ``model.safetensors`` carries, validated."""
    if not isinstance(raw, dict):
        raise InputError("the stored config is not a mapping", path=path, field="config")
    return parse_config(raw, str(path))


def test(cfg: ExperimentConfig, ckpt: str | list[str], split: str = "val") -> dict:
    """Evaluate the trained model ``ckpt`` (a checkpoint, ``model.safetensors`` or run folder, loaded by
    :func:`load_run` as ``momentkit predict`` loads it) on ``split`` of the data of ``cfg``; outputs go to
    ``cfg.train.out_dir``. Several checkpoints are evaluated as one ensemble
    (:class:`momentkit.training.ensemble.Ensemble`; the first one's config reads the data)."""
    from momentkit.tasks import get_task
    from momentkit.training.module import TaskModule

    devices, _ = launched_devices(cfg.train.devices, cfg.train.num_nodes)  # agrees with torchrun
    check_accelerator(cfg.train.accelerator, devices)
    ckpts = [ckpt] if isinstance(ckpt, str | os.PathLike) else list(ckpt)
    model, run_cfg, path = load_run(ckpts[0])
    if len(ckpts) > 1:
        from momentkit.training.ensemble import Ensemble

        members = [model]
        for other in ckpts[1:]:
            m, c, p = load_run(other)
            if c.task != run_cfg.task:
                raise InputError(f"a {c.task} model cannot join an ensemble of {run_cfg.task} models", path=p,
                                 field="--ckpt")
            members.append(m)
        model = Ensemble(members).eval()
    if run_cfg.task != cfg.task:
        raise InputError(f"the checkpoint is a {run_cfg.task} model, the config a {cfg.task} one", path=path,
                         field="task")
    data = cfg.data
    for name in get_task(cfg.task).derived_data:  # what was derived from the data at training time is kept
        if getattr(data, name) is None:
            data = dataclasses.replace(data, **{name: getattr(run_cfg.data, name)})
    run_cfg.data, run_cfg.eval = data, cfg.eval
    t = run_cfg.train
    t.out_dir, t.progress, t.accelerator, t.devices = cfg.train.out_dir, cfg.train.progress, cfg.train.accelerator, \
        cfg.train.devices
    t.ema_decay = None  # load_run gives the weights to evaluate (the EMA copy when there is one)
    dm = get_task(run_cfg.task).datamodule(run_cfg, seed=t.seed)
    if not dm.has_split(split):
        raise InputError(f"the config has no {split} data", field=f"data.{split}")
    _fill_model_inputs(run_cfg, dm.model_inputs())  # checks the data against the trained model
    module = TaskModule(run_cfg.to_dict(), model=model)
    out = Path(t.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return evaluate_split(run_cfg, module, dm, split, out)


# ----------------------------------------------------------------------------- loading a trained model
def _resolve_run(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in ("model.safetensors", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
            if (p / name).is_file():
                return p / name
        raise InputError("no model.safetensors or checkpoints/best.ckpt in this run folder (nor the config.json "
                         "and model.safetensors of an exported model)", path=p)
    if not p.is_file():
        raise InputError("checkpoint not found", path=p)
    return p


def load_run(path: str | os.PathLike):
    """``(model in eval mode, ExperimentConfig, file)`` from a run folder, a ``model.safetensors`` (config
    in its metadata under ``config``), a Lightning ``.ckpt`` (config in ``hyper_parameters``; the EMA
    weights when the run kept them), or a folder of ``momentkit export`` or a Hugging Face Hub id of one
    (:mod:`momentkit.pretrained`)."""
    from momentkit.models import create_model
    from momentkit.pretrained import check_weights, is_exported, load_exported, resolve

    local = resolve(path)
    if is_exported(local):
        return load_exported(local)
    p = _resolve_run(local)
    if p.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(p), framework="pt") as fh:
                meta = fh.metadata() or {}
            state = load_file(str(p))
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad file for the user
            raise InputError(f"cannot read safetensors file ({type(e).__name__}: {e})", path=p) from None
        if "config" not in meta:
            raise InputError("this safetensors file carries no momentkit config in its metadata", path=p,
                             field="config")
        try:
            raw = yaml.safe_load(meta["config"])
        except yaml.YAMLError as e:
            raise InputError(f"the config in the metadata is not valid YAML ({e})", path=p, field="config") from None
    else:
        ckpt = load_checkpoint(p)
        raw = (ckpt.get("hyper_parameters") or {}).get("config")
        if raw is None:
            raise InputError("not a momentkit checkpoint (no momentkit config in it)", path=p)
        weights = ckpt.get("state_dict", {})
        prefix = "ema_model." if any(k.startswith("ema_model.") for k in weights) else "model."
        state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        cal = weights.get("calibration")  # the score map fitted with this checkpoint's weights
        if cal is not None and not torch.isnan(cal).any() and isinstance(raw.get("eval"), dict):
            raw = {**raw, "eval": {**raw["eval"], "calibration": cal.tolist()}}
    cfg = _stored_config(raw, p)
    model = create_model(**cfg.model)
    check_weights(model, {k: tuple(v.shape) for k, v in state.items()}, f"the '{cfg.model['name']}' model of its "
                  "config", p)
    model.load_state_dict(state)
    return model.eval(), cfg, p
