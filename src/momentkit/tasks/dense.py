"""Task ``dense``: per-frame multi-label activity detection (Charades localize, MultiTHUMOS).

- ``data`` (:class:`DenseDataConfig`): annotation files of any detection format momentkit reads
  (``detection-json``, ``superevents-json`` for MultiTHUMOS, ``charades-csv`` for
  ``Charades_v1_{train,test}.csv``; ``format`` / ``format_options`` go to
  :func:`momentkit.data.annotations.read_annotations`), one file for every split (subsets pick the
  videos) or one per split (``val_annotations``, ``test_annotations``); inputs are feature folders
  (``video_features``) or a folder of video files (``videos``, raw frames). Targets are per-frame
  multi-label 0/1 vectors on the grid of :mod:`momentkit.data.dense` (``frames`` per item,
  ``sampling`` ``resize`` or ``window``).
- Class columns (:func:`momentkit.data.dense.class_columns`): ``classes`` when given (Charades:
  ``c000`` ... ``c156``), else the ``label_id`` s of the file, else the sorted labels.
- Metrics (:func:`momentkit.metrics.evaluate_dense`): ``mAP`` -- per-frame mAP over every predicted
  frame (the thesis's ablation metric, MultiTHUMOS), and ``localize-mAP`` / ``localize-weighted-mAP``
  -- the official Charades localize protocol (``eval.localize_frames`` = 25 equally spaced frames per
  video, class-weighted). The default ``train.monitor`` is ``mAP``.
- Predictions: ``predictions_<split>.json`` (``{"results": {video: [[score per class] per frame]}}``,
  what ``momentkit evaluate --task dense`` reads) and ``predictions_<split>_localize.txt``, the
  Charades localize submission (``<video> <frame 1..25> <score per class>`` per line).

Prediction rows (the models' ``postprocess``): ``{"video", "frame_start", "num_frames", "scores":
[[K scores] per valid frame]}``; the rows of a video's windows are stitched by ``frame_start``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import lightning as L
import numpy as np

from momentkit.errors import InputError
from momentkit.tasks import Task, register_task, set_metric_key

SPLITS = ("train", "val", "test")


@dataclass
class VolumeAugmentConfig:
    """Volume augmentations of training items (detection pretraining, thesis 004 chapter 4)."""

    freeze: float = 0.0  # probability of Volume Freeze
    mixup: float = 0.0  # of Volume MixUp (with another random training item)
    cutmix: float = 0.0  # of Volume CutMix (raw frames only)
    cutmix_mode: str = "view"  # view | window | random
    mixup_scenario: str | None = None  # None (from the lengths) | one-way | round-trip | random
    joint: str = "single"  # single: at most one augmentation per clip; several: each drawn on its own

    def __post_init__(self) -> None:
        from momentkit.ops.volume import VolumeAugment

        if self.joint not in ("single", "several"):
            raise InputError(f"expected 'single' or 'several', got {self.joint!r}", field="joint")
        if self.joint == "single":
            VolumeAugment(self.freeze, self.mixup, self.cutmix, cutmix_mode=self.cutmix_mode,
                          mixup_scenario=self.mixup_scenario)  # checks probabilities and names
        else:
            VolumeAugment(cutmix_mode=self.cutmix_mode, mixup_scenario=self.mixup_scenario)
            for name in ("freeze", "mixup", "cutmix"):
                if not 0 <= getattr(self, name) <= 1:
                    raise InputError(f"must be a probability in [0, 1], got {getattr(self, name)}", field=name)


@dataclass
class DenseDataConfig:
    annotations: Path | None = None  # every split's videos (subsets pick them), or the training file
    val_annotations: Path | None = None  # default: `annotations`
    test_annotations: Path | None = None  # default: `annotations`
    format: str | None = None  # None: detected from the file
    format_options: dict = field(default_factory=dict)  # e.g. {index_base: 1} (MultiTHUMOS super-events)
    train_subset: str | None = "training"  # None: every video of the file
    val_subset: str | None = "validation"
    test_subset: str | None = None
    classes: list[str] | None = None  # class columns (see the module docstring)
    video_features: list[Path] = field(default_factory=list)  # feature folders (or packed files) ...
    videos: Path | None = None  # ... or a folder of video files <id>.mp4 (raw frames)
    fps: float | None = None  # raw frames: decoding rate (None: every frame)
    frame_size: int = 32  # raw frames: square side in pixels
    frames: int = 128  # frames per item (the Fine stream's T')
    sampling: str = "resize"  # "resize" (whole video as `frames` frames) or "window"
    batch_size: int = 8
    eval_batch_size: int = 16
    num_workers: int = 0
    normalize_features: bool = False
    max_videos: int | None = None  # keep the first N videos of every split (quick runs)
    clip_labels: bool = False  # every frame takes its clip's label (clip-level pretraining data)
    augment: VolumeAugmentConfig = field(default_factory=VolumeAugmentConfig)  # training items only

    def __post_init__(self) -> None:
        from momentkit.training.config import check_ranges

        check_ranges(self, positive=("frames", "batch_size", "eval_batch_size", "frame_size"),
                     nonneg=("num_workers",), optional_positive=("max_videos", "fps"))
        if self.sampling not in ("resize", "window"):
            raise InputError(f"expected 'resize' or 'window', got {self.sampling!r}", field="data.sampling")


@dataclass
class DenseEvalConfig:
    localize_frames: int = 25  # Charades localize: equally spaced frames per video

    def __post_init__(self) -> None:
        from momentkit.training.config import check_ranges

        check_ranges(self, positive=("localize_frames",))


def _gt(samples, columns: dict[str, int]) -> dict:
    return {"database": {s.video: {"subset": s.subset, "duration": s.duration,
                                   "annotations": [{"segment": [g.start, g.end], "label_id": columns[g.label]}
                                                   for g in s.segments]} for s in samples}}


class DenseDataModule(L.LightningDataModule):
    """Annotation files + features or videos -> fixed-length per-frame items (:class:`DenseDataset`)."""

    def __init__(self, cfg: DenseDataConfig, eval_cfg: DenseEvalConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.eval_cfg, self.seed = cfg, eval_cfg, seed
        self.resume_from: tuple[int, int] | None = None
        self.test_split = "test"
        self._samples: dict = {}

    def path(self, split: str) -> Path:
        d = self.cfg
        path = {"train": d.annotations, "val": d.val_annotations, "test": d.test_annotations}[split] or d.annotations
        if path is None:
            raise InputError("no annotation file", field="data.annotations")
        return Path(path)

    def samples(self, split: str):
        if split not in self._samples:
            from momentkit.data.annotations import read_annotations

            d = self.cfg
            path = self.path(split)
            from momentkit.data.annotations import detect_format, get_format

            options = dict(d.format_options)
            if "on_invalid" in get_format(d.format or detect_format(path)).options():
                options.setdefault("on_invalid", "error")  # a segment outside its video is an error here
            got = read_annotations(path, d.format, **options)
            if got and not hasattr(got[0], "segments"):
                raise InputError("expected a detection annotation file (videos with labelled segments)", path=path,
                                 field="data.annotations")
            subset = {"train": d.train_subset, "val": d.val_subset, "test": d.test_subset}[split]
            if subset is not None:
                got = [s for s in got if (s.subset or "").lower() == subset.lower()]
                if not got:
                    raise InputError(f"no video of subset {subset!r}", path=path, field=f"data.{split}_subset")
            self._samples[split] = got[: d.max_videos] if d.max_videos else got
        return self._samples[split]

    @cached_property
    def _columns(self) -> tuple[list[str], dict[str, int]]:
        from momentkit.data.dense import class_columns

        classes, mapping = class_columns(self.samples("train"), self.cfg.classes, path=self.path("train"))
        return classes, mapping

    @property
    def classes(self) -> list[str]:
        return self._columns[0]

    def columns(self, split: str) -> dict[str, int]:
        """Label -> column of ``split``'s videos (a label of no class is an error naming the file)."""
        from momentkit.data.dense import class_columns

        if split == "train":
            return self._columns[1]
        return class_columns(self.samples(split), self.classes, path=self.path(split))[1]

    @cached_property
    def store(self):
        from momentkit.data.features import open_store

        if not self.cfg.video_features:
            return None
        paths = [str(p) for p in self.cfg.video_features]
        return open_store(paths if len(paths) > 1 else paths[0], kind="video", normalize=self.cfg.normalize_features)

    def dataset(self, split: str, training: bool):
        from momentkit.data.dense import DenseDataset

        d = self.cfg
        if self.store is None and d.videos is None:
            raise InputError("give data.video_features (feature folders) or data.videos (video files)",
                             field="data.video_features")
        return DenseDataset(self.samples(split), self.columns(split), len(self.classes), frames=d.frames,
                            sampling=d.sampling, store=self.store, videos=d.videos, fps=d.fps,
                            frame_size=d.frame_size, training=training, seed=self.seed, path=self.path(split),
                            clip_labels=d.clip_labels, augment=d.augment)

    # ------------------------------------------------------------------ the engine's questions
    def model_inputs(self) -> dict:
        """Input width, classes and frames per item; building the training and validation sets here
        checks every annotation, feature and video file before a run folder is made."""
        for split in ("train", "val"):
            self.dataset(split, split == "train")
        dim = int(self.store.dim) if self.store is not None else 3
        return {"input_dim": dim, "num_classes": len(self.classes), "frames": self.cfg.frames}

    def resolved_data(self) -> DenseDataConfig:
        return dataclasses.replace(self.cfg, classes=list(self.classes))

    def has_split(self, split: str) -> bool:
        if split == "test":
            return self.cfg.test_subset is not None or self.cfg.test_annotations is not None
        return split in ("train", "val")

    def eval_sets(self, split: str) -> list[str]:
        return [split]

    def ground_truth(self, set_name: str) -> dict:
        return _gt(self.samples(set_name), self.columns(set_name))

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self):
        from torch.utils.data import DataLoader

        from momentkit.data.dense import collate_dense
        from momentkit.training.sampler import ResumableSampler

        ds = self.dataset("train", True)
        sampler = ResumableSampler(len(ds), shuffle=True, seed=self.seed, batch_size=self.cfg.batch_size, dataset=ds)
        if self.resume_from is not None:
            from momentkit.training.sampler import batches_done

            sampler.skip_batches = batches_done(self.resume_from, -(-len(sampler) // self.cfg.batch_size))
            self.resume_from = None
        return DataLoader(ds, batch_size=self.cfg.batch_size, sampler=sampler, collate_fn=collate_dense,
                          num_workers=self.cfg.num_workers)

    def _eval_loader(self, split: str):
        from torch.utils.data import DataLoader

        from momentkit.data.dense import collate_dense

        return DataLoader(self.dataset(split, False), batch_size=self.cfg.eval_batch_size, shuffle=False,
                          collate_fn=collate_dense, num_workers=self.cfg.num_workers)

    def val_dataloader(self):
        return self._eval_loader("val")

    def test_dataloader(self):
        return self._eval_loader(self.test_split)


def stitch(rows: list[dict]) -> dict[str, np.ndarray]:
    """Per-video ``(num_frames, K)`` score matrices from (window) prediction rows."""
    out: dict[str, np.ndarray] = {}
    for r in sorted(rows, key=lambda r: (r["video"], r["frame_start"])):
        scores = np.asarray(r["scores"], dtype=np.float64)
        if r["video"] not in out:
            out[r["video"]] = np.zeros((r["num_frames"], scores.shape[1]))
        out[r["video"]][r["frame_start"]: r["frame_start"] + len(scores)] = scores
    return out


class DenseTask(Task):
    name = "dense"
    data_config = DenseDataConfig
    eval_config = DenseEvalConfig
    headline = ("mAP", "localize-mAP", "localize-weighted-mAP")
    derived_data = ("classes",)

    def datamodule(self, cfg, seed: int = 0) -> DenseDataModule:
        return DenseDataModule(cfg.data, cfg.eval, seed=seed)

    def check(self, cfg, path: str | None) -> None:
        if cfg.data.annotations is None:
            raise InputError("a dense detection config needs data.annotations", path=path, field="data.annotations")
        if not cfg.data.video_features and cfg.data.videos is None:
            raise InputError("give data.video_features (feature folders) or data.videos (video files)", path=path,
                             field="data.video_features")

    def metric_names(self, cfg) -> list[str]:
        return [set_metric_key("val", "val", k) for k in self.headline]

    def default_monitor(self, cfg) -> str:
        return "mAP"

    def row_key(self, row: dict):
        return (row["video"], row["frame_start"])

    def score(self, rows: list[dict], gt: dict, cfg, dm, *, full: bool = False) -> dict:
        from momentkit.metrics import evaluate_dense

        results = {v: m.tolist() for v, m in stitch(rows).items()}
        per_frame = evaluate_dense({"results": results}, gt, protocol="per-frame")
        localize = evaluate_dense({"results": results}, gt, protocol="charades", num_frames=cfg.eval.localize_frames)
        flat = {"mAP": per_frame["mAP"], "localize-mAP": localize["mAP"],
                "localize-weighted-mAP": localize["weighted-mAP"]}
        if not full:
            return flat
        names = dm.classes
        for res in (per_frame, localize):
            res["per-class"] = {names[int(k)]: v for k, v in res["per-class"].items()}
        return {"brief": flat, "per-frame": per_frame, "localize": localize}

    def write_predictions(self, out: Path, set_name: str, rows: list[dict], dm) -> Path:
        from momentkit.io import atomic_write, write_json

        stitched = stitch(rows)
        path = out / f"predictions_{set_name}.json"
        write_json(path, {"version": "momentkit", "classes": dm.classes,
                          "results": {v: np.round(m, 5).tolist() for v, m in stitched.items()}}, indent=None)
        n = 25
        lines = []
        for video, m in stitched.items():
            frames = (np.arange(n) * len(m)) // n
            for i, f in enumerate(frames):
                lines.append(f"{video} {i + 1} " + " ".join(f"{v:.6g}" for v in m[f]))
        with atomic_write(out / f"predictions_{set_name}_localize.txt") as fh:
            fh.write("\n".join(lines) + "\n")
        return path


register_task(DenseTask())
