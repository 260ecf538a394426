"""Predict moments and saliency for free-form queries on a video of any length, with a trained model.

::

    predictor = Predictor.from_checkpoint("runs/qvh/run")   # its feature recipe picks the backbone
    predictor = Predictor.from_pretrained("exported/qvh")   # a `momentkit export` folder or a Hub id
    for r in predictor.predict("talk.mp4", ["a man opens the door", "applause"]):
        print(r.query, r.moments[:3])      # [[start, end, score], ...] in seconds, best first
        r.saliency                          # one score per clip of the whole video

Inputs are prepared (:meth:`Predictor.inputs`) by the functions that
:class:`momentkit.data.datasets.GroundingDataset` and :func:`~momentkit.data.datasets.collate_grounding`
prepare training batches with, :mod:`momentkit.data.inputs`: same ``clip_len``, layer ``data.layer``
of layered features, TEF appended per window when ``data.use_tef``, query tokens cut to ``max_q_len``
and L2-normalised, the same padding and masks. So any registered grounding model runs through its
uniform ``forward`` / ``postprocess`` on inputs made as in training.

Features: a ``(T, D)`` or layered ``(K, T, D)`` array (or a ``.npz`` file holding ``features``), or a
video file decoded and embedded by :func:`momentkit.video.extract.extract_video` as the training
features were made. How they were made is the model's *feature recipe*
(:mod:`momentkit.video.recipe`): the ``momentkit extract`` recipe of every training feature folder
(backbone, model id or path, layers, pooling, fps, clip length), in the concatenation order of
``data.video_features``, with the normalisation training applied (several sources: each
L2-normalised, cut to the shortest, concatenated, as :class:`~momentkit.data.features.ConcatStore`
does), and the recipe of the query features. The run stores it with the model and
:meth:`Predictor.from_checkpoint` reads it, so no backbone need be given: the recipe's backbones are
loaded when a video or a text query needs them (``backbone_model``: their weights from another
place). A backbone given (an object from :func:`momentkit.video.backbones.create_backbone`, or a
``(name, model)`` pair) must make the recipe's features, or it is refused with what the model needs.
A model trained on features with no extraction recipe (synthetic, or downloaded) cannot read a
video: give its features; a model that carries no recipe at all (trained before runs recorded
it) reads videos with the backbone given, which must be the one that made its training features.

Long videos: a model is trained on at most ``data.max_v_len`` clips. A longer video is covered by
windows of ``window`` clips (default ``max_v_len``) every ``stride`` clips (default half a window; the
last window ends at the last clip, so every window is full). Each window is predicted on its own; its
moments are shifted to the absolute timeline, the candidates of all windows are merged with NMS
(:mod:`momentkit.ops.nms`; the config's ``eval.nms``, or hard NMS at ``eval.nms_threshold`` when it
has none) and each clip's saliency is the mean of its scores over the windows that cover it. Windows
are processed ``batch_size`` rows at a time (a row is one query on one window), so memory grows
linearly with the length of the video; at most ``max_candidates`` candidates per query enter NMS.
The queries' inputs are made once, each chunk's windows at once (:meth:`Predictor.window_inputs`,
no loop over windows), and every query is paired with every window of the chunk
(:func:`pair_rows`): gathered into rows, or, for a model that takes row indices (SDST), by index, so
that the model projects each window and each query once. The predictions are those of running
each window with each query on its own (``tests/test_predict.py`` compares the two).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from momentkit.errors import InputError

NO_LIMIT = 1 << 30
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_CANDIDATES = 1000


@dataclass
class MomentPrediction:
    """The prediction for one query on one video."""

    query: str
    moments: list[list[float]]  # [[start, end, score], ...] seconds, descending score
    saliency: list[float]  # one score per clip of the whole video
    duration: float  # seconds
    clip_len: float  # seconds per clip
    num_windows: int = 1  # windows the video was cut into
    vid: str | None = None

    def to_row(self, qid: Any = None) -> dict:
        """A QVHighlights-style prediction row (what ``momentkit evaluate`` reads)."""
        return {"qid": qid, "query": self.query, "vid": self.vid, "pred_relevant_windows": self.moments,
                "pred_saliency_scores": self.saliency}


def window_starts(num_clips: int, window: int, stride: int) -> np.ndarray:
    """First clip of each window covering ``num_clips`` clips: ``0, stride, 2 * stride, ...`` and a last
    window ending at the last clip (so every window holds ``window`` clips); ``[0]`` when the video
    fits in one window."""
    if window < 1 or stride < 1:
        raise InputError(f"window ({window}) and stride ({stride}) must be at least 1", field="window")
    if num_clips <= window:
        return np.zeros(1, dtype=np.int64)
    last = num_clips - window
    return np.unique(np.append(np.arange(0, last, stride, dtype=np.int64), last))


# ----------------------------------------------------------------------------- loading
def load_model_and_config(path: str | os.PathLike):
    """``(model, ExperimentConfig, file)`` from a run folder, a ``model.safetensors`` or a Lightning
    ``.ckpt``: the run loader ``momentkit test`` uses too (:func:`momentkit.training.runner.load_run`)."""
    from momentkit.training.runner import load_run

    return load_run(path)


def _make_backbone(backbone, device):
    if backbone is None or hasattr(backbone, "encode_video"):
        return backbone
    from momentkit.video.backbones import create_backbone

    if isinstance(backbone, str):
        return create_backbone(backbone, None, device=device)
    if isinstance(backbone, (tuple, list)) and len(backbone) == 2:
        name, model = backbone
        return create_backbone(str(name), None if model is None else str(model), device=device)
    raise InputError("backbone must be a backbone object, a name or a (name, model path or id) pair",
                     field="backbone")


# ----------------------------------------------------------------------------- the predictor
@dataclass
class Predictor:
    """A trained grounding model plus what it needs to read raw inputs; see the module docstring."""

    model: torch.nn.Module = field(repr=False)
    config: Any = field(repr=False)  # momentkit.training.config.ExperimentConfig
    backbone: Any = field(default=None, repr=False)
    device: str | torch.device = "cpu"
    window: int | None = None  # clips per window (default: data.max_v_len)
    stride: int | None = None  # clips between window starts (default: window // 2)
    batch_size: int = DEFAULT_BATCH_SIZE  # rows (query x window) per forward pass
    text_field: str | None = None  # what of the backbone's text output the model reads (default: the recipe's)
    nms: str | None = "auto"  # "auto": the config's eval.nms (hard NMS when it has none and windows merge)
    nms_threshold: float | None = None  # default: eval.nms_threshold
    max_windows: int | None = None  # moments kept per query (default: eval.max_windows)
    max_candidates: int = DEFAULT_MAX_CANDIDATES  # best candidates per query entering NMS
    source: Path | None = field(default=None, repr=False)
    recipe: dict | None = field(default=None, repr=False)  # the model's feature recipe (None: it has none)
    backbone_model: str | None = None  # load the recipe's backbone weights from here (HF id or local path)

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        self.model = self.model.to(self.device).eval()
        self.backbone = _make_backbone(self.backbone, self.device)
        self._backbones: dict = {}  # backbones built from the recipe, by what they are
        if self.text_field is None:
            self.text_field = (self.recipe or {}).get("text_field") or "last_hidden_state"
        data = self.config.data
        for name in ("window", "stride"):  # None: the default; 0 or less is meaningless, not "default"
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"must be at least 1 (or None for the default), got {value}", field=name)
        self.window = int(self.window or data.max_v_len)
        self.stride = int(self.stride or max(1, self.window // 2))
        if self.window < 1 or self.stride < 1 or self.stride > self.window:
            raise InputError(f"need 1 <= stride ({self.stride}) <= window ({self.window})", field="stride")
        if self.batch_size < 1 or self.max_candidates < 1:
            raise InputError("batch_size and max_candidates must be at least 1", field="batch_size")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, backbone=None, device: str | torch.device = "cpu",
                        **options) -> Predictor:
        """Load a run folder, ``model.safetensors`` or ``.ckpt`` and the feature recipe it carries
        (:func:`momentkit.video.recipe.load_run_recipe`); ``backbone`` (an object, a name or a
        ``(name, model)`` pair) replaces the recipe's, and is needed when the model carries none."""
        from momentkit.pretrained import export_recipe
        from momentkit.video.recipe import load_run_recipe

        model, cfg, src = load_model_and_config(path)
        task = getattr(cfg, "task", "grounding")
        if task != "grounding":
            raise InputError(f"a {task} model ({cfg.model.get('name')}): the moments of text queries come from a "
                             "grounding model", path=src, field="ckpt")
        if "recipe" not in options:
            exported, recipe = export_recipe(src)  # an exported folder's config.json holds its recipe
            options["recipe"] = recipe if exported else load_run_recipe(src)
        return cls(model, cfg, backbone=backbone, device=device, source=src, **options)

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike, *, backbone=None,
                        device: str | torch.device = "cpu", **options) -> Predictor:
        """Load a model shared as ``momentkit export`` writes it: its folder, or the Hugging Face Hub id
        of one (``owner/name``, ``owner/name@revision``; downloaded once into the Hub cache), or any
        form :meth:`from_checkpoint` takes. JSON and safetensors only (:mod:`momentkit.pretrained`)."""
        return cls.from_checkpoint(path_or_hub_id, backbone=backbone, device=device, **options)

    # ------------------------------------------------------------------ widths
    def _model_width(self, name: str) -> int | None:
        width = getattr(getattr(self.model, "config", None), f"{name}_dim", None)
        if width is None:
            width = self.config.model.get(f"{name}_dim")
        return None if width is None else int(width)

    @property
    def video_width(self) -> int | None:
        """Width of the raw clip features the model expects (its input width less the TEF)."""
        width = self._model_width("video")
        return None if width is None else width - 2 * bool(self.config.data.use_tef)

    @property
    def text_width(self) -> int | None:
        return self._model_width("text")

    @property
    def layer(self) -> int | None:
        """The layer of layered features the model reads (``data.layer``; None: all layers)."""
        return getattr(self.config.data, "layer", None)

    # ------------------------------------------------------------------ backbones
    def _recipe_backbone(self, part: dict):
        """The backbone of a recipe part, loaded once (video and text of one extraction share it)."""
        from momentkit.video.backbones import create_backbone
        from momentkit.video.recipe import backbone_spec, describe_part

        if self.backbone_model is not None:
            sources = {(p.get("backbone"), p.get("model")) for p in self._recipe_parts()
                       if p.get("source") == "extract"}
            if len(sources) > 1:
                raise InputError(f"backbone_model {self.backbone_model} is ambiguous: the model's features come "
                                 f"from {len(sources)} backbones; give them as objects", field="backbone_model")
        name, model, options = backbone_spec(part, self.backbone_model)
        key = (name, model, repr(sorted(options.items())))
        if key not in self._backbones:
            try:
                self._backbones[key] = create_backbone(name, model, device=self.device, **options)
            except InputError as e:
                raise InputError(f"{e.message}; the model's features come from {describe_part(part)}: give the "
                                 "weights' location with --backbone-model (backbone_model=)", path=e.path,
                                 field=e.field) from None
        return self._backbones[key]

    def _recipe_parts(self) -> list[dict]:
        r = self.recipe or {}
        return [*r.get("video", []), *([r["text"]] if r.get("text") else [])]

    def video_sources(self, what: str = "a video file") -> list[tuple[Any, float | None, float]]:
        """``(backbone, fps, clip_len)`` per concatenated feature source of the model (see the module
        docstring); an :class:`InputError` saying what the model needs when a video cannot be read."""
        from momentkit.video.recipe import check_backbone, describe_part, describe_video

        clip_len = float(self.config.data.clip_len)
        if self.recipe is None:
            if self.backbone is None:
                raise InputError(f"predicting on {what} needs the backbone that made the model's training "
                                 "features, and this model carries no feature recipe (trained on synthetic or "
                                 "downloaded features, or before runs recorded it): give that backbone "
                                 "(--backbone, Predictor(backbone=...)) or predict from features "
                                 "(--features FILE.npz)", field="backbone")
            return [(self.backbone, None, clip_len)]
        parts = self.recipe["video"]
        unknown = [p for p in parts if p.get("source") != "extract"]
        if unknown:
            if self.backbone is not None and len(parts) == 1 and unknown[0].get("source") == "unknown":
                return [(self.backbone, None, clip_len)]  # downloaded features: the caller names their backbone
            width = f" of width {self.video_width}" if self.video_width else ""
            raise InputError(f"this model was trained on features with no extraction recipe "
                             f"({'; '.join(describe_part(p) for p in unknown)}): no backbone makes them from "
                             f"{what}; predict from a features file (--features FILE.npz holding 'features'"
                             f"{width}) instead", field="features")
        if self.backbone is not None:
            if len(parts) != 1:
                raise InputError(f"the model reads {len(parts)} concatenated feature sources "
                                 f"({describe_video(self.recipe)}); one backbone cannot make them: omit it to use "
                                 "the model's recipe", field="backbone")
            check_backbone(parts[0], self.backbone)
            return [(self.backbone, float(parts[0]["fps"]), float(parts[0]["clip_len"]))]
        return [(self._recipe_backbone(p), float(p["fps"]), float(p["clip_len"])) for p in parts]

    def text_encoder(self):
        """The backbone that encodes text queries as the model's query features were made."""
        from momentkit.video.recipe import check_backbone, describe_part

        part = (self.recipe or {}).get("text")
        recorded = (self.recipe or {}).get("text_field")
        if recorded and self.text_field != recorded:
            raise InputError(f"the model was trained on the queries' '{recorded}' features, not "
                             f"'{self.text_field}'", field="text_field")
        if self.backbone is not None:
            if part:
                check_backbone(part, self.backbone, what="query", layered_text=self.text_field == "features")
            return self.backbone
        if self.recipe is None:
            raise InputError("encoding queries needs the backbone that made the model's query features, and "
                             "this model carries no feature recipe: give that backbone (--backbone, "
                             "Predictor(backbone=...)) or the queries' features (--text-features)", field="backbone")
        if not part or part.get("source") != "extract":
            raise InputError(f"this model was trained on query features with no extraction recipe "
                             f"({describe_part(part)}): give the queries' features (--text-features FILE.npz, "
                             "one per query)", field="text_features")
        return self._recipe_backbone(part)

    # ------------------------------------------------------------------ inputs
    def _extract(self, path: Path, progress=None) -> np.ndarray:
        """A video file's features, made as the model's training features (every source, normalised and
        concatenated as in training); ``progress(fraction)`` is called as the video is read."""
        from momentkit.data.features import l2_normalize
        from momentkit.video.extract import extract_video

        sources = self.video_sources(f"the video file {path.name}")
        seconds = None
        if progress is not None:
            from momentkit.video.decode import probe

            seconds = probe(path).duration

        def reporter(i: int):
            if progress is None or not seconds:
                return None
            return lambda done: progress(min(1.0, (i + min(1.0, done / seconds)) / len(sources)))

        parts = [extract_video(b, path, fps=fps, clip_len=clip_len, on_progress=reporter(i))
                 for i, (b, fps, clip_len) in enumerate(sources)]
        if len(parts) == 1 and (self.recipe or {}).get("video_normalize", "none") == "none":
            return parts[0]
        parts = [l2_normalize(p) for p in parts]
        n = min(p.shape[-2] for p in parts)
        return np.concatenate([p[..., :n, :] for p in parts], axis=-1).astype(np.float32, copy=False)

    def video_features(self, video, progress=None) -> tuple[np.ndarray, float, str | None]:
        """``(features (T, D) or (K, T, D), duration in seconds, video id)`` of a video file, a ``.npz``
        feature file or an array; ``progress(fraction)``, when given, is called while a video file is
        decoded and embedded."""
        clip_len = float(self.config.data.clip_len)
        if isinstance(video, (str, os.PathLike)):
            path = Path(video)
            if path.suffix == ".npz":
                feats = _load_npz_features(path)
                return feats, feats.shape[-2] * clip_len, path.stem
            from momentkit.video.decode import probe

            feats = self._extract(path, progress)
            duration = probe(path).duration or feats.shape[-2] * clip_len
            return feats, float(min(duration, feats.shape[-2] * clip_len)), path.stem
        feats = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
        return feats, feats.shape[-2] * clip_len if feats.ndim >= 2 else 0.0, None

    def _check_video(self, feats: np.ndarray, src: str | None) -> np.ndarray:
        if feats.ndim not in (2, 3) or feats.shape[-2] < 1 or feats.shape[-1] < 1:
            raise InputError(f"video features must be (T, D) or (K, T, D) with T >= 1, got shape {feats.shape}",
                             path=src, field="features")
        want = self.video_width
        if want is not None and feats.shape[-1] != want:
            raise InputError(f"video features have width {feats.shape[-1]} but the model expects {want} "
                             "(use the backbone and layers the model was trained with)", path=src,
                             field="features")
        feats = feats.astype(np.float32, copy=False)
        if not np.isfinite(feats).all():
            raise InputError("video features hold NaN or infinite values", path=src, field="features")
        return feats

    def text_features(self, queries: Sequence[str], text_features=None) -> list[np.ndarray]:
        """Per query ``(L, D)`` (or layered ``(K, L, D)``) token features, cut to ``max_q_len`` and
        L2-normalised as in training (:func:`momentkit.data.inputs.text_inputs`); one layer of layered
        features when ``data.layer`` is set."""
        from momentkit.data.inputs import text_inputs

        if text_features is None:
            rows = self.text_encoder().encode_text(list(queries))
            if rows and self.text_field not in rows[0]:
                raise InputError(f"the backbone gives no '{self.text_field}' text features "
                                 f"(it gives {', '.join(rows[0])})", field="text_field")
            text_features = [r[self.text_field] for r in rows]
        elif len(text_features) != len(queries):
            raise InputError(f"{len(text_features)} text features for {len(queries)} queries", field="text_features")
        out = []
        want = self.text_width
        for i, t in enumerate(text_features):
            t = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
            t = t.astype(np.float32, copy=False)
            if t.ndim == 1:
                t = t[None]
            if t.ndim not in (2, 3) or t.shape[-2] < 1:
                raise InputError(f"query {i}: text features must be (L, D) or (K, L, D), got shape {t.shape}",
                                 field="text_features")
            if want is not None and t.shape[-1] != want:
                raise InputError(f"query {i}: text features have width {t.shape[-1]} but the model expects {want}",
                                 field="text_features")
            out.append(text_inputs(t, self.config.data.max_q_len, normalize=True, layer=self.layer,
                                   what=f"text features of query {i}").numpy())
        return out

    def window_inputs(self, feats: np.ndarray, starts: Sequence[int] = (0,)) -> tuple[torch.Tensor, torch.Tensor]:
        """``(video (W, T', Dv') or (W, K, T', Dv'), video_mask (W, T'))``: the windows of ``feats`` that start
        at clips ``starts``, each ``video_inputs(feats[..., s:, :], window, data.use_tef, data.layer)``
        (see :meth:`inputs`), made for all windows at once (every window holds ``T' = min(window, T)``
        clips, so they share one TEF and need no padding)."""
        from momentkit.data.inputs import pick_layer, video_inputs

        base = pick_layer(feats, self.layer, "video features")  # (T, D) or (K, T, D)
        n = min(self.window, base.shape[-2])
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        if starts.size == 0 or starts.min() < 0 or starts.max() + n > base.shape[-2]:
            raise InputError(f"window starts must lie in [0, {base.shape[-2] - n}] for {base.shape[-2]} clips",
                             field="starts")
        clips = np.moveaxis(base[..., starts[:, None] + np.arange(n), :], -3, 0)  # (W, [K,] n, D)
        video = video_inputs(clips, n, bool(self.config.data.use_tef))
        return video, torch.ones(len(starts), n, dtype=torch.bool)

    def query_inputs(self, texts: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """``(text (Q, L, Dt) or (Q, K, L, Dt), text_mask (Q, L))``: the queries' features from
        :meth:`text_features`, right-padded to the longest (:func:`momentkit.data.inputs.pad_time`)."""
        from momentkit.data.inputs import pad_time

        return pad_time([torch.as_tensor(t) for t in texts])

    def inputs(self, feats: np.ndarray, texts: Sequence, starts: Sequence[int] = (0,)) -> dict[str, torch.Tensor]:
        """The model inputs of every query on the windows of ``feats`` that start at clips ``starts``:
        ``video_feats``, ``video_mask``, ``text_feats``, ``text_mask`` (as :func:`momentkit.data.inputs.batch_inputs`
        makes them, on the CPU), row ``b`` = window ``b // Q``, query ``b % Q`` with ``Q = len(texts)``.

        ``feats``: the ``(T, D)`` / ``(K, T, D)`` float32 clip features of the whole video; ``texts``: the
        queries' features from :meth:`text_features`. The window starting at clip ``s`` is
        ``video_inputs(feats[..., s:, :], window, data.use_tef, data.layer)`` -- the training item of the
        video from clip ``s`` on, with its TEF relative to the window -- so on a video of at most
        ``window`` (= ``data.max_v_len`` by default) clips the batch equals the collated
        :class:`~momentkit.data.datasets.GroundingDataset` items of the same video and queries.
        :meth:`predict` builds the windows (:meth:`window_inputs`) and queries (:meth:`query_inputs`)
        once each and pairs them (:func:`pair_rows`).
        """
        video, video_mask = self.window_inputs(feats, starts)
        text, text_mask = self.query_inputs(texts)
        return pair_rows(video, video_mask, text, text_mask)

    # ------------------------------------------------------------------ prediction
    @torch.inference_mode()
    def predict(self, video, queries: str | Sequence[str], *, text_features=None,
                duration: float | None = None, top: int | None = None) -> list[MomentPrediction]:
        """Moments and per-clip saliency of each query on ``video`` (a video file, a ``.npz`` with
        ``features``, or a ``(T, D)`` / ``(K, T, D)`` array); see the module docstring."""
        from momentkit.ops.calibration import apply_platt
        from momentkit.ops.nms import nms as apply_nms

        calibration = getattr(self.config.eval, "calibration", None)

        queries = [queries] if isinstance(queries, str) else list(queries)
        if not queries:
            raise InputError("no queries given", field="queries")
        src = str(video) if isinstance(video, (str, os.PathLike)) else None
        feats, dur, vid = self.video_features(video)
        feats = self._check_video(feats, src)
        if duration is not None:
            if not duration > 0:
                raise InputError(f"duration must be positive, got {duration}", field="duration")
            dur = float(duration)
        texts = self.text_features(queries, text_features)

        cfg = self.config
        clip_len = float(cfg.data.clip_len)
        n_clips = feats.shape[-2]
        n_q = len(queries)
        win = min(self.window, n_clips)
        starts = window_starts(n_clips, self.window, self.stride)
        n_win = len(starts)
        top = int(top or self.max_windows or cfg.eval.max_windows)
        method = cfg.eval.nms if self.nms == "auto" else self.nms
        if method is None and self.nms == "auto" and n_win > 1:
            method = "hard"
        threshold = cfg.eval.nms_threshold if self.nms_threshold is None else self.nms_threshold

        steps = np.arange(win)
        # the queries' inputs once; each chunk's windows once, paired with every query (row b = window
        # b // Q, query b % Q): by index inside a model that takes row indices, else gathered here
        text, text_mask = (x.to(self.device) for x in self.query_inputs(texts))
        by_index = bool(getattr(self.model, "accepts_row_index", False))

        sal_sum = np.zeros((n_q, n_clips), dtype=np.float64)
        cover = np.zeros(n_clips, dtype=np.float64)
        cands: list[list[np.ndarray]] = [[] for _ in range(n_q)]
        per_chunk = max(1, self.batch_size // n_q)
        for c0 in range(0, n_win, per_chunk):
            st = starts[c0 : c0 + per_chunk]
            idx = st[:, None] + steps  # (w, win)
            w = len(st)
            video, video_mask = (x.to(self.device) for x in self.window_inputs(feats, st))
            batch = pair_rows(video, video_mask, text, text_mask, gather=not by_index)
            batch["meta"] = [{"qid": q, "vid": vid, "query": queries[q], "clip_len": clip_len, "num_clips": win,
                              "duration": float(max(min(win * clip_len, dur - s * clip_len), 1e-6))}
                             for s in st.tolist() for q in range(n_q)]
            outputs = self.model(batch)
            rows = self.model.postprocess(outputs, batch, max_windows=NO_LIMIT, nms=None, decimals=None)
            offsets = np.repeat(st * clip_len, n_q)
            for b, row in enumerate(rows):
                m = np.asarray(row["pred_relevant_windows"], dtype=np.float64).reshape(-1, 3)
                m[:, :2] += offsets[b]
                cands[b % n_q].append(m)
            sal = np.asarray([r["pred_saliency_scores"] for r in rows], dtype=np.float64)  # (w * Q, win)
            np.add.at(sal_sum, (slice(None), idx), sal.reshape(w, n_q, win).transpose(1, 0, 2))
            np.add.at(cover, idx, 1.0)
            for q in range(n_q):  # keep the candidate lists bounded
                if sum(len(m) for m in cands[q]) > 2 * self.max_candidates:
                    cands[q] = [_best(np.concatenate(cands[q]), self.max_candidates)]

        saliency = sal_sum / cover
        results = []
        for q in range(n_q):
            m = _best(np.concatenate(cands[q]), self.max_candidates)
            m[:, :2] = np.clip(m[:, :2], 0.0, dur)
            if method is not None:
                m = apply_nms(m, method, threshold, max_keep=top, relative=True)
            m = m[np.argsort(-m[:, 2], kind="stable")][:top]
            if calibration:  # the map fitted on validation: scores become probabilities of being right
                m[:, 2] = apply_platt(m[:, 2], *calibration)
            results.append(MomentPrediction(
                query=queries[q], moments=np.round(m, 4).tolist(), saliency=saliency[q].tolist(),
                duration=dur, clip_len=clip_len, num_windows=n_win, vid=vid))
        return results


def pair_rows(video: torch.Tensor, video_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
              gather: bool = True) -> dict[str, torch.Tensor]:
    """A batch of every query on every window: row ``b`` = window ``b // Q``, query ``b % Q`` of ``W``
    windows ``video (W, ...)`` / ``video_mask (W, T)`` and ``Q`` queries ``text (Q, ...)`` / ``text_mask (Q, L)``.

    ``gather``: the rows' own ``video_feats``, ``video_mask``, ``text_feats``, ``text_mask`` (``W * Q`` each,
    the batch of :func:`momentkit.data.inputs.batch_inputs`); otherwise the distinct windows and queries
    with ``video_index`` / ``text_index (W * Q,)``, the row indices that a model with
    ``accepts_row_index`` (SDST) reads, so that it computes each window's and each query's own
    projections once."""
    w, q = len(video), len(text)
    video_index = torch.arange(w, device=video.device).repeat_interleave(q)
    text_index = torch.arange(q, device=text.device).repeat(w)
    if gather:
        return {"video_feats": video.index_select(0, video_index),
                "video_mask": video_mask.index_select(0, video_index),
                "text_feats": text.index_select(0, text_index), "text_mask": text_mask.index_select(0, text_index)}
    return {"video_feats": video, "video_mask": video_mask, "text_feats": text, "text_mask": text_mask,
            "video_index": video_index, "text_index": text_index}


def _best(windows: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest-scored windows, by descending score (ties keep order)."""
    order = np.argsort(-windows[:, 2], kind="stable")[:k]
    return windows[order]


def _load_npz_features(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError("feature file not found", path=path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "features" not in npz.files:
                raise InputError(f"no 'features' array in this file (it holds {', '.join(npz.files) or 'nothing'})",
                                 path=path, field="features")
            return np.asarray(npz["features"], dtype=np.float32)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged file is the user's input
        raise InputError(f"cannot read feature file ({type(e).__name__}: {e})", path=path) from None


__all__ = ["MomentPrediction", "Predictor", "load_model_and_config", "pair_rows", "window_starts"]
