"""Training of the temporal action detector, single-domain or with domain adaptation (SADA / DANN).

``momentkit train CONFIG [--set key=value]`` (or ``momentkit train-tal``) runs :func:`train_tal` on a :class:`TALConfig`
(YAML, see ``configs/tal/``). What it does:

- Data: ``data.source`` (and, for adaptation, ``data.target``) are detection JSON files; their
  ``train_subset`` videos train, ``val_subset`` videos evaluate. Target training videos lose their
  segments before any dataset sees them (:func:`momentkit.tal.data.unlabelled`); target labels are
  read only to score ``target/val``. Batches: ``batch_size`` source (+ ``target_batch_size``
  target videos when ``align.mode`` is not ``none`` and a target is given).
- Optimisation (the thesis's / ActionFormer's recipe): AdamW (no weight decay on biases and norm
  weights), linear warm-up for ``warmup_epochs`` then cosine decay to 0, per step; gradient clipping.
- EMA of the detector's weights (``ema_decay``, warmed up as ``min(decay, (1 + n) / (10 + n))`` after
  ``n`` updates so short runs are not dominated by the initial weights); evaluation uses the EMA copy.
- Every ``eval_every`` epochs each split of ``eval.splits`` (``source/val``, ``target/val``) is
  predicted and scored with :func:`momentkit.metrics.evaluate_detection`. The best epoch by the
  ``average-mAP`` of ``train.monitor`` (default the first split: the *source* val, the target's
  labels being unavailable in unsupervised adaptation) is kept: ``best.pt`` (EMA weights),
  ``predictions_<domain>_<split>.json`` (ActivityNet format) and ``metrics.json`` (best epoch,
  every split's metrics at that epoch, the history) -- all written atomically in ``train.out_dir``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

from momentkit.config import apply_overrides, from_dict, load_yaml, to_dict
from momentkit.errors import InputError
from momentkit.tal.detector import DetectorConfig
from momentkit.tal.sada import AlignConfig

DOMAINS = ("source", "target")


@dataclasses.dataclass
class TALDataConfig:
    source: Path
    video_features: list[Path]
    target: Path | None = None
    train_subset: str = "training"
    val_subset: str = "validation"
    classes: list[str] | None = None  # default: the labels of the source training videos, sorted
    feat_stride: int | None = None  # frames (with num_frames / default_fps) ...
    num_frames: int | None = None
    default_fps: float | None = None
    feat_stride_seconds: float | None = None  # ... or seconds
    feat_offset_seconds: float = 0.0
    downsample_rate: int = 1
    max_seq_len: int | None = 2304
    trunc_thresh: float = 0.5
    crop_ratio: tuple[float, float] | None = None
    batch_size: int = 2
    target_batch_size: int = 2
    eval_batch_size: int = 4
    num_workers: int = 0
    normalize_features: bool = False  # L2 per part when several feature folders are concatenated
    max_videos: int | None = None  # keep the first N videos of every split (quick runs)


@dataclasses.dataclass
class TALTrainConfig:
    out_dir: Path = Path("runs/tal")
    epochs: int = 50
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 5.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 1
    monitor: str | None = None  # an eval split; default the first
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "32-true"
    threads: int | None = None  # torch CPU threads


@dataclasses.dataclass
class TALEvalConfig:
    splits: list[str] = dataclasses.field(default_factory=lambda: ["source/val"])
    tiou: str | list[float] = "epic"


@dataclasses.dataclass
class TALConfig:
    data: TALDataConfig
    model: DetectorConfig = dataclasses.field(default_factory=DetectorConfig)
    align: AlignConfig = dataclasses.field(default_factory=AlignConfig)
    train: TALTrainConfig = dataclasses.field(default_factory=TALTrainConfig)
    eval: TALEvalConfig = dataclasses.field(default_factory=TALEvalConfig)


def is_tal_config(data: dict) -> bool:
    """Whether a loaded YAML config is an action-localisation one (``data.source``), not grounding."""
    return isinstance(data, dict) and isinstance(data.get("data"), dict) and "source" in data["data"]


def load_tal_config(path: str | Path, overrides: list[str] | None = None) -> TALConfig:
    data = apply_overrides(load_yaml(path), overrides or [])
    try:
        cfg = from_dict(TALConfig, data, path=str(path))
    except InputError:
        raise
    except ValueError as e:  # __post_init__ checks
        raise InputError(str(e), path=path) from None
    for split in cfg.eval.splits:
        dom, _, sub = split.partition("/")
        if dom not in DOMAINS or sub != "val":
            raise InputError(f"eval split {split!r}: expected source/val or target/val", path=path,
                             field="eval.splits")
        if dom == "target" and cfg.data.target is None:
            raise InputError("target/val needs data.target", path=path, field="eval.splits")
    if cfg.train.monitor is not None and cfg.train.monitor not in cfg.eval.splits:
        raise InputError(f"{cfg.train.monitor!r} is not one of eval.splits", path=path, field="train.monitor")
    return cfg


# ---------------------------------------------------------------------------------------- data
def _gt_dict(samples) -> dict:
    return {"database": {s.video: {"subset": s.subset, "duration": s.duration,
                                   "annotations": [{"segment": [g.start, g.end], "label": g.label}
                                                   for g in s.segments]} for s in samples}}


def _read(path: Path, subset: str, limit: int | None):
    from momentkit.data.annotations import read_detection_json

    samples = read_detection_json(path, subset=subset)
    return samples[:limit] if limit else samples


def build_data(cfg: TALConfig) -> dict:
    """Datasets, class names, feature width and ground truths of every split."""
    from momentkit.data.datasets import DetectionDataset
    from momentkit.data.features import open_store
    from momentkit.tal.data import unlabelled

    d = cfg.data
    paths = [str(p) for p in d.video_features]
    store = open_store(paths if len(paths) > 1 else paths[0], kind="video", normalize=d.normalize_features)
    src_train = _read(d.source, d.train_subset, d.max_videos)
    classes = d.classes or sorted({g.label for s in src_train for g in s.segments})
    if not classes:
        raise InputError("the source training videos have no labelled segment", path=d.source)
    grid = dict(feat_stride=d.feat_stride, num_frames=d.num_frames, default_fps=d.default_fps,
                feat_stride_seconds=d.feat_stride_seconds, feat_offset_seconds=d.feat_offset_seconds,
                downsample_rate=d.downsample_rate)

    def dataset(samples, training):
        return DetectionDataset(samples, store, classes, **grid, max_seq_len=d.max_seq_len, training=training,
                                trunc_thresh=d.trunc_thresh, crop_ratio=d.crop_ratio, skip_unknown_labels=True,
                                seed=cfg.train.seed)

    out = {"classes": list(classes), "input_dim": store.dim, "train": dataset(src_train, True), "eval": {},
           "gt": {}, "target_train": None}
    use_target = d.target is not None and cfg.align.mode != "none"
    if use_target:
        out["target_train"] = dataset(unlabelled(_read(d.target, d.train_subset, d.max_videos)), True)
    for split in cfg.eval.splits:
        dom = split.split("/")[0]
        samples = _read(d.source if dom == "source" else d.target, d.val_subset, d.max_videos)
        out["eval"][split] = dataset(samples, False)
        out["gt"][split] = _gt_dict(samples)
    return out


def _loaders(cfg: TALConfig, data: dict):
    from torch.utils.data import DataLoader

    from momentkit.data.datasets import collate_detection
    from momentkit.tal.data import TwoDomainBatchSampler, TwoDomainDataset, collate_two_domain

    d = cfg.data
    if data["target_train"] is not None:
        ds = TwoDomainDataset(data["train"], data["target_train"])
        sampler = TwoDomainBatchSampler(*ds.sizes, d.batch_size, d.target_batch_size, seed=cfg.train.seed)
        train = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_two_domain, num_workers=d.num_workers)
    else:
        ds = data["train"]
        sampler = TwoDomainBatchSampler(len(ds), 0, d.batch_size, 0, seed=cfg.train.seed)  # source only
        train = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_two_domain, num_workers=d.num_workers)
    evals = [DataLoader(ds_, batch_size=d.eval_batch_size, shuffle=False, collate_fn=collate_detection,
                        num_workers=d.num_workers) for ds_ in data["eval"].values()]
    return train, sampler, ds, evals


# ---------------------------------------------------------------------------------------- module
def _lightning_module():
    import lightning as L
    import torch

    from momentkit.metrics import evaluate_detection
    from momentkit.tal.detector import TemporalActionDetector
    from momentkit.tal.sada import DomainAlignment

    class TALModule(L.LightningModule):
        """Detector + domain alignment; EMA copy for evaluation; best epoch kept by ``monitor``."""

        def __init__(self, cfg: TALConfig, classes: list[str], gts: dict, out_dir: Path,
                     steps_per_epoch: int = 1) -> None:
            super().__init__()
            self.steps_per_epoch = max(1, int(steps_per_epoch))
            self.cfg, self.classes, self.gts, self.out_dir = cfg, classes, gts, out_dir
            self.detector = TemporalActionDetector(cfg.model)
            self.align = DomainAlignment(cfg.align, cfg.model.num_levels, cfg.model.embed_dim, cfg.model.num_classes)
            self.ema = copy.deepcopy(self.detector).requires_grad_(False)
            self.ema_updates = 0
            self.splits = list(gts)
            self.monitor = cfg.train.monitor or self.splits[0]
            self.best: dict | None = None
            self.history: list[dict] = []
            self._preds: dict[str, dict] = {}

        # -------------------------------------------------------------- training
        def training_step(self, batch, batch_idx):
            self.align.set_progress((self.current_epoch + batch_idx / self.steps_per_epoch) / max(1, self.cfg.train.epochs))
            out = self.detector(batch)
            domain = batch["domain"].to(self.device)
            targets = self.detector.targets(out, batch)  # target rows have no segments: all background
            src = domain == 0
            sub = {k: v[src] for k, v in out.items() if torch.is_tensor(v)}
            sub["points"] = out["points"]
            task, terms = self.detector.loss(sub, None, tuple(t[src] for t in targets))
            total = task
            if self.cfg.align.mode != "none":
                align, aterms = self.align(out["anchors"], out["anchor_mask"], out["points"]["level"], domain,
                                           targets[3], out["cls_logits"])
                total = task + self.cfg.align.weight * align
                terms = {**terms, "loss_align": align.detach(), **aterms}
            self.log_dict({f"train/{k}": float(v) for k, v in terms.items()}, on_step=False, on_epoch=True,
                          batch_size=len(domain))
            self.log("train/loss", total.detach(), on_step=False, on_epoch=True, batch_size=len(domain))
            return total

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            n = self.ema_updates
            decay = min(self.cfg.train.ema_decay, (1 + n) / (10 + n))
            with torch.no_grad():
                for e, p in zip(self.ema.state_dict().values(), self.detector.state_dict().values()):
                    if e.dtype.is_floating_point:
                        e.mul_(decay).add_(p.detach(), alpha=1 - decay)
                    else:
                        e.copy_(p)
            self.ema_updates += 1

        def on_train_epoch_start(self) -> None:
            loader = self.trainer.train_dataloader
            for obj in (getattr(loader, "batch_sampler", None), getattr(loader, "dataset", None)):
                if hasattr(obj, "set_epoch"):
                    obj.set_epoch(self.current_epoch)

        # -------------------------------------------------------------- evaluation
        def on_validation_epoch_start(self) -> None:
            self._preds = {s: {} for s in self.splits}

        def validation_step(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
            self.ema.eval()
            out = self.ema(batch)
            self._preds[self.splits[dataloader_idx]].update(self.ema.postprocess(out, batch, self.classes))

        def on_validation_epoch_end(self) -> None:
            if self.trainer.sanity_checking:
                return
            scores = {s: evaluate_detection({"results": self._preds[s]}, self.gts[s], tiou=self.cfg.eval.tiou,
                                            per_class=False) for s in self.splits}
            row = {"epoch": self.current_epoch,
                   **{f"{s}/{k}": v for s in self.splits for k, v in scores[s].items() if k.startswith("mAP")
                      or k == "average-mAP"}}
            self.history.append(row)
            for k, v in row.items():
                if k != "epoch":
                    self.log(k, float(v))
            value = scores[self.monitor]["average-mAP"]
            if self.best is None or value > self.best["value"]:
                self.best = {"epoch": self.current_epoch, "value": value, "metrics": scores}
                self._write_best(scores)

        def _write_best(self, scores: dict) -> None:
            from momentkit.io import atomic_save, write_json

            atomic_save(self.out_dir / "best.pt", lambda f: torch.save(
                {"detector": self.ema.state_dict(), "classes": self.classes, "config": to_dict(self.cfg),
                 "epoch": self.current_epoch}, f))
            for s in self.splits:
                write_json(self.out_dir / f"predictions_{s.replace('/', '_')}.json",
                           {"version": "momentkit", "results": self._preds[s], "external_data": {}}, indent=None)

        # -------------------------------------------------------------- optimisation
        def configure_optimizers(self):
            t = self.cfg.train
            decay, no_decay = [], []
            for p in list(self.detector.parameters()) + list(self.align.parameters()):
                if p.requires_grad:
                    (decay if p.ndim > 1 else no_decay).append(p)
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                     {"params": no_decay, "weight_decay": 0.0}], lr=t.lr)
            steps_per_epoch = self.steps_per_epoch
            total = max(1, t.epochs * steps_per_epoch)
            warm = int(t.warmup_epochs * steps_per_epoch)

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return TALModule


def train_tal(cfg: TALConfig) -> dict:
    """Train, keep the best epoch, write ``best.pt``, predictions and ``metrics.json``; returns the metrics."""
    import lightning as L
    import torch

    from momentkit.io import write_json

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    data = build_data(cfg)
    if cfg.model.num_classes == 0:
        cfg.model.num_classes = len(data["classes"])
    if cfg.model.input_dim == 0:
        cfg.model.input_dim = data["input_dim"]
    if cfg.model.num_classes != len(data["classes"]):
        raise InputError(f"model.num_classes is {cfg.model.num_classes} but there are {len(data['classes'])} "
                         "classes", field="model.num_classes")
    if cfg.model.input_dim != data["input_dim"]:
        raise InputError(f"model.input_dim is {cfg.model.input_dim} but the features have {data['input_dim']}",
                         field="model.input_dim")
    out = Path(cfg.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_loader, _, _, evals = _loaders(cfg, data)
    module = _lightning_module()(cfg, data["classes"], data["gt"], out, steps_per_epoch=len(train_loader))
    trainer = L.Trainer(max_epochs=cfg.train.epochs, accelerator=cfg.train.accelerator, devices=cfg.train.devices,
                        precision=cfg.train.precision, gradient_clip_val=cfg.train.grad_clip or None,
                        check_val_every_n_epoch=cfg.train.eval_every, num_sanity_val_steps=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, deterministic=False)
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=evals)
    if module.best is None:
        raise InputError("no evaluation ran: set train.eval_every <= train.epochs", field="train.eval_every")
    result = {"monitor": module.monitor, "best_epoch": module.best["epoch"],
              "splits": module.best["metrics"], "history": module.history,
              "align": cfg.align.mode, "seed": cfg.train.seed}
    write_json(out / "metrics.json", result)
    return result
