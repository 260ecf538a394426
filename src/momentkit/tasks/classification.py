"""Task ``classification``: video classification from per-frame features, scored against class texts.

- ``data`` (:class:`ClassificationDataConfig`): a label file or folder (``format``: ``clips-csv`` for the
  Kinetics CSV, ``charades-csv`` (multi-label), ``hmdb51`` split files, ``ucf101`` train/test lists;
  :mod:`momentkit.data.classification`), per-frame feature folders (``video_features``: one ``(N, D)``
  array per video, e.g. ``momentkit extract --backbone clip --clip-len 0.125 --fps 8``: one CLIP image
  embedding per frame, in the joint space), and the class texts: a text-embedding file (``class_text``)
  or a CLIP model (``text_model``, HF id or local folder) with prompt templates (``prompt_templates``)
  (``eval_video_features``: other folders for the val / test videos, e.g. HMDB-51's beside Kinetics')
  whose embeddings are cached per vocabulary (:mod:`momentkit.data.class_text`). Optional auxiliary
  texts (``aux_texts``: ``{group: [texts]}``) for VicTR.
- Items: ``frames`` frames per view (segment sampling; a random frame per segment in training, fixed
  frames of ``eval_views`` views at evaluation, whose probabilities the models average).
- Protocols: ``supervised`` (every training video), ``few-shot`` (``shots`` videos per class drawn with
  ``shots_seed``; X-CLIP / VicTR use k = 2, 4, 8, 16 on split 1), ``zero-shot`` (train on the training
  vocabulary, evaluate on ``eval_classes`` / ``eval_classes_file``, by default the labels of the
  evaluation split). Class overlap between the two vocabularies (``overlap``): ``keep`` -- X-CLIP's
  Kinetics-400 -> HMDB-51 / UCF-101 protocol, which the thesis follows ("as in [126]"; it describes no
  other handling), or ``drop`` -- training videos of classes whose readable names are in the evaluation
  vocabulary are left out (the stricter protocol of E2E / ER-ZSAR). The overlapping names are listed
  in the resolved config (``data.overlap_classes``).
- Metrics (:func:`momentkit.metrics.classification.classification_metrics`): ``top1``, ``top5``,
  ``mAP`` (percent); the default monitor is ``top1`` for single-label and ``mAP`` for multi-label data
  (``multi_label``; default: from the format / the labels).
- Predictions: ``predictions_<split>.json``: ``{"classes", "multi_label", "results": {video: [score
  per class]}}`` (softmax or sigmoid probabilities averaged over views) and ``ground_truth_<split>.json``
  (``{"classes", "labels": {video: [names]}}``), the two files
  :func:`momentkit.metrics.classification.evaluate_classification` reads.

Prediction rows (the models' ``postprocess``): ``{"video", "scores": [K probabilities]}``.

One video of a trained run (``momentkit serve``): :func:`run_vocabulary` (the run's classes or new
names, embedded as the run embeds its class texts) and :func:`score_video` (its per-frame features
scored as an evaluation video is).
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

PROTOCOLS = ("supervised", "few-shot", "zero-shot")


@dataclass
class ClassificationDataConfig:
    annotations: Path | None = None  # label file or folder: every split (subsets pick), or the training one
    val_annotations: Path | None = None  # default: `annotations`
    test_annotations: Path | None = None  # default: `annotations`
    format: str | None = None  # clips-csv | charades-csv | hmdb51 | ucf101 (None: detected)
    format_options: dict = field(default_factory=dict)  # reader options, e.g. {classes: Charades_v1_classes.txt}
    split_number: int = 1  # HMDB-51 / UCF-101 split (1-3)
    train_subset: str | None = "train"  # None: every video of the file
    val_subset: str | None = "val"
    test_subset: str | None = None
    classes: list[str] | None = None  # training vocabulary in column order (None: from classes_file / labels)
    classes_file: Path | None = None  # id,name CSV, classInd.txt or one name per line
    protocol: str = "supervised"  # supervised | few-shot | zero-shot
    shots: int | None = None  # few-shot: training videos per class
    shots_seed: int = 0
    eval_classes: list[str] | None = None  # zero-shot: vocabulary of val/test (None: file / their labels)
    eval_classes_file: Path | None = None
    overlap: str = "keep"  # zero-shot: keep | drop (training classes named like evaluation classes)
    overlap_classes: list[str] | None = None  # filled: the training classes found in the evaluation vocabulary
    multi_label: bool | None = None  # None: charades-csv or any video with several labels
    video_features: list[Path] = field(default_factory=list)  # per-frame feature folders (or packed files)
    eval_video_features: list[Path] | None = None  # val/test videos' folders when elsewhere (zero-shot transfer)
    normalize_features: bool = False  # several folders: L2-normalise each before concatenating
    class_text: Path | None = None  # text-embedding file (npz: names, embeddings) ...
    text_model: str | None = None  # ... or a CLIP model (HF id or local folder)
    prompt_templates: Path | None = None  # one template per line with {} (default: "a photo of {}.")
    readable_names: bool = False  # ApplyEyeMakeup -> "apply eye makeup" in prompts
    text_cache: Path | None = None  # CLIP text embeddings cache (default: ~/.cache/momentkit/class_text)
    aux_texts: Path | None = None  # YAML {group: [texts]} of auxiliary semantic texts
    frames: int = 8  # frames per view
    eval_views: int = 1  # temporal views averaged at evaluation
    batch_size: int = 16
    eval_batch_size: int = 32
    num_workers: int = 0
    max_videos: int | None = None  # keep the first N videos of every split (quick runs)

    def __post_init__(self) -> None:
        from momentkit.training.config import check_ranges

        check_ranges(self, positive=("frames", "eval_views", "batch_size", "eval_batch_size", "split_number"),
                     nonneg=("num_workers", "shots_seed"), optional_positive=("shots", "max_videos"))
        if self.protocol not in PROTOCOLS:
            raise InputError(f"expected one of {', '.join(PROTOCOLS)}, got {self.protocol!r}", field="protocol")
        if self.overlap not in ("keep", "drop"):
            raise InputError(f"expected 'keep' or 'drop', got {self.overlap!r}", field="overlap")
        if (self.protocol == "few-shot") != (self.shots is not None):
            raise InputError("the few-shot protocol needs data.shots, and data.shots needs protocol: few-shot",
                             field="shots")
        if self.protocol != "zero-shot" and (self.eval_classes or self.eval_classes_file):
            raise InputError("an evaluation vocabulary is for protocol: zero-shot", field="eval_classes")
        if self.class_text is not None and self.text_model is not None:
            raise InputError("give class_text (a text-embedding file) or text_model (CLIP), not both",
                             field="class_text")


@dataclass
class ClassificationEvalConfig:
    pass


class ClassificationDataModule(L.LightningDataModule):
    """Label files + per-frame features + class texts -> :class:`ClassificationDataset` s and batches."""

    def __init__(self, cfg: ClassificationDataConfig, eval_cfg: ClassificationEvalConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.eval_cfg, self.seed = cfg, eval_cfg, seed
        self.resume_from: tuple[int, int] | None = None
        self.test_split = "test"
        self._videos: dict = {}

    # ------------------------------------------------------------------ labels and vocabularies
    def path(self, split: str) -> Path:
        d = self.cfg
        path = {"train": d.annotations, "val": d.val_annotations, "test": d.test_annotations}[split] or d.annotations
        if path is None:
            raise InputError("no label file", field="data.annotations")
        return Path(path)

    def _read(self, split: str):
        from momentkit.data.classification import read_labels

        d = self.cfg
        got = read_labels(self.path(split), d.format, split_number=d.split_number, **d.format_options)
        subset = {"train": d.train_subset, "val": d.val_subset, "test": d.test_subset}[split]
        if subset is not None:
            got = [v for v in got if (v.subset or "").lower() == subset.lower()]
            if not got:
                raise InputError(f"no video of subset {subset!r}", path=self.path(split), field=f"data.{split}_subset")
        return got

    @cached_property
    def format(self) -> str:
        from momentkit.data.classification import detect_format

        return self.cfg.format or detect_format(self.path("train"))

    @cached_property
    def eval_classes(self) -> list[str] | None:
        """The zero-shot evaluation vocabulary (None: the training one)."""
        d = self.cfg
        if d.protocol != "zero-shot":
            return None
        if d.eval_classes_file is not None:  # before eval_classes: `momentkit test` keeps the run's list there
            from momentkit.data.classification import read_class_list

            return read_class_list(d.eval_classes_file)
        if d.eval_classes:
            return list(d.eval_classes)
        labels = {lab for split in ("val", "test") if self.has_split(split) for v in self._read(split) for lab in v.labels}
        return sorted(labels)

    @cached_property
    def _train(self) -> tuple[list[str], list, list[str]]:
        """(training classes, training videos, training classes dropped as overlapping)."""
        from momentkit.data.classification import few_shot, read_class_list, readable

        d = self.cfg
        videos = self._read("train")
        classes = list(d.classes) if d.classes else read_class_list(d.classes_file) if d.classes_file else \
            sorted({lab for v in videos for lab in v.labels})
        overlap: list[str] = []
        if self.eval_classes is not None:
            names = {readable(c) for c in self.eval_classes}
            overlap = [c for c in classes if readable(c) in names]
            if d.overlap == "drop" and overlap:
                gone = set(overlap)
                classes = [c for c in classes if c not in gone]
                videos = [v for v in videos if not gone.intersection(v.labels)]
                if not videos:
                    raise InputError("every training video is of an overlapping class", field="data.overlap")
        if d.shots is not None:
            videos = few_shot(videos, classes, d.shots, d.shots_seed)
        return classes, videos, overlap

    @property
    def classes(self) -> list[str]:
        return self._train[0]

    def vocabulary(self, split: str) -> list[str]:
        return self.classes if split == "train" or self.eval_classes is None else self.eval_classes

    def videos(self, split: str):
        if split not in self._videos:
            got = self._train[1] if split == "train" else self._read(split)
            self._videos[split] = got[: self.cfg.max_videos] if self.cfg.max_videos else got
        return self._videos[split]

    @cached_property
    def multi_label(self) -> bool:
        if self.cfg.multi_label is not None:
            return self.cfg.multi_label
        return self.format == "charades-csv" or any(len(v.labels) != 1 for v in self._read("train"))

    def _open(self, folders) -> object:
        from momentkit.data.features import open_store

        paths = [str(p) for p in folders]
        return open_store(paths if len(paths) > 1 else paths[0], kind="video", normalize=self.cfg.normalize_features)

    @cached_property
    def store(self):
        if not self.cfg.video_features:
            raise InputError("give data.video_features (per-frame feature folders)", field="data.video_features")
        return self._open(self.cfg.video_features)

    @cached_property
    def eval_store(self):
        if not self.cfg.eval_video_features:
            return self.store
        store = self._open(self.cfg.eval_video_features)
        if store.dim != self.store.dim:
            raise InputError(f"{store.dim}-wide features, the training ones are {self.store.dim}-wide",
                             field="data.eval_video_features")
        return store

    @cached_property
    def _texts(self) -> dict:
        """Embeddings of every class of every vocabulary and of the auxiliary texts (one call, one cache file)."""
        import torch

        from momentkit.data.class_text import embed_texts, read_aux_texts, read_templates

        d = self.cfg
        groups = read_aux_texts(d.aux_texts) if d.aux_texts is not None else {}
        aux = [t for texts in groups.values() for t in texts]
        names = list(dict.fromkeys([*self.classes, *(self.eval_classes or []), *aux]))
        if d.class_text is None and d.text_model is None:
            if groups:
                raise InputError("auxiliary texts need class_text or text_model to embed them", field="data.aux_texts")
            return {}
        field_name = "data.class_text" if d.class_text is not None else "data.text_model"
        emb = embed_texts(names, text_file=d.class_text, text_model=d.text_model,
                          templates=read_templates(d.prompt_templates), readable_names=d.readable_names,
                          cache_dir=d.text_cache, field=field_name)
        table = {n: torch.from_numpy(emb[i]) for i, n in enumerate(names)}
        out = {"table": table}
        if groups:
            out["aux"] = torch.stack([table[t] for t in aux])
            out["aux_groups"] = torch.tensor([g for g, texts in enumerate(groups.values()) for _ in texts])
            out["groups"] = list(groups)
        return out

    def vocab(self, split: str):
        import torch

        from momentkit.data.classification import Vocabulary

        names = self.vocabulary(split)
        t = self._texts
        if not t:
            return Vocabulary(names, None)
        return Vocabulary(names, torch.stack([t["table"][n] for n in names]), t.get("aux"), t.get("aux_groups"),
                          t.get("groups"))

    def dataset(self, split: str, training: bool):
        from momentkit.data.classification import ClassificationDataset

        names = self.vocabulary(split)
        columns = {n: i for i, n in enumerate(names)}
        return ClassificationDataset(self.videos(split), columns, len(names),
                                     store=self.store if split == "train" else self.eval_store,
                                     frames=self.cfg.frames, views=1 if training else self.cfg.eval_views,
                                     training=training, seed=self.seed, path=self.path(split))

    # ------------------------------------------------------------------ the engine's questions
    def model_inputs(self) -> dict:
        """Feature and text widths, training classes and frames per view; building the training and
        validation sets here checks the label, feature and text files before a run folder is made."""
        for split in ("train", "val"):
            if self.has_split(split):
                self.dataset(split, split == "train")
        vocab = self.vocab("train")
        text_dim = 0 if vocab.class_text is None else int(vocab.class_text.shape[1])
        return {"input_dim": int(self.store.dim), "text_dim": text_dim, "num_classes": len(self.classes),
                "frames": self.cfg.frames}

    def resolved_data(self) -> ClassificationDataConfig:
        return dataclasses.replace(self.cfg, classes=list(self.classes), eval_classes=self.eval_classes,
                                   eval_classes_file=None, multi_label=self.multi_label,
                                   overlap_classes=self._train[2] if self.eval_classes is not None else None)

    def has_split(self, split: str) -> bool:
        if split == "test":
            return self.cfg.test_subset is not None or self.cfg.test_annotations is not None
        return split in ("train", "val")

    def eval_sets(self, split: str) -> list[str]:
        return [split]

    def ground_truth(self, set_name: str) -> dict:
        return {"classes": self.vocabulary(set_name),
                "labels": {v.video: list(v.labels) for v in self.videos(set_name)}}

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self):
        from torch.utils.data import DataLoader

        from momentkit.data.classification import Collate
        from momentkit.training.sampler import ResumableSampler

        ds = self.dataset("train", True)
        sampler = ResumableSampler(len(ds), shuffle=True, seed=self.seed, batch_size=self.cfg.batch_size, dataset=ds)
        if self.resume_from is not None:
            from momentkit.training.sampler import batches_done

            sampler.skip_batches = batches_done(self.resume_from, -(-len(sampler) // self.cfg.batch_size))
            self.resume_from = None
        return DataLoader(ds, batch_size=self.cfg.batch_size, sampler=sampler,
                          collate_fn=Collate(self.vocab("train"), self.multi_label), num_workers=self.cfg.num_workers)

    def _eval_loader(self, split: str):
        from torch.utils.data import DataLoader

        from momentkit.data.classification import Collate

        return DataLoader(self.dataset(split, False), batch_size=self.cfg.eval_batch_size, shuffle=False,
                          collate_fn=Collate(self.vocab(split), self.multi_label), num_workers=self.cfg.num_workers)

    def val_dataloader(self):
        return self._eval_loader("val")

    def test_dataloader(self):
        return self._eval_loader(self.test_split)


# ----------------------------------------------------------------------------- one video
def run_vocabulary(cfg, model, classes: list[str] | None = None, *, cache_dir=None, device: str = "cpu"):
    """The :class:`~momentkit.data.classification.Vocabulary` a trained run scores one video against:
    ``classes`` (new names, zero-shot: embedded as the run embeds its class texts, ``data.text_model``
    with its prompt templates) or, for None, the run's own (its evaluation vocabulary, else its training
    classes); with the run's auxiliary texts. A model with one output per training class
    (``fixed_vocabulary``) takes only its training classes."""
    import torch

    from momentkit.data.class_text import embed_texts, read_aux_texts, read_templates
    from momentkit.data.classification import Vocabulary

    d = cfg.data
    fixed = bool(getattr(getattr(model, "cfg", None), "fixed_vocabulary", False))
    own = list(d.classes or []) if fixed else list(d.eval_classes or d.classes or [])
    if classes is None or list(classes) == own:
        names = own
    elif fixed:
        raise InputError(f"model {cfg.model['name']!r} has one output per training class ({len(own)}): it ranks "
                         "only its own classes", field="classes")
    elif d.text_model is None and not set(classes) <= set(own):
        raise InputError("this run's class texts come from a text-embedding file (data.class_text), not from a CLIP "
                         "text encoder: it ranks only its own classes", field="classes")
    else:
        names = list(classes)
    if not names:
        raise InputError("the run records no class names", field="data.classes")
    if d.class_text is None and d.text_model is None:
        return Vocabulary(names, None)
    groups = read_aux_texts(d.aux_texts) if d.aux_texts is not None else {}
    aux = [t for texts in groups.values() for t in texts]
    field_name = "data.class_text" if d.class_text is not None else "data.text_model"
    emb = torch.from_numpy(embed_texts([*names, *aux], text_file=d.class_text, text_model=d.text_model,
                                       templates=read_templates(d.prompt_templates), readable_names=d.readable_names,
                                       cache_dir=cache_dir if cache_dir is not None else d.text_cache, device=device,
                                       field=field_name))
    if not groups:
        return Vocabulary(names, emb)
    return Vocabulary(names, emb[: len(names)], emb[len(names):],
                      torch.tensor([g for g, texts in enumerate(groups.values()) for _ in texts]), list(groups))


def score_video(model, cfg, feats: np.ndarray, vocab, *, video: str = "video", device: str = "cpu") -> np.ndarray:
    """Scores ``(K,)`` of the vocabulary's classes for one video's per-frame features ``(N, D)``, as the
    evaluation sets score a video: ``data.eval_views`` fixed views of ``data.frames`` frames
    (:class:`~momentkit.data.classification.ClassificationDataset`), one batch
    (:class:`~momentkit.data.classification.Collate`), the model's ``forward`` and ``postprocess``."""
    import torch

    from momentkit.data.classification import Collate, frame_indices
    from momentkit.tasks import get_task, video_feature_input

    x = video_feature_input(feats, cfg, "per-frame features")
    d = cfg.data
    idx = np.stack([frame_indices(len(x), d.frames, view=k, views=d.eval_views) for k in range(d.eval_views)])
    item = {"inputs": torch.from_numpy(x[idx]), "labels": torch.zeros(len(vocab.classes)),
            "meta": {"video": video, "num_frames": len(x)}}
    batch = Collate(vocab, bool(d.multi_label))([item])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.no_grad():
        row = model.postprocess(model(batch), batch, **get_task(cfg.task).postprocess_options(cfg))[0]
    return np.asarray(row["scores"], dtype=np.float64)


def _matrix(rows: list[dict], gt: dict) -> tuple[np.ndarray, np.ndarray]:
    by_video = {r["video"]: np.asarray(r["scores"], dtype=np.float64) for r in rows}
    index = {c: i for i, c in enumerate(gt["classes"])}
    videos = list(gt["labels"])
    missing = [v for v in videos if v not in by_video]
    if missing:
        raise InputError(f"{len(missing)} videos have no prediction (first: {missing[0]!r})")
    scores = np.stack([by_video[v] for v in videos])
    labels = np.zeros_like(scores)
    for i, v in enumerate(videos):
        for lab in gt["labels"][v]:
            labels[i, index[lab]] = 1.0
    return scores, labels


class ClassificationTask(Task):
    name = "classification"
    data_config = ClassificationDataConfig
    eval_config = ClassificationEvalConfig
    headline = ("top1", "top5", "mAP")
    derived_data = ("classes", "eval_classes", "multi_label")

    def datamodule(self, cfg, seed: int = 0) -> ClassificationDataModule:
        return ClassificationDataModule(cfg.data, cfg.eval, seed=seed)

    def check(self, cfg, path: str | None) -> None:
        from momentkit.models.registry import model_config

        d = cfg.data
        if d.annotations is None:
            raise InputError("a classification config needs data.annotations", path=path, field="data.annotations")
        if not d.video_features:
            raise InputError("give data.video_features (per-frame feature folders)", path=path,
                             field="data.video_features")
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        mcfg = model_config(cfg.model["name"], options, path=path)
        fixed = bool(getattr(mcfg, "fixed_vocabulary", False))
        if d.protocol == "zero-shot" and fixed:
            raise InputError(f"model {cfg.model['name']!r} has one output per training class and cannot score "
                             "the classes of another vocabulary; zero-shot needs a model that scores class texts",
                             path=path, field="model.name")
        if not fixed and d.class_text is None and d.text_model is None:
            raise InputError(f"model {cfg.model['name']!r} scores class texts: give data.class_text (a "
                             "text-embedding file) or data.text_model (a CLIP model)", path=path,
                             field="data.class_text")

    def metric_names(self, cfg) -> list[str]:
        return [set_metric_key("val", "val", k) for k in self.headline]

    def default_monitor(self, cfg) -> str:
        multi = cfg.data.multi_label or (cfg.data.multi_label is None and cfg.data.format == "charades-csv")
        return "mAP" if multi else "top1"

    def row_key(self, row: dict):
        return row["video"]

    def score(self, rows: list[dict], gt: dict, cfg, dm, *, full: bool = False) -> dict:
        from momentkit.metrics.classification import classification_metrics

        scores, labels = _matrix(rows, gt)
        res = classification_metrics(scores, labels, gt["classes"])
        flat = {k: res[k] for k in self.headline}
        if not full:
            return flat
        return {"brief": flat, "classification": res}

    def write_predictions(self, out: Path, set_name: str, rows: list[dict], dm) -> Path:
        from momentkit.io import write_json

        gt = dm.ground_truth(set_name)
        path = out / f"predictions_{set_name}.json"
        results = {r["video"]: [round(float(s), 6) for s in r["scores"]] for r in rows}
        write_json(path, {"version": "momentkit", "classes": gt["classes"], "multi_label": dm.multi_label,
                          "results": results}, indent=None)
        write_json(out / f"ground_truth_{set_name}.json", gt, indent=None)
        return path


register_task(ClassificationTask())
