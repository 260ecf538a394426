"""The one runner: ``momentkit train`` and ``momentkit test`` for every task.

:func:`train` builds the task's data module and the :class:`~momentkit.training.module.TaskModule`,
fits with Lightning, keeps the best checkpoint by ``train.monitor``, evaluates it and writes the
outputs. Every run, whatever its task, has the same layout (``train.out_dir``)::

    config.yaml                 the resolved config (what the checkpoint also carries)
    checkpoints/best.ckpt       best validation checkpoint by ``train.monitor``
    checkpoints/last.ckpt       latest state (resume with --resume)
    model.safetensors           weights of the best checkpoint (the EMA copy when train.ema_decay), for inference
    logs/                       CSV and TensorBoard logs (metric vs epoch, step and wall time)
    curve.csv, curve.png        learning curve: validation metrics per evaluation with wall time
    predictions_<set>.*         predictions of the best model in the task's community format
    metrics_<split>.json        their metrics (identical to `momentkit evaluate`)

:func:`test` evaluates a checkpoint on any split; :func:`load_run` loads a trained model and its
config from a run folder, a checkpoint or a ``model.safetensors`` (what ``momentkit predict`` uses).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import lightning as L
import torch
import yaml

from momentkit.errors import InputError
from momentkit.io import atomic_write, write_json
from momentkit.training.callbacks import EMA, LearningCurve
from momentkit.training.config import ExperimentConfig, parse_config


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


def _trainer(cfg: ExperimentConfig, out: Path, callbacks, enable_checkpointing=True, loggers=True):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    t = cfg.train
    logs = []
    if loggers:
        logs = [CSVLogger(out / "logs", name="", version="csv")]
        try:
            logs.append(TensorBoardLogger(out / "logs", name="", version="tensorboard"))
        except ModuleNotFoundError:
            pass
    return L.Trainer(
        default_root_dir=out, max_epochs=t.epochs, max_steps=t.max_steps,
        max_time={"minutes": t.max_time_minutes} if t.max_time_minutes else None,
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, deterministic=t.deterministic, gradient_clip_val=t.grad_clip or None,
        check_val_every_n_epoch=t.eval_every, callbacks=callbacks, logger=logs or False,
        enable_progress_bar=t.progress, enable_model_summary=False,
        enable_checkpointing=enable_checkpointing, use_distributed_sampler=False, log_every_n_steps=5,
        num_sanity_val_steps=0,
    )


def train(cfg: ExperimentConfig, resume: str | None = None) -> dict:
    """Train, keep the best checkpoint, evaluate it on val (and test when configured).

    Returns ``{"best_checkpoint", "curve": [rows], "val": metrics, "test": metrics}``."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    out = Path(cfg.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dm, module = build(cfg)
    with atomic_write(out / "config.yaml") as fh:
        yaml.safe_dump(module.hparams["config"], fh, sort_keys=False)
    ckpt_dir = out / "checkpoints"
    best_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=cfg.train.monitor, mode="max",
                              save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    last_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, save_on_train_epoch_end=True,
                              enable_version_counter=False)
    curve_cb = LearningCurve(out)
    callbacks = [best_cb, curve_cb, last_cb]
    if cfg.train.ema_decay:
        callbacks.append(EMA(cfg.train.ema_decay))
    if cfg.train.checkpoint_every_steps:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="step", save_top_k=1, save_last=False,
                                         every_n_train_steps=cfg.train.checkpoint_every_steps,
                                         enable_version_counter=False))
    trainer = _trainer(cfg, out, callbacks)
    ckpt_path = None
    if resume:
        ckpt_path = str(ckpt_dir / "last.ckpt") if resume == "last" else resume
        if not Path(ckpt_path).is_file():
            raise InputError("checkpoint to resume from not found", path=ckpt_path)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    if curve_cb.rows and trainer.is_global_zero:
        from momentkit.viz import plot_learning_curve

        plot_learning_curve(curve_cb.rows, cfg.train.monitor, out / "curve.png")
    best = best_cb.best_model_path or str(ckpt_dir / "last.ckpt")
    result = {"best_checkpoint": best, "curve": curve_cb.rows}
    if Path(best).is_file():
        module.load_state_dict(load_checkpoint(best)["state_dict"])
        export_weights(module, out)
        for split in ("val", "test"):
            if dm.has_split(split):
                result[split] = evaluate_split(cfg, module, dm, split, out)
    return result


def evaluate_split(cfg: ExperimentConfig, module, dm, split: str, out: Path) -> dict:
    """Predict ``split`` with ``module``, write predictions and metrics; return the metrics."""
    dm.test_split = split
    trainer = _trainer(cfg, out, [], enable_checkpointing=False, loggers=False)
    trainer.test(module, datamodule=dm, verbose=False)
    metrics = module.test_metrics
    if trainer.is_global_zero:
        for set_name, rows in module.predictions.items():
            module.task.write_predictions(out, set_name, rows, dm)
        write_json(out / f"metrics_{split}.json", metrics)
    return metrics


def load_checkpoint(path: str | Path) -> dict:
    """Load a Lightning checkpoint without executing pickled code (``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("checkpoint not found", path=path) from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise InputError(f"cannot read checkpoint ({type(e).__name__}: {e})", path=path) from None


def export_weights(module, out: Path) -> Path:
    """``model.safetensors``: the weights the module evaluates with, and the config in the metadata."""
    from safetensors.torch import save_file

    from momentkit.io import atomic_save

    state = {k: v.detach().cpu().contiguous() for k, v in module.eval_model.state_dict().items()}
    path = out / "model.safetensors"
    atomic_save(path, lambda tmp: save_file(state, tmp, metadata={"config": yaml.safe_dump(module.hparams["config"])}))
    return path


def _stored_config(raw, path) -> ExperimentConfig:
    """The config a checkpoint or ``model.safetensors`` carries, validated."""
    if not isinstance(raw, dict):
        raise InputError("the stored config is not a mapping", path=path, field="config")
    return parse_config(raw, str(path))


def test(cfg: ExperimentConfig, ckpt: str, split: str = "val") -> dict:
    """Evaluate the trained model ``ckpt`` (a checkpoint, ``model.safetensors`` or run folder, loaded by
    :func:`load_run` as ``momentkit predict`` loads it) on ``split`` of the data of ``cfg``; outputs go to
    ``cfg.train.out_dir``."""
    from momentkit.tasks import get_task
    from momentkit.training.module import TaskModule

    model, run_cfg, path = load_run(ckpt)
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
        raise InputError("no model.safetensors or checkpoints/best.ckpt in this run folder", path=p)
    if not p.is_file():
        raise InputError("checkpoint not found", path=p)
    return p


def load_run(path: str | os.PathLike):
    """``(model in eval mode, ExperimentConfig, file)`` from a run folder, a ``model.safetensors`` (config
    in its metadata under ``config``) or a Lightning ``.ckpt`` (config in ``hyper_parameters``; the EMA
    weights when the run kept them)."""
    from momentkit.models import create_model

    p = _resolve_run(path)
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
            raise InputError("checkpoint carries no momentkit config", path=p, field="hyper_parameters")
        weights = ckpt.get("state_dict", {})
        prefix = "ema_model." if any(k.startswith("ema_model.") for k in weights) else "model."
        state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    cfg = _stored_config(raw, p)
    model = create_model(**cfg.model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        what = (f"missing {', '.join(missing[:3])}" if missing else "") + \
               ("; " if missing and unexpected else "") + \
               (f"unexpected {', '.join(unexpected[:3])}" if unexpected else "")
        raise InputError(f"weights do not match the '{cfg.model['name']}' model of its config ({what})", path=p)
    return model.eval(), cfg, p
