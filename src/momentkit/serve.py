"""The web demo behind ``momentkit serve``: what a trained model finds in a video, in a browser.

A Gradio page around a trained model; what it shows follows the model's task (``config.task`` of
its run, the ``task`` of an exported folder's ``config.json``):

- ``grounding`` (:class:`momentkit.predict.Predictor`): type one query per line and get, per query,
  a timeline (saliency curve and the top moments as coloured bands,
  :func:`momentkit.viz.plot_timelines`) and a table of moments (start, end, score);
- ``classification`` (VicTR, the CLIP baselines; :func:`momentkit.tasks.classification.score_video`):
  a ranking of class names (table and bar plot), over the run's own classes or class names typed
  comma-separated (zero-shot, for a model that scores class texts);
- ``detection`` (the pyramid detector; :func:`momentkit.tasks.detection.detect_video`): the detected
  segments per class, a timeline with one row per class and a table (class, start, end, score).

Clicking a row of a table of moments or segments seeks the video player to its start. Other tasks
(``dense``) are refused with one clear error.

- Features are made from the video as the model's training features were (its feature recipe, read
  by :meth:`momentkit.predict.Predictor.video_features` whatever the task), with a progress bar while
  the video is decoded and embedded, and kept per uploaded file (by the SHA-256 of its bytes,
  :data:`CACHE_SIZE` videos) so that another question on the same video answers without decoding it
  again. Videos longer than a grounding model's trained length go through the Predictor's windows.
  A model whose features no backbone makes from a video (synthetic or downloaded features, a backbone
  that cannot be loaded) shows why on the page, and every request answers with that one error.
- Uploads: at most ``max_upload_mb`` (Gradio refuses bigger ones before they are stored, and the
  handlers check again); a file is accepted when PyAV opens it and decodes a frame, whatever its
  name says.
- Files: everything the app stores (uploads, the examples, plots, class-text embeddings) lives in
  one working folder, removed by :meth:`MomentApp.close`; Gradio serves only files of that folder (its
  upload and cache folders point there), never one of the checkout or of the system.

The handlers (:meth:`MomentApp.find_moments`, :meth:`MomentApp.rank_classes`,
:meth:`MomentApp.detect_segments`, :meth:`MomentApp.inspect`, :meth:`MomentApp.seek`) are plain
functions of paths and strings, tested without a browser; :meth:`MomentApp.build` wires those of the
model's task to the page.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from momentkit.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 200.0
CACHE_SIZE = 8  # videos whose features are kept
MAX_QUERIES = 8
MAX_QUERY_CHARS = 200
MAX_TOP = 10
MAX_CLASSES = 1000  # class names typed at once
SHOWN_CLASSES = 8  # detection: the classes of the best segments get a row of the timeline and the table
KEEP_TIMELINES = 32  # plots kept in the working folder
SERVED_TASKS = ("grounding", "classification", "detection")
TABLE_HEADERS = ["query", "#", "start (s)", "end (s)", "score"]
CLASS_HEADERS = ["#", "class", "score"]
SEGMENT_HEADERS = ["class", "#", "start (s)", "end (s)", "score"]
TITLES = {"grounding": "find when things happen in a video", "classification": "what happens in a video",
          "detection": "which actions happen in a video, and when"}
EXAMPLE_SEEDS = (101, 202)  # the generated examples: new videos of the synthetic world
PLAYER_ID = "mk-player"

# the frontend part of "clicking a row seeks the player": the start time the handler returns
SEEK_JS = f"""(t) => {{
  const v = document.querySelector('#{PLAYER_ID} video');
  if (v && t !== null && t !== undefined && !Number.isNaN(Number(t))) {{ v.currentTime = Number(t); }}
  return t;
}}"""


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (the key of the feature cache)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_queries(text: str | None) -> list[str]:
    """One query per line (blank lines dropped); at most :data:`MAX_QUERIES` of at most
    :data:`MAX_QUERY_CHARS` characters."""
    queries = [q.strip() for q in (text or "").splitlines() if q.strip()]
    if not queries:
        raise InputError("type at least one query (one per line)", field="queries")
    if len(queries) > MAX_QUERIES:
        raise InputError(f"at most {MAX_QUERIES} queries at once, got {len(queries)}", field="queries")
    long = [q for q in queries if len(q) > MAX_QUERY_CHARS]
    if long:
        raise InputError(f"a query of {len(long[0])} characters; at most {MAX_QUERY_CHARS}", field="queries")
    return queries


def parse_classes(text: str | None) -> list[str] | None:
    """Class names typed comma-separated (None when none is typed: the model's own classes); at least
    two, none twice, at most :data:`MAX_CLASSES` of at most :data:`MAX_QUERY_CHARS` characters."""
    names = [c.strip() for c in (text or "").replace("\n", ",").split(",") if c.strip()]
    if not names:
        return None
    if len(names) < 2:
        raise InputError(f"type at least two classes (comma-separated), got {len(names)}", field="classes")
    if len(names) > MAX_CLASSES:
        raise InputError(f"at most {MAX_CLASSES} classes at once, got {len(names)}", field="classes")
    long = [c for c in names if len(c) > MAX_QUERY_CHARS]
    if long:
        raise InputError(f"a class name of {len(long[0])} characters; at most {MAX_QUERY_CHARS}", field="classes")
    dup = [c for i, c in enumerate(names) if c in names[:i]]
    if dup:
        raise InputError(f"class {dup[0]!r} is typed twice", field="classes")
    return names


def is_demo_world(predictor) -> bool:
    """Was the model trained by ``momentkit demo --video`` (features of the random CLIP it saves)?"""
    from momentkit.cli.demo_video import BACKBONE_DIR

    parts = (predictor.recipe or {}).get("video") or []
    return any(str(p.get("model_path") or p.get("model") or "").replace(os.sep, "/").endswith(BACKBONE_DIR)
               for p in parts)


# ----------------------------------------------------------------------------- models of every task
def model_recipe(weights: Path) -> dict | None:
    """The feature recipe a loaded model carries (an exported folder's ``config.json``, else the run's),
    as :meth:`momentkit.predict.Predictor.from_checkpoint` reads it."""
    from momentkit.pretrained import export_recipe
    from momentkit.video.recipe import load_run_recipe

    exported, recipe = export_recipe(weights)
    return recipe if exported else load_run_recipe(weights)


def feature_reader(model, cfg, recipe: dict | None, *, device: str = "cpu", source: Path | None = None,
                   backbone_model: str | None = None):
    """A :class:`~momentkit.predict.Predictor` that only reads videos for a model of another task:
    :meth:`~momentkit.predict.Predictor.video_features` makes the model's training features from a video
    by its recipe (backbones, rates, clip length, normalisation and concatenation); its clip length is
    the recipe's (one window of one clip: it predicts no moments)."""
    from types import SimpleNamespace

    from momentkit.predict import Predictor

    parts = (recipe or {}).get("video") or []
    clip_len = next((float(p["clip_len"]) for p in parts if p.get("clip_len")), 1.0)
    data = SimpleNamespace(clip_len=clip_len, max_v_len=1, use_tef=False, layer=None)
    shim = SimpleNamespace(data=data, model=cfg.model, task=cfg.task)
    return Predictor(model, shim, device=device, window=1, stride=1, recipe=recipe, source=source,
                     backbone_model=backbone_model)


@dataclass
class TaskModel:
    """A trained classification or detection model, its experiment config, and the
    :func:`feature_reader` that makes its features from a video."""

    task: str
    model: Any = field(repr=False)
    config: Any = field(repr=False)  # momentkit.training.config.ExperimentConfig
    reader: Any = field(repr=False)  # momentkit.predict.Predictor (video_features only)
    source: Path | None = None

    @property
    def recipe(self) -> dict | None:
        return self.reader.recipe

    @property
    def device(self):
        return self.reader.device

    @property
    def fixed_vocabulary(self) -> bool:
        """A classifier with one output per training class (it ranks only those)."""
        return bool(getattr(getattr(self.model, "cfg", None), "fixed_vocabulary", False))

    @property
    def classes(self) -> list[str]:
        """The classes it ranks or detects by default (a zero-shot classification run: its evaluation ones)."""
        d = self.config.data
        if self.task == "classification" and not self.fixed_vocabulary:
            return list(d.eval_classes or d.classes or [])
        return list(d.classes or [])


def load_model(ckpt: str | os.PathLike, *, device: str = "cpu", backbone_model: str | None = None):
    """The model of a run folder, ``model.safetensors``, ``.ckpt``, exported folder or Hub id: a
    :class:`~momentkit.predict.Predictor` for a grounding model, a :class:`TaskModel` for a
    classification or detection one; other tasks are refused (an :class:`InputError` of field ``ckpt``)."""
    import momentkit.predict
    from momentkit.predict import Predictor

    model, cfg, src = momentkit.predict.load_model_and_config(ckpt)
    task = getattr(cfg, "task", "grounding")
    if task not in SERVED_TASKS:
        raise InputError(f"a {task} model ({cfg.model.get('name')}): momentkit serve shows grounding, classification "
                         "and detection models", path=src, field="ckpt")
    recipe = model_recipe(src)
    if task == "grounding":
        return Predictor(model, cfg, device=device, source=src, recipe=recipe, backbone_model=backbone_model)
    reader = feature_reader(model, cfg, recipe, device=device, source=src, backbone_model=backbone_model)
    return TaskModel(task, reader.model, cfg, reader, src)


# ----------------------------------------------------------------------------- plots
def plot_class_scores(names: list[str], scores: list[float], path: str | os.PathLike, *, title: str = "") -> Path:
    """A horizontal bar per class (best at the top) with its score written beside it."""
    from momentkit.io import atomic_save
    from momentkit.viz import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.36 * max(1, len(names))))
    y = np.arange(len(names))
    ax.barh(y, scores, color="tab:blue", alpha=0.85)
    for i, v in enumerate(scores):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, labels=names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, max(scores, default=0.0) * 1.15))
    ax.set_xlabel("score")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    fig.tight_layout()
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def plot_class_segments(by_class: dict[str, list[list[float]]], duration: float, path: str | os.PathLike) -> Path:
    """One row per class (``{class: [[start, end, score], ...]}``, in order): its segments as bands
    whose opacity grows with their score (the best segment shown opaque), the best one's score written
    on it."""
    from momentkit.io import atomic_save
    from momentkit.viz import _pyplot

    plt = _pyplot()
    names = list(by_class)
    fig, ax = plt.subplots(figsize=(11, 0.9 + 0.5 * max(1, len(names))))
    colours = plt.get_cmap("tab10")
    best = max((score for segs in by_class.values() for _, _, score in segs), default=1.0) or 1.0
    for i, name in enumerate(names):
        for j, (s, e, score) in enumerate(by_class[name]):
            ax.broken_barh([(s, max(e - s, 1e-3))], (i - 0.35, 0.7), color=colours(i % 10),
                           alpha=float(0.2 + 0.8 * min(1.0, max(0.0, score / best))))
            if j == 0:
                ax.text(s, i, f" {score:.2f}", va="center", fontsize=7)
    ax.set_yticks(np.arange(len(names)), labels=names, fontsize=8)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, max(duration, 1e-3))
    ax.set_xlabel("seconds")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- the app
class MomentApp:
    """The page's state and handlers: a trained model (a grounding
    :class:`~momentkit.predict.Predictor` or a :class:`TaskModel`), a working folder and the feature cache."""

    def __init__(self, model, *, work_dir: str | os.PathLike | None = None,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, top: int = 5, name: str | None = None,
                 examples: bool = True) -> None:
        if not max_upload_mb > 0:
            raise InputError(f"must be positive, got {max_upload_mb}", field="--max-upload-mb")
        if isinstance(model, TaskModel):
            self.task, self.served, self.predictor = model.task, model, model.reader
        else:
            self.task, self.served, self.predictor = "grounding", None, model
        self.name = name or str(getattr(self.predictor, "source", None) or "model")
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_upload_mb = float(max_upload_mb)
        self.top = int(min(max(1, top), MAX_TOP))
        self._own_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="momentkit-serve-") if work_dir is None else work_dir).resolve()
        self.uploads = self.work_dir / "uploads"  # Gradio's upload folder (GRADIO_TEMP_DIR)
        self.cache_dir = self.work_dir / "cache"  # Gradio's examples cache (GRADIO_EXAMPLES_CACHE)
        self.outputs = self.work_dir / "outputs"  # plots
        self.examples_dir = self.work_dir / "examples"
        self.text_cache = self.work_dir / "class_text"  # class-text embeddings of the vocabularies asked for
        for folder in (self.uploads, self.cache_dir, self.outputs, self.examples_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._features: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self._vocabularies: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()  # one prediction at a time: the model and the cache are shared
        self._count = 0
        self.closed = False
        self._saved_env: dict[str, str | None] | None = None  # what launch() changed, undone by close()
        self.problem = self.video_problem()
        self.examples = self.make_examples() if examples else []

    @staticmethod
    def load(ckpt: str | os.PathLike, *, device: str = "cpu", backbone_model: str | None = None):
        """The model of a checkpoint (:func:`load_model`)."""
        return load_model(ckpt, device=device, backbone_model=backbone_model)

    @classmethod
    def from_checkpoint(cls, ckpt: str | os.PathLike, *, device: str = "cpu", backbone_model: str | None = None,
                        **options) -> MomentApp:
        """:meth:`load` the model and make the app (its working folder, its examples)."""
        return cls(cls.load(ckpt, device=device, backbone_model=backbone_model), name=str(ckpt), **options)

    @property
    def config(self):
        """The model's experiment config."""
        return self.predictor.config if self.served is None else self.served.config

    def video_problem(self) -> str | None:
        """Why this app cannot make the model's features from a video (None when it can): asked once, when
        the app starts, which loads the recipe's backbones."""
        try:
            self.predictor.video_sources("a video file")
        except InputError as e:
            return f"this page cannot read videos for this model: {self.public_message(e)}"
        return None

    # ------------------------------------------------------------------ files
    def make_examples(self) -> list[list[str]]:
        """Generated videos of the synthetic world, with their queries for a grounding model:
        ``[[path, queries], ...]`` (``[[path], ...]`` for the other tasks)."""
        from momentkit.synth.video_moments import make_moment_video

        out = []
        for i, seed in enumerate(EXAMPLE_SEEDS):  # a short one, and one longer than a window (150 s)
            path = self.examples_dir / f"example_{i + 1}.mp4"
            video = make_moment_video(path, seed=seed, duration=(24.0, 32.0) if i == 0 else (170.0, 190.0),
                                      shapes=(2, 3) if i == 0 else (3, 4))
            out.append([str(path), "\n".join(video.queries)] if self.task == "grounding" else [str(path)])
        return out

    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.work_dir)
            return True
        except ValueError:
            return False

    def check_video(self, video) -> Path:
        """The path of an uploaded video or an example, checked: inside the working folder, at most the
        upload limit, and decodable by PyAV (an :class:`InputError` saying what is wrong otherwise)."""
        from momentkit.video.decode import iter_frames, probe

        if video is None or (isinstance(video, str) and not video.strip()):
            raise InputError("upload a video first (or pick an example)", field="video")
        if isinstance(video, dict):  # a FileData payload
            video = video.get("path") or video.get("video", {}).get("path")
        path = Path(str(video))
        if not self._inside(path):
            raise InputError("this file was not uploaded to this page", field="video")
        if not path.is_file():
            raise InputError("the uploaded file is gone; upload it again", field="video")
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise InputError(f"the file is {size / 2**20:.1f} MB; this server accepts videos up to "
                             f"{self.max_upload_mb:g} MB", field="video")
        try:  # PyAV opens it and decodes a frame of it, whatever its name says
            probe(path)
            next(iter(iter_frames(path, None, size=32, chunk_size=1, strict=False)))
        except StopIteration:
            raise InputError("no frame of this file could be decoded", path=path.name, field="video") from None
        except InputError as e:  # named by its file name, not by where the server keeps it
            raise InputError(e.message, path=path.name, field="video") from None
        return path

    def _timeline_path(self) -> Path:
        self._count += 1
        old = sorted(self.outputs.glob("timeline_*.png"), key=lambda p: p.stat().st_mtime)
        for p in old[:-KEEP_TIMELINES]:
            p.unlink(missing_ok=True)
        return self.outputs / f"timeline_{self._count:05d}_{os.getpid()}.png"

    # ------------------------------------------------------------------ handlers
    @property
    def clip_len(self) -> float:
        """Seconds per feature step of the model's inputs."""
        return float(self.predictor.config.data.clip_len)

    def inspect(self, video) -> str:
        """What the page says about a video once it is uploaded (or an error)."""
        from momentkit.video.decode import probe

        path = self.check_video(video)
        info = probe(path)
        seconds = info.duration or 0.0
        cached = " (features cached)" if file_digest(path) in self._features else ""
        return (f"**{path.name}**: {seconds:.1f} s, {info.width}x{info.height}, "
                f"about {max(1, round(seconds / self.clip_len))} clips of {self.clip_len:g} s{cached}")

    def features(self, path: Path, progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, float, bool]:
        """``(features, duration, from the cache)`` of a checked video."""
        key = file_digest(path)
        if key in self._features:
            self._features.move_to_end(key)
            feats, duration = self._features[key]
            return feats, duration, True
        feats, duration, _ = self.predictor.video_features(path, progress=progress)
        self._features[key] = (feats, duration)
        while len(self._features) > CACHE_SIZE:
            self._features.popitem(last=False)
        return feats, duration, False

    def _prepare(self, video, task: str, progress) -> tuple[Path, np.ndarray, float, bool, float]:
        """The checks and features every handler starts with: ``(path, features, duration, cached,
        seconds spent)``; call it holding the lock."""
        if self.task != task:
            raise InputError(f"this page serves a {self.task} model, not a {task} one", field="ckpt")
        if self.problem:
            raise InputError(self.problem, field="ckpt")
        path = self.check_video(video)
        t0 = time.perf_counter()
        report = (lambda f: progress(f, desc="decoding and embedding the video")) if progress else None
        if progress:
            progress(0.0, desc="reading the video")
        feats, duration, cached = self.features(path, report)
        if progress:
            progress(1.0, desc="running the model")
        return path, feats, duration, cached, time.perf_counter() - t0

    def _how(self, path: Path, feats: np.ndarray, duration: float, cached: bool, seconds: float) -> str:
        how = "features from the cache" if cached else f"features extracted in {seconds:.1f} s"
        return f"**{path.name}**: {duration:.1f} s, {feats.shape[-2]} clips of {self.clip_len:g} s; {how}"

    def find_moments(self, video, queries: str, top: int | float | None = None,
                     progress: Callable[..., None] | None = None) -> tuple[str, list[list], str]:
        """``(timeline PNG, table rows, status)`` of the queries (one per line) on a video."""
        from momentkit.viz import plot_timelines

        names = parse_queries(queries) if self.task == "grounding" else []
        top = int(min(max(1, int(top or self.top)), MAX_TOP))
        with self._lock:
            path, feats, duration, cached, t_feats = self._prepare(video, "grounding", progress)
            t1 = time.perf_counter()
            results = self.predictor.predict(feats, names, duration=duration, top=top)
            t2 = time.perf_counter()
        clip_len = self.clip_len
        items = [{"query": r.query, "duration": r.duration, "gt_windows": [], "pred_windows": r.moments,
                  "saliency": r.saliency} for r in results]
        png = plot_timelines(items, self._timeline_path(), clip_len=clip_len)
        rows = [[r.query, i, round(s, 2), round(e, 2), round(score, 4)]
                for r in results for i, (s, e, score) in enumerate(r.moments, 1)]
        windows = results[0].num_windows
        how = "features from the cache" if cached else f"features extracted in {t_feats:.1f} s"
        status = (f"**{path.name}**: {duration:.1f} s, {feats.shape[-2]} clips of {clip_len:g} s"
                  f"{f', {windows} windows' if windows > 1 else ''}; {how}; {len(names)} "
                  f"quer{'y' if len(names) == 1 else 'ies'} answered in {t2 - t1:.2f} s. "
                  "Click a row of the table to play that moment.")
        return str(png), rows, status

    def vocabulary(self, names: list[str] | None):
        """The class texts of ``names`` (None: the model's own classes), embedded once per vocabulary."""
        from momentkit.tasks.classification import run_vocabulary

        key = tuple(names) if names is not None else None
        if key not in self._vocabularies:
            self._vocabularies[key] = run_vocabulary(self.served.config, self.served.model, names,
                                                     cache_dir=self.text_cache, device=str(self.served.device))
            while len(self._vocabularies) > CACHE_SIZE:
                self._vocabularies.popitem(last=False)
        self._vocabularies.move_to_end(key)
        return self._vocabularies[key]

    def rank_classes(self, video, classes: str | None = None, top: int | float | None = None,
                     progress: Callable[..., None] | None = None) -> tuple[str, list[list], str]:
        """``(bar plot PNG, table rows [rank, class, score], status)``: the ``top`` best classes of a video,
        among the model's own or the names typed comma-separated in ``classes``."""
        from momentkit.tasks.classification import score_video

        names = parse_classes(classes) if self.task == "classification" else None
        top = int(min(max(1, int(top or self.top)), MAX_TOP))
        with self._lock:
            path, feats, duration, cached, t_feats = self._prepare(video, "classification", progress)
            t1 = time.perf_counter()
            vocab = self.vocabulary(names)
            scores = score_video(self.served.model, self.served.config, feats, vocab, video=path.stem,
                                 device=str(self.served.device))
            t2 = time.perf_counter()
        order = np.argsort(-scores, kind="stable")[:top]
        rows = [[rank, vocab.classes[i], round(float(scores[i]), 4)] for rank, i in enumerate(order, 1)]
        png = plot_class_scores([r[1] for r in rows], [float(scores[i]) for i in order], self._timeline_path(),
                                title=f"{path.name}: the {len(rows)} best of {len(vocab.classes)} classes")
        whose = "typed" if names is not None else "the model's own"
        status = (f"{self._how(path, feats, duration, cached, t_feats)}; {len(vocab.classes)} classes ({whose}) "
                  f"ranked in {t2 - t1:.2f} s.")
        return str(png), rows, status

    def detect_segments(self, video, top: int | float | None = None,
                        progress: Callable[..., None] | None = None) -> tuple[str, list[list], str]:
        """``(timeline PNG, table rows [class, rank, start, end, score], status)``: the detected segments
        of a video, the ``top`` best per class, for the :data:`SHOWN_CLASSES` classes of the best segments
        (ordered by their best segment)."""
        from momentkit.tasks.detection import detect_video
        from momentkit.video.decode import probe

        top = int(min(max(1, int(top or self.top)), MAX_TOP))
        with self._lock:
            path, feats, duration, cached, t_feats = self._prepare(video, "detection", progress)
            t1 = time.perf_counter()
            detections = detect_video(self.served.model, self.served.config, feats, duration=duration,
                                      fps=probe(path).fps, clip_len=self.clip_len, video=path.stem,
                                      device=str(self.served.device))
            t2 = time.perf_counter()
        by_class: dict[str, list[list[float]]] = {}
        for det in detections:  # best first: classes in the order of their best segment
            by_class.setdefault(det["label"], []).append([*det["segment"], det["score"]])
        found = len(by_class)
        by_class = {c: segs[:top] for c, segs in list(by_class.items())[:SHOWN_CLASSES]}
        png = plot_class_segments(by_class, duration, self._timeline_path())
        rows = [[c, i, round(s, 2), round(e, 2), round(score, 4)]
                for c, segs in by_class.items() for i, (s, e, score) in enumerate(segs, 1)]
        shown = f", the {len(by_class)} best shown" if found > len(by_class) else ""
        status = (f"{self._how(path, feats, duration, cached, t_feats)}; {len(detections)} segments of {found} "
                  f"classes detected in {t2 - t1:.2f} s{shown}. Click a row of the table to play that segment.")
        return str(png), rows, status

    @staticmethod
    def seek(row: list | None) -> float | None:
        """The start (seconds) of a table row of moments or segments: where the player goes when the row is
        clicked."""
        if not row or len(row) < 3:
            return None
        try:
            return float(row[2])
        except (TypeError, ValueError):
            return None

    def public_message(self, error: Exception) -> str:
        """An error's message without the places the server keeps files at (only file names)."""
        import re

        return re.sub(re.escape(str(self.work_dir)) + r"[^\s:,]*/", "", str(error))

    # ------------------------------------------------------------------ the page
    def _features_text(self) -> str:
        """Where the model's features come from (local folders by their last name only)."""
        from momentkit.video.recipe import describe_video

        p = self.predictor
        if not p.recipe:
            return "no feature recipe"
        recipe = describe_video(p.recipe)
        for part in [*p.recipe.get("video", []), p.recipe.get("text") or {}]:
            for key in ("model_path", "model", "path"):
                value = str(part.get(key) or "")
                if value and os.path.isabs(value):
                    recipe = recipe.replace(value, Path(value).name)
        return recipe

    def describe(self) -> str:
        """The page's words about the model: name, task, what it reads (clips, windows, where its features
        come from), its classes, for the demo model what it knows, and why it cannot read videos when
        it cannot."""
        cfg = self.config
        model = f"Model **{cfg.model['name']}** from `{Path(self.name).name}`"
        if self.task == "grounding":
            text = (f"{model} (clips of {self.clip_len:g} s, windows of {self.predictor.window} clips; "
                    f"features: {self._features_text()}).")
        else:
            classes = self.served.classes
            shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
            if self.task == "classification":
                what = (f"ranks class names for a video: its {len(classes)} classes ({shown})"
                        + (", or names typed comma-separated (zero-shot)" if not self.served.fixed_vocabulary
                           else "; it has one output per class, so it ranks only those"))
            else:
                what = f"detects segments of {len(classes)} action classes ({shown})"
            text = f"{model}, a {self.task} model: it {what}. Features: {self._features_text()}."
        if self.task == "grounding" and is_demo_world(self.predictor):
            text += ("\n\n**This model knows only the synthetic world of `momentkit demo --video`**: generated "
                     "videos of coloured squares and circles crossing the scene, asked about with queries like "
                     "*a red circle moves left*. Its backbone is a randomly initialised CLIP, so it cannot "
                     "understand real videos; train one on real features as docs/own_data.md shows.")
        if self.problem:
            text += f"\n\n**Error: {self.problem}**"
        return text

    def build(self):
        """The Gradio page (``gr.Blocks``) of the model's task wired to the handlers."""
        import gradio as gr

        def guarded(fn):
            def call(*args, **kwargs):
                try:
                    return fn(*args, **kwargs)
                except InputError as e:
                    raise gr.Error(self.public_message(e), title="cannot use this input") from None
            return call

        def find(video, queries, top, progress=gr.Progress()):
            return guarded(self.find_moments)(video, queries, top, progress=progress)

        def rank(video, classes, top, progress=gr.Progress()):
            return guarded(self.rank_classes)(video, classes, top, progress=progress)

        def detect(video, top, progress=gr.Progress()):
            return guarded(self.detect_segments)(video, top, progress=progress)

        def inspect(video):
            if video is None:
                return ""
            return guarded(self.inspect)(video)

        def select(evt):
            return self.seek(getattr(evt, "row_value", None))

        select.__annotations__ = {"evt": gr.SelectData}  # Gradio passes the clicked row

        task = self.task
        # delete_cache: Gradio's copies of uploads and outputs older than an hour go, every half hour
        with gr.Blocks(title=f"momentkit: {TITLES[task]}", analytics_enabled=False,
                       delete_cache=(1800, 3600)) as page:
            gr.Markdown(f"# momentkit: {TITLES[task]}\n" + self.describe(), elem_id="mk-about")
            with gr.Row():
                with gr.Column(scale=1):
                    video = gr.Video(label="video (upload, or pick an example below)", sources=["upload"],
                                     format=None, include_audio=True, elem_id=PLAYER_ID, height=320)
                    if task == "grounding":
                        text = gr.Textbox(label="queries, one per line", lines=3, elem_id="mk-queries",
                                          placeholder="a red circle moves left")
                        top = gr.Slider(1, MAX_TOP, value=self.top, step=1, label="moments per query",
                                        elem_id="mk-top")
                        run = gr.Button("Find moments", variant="primary", elem_id="mk-run")
                    elif task == "classification":
                        own = self.served.classes
                        text = gr.Textbox(label="classes, comma-separated (empty: the model's own "
                                                f"{len(own)} classes)", lines=2, elem_id="mk-classes-text",
                                          placeholder=", ".join(own[:5]) + (", ..." if len(own) > 5 else ""),
                                          visible=not self.served.fixed_vocabulary)
                        top = gr.Slider(1, MAX_TOP, value=self.top, step=1, label="classes shown", elem_id="mk-top")
                        run = gr.Button("Rank classes", variant="primary", elem_id="mk-run")
                    else:
                        text = None
                        top = gr.Slider(1, MAX_TOP, value=self.top, step=1, label="segments per class",
                                        elem_id="mk-top")
                        run = gr.Button("Detect segments", variant="primary", elem_id="mk-run")
                    if self.examples:
                        gr.Examples(self.examples, inputs=[video, text] if task == "grounding" else [video],
                                    label="generated examples", cache_examples=False, elem_id="mk-examples")
                with gr.Column(scale=2):
                    status = gr.Markdown("", elem_id="mk-status")
                    if task == "grounding":
                        gr.Markdown("**Timelines**: per query, its saliency curve and its top moments as bands")
                        headers, label, table_id = TABLE_HEADERS, "moments (click a row to play it)", "mk-moments"
                    elif task == "classification":
                        gr.Markdown("**Ranking**: the best classes and their scores")
                        headers, label, table_id = CLASS_HEADERS, "classes, best first", "mk-classes"
                    else:
                        gr.Markdown("**Timeline**: one row per class, its segments as bands (darker: higher score)")
                        headers, label, table_id = SEGMENT_HEADERS, "segments (click a row to play it)", "mk-segments"
                    plot = gr.Image(label="timelines" if task != "classification" else "class scores",
                                    show_label=False, type="filepath", interactive=False,
                                    buttons=["download", "fullscreen"], elem_id="mk-timeline")
                    table = gr.Dataframe(headers=headers, label=label, interactive=False, elem_id=table_id, wrap=True)
                    start = gr.Number(visible=False, elem_id="mk-seek")
            video.upload(inspect, inputs=video, outputs=status, api_name="inspect")
            video.clear(lambda: "", inputs=None, outputs=status, api_name=False)
            outputs = [plot, table, status]
            if task == "grounding":
                run.click(find, inputs=[video, text, top], outputs=outputs, api_name="find_moments")
                text.submit(find, inputs=[video, text, top], outputs=outputs, api_name=False)
            elif task == "classification":
                run.click(rank, inputs=[video, text, top], outputs=outputs, api_name="rank_classes")
                text.submit(rank, inputs=[video, text, top], outputs=outputs, api_name=False)
            else:
                run.click(detect, inputs=[video, top], outputs=outputs, api_name="detect_segments")
            if task != "classification":
                table.select(select, inputs=None, outputs=start, api_name=False).then(
                    None, inputs=start, outputs=None, js=SEEK_JS)
        return page

    def close(self) -> None:
        """Forget the cached features, remove the working folder (uploads, examples, plots) and undo the
        Gradio settings of :func:`launch`."""
        self._features.clear()
        self._vocabularies.clear()
        for key, value in (self._saved_env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = None
        if not self.closed:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        self.closed = True

    def __enter__(self) -> MomentApp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gradio_environment(app: MomentApp) -> dict[str, str]:
    """The environment variables that keep Gradio's files in the app's working folder and its analytics
    off (set before the page is built)."""
    return {"GRADIO_TEMP_DIR": str(app.uploads), "GRADIO_EXAMPLES_CACHE": str(app.cache_dir),
            "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_CACHE_EXAMPLES": "false"}


def launch(app: MomentApp, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, block: bool = True,
           quiet: bool = False):
    """Build the page and serve it on ``host:port``; ``block=False`` returns the running ``gr.Blocks``
    (stop it with ``.close()``, then ``app.close()``)."""
    env = gradio_environment(app)
    if app._saved_env is None:
        app._saved_env = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    page = app.build()
    page.queue(default_concurrency_limit=1, max_size=16)
    page.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True,
                max_file_size=app.max_upload_bytes, allowed_paths=[], prevent_thread_lock=not block,
                quiet=quiet, ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
                run_history=False, footer_links=["api", "gradio", "settings"])
    return page


__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_UPLOAD_MB", "DEFAULT_PORT", "SERVED_TASKS", "MomentApp", "TaskModel",
           "feature_reader", "file_digest", "gradio_environment", "launch", "load_model", "parse_classes",
           "parse_queries", "plot_class_scores", "plot_class_segments"]
