"""``momentkit train`` and ``momentkit test``: build the Trainer, fit, evaluate, write outputs.

Outputs of a run (``train.out_dir``)::

    config.yaml                 the resolved config (what the checkpoint also carries)
    checkpoints/best.ckpt       best validation checkpoint by ``train.monitor``
    checkpoints/last.ckpt       latest state (resume with --resume)
    model.safetensors           weights of the best checkpoint, for inference
    logs/                       CSV and TensorBoard logs (metric vs epoch, step and wall time)
    curve.csv, curve.png        learning curve: validation metrics per epoch with wall time
    predictions_val.jsonl       QVHighlights-format predictions of the best model
    metrics_val.json            their metrics (identical to `momentkit evaluate`)
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
import yaml

from momentkit.errors import InputError
from momentkit.io import atomic_write, write_json, write_jsonl
from momentkit.training.config import ExperimentConfig
from momentkit.training.datamodule import GroundingDataModule


class _Curve(L.Callback):
    """Records validation metrics per epoch with the wall time since training started."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
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
        row.update(module.last_metrics)
        self.rows.append(row)


def _gt_dicts(samples) -> list[dict]:
    from momentkit.data.annotations.grounding_jsonl import grounding_row

    return [grounding_row(s) for s in samples]


def build(cfg: ExperimentConfig, splits=("train", "val")):
    from momentkit.training.module import GroundingModule

    dm = GroundingDataModule(cfg.data, seed=cfg.train.seed)
    vdim, tdim = dm.input_dims()
    model_cfg = dict(cfg.model)
    model_cfg.setdefault("video_dim", vdim)
    model_cfg.setdefault("text_dim", tdim)
    if model_cfg["video_dim"] != vdim or model_cfg["text_dim"] != tdim:
        raise InputError(f"model expects video/text widths {model_cfg['video_dim']}/{model_cfg['text_dim']}, "
                         f"features have {vdim}/{tdim}", field="model")
    cfg.model = model_cfg
    gt = {s: _gt_dicts(dm.samples(s)) for s in splits if getattr(cfg.data, s)}
    module = GroundingModule(cfg.to_dict(), gt=gt)
    return dm, module


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
    """Train, keep the best checkpoint, evaluate it on val (and test when configured)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

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
    callbacks = [best_cb, _Curve(cfg.train.monitor), last_cb]
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
    curve = callbacks[1].rows
    _write_curve(out, curve, cfg.train.monitor)
    best = best_cb.best_model_path or str(ckpt_dir / "last.ckpt")
    result = {"best_checkpoint": best, "curve": curve}
    if Path(best).is_file():
        state = load_checkpoint(best)
        module.load_state_dict(state["state_dict"])
        export_weights(module, out)
        for split in ("val", "test"):
            if getattr(cfg.data, split):
                result[split] = evaluate_split(cfg, module, dm, split, out)
    return result


def evaluate_split(cfg: ExperimentConfig, module, dm, split: str, out: Path) -> dict:
    """Predict ``split`` with ``module``, write predictions and metrics; return the metrics."""
    from momentkit.training.evaluation import score_predictions

    if split not in module.gt:
        module.gt[split] = _gt_dicts(dm.samples(split))
    dm.test_split = module.test_split = split
    trainer = _trainer(cfg, out, [], enable_checkpointing=False, loggers=False)
    trainer.test(module, datamodule=dm, verbose=False)
    preds = sorted(module.predictions, key=lambda p: str(p["qid"]))
    if trainer.is_global_zero:
        write_jsonl(out / f"predictions_{split}.jsonl", preds)
        metrics = score_predictions(preds, module.gt[split], cfg.eval.task, full=True,
                                    active_threshold=cfg.eval.active_threshold)
        write_json(out / f"metrics_{split}.json", metrics)
        return metrics
    return {}


def load_checkpoint(path: str | Path) -> dict:
    """Load a Lightning checkpoint without executing pickled code (``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("checkpoint not found", path=path) from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise InputError(f"cannot read checkpoint ({type(e).__name__}: {e})", path=path) from None


def export_weights(module, out: Path) -> Path:
    from safetensors.torch import save_file

    from momentkit.io import atomic_save

    state = {k: v.detach().cpu().contiguous() for k, v in module.model.state_dict().items()}
    path = out / "model.safetensors"
    atomic_save(path, lambda tmp: save_file(state, tmp, metadata={"config": yaml.safe_dump(module.hparams["config"])}))
    return path


def _write_curve(out: Path, rows: list[dict], monitor: str) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_write(out / "curve.csv") as fh:
        fh.write(",".join(keys) + "\n")
        for r in rows:
            fh.write(",".join(str(r.get(k, "")) for k in keys) + "\n")
    from momentkit.viz import plot_learning_curve

    plot_learning_curve(rows, monitor, out / "curve.png")


def test(cfg: ExperimentConfig, ckpt: str, split: str = "val") -> dict:
    state = load_checkpoint(ckpt)
    saved = state.get("hyper_parameters", {}).get("config")
    if saved is None:
        raise InputError("checkpoint carries no momentkit config", path=ckpt)
    from momentkit.config import from_dict

    run_cfg = from_dict(ExperimentConfig, saved)
    run_cfg.data = cfg.data  # data paths from the config given now
    run_cfg.eval = cfg.eval
    run_cfg.train.out_dir = cfg.train.out_dir
    run_cfg.train.progress = cfg.train.progress
    dm, module = build(run_cfg, splits=())
    module.load_state_dict(state["state_dict"])
    return evaluate_split(run_cfg, module, dm, split, Path(run_cfg.train.out_dir))
