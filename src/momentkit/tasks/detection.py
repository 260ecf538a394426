"""Task ``detection``: temporal action localisation, single-domain or with unsupervised domain adaptation.

- ``data`` (:class:`DetectionDataConfig`): ``source`` (and, for adaptation, ``target``) detection JSON
  files (ActivityNet / ActionFormer / OpenTAD layout, :func:`momentkit.data.annotations.read_detection_json`);
  their ``train_subset`` videos train, ``val_subset`` (and ``test_subset``) videos evaluate. Items come
  from :class:`momentkit.data.datasets.DetectionDataset`, on the feature grid given by ``feat_stride`` /
  ``num_frames`` / ``default_fps`` (frames) or ``feat_stride_seconds`` / ``feat_offset_seconds``.
- Two domains: when ``data.target`` is given and the model aligns domains (``model.align.mode`` is not
  ``none``), every training batch holds ``batch_size`` source and ``target_batch_size`` target videos
  (:class:`momentkit.tal.data.TwoDomainBatchSampler`); target training videos lose their segments before
  any dataset sees them (:func:`momentkit.tal.data.unlabelled`), so target labels reach no loss; they are
  read only to score the target evaluation set.
- ``eval`` (:class:`DetectionEvalConfig`): the ``domains`` evaluated (sets ``source/val``,
  ``target/val``, ...) and the tIoU thresholds. Metrics are :func:`momentkit.metrics.evaluate_detection`
  (``mAP@t``, ``average-mAP``), keys prefixed with the set (``target/val/average-mAP``); the default
  ``train.monitor`` is the first domain's ``average-mAP`` (the source: in unsupervised adaptation
  target labels are not available for model selection).
- Predictions: ``predictions_<domain>_<split>.json`` in the ActivityNet format.
- One video of a trained run (``momentkit serve``): :func:`detect_video`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import lightning as L

from momentkit.errors import InputError
from momentkit.tasks import Task, register_task, set_metric_key

DOMAINS = ("source", "target")


@dataclass
class DetectionDataConfig:
    source: Path | None = None
    video_features: list[Path] = field(default_factory=list)
    target: Path | None = None
    train_subset: str = "training"
    val_subset: str = "validation"
    test_subset: str | None = None
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

    def __post_init__(self) -> None:
        from momentkit.training.config import check_ranges

        check_ranges(self, positive=("downsample_rate", "batch_size", "eval_batch_size"),
                     nonneg=("target_batch_size", "num_workers"), optional_positive=("max_seq_len", "max_videos"))


@dataclass
class DetectionEvalConfig:
    domains: list[str] = field(default_factory=lambda: ["source"])  # evaluated domains, in this order
    tiou: str | list[float] = "epic"  # thresholds: "thumos", "epic", "activitynet" or a list


def _gt_dict(samples) -> dict:
    return {"database": {s.video: {"subset": s.subset, "duration": s.duration,
                                   "annotations": [{"segment": [g.start, g.end], "label": g.label}
                                                   for g in s.segments]} for s in samples}}


def _aligns(cfg) -> bool:
    """Whether the model aligns domains (then target training videos join the batches)."""
    align = cfg.model.get("align") or {}
    return isinstance(align, dict) and align.get("mode", "none") != "none"


class DetectionDataModule(L.LightningDataModule):
    """Detection JSON + feature store -> (two-domain) training batches and per-domain evaluation sets."""

    def __init__(self, cfg: DetectionDataConfig, eval_cfg: DetectionEvalConfig, seed: int = 0,
                 two_domain: bool = False) -> None:
        super().__init__()
        self.cfg, self.eval_cfg, self.seed = cfg, eval_cfg, seed
        self.two_domain = two_domain and cfg.target is not None
        self.resume_from: tuple[int, int] | None = None
        self.test_split = "test"

    @cached_property
    def store(self):
        from momentkit.data.features import open_store

        if not self.cfg.video_features:
            raise InputError("no video features configured", field="data.video_features")
        paths = [str(p) for p in self.cfg.video_features]
        return open_store(paths if len(paths) > 1 else paths[0], kind="video", normalize=self.cfg.normalize_features)

    def samples(self, domain: str, split: str):
        from momentkit.data.annotations import read_detection_json

        path = self.cfg.source if domain == "source" else self.cfg.target
        subset = {"train": self.cfg.train_subset, "val": self.cfg.val_subset, "test": self.cfg.test_subset}[split]
        if path is None:
            raise InputError(f"no {domain} annotation file", field=f"data.{domain}")
        if subset is None:
            raise InputError(f"no subset for split '{split}'", field=f"data.{split}_subset")
        key = (str(path), subset)
        if key not in self._samples:
            got = read_detection_json(path, subset=subset)
            self._samples[key] = got[: self.cfg.max_videos] if self.cfg.max_videos else got
        return self._samples[key]

    @cached_property
    def _samples(self) -> dict:
        return {}

    @cached_property
    def classes(self) -> list[str]:
        classes = self.cfg.classes or sorted({g.label for s in self.samples("source", "train") for g in s.segments})
        if not classes:
            raise InputError("the source training videos have no labelled segment", path=self.cfg.source)
        return list(classes)

    def dataset(self, samples, training: bool):
        from momentkit.data.datasets import DetectionDataset

        d = self.cfg
        return DetectionDataset(samples, self.store, self.classes, feat_stride=d.feat_stride, num_frames=d.num_frames,
                                default_fps=d.default_fps, feat_stride_seconds=d.feat_stride_seconds,
                                feat_offset_seconds=d.feat_offset_seconds, downsample_rate=d.downsample_rate,
                                max_seq_len=d.max_seq_len, training=training, trunc_thresh=d.trunc_thresh,
                                crop_ratio=d.crop_ratio, skip_unknown_labels=True, seed=self.seed)

    # ------------------------------------------------------------------ the engine's questions
    def model_inputs(self) -> dict:
        return {"input_dim": int(self.store.dim), "num_classes": len(self.classes)}

    def resolved_data(self) -> DetectionDataConfig:
        return dataclasses.replace(self.cfg, classes=list(self.classes))

    def has_split(self, split: str) -> bool:
        return split in ("train", "val") or (split == "test" and self.cfg.test_subset is not None)

    def eval_sets(self, split: str) -> list[str]:
        return [f"{domain}/{split}" for domain in self.eval_cfg.domains]

    def ground_truth(self, set_name: str) -> dict:
        domain, _, split = set_name.partition("/")
        return _gt_dict(self.samples(domain, split))

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self):
        from torch.utils.data import DataLoader

        from momentkit.tal.data import TwoDomainBatchSampler, TwoDomainDataset, collate_two_domain, unlabelled

        d = self.cfg
        source = self.dataset(self.samples("source", "train"), True)
        if self.two_domain:
            ds = TwoDomainDataset(source, self.dataset(unlabelled(self.samples("target", "train")), True))
            sampler = TwoDomainBatchSampler(*ds.sizes, d.batch_size, d.target_batch_size, seed=self.seed)
        else:
            ds = source
            sampler = TwoDomainBatchSampler(len(ds), 0, d.batch_size, 0, seed=self.seed)
        if self.resume_from is not None:
            from momentkit.training.sampler import batches_done

            sampler.skip_batches = batches_done(self.resume_from, len(sampler))
            self.resume_from = None
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate_two_domain, num_workers=d.num_workers)

    def _eval_loaders(self, split: str):
        from torch.utils.data import DataLoader

        from momentkit.tal.data import collate_two_domain

        loaders = []
        for name in self.eval_sets(split):
            domain, _, sp = name.partition("/")
            ds = self.dataset(self.samples(domain, sp), False)
            loaders.append(DataLoader(ds, batch_size=self.cfg.eval_batch_size, shuffle=False,
                                      collate_fn=collate_two_domain, num_workers=self.cfg.num_workers))
        return loaders

    def val_dataloader(self):
        return self._eval_loaders("val")

    def test_dataloader(self):
        return self._eval_loaders(self.test_split)


def detect_video(model, cfg, feats, *, duration: float, fps: float | None = None, clip_len: float | None = None,
                 video: str = "video", device: str = "cpu") -> list[dict]:
    """Detections ``[{"segment": [start, end] (s), "label": class name, "score"}]``, best first, of one
    video's features ``(T, D)``, made as for an evaluation video: the config's feature grid and
    ``downsample_rate`` (:class:`~momentkit.data.datasets.DetectionDataset`; ``fps`` is the video's, for
    a grid in frames without ``data.default_fps``), one batch, the model's ``forward`` and
    ``postprocess``. ``clip_len``: seconds per feature of ``feats`` (their extraction's clip length),
    refused when the grid steps by another length."""
    from types import SimpleNamespace

    import torch

    from momentkit.data.datasets import DetectionDataset
    from momentkit.data.records import DetectionSample
    from momentkit.tal.data import collate_two_domain
    from momentkit.tasks import get_task, video_feature_input

    x = video_feature_input(feats, cfg, "features")
    d = cfg.data
    if not d.classes:
        raise InputError("the run records no class names", field="data.classes")
    if d.feat_stride is not None and d.default_fps is None and not fps:
        raise InputError("the model's feature grid is in frames and the video's frame rate is unknown",
                         field="data.default_fps")
    sample = DetectionSample(video, float(duration), (), fps=fps)
    ds = DetectionDataset([sample], SimpleNamespace(get=lambda key: x), d.classes, feat_stride=d.feat_stride,
                          num_frames=d.num_frames, default_fps=d.default_fps,
                          feat_stride_seconds=d.feat_stride_seconds, feat_offset_seconds=d.feat_offset_seconds,
                          downsample_rate=d.downsample_rate, training=False, check=False)
    item = ds[0]
    step = item["meta"]["stride_seconds"] / d.downsample_rate
    if clip_len is not None and abs(step - float(clip_len)) > 1e-6:
        raise InputError(f"the model places its features every {step:g} s but these are clips of {float(clip_len):g} s",
                         field="data.feat_stride_seconds")
    batch = collate_two_domain([item])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.no_grad():
        row = model.postprocess(model(batch), batch, **get_task(cfg.task).postprocess_options(cfg))[0]
    return [{**det, "label": d.classes[det["label"]]} for det in row["detections"]]


class DetectionTask(Task):
    name = "detection"
    data_config = DetectionDataConfig
    eval_config = DetectionEvalConfig
    derived_data = ("classes",)  # kept from training when `momentkit test` is given a config without them

    def datamodule(self, cfg, seed: int = 0) -> DetectionDataModule:
        return DetectionDataModule(cfg.data, cfg.eval, seed=seed, two_domain=_aligns(cfg))

    def check(self, cfg, path: str | None) -> None:
        if cfg.data.source is None:
            raise InputError("a detection config needs the source annotation file", path=path, field="data.source")
        for domain in cfg.eval.domains:
            if domain not in DOMAINS:
                raise InputError(f"expected domains from {list(DOMAINS)}, got {domain!r}", path=path,
                                 field="eval.domains")
        if "target" in cfg.eval.domains and cfg.data.target is None:
            raise InputError("evaluating the target domain needs data.target", path=path, field="eval.domains")
        if not cfg.eval.domains:
            raise InputError("evaluate at least one domain", path=path, field="eval.domains")
        if _aligns(cfg) and (cfg.data.target is None or cfg.data.target_batch_size < 1):
            raise InputError("domain alignment needs target videos: set data.target and data.target_batch_size",
                             path=path, field="model.align.mode")

    def metric_names(self, cfg) -> list[str]:
        from momentkit.metrics.common import parse_thresholds, threshold_key

        keys = [f"mAP@{threshold_key(t)}" for t in parse_thresholds(cfg.eval.tiou, "epic")] + ["average-mAP"]
        return [set_metric_key(f"{d}/val", "val", k) for d in cfg.eval.domains for k in keys]

    def default_monitor(self, cfg) -> str:
        return f"{cfg.eval.domains[0]}/val/average-mAP"

    def row_key(self, row: dict):
        return row["video"]

    def _results(self, rows: list[dict], dm) -> dict:
        names = dm.classes
        return {r["video"]: [{**d, "label": names[d["label"]]} for d in r["detections"]] for r in rows}

    def score(self, rows: list[dict], gt: dict, cfg, dm, *, full: bool = False) -> dict:
        from momentkit.metrics import evaluate_detection

        # classes without a segment in this set cannot change its AP: leave them out (a model that only
        # predicts such classes scores 0, it is not a label mismatch of the files)
        present = {a["label"] for v in gt["database"].values() for a in v["annotations"]}
        results = {v: [d for d in ds if d["label"] in present] for v, ds in self._results(rows, dm).items()}
        res = evaluate_detection({"results": results}, gt, tiou=cfg.eval.tiou, per_class=full)
        flat = {k: v for k, v in res.items() if k.startswith("mAP") or k == "average-mAP"}
        return {"brief": flat, **res} if full else flat

    def write_predictions(self, out: Path, set_name: str, rows: list[dict], dm) -> Path:
        from momentkit.io import write_json

        path = out / f"predictions_{set_name.replace('/', '_')}.json"
        write_json(path, {"version": "momentkit", "results": self._results(rows, dm), "external_data": {}},
                   indent=None)
        return path


register_task(DetectionTask())
