"""Video classification data: label files, class lists, few-shot draws, frame sampling, items and batches.

Label files (``read_labels(path, format)``), one :class:`LabelledVideo` (video id, labels, subset) each:

- ``clips-csv``: the Kinetics CSV (``label,youtube_id,time_start,time_end,split``, or a ``video``
  column; :mod:`momentkit.data.annotations.clips_csv`), one label per clip;
- ``charades-csv``: ``Charades_v1_{train,test}.csv``; a video's labels are the classes of its actions
  (multi-label; ``format_options: {classes: Charades_v1_classes.txt}`` names them);
- ``hmdb51``: the folder of HMDB-51 split files (``testTrainMulti_7030_splits/<class>_test_split<k>.txt``,
  lines ``<video>.avi <0|1|2>``: 1 training, 2 test, 0 unused), split ``split_number``; the class is the
  file name's prefix with ``_`` read as a space (``brush_hair`` -> ``brush hair``, the names of
  ``hmdb51_classes.csv``); subsets ``train`` / ``test``;
- ``ucf101``: the ``ucfTrainTestlist`` folder (``trainlist0<k>.txt`` lines ``Class/v_Class_g08_c01.avi 1``,
  ``testlist0<k>.txt`` lines ``Class/v_Class_g01_c01.avi``); the class is the folder name; subsets
  ``train`` / ``test``.

Video ids are file-name stems (what ``momentkit extract`` names feature files). Class lists
(:func:`read_class_list`): an ``id,name`` CSV (``hmdb51_classes.csv``), UCF-101's ``classInd.txt``
(``1 ApplyEyeMakeup``) or one name per line. :func:`readable` turns a class id into words for a prompt
(``ApplyEyeMakeup`` -> ``apply eye makeup``, ``brush_hair`` -> ``brush hair``).

Few-shot (:func:`few_shot`): ``k`` training videos per class, drawn without replacement by a seeded
generator from each class's videos in id order (X-CLIP / VicTR: "randomly sample k clips per class").

Frame sampling (:func:`frame_indices`): a video's ``N`` frame features are cut into ``T`` equal
segments; a training view takes one random frame per segment (TSN-style), evaluation view ``v`` of
``V`` the frame at ``(v + 0.5) / V`` of every segment, so several views cover different frames and
one view takes the segment centres. Short videos (``N < T``) repeat frames.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from momentkit.errors import InputError

FORMATS = ("clips-csv", "charades-csv", "hmdb51", "ucf101")


@dataclass(frozen=True)
class LabelledVideo:
    video: str
    labels: tuple[str, ...]
    subset: str | None = None


def readable(name: str) -> str:
    """Words of a class id for a prompt: ``_`` as spaces, CamelCase split, lower case."""
    text = name.replace("_", " ")
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    return " ".join(text.split()).lower()


# ----------------------------------------------------------------------------- label files
def detect_format(path: Path) -> str:
    """The format of a label file or folder (see the module docstring)."""
    if path.is_dir():
        if (path / "classInd.txt").is_file() or any(path.glob("trainlist0*.txt")):
            return "ucf101"
        if any(path.glob("*_test_split*.txt")):
            return "hmdb51"
        raise InputError("a folder of neither HMDB-51 split files (<class>_test_split1.txt) nor UCF-101 lists "
                         "(trainlist01.txt, testlist01.txt)", path=path, field="data.format")
    if not path.is_file():
        raise InputError("label file not found", path=path, field="data.annotations")
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = [c.strip() for c in fh.readline().split(",")]
    if "actions" in header and "id" in header:
        return "charades-csv"
    if "label" in header:
        return "clips-csv"
    raise InputError("cannot tell the label format (expected a Kinetics-style CSV with a 'label' column or a "
                     "Charades CSV); set data.format", path=path, field="data.format")


def read_labels(path: str | os.PathLike, fmt: str | None = None, *, split_number: int = 1,
                **options) -> list[LabelledVideo]:
    """Every labelled video of a label file or folder, in file order."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown label format {fmt!r}; known: {', '.join(FORMATS)}", field="data.format")
    if fmt == "clips-csv":
        from momentkit.data.annotations.clips_csv import read_clips_csv

        return [LabelledVideo(s.video, (s.segments[0].label,), s.subset) for s in read_clips_csv(path, **options)]
    if fmt == "charades-csv":
        from momentkit.data.annotations.charades_csv import read_charades_csv

        out = []
        for s in read_charades_csv(path, **options):
            labels = tuple(dict.fromkeys(g.label for g in s.segments))
            out.append(LabelledVideo(s.video, labels, s.subset))
        return out
    if options:
        raise InputError(f"the {fmt} reader takes no options ({', '.join(options)})", field="data.format_options")
    if not 1 <= split_number <= 3:
        raise InputError(f"must be 1, 2 or 3, got {split_number}", field="data.split_number")
    return _read_hmdb51(path, split_number) if fmt == "hmdb51" else _read_ucf101(path, split_number)


def _read_hmdb51(folder: Path, split: int) -> list[LabelledVideo]:
    if not folder.is_dir():
        raise InputError("expected the folder of HMDB-51 split files", path=folder, field="data.annotations")
    files = sorted(folder.glob(f"*_test_split{split}.txt"))
    if not files:
        raise InputError(f"no <class>_test_split{split}.txt file", path=folder, field="data.annotations")
    out, seen = [], {}
    for f in files:
        label = readable(f.name[: -len(f"_test_split{split}.txt")])
        for line_no, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise InputError(f"expected '<video>.avi <0|1|2>', got {line.strip()!r}", path=f, line=line_no)
            if parts[1] == "0":
                continue
            vid = Path(parts[0]).stem
            if vid in seen:
                raise InputError(f"video {vid!r} is listed twice (also in {seen[vid]})", path=f, line=line_no)
            seen[vid] = f.name
            out.append(LabelledVideo(vid, (label,), "train" if parts[1] == "1" else "test"))
    return out


def _read_ucf101(folder: Path, split: int) -> list[LabelledVideo]:
    out = []
    for subset, name in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
        f = folder / name
        if not f.is_file():
            raise InputError(f"missing {name}", path=folder, field="data.annotations")
        for line_no, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            item = parts[0].replace("\\", "/")
            if "/" not in item:
                raise InputError(f"expected 'Class/v_Class_gNN_cNN.avi', got {line.strip()!r}", path=f, line=line_no)
            out.append(LabelledVideo(Path(item).stem, (item.split("/")[0],), subset))
    return out


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Class names in column order from an ``id,name`` CSV, a ``classInd.txt`` or one name per line."""
    from momentkit.io import existing_file

    path = existing_file(path)
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise InputError("no class in the file", path=path)
    if path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if "name" not in (reader.fieldnames or []):
                raise InputError("expected columns id,name", path=path, line=1)
            rows = [(r.get("id"), (r.get("name") or "").strip(), reader.line_num) for r in reader]
        if all(i is not None and str(i).strip().isdigit() for i, _, _ in rows):
            rows.sort(key=lambda r: int(r[0]))
        names = [n for _, n, _ in rows]
        for _, n, line in rows:
            if not n:
                raise InputError("empty class name", path=path, line=line, field="name")
    else:
        numbered = all(re.match(r"^\d+\s+\S", ln) for ln in lines)
        names = [ln.split(None, 1)[1].strip() for ln in lines] if numbered else lines
    dup = [n for i, n in enumerate(names) if n in names[:i]]
    if dup:
        raise InputError(f"class {dup[0]!r} is listed twice", path=path)
    return names


def few_shot(videos: Sequence[LabelledVideo], classes: Sequence[str], shots: int, seed: int) -> list[LabelledVideo]:
    """``shots`` videos of every class of ``classes``, drawn by ``seed`` (see the module docstring)."""
    by_class: dict[str, list[LabelledVideo]] = {c: [] for c in classes}
    for v in videos:
        if len(v.labels) != 1:
            raise InputError("few-shot draws need single-label videos", field="data.shots")
        if v.labels[0] in by_class:
            by_class[v.labels[0]].append(v)
    rng = np.random.default_rng([seed, 5])
    out = []
    for c in classes:
        pool = sorted(by_class[c], key=lambda v: v.video)
        if len(pool) < shots:
            raise InputError(f"class {c!r} has {len(pool)} training videos, fewer than {shots} shots",
                             field="data.shots")
        out += [pool[i] for i in sorted(rng.choice(len(pool), shots, replace=False))]
    return out


def frame_indices(n: int, frames: int, view: int | None = None, views: int = 1,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """``frames`` frame indices of a video of ``n`` frames: a random one per segment (``view`` None)
    or the frame at ``(view + 0.5) / views`` of every segment."""
    starts = np.arange(frames) * n / frames
    width = n / frames
    if view is None:
        offset = (rng or np.random.default_rng()).random(frames)
    else:
        offset = np.full(frames, (view + 0.5) / views)
    return np.clip(np.floor(starts + offset * width).astype(np.int64), 0, n - 1)


# ----------------------------------------------------------------------------- items and batches
class ClassificationDataset(torch.utils.data.Dataset):
    """Items ``{"inputs": (V, T, D) float32, "labels": (K,) 0/1, "meta": {"video", "num_frames"}}``.

    ``columns``: label -> column of the vocabulary (a label outside it is an error naming the video);
    training items have one random view, evaluation items ``views`` fixed views.
    """

    def __init__(self, videos: Sequence[LabelledVideo], columns: dict[str, int], num_classes: int, *, store,
                 frames: int, views: int = 1, training: bool = False, seed: int = 0, path=None) -> None:
        self.videos, self.columns, self.num_classes = list(videos), columns, num_classes
        self.store, self.frames, self.views, self.training, self.seed = store, frames, views, training, seed
        self.epoch = 0
        for v in self.videos:
            for lab in v.labels:
                if lab not in columns:
                    raise InputError(f"video {v.video!r}: label {lab!r} is not one of the {num_classes} classes",
                                     path=path, field="data.classes")
        missing = store.missing([v.video for v in self.videos])
        if missing:
            raise InputError(f"{len(missing)} videos have no features (first: '{missing[0]}') in {store.source}",
                             field="data.video_features")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        v = self.videos[index]
        x = np.asarray(self.store.get(v.video), dtype=np.float32)
        if x.ndim != 2:
            raise InputError(f"expected per-frame features (T, D), got shape {x.shape}", field=f"features.{v.video}")
        if self.training:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            idx = frame_indices(len(x), self.frames, rng=rng)[None]
        else:
            idx = np.stack([frame_indices(len(x), self.frames, view=k, views=self.views) for k in range(self.views)])
        labels = np.zeros(self.num_classes, dtype=np.float32)
        for lab in v.labels:
            labels[self.columns[lab]] = 1.0
        return {"inputs": torch.from_numpy(x[idx]), "labels": torch.from_numpy(labels),
                "meta": {"video": v.video, "num_frames": len(x)}}


@dataclass
class Vocabulary:
    """The texts a batch is scored against: class names and their embeddings ``(K, D)``, and the optional
    auxiliary texts ``(M, D)`` with their group of each (``groups``: the k group names)."""

    classes: list[str]
    class_text: torch.Tensor
    aux_text: torch.Tensor | None = None
    aux_groups: torch.Tensor | None = None
    groups: list[str] | None = None


class Collate:
    """Items -> a :class:`momentkit.models.contract.ClassificationBatch` over ``vocab``."""

    def __init__(self, vocab: Vocabulary, multi_label: bool) -> None:
        self.vocab, self.multi_label = vocab, multi_label

    def __call__(self, items: list[dict]) -> dict:
        batch = {"feats": torch.stack([it["inputs"] for it in items]),
                 "labels": torch.stack([it["labels"] for it in items]),
                 "class_text": self.vocab.class_text, "multi_label": self.multi_label,
                 "meta": [it["meta"] for it in items]}
        if self.vocab.aux_text is not None:
            batch["aux_text"], batch["aux_groups"] = self.vocab.aux_text, self.vocab.aux_groups
        return batch
