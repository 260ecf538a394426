"""Task ``grounding``: moment retrieval + highlight detection from video and text features.

- ``data`` (:class:`GroundingDataConfig`): annotation files of each split (QVHighlights JSON Lines,
  Charades-STA text, ... -- any grounding format of :mod:`momentkit.data.annotations`) and the feature
  stores; items come from :class:`momentkit.data.datasets.GroundingDataset`, batches from
  :func:`~momentkit.data.datasets.collate_grounding` (:class:`momentkit.models.contract.GroundingBatch`).
- ``eval`` (:class:`GroundingEvalConfig`): the protocol (``grounding``: QVHighlights MR + HD;
  ``single``: Charades-STA / TACoS R1@t and mIoU; ``multimoment``: R_m / mAP_m and the decoder
  diagnostics) and the post-processing (windows kept, NMS).
- Metrics: :func:`score_predictions` -- the functions ``momentkit evaluate`` uses.
- Predictions: ``predictions_{split}.jsonl`` in the QVHighlights format. With ``eval.calibrate`` the
  window scores are calibrated probabilities of "IoU >= 0.5 with a ground-truth window"
  (:mod:`momentkit.ops.calibration`): the map is fitted on the validation predictions; the validation
  predictions themselves are calibrated out of fold (videos in two halves, each mapped with the fit on
  the other half), so that their calibration error is honest; other splits and ``momentkit predict``
  use the map fitted on all of them (``eval.calibration``). Window order and ranking metrics do not
  change.
- Decoder queries (``eval.decoder_queries``, on by default): the models' post-processing also returns
  every decoder query's window in slot order before NMS (``slot_windows``), scored per slot by
  :mod:`momentkit.metrics.decoder_queries` (active queries at ``eval.decoder_threshold`` of the
  model's own, uncalibrated confidence; % windows and % moments matched; per slot), under
  ``diagnostics.decoder_queries`` in ``metrics_{split}.json`` and as ``decoder-*`` flat keys (logs and
  curves); the raw slot windows
  go to ``decoder_{split}.jsonl`` (never into the prediction file) and their plot, one panel per
  slot, to ``decoder_{split}.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import lightning as L
import torch

from momentkit.errors import InputError
from momentkit.tasks import Task, register_task
from momentkit.training.sampler import ResumableSampler, batches_done

SLOTS = "slot_windows"  # the per-decoder-query windows a prediction row carries (never written to the predictions)


@dataclass
class GroundingDataConfig:
    train: str | None = None  # annotation file of each split
    val: str | None = None
    test: str | None = None
    format: str | None = None  # annotation format; None = detect from the file
    video_features: list[str] = field(default_factory=list)  # folders or packed stores, combined per clip
    text_features: str | None = None  # folder or packed store of qid{qid}.npz text features
    clip_len: float = 2.0  # seconds per feature step
    max_v_len: int = 75  # clips kept per video (longer videos are truncated; see GroundingDataset)
    max_q_len: int = 32  # text tokens kept per query
    use_tef: bool = True  # append temporal endpoint features [t/T, (t+1)/T]
    layer: int | None = None  # layered (K, T, D) features: keep this layer only (e.g. -1, the last)
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int = 0
    # training batches keep the queries of a video together (shuffled by video), so that a model's
    # negative pairs (SDST `neg_pairs`) can contrast two queries of the same video
    group_by_video: bool = False

    def __post_init__(self) -> None:
        from momentkit.training.config import check_ranges

        check_ranges(self, positive=("clip_len", "max_v_len", "max_q_len", "batch_size", "eval_batch_size"),
                     nonneg=("num_workers",))


@dataclass
class GroundingEvalConfig:
    task: Literal["grounding", "single", "multimoment"] = "grounding"
    max_windows: int = 10  # windows kept per query in the prediction file
    nms: Literal["hard", "gaussian", "linear"] | None = None  # NMS / soft-NMS at inference (None = off)
    nms_threshold: float = 0.7  # IoU threshold of NMS
    active_threshold: float = 0.5  # multimoment: a prediction is "active" at this confidence or above
    calibrate: bool = True  # window scores become calibrated probabilities (Platt map fitted on val)
    calibration: list[float] | None = None  # the fitted map [a, b], saved with the trained model
    decoder_queries: bool = True  # score every decoder query slot before NMS (decoder_{split}.jsonl / .png)
    decoder_threshold: float = 0.5  # a decoder query is active at this uncalibrated confidence or above

    def __post_init__(self) -> None:
        from momentkit.training.config import check_ranges

        check_ranges(self, positive=("max_windows",))
        if not 0 <= self.nms_threshold <= 1:
            raise InputError(f"must be in [0, 1], got {self.nms_threshold}", field="nms_threshold")
        if not 0 <= self.decoder_threshold <= 1:
            raise InputError(f"must be in [0, 1], got {self.decoder_threshold}", field="decoder_threshold")
        if self.calibration is not None and len(self.calibration) != 2:
            raise InputError(f"expected [a, b], got {self.calibration}", field="calibration")


def score_predictions(preds: list[dict], gt: list[dict], task: str, full: bool = False,
                      active_threshold: float = 0.5, clip_len: float | None = None,
                      decoder_threshold: float = 0.5) -> dict:
    """Flat headline metrics (``full=False``, for logging) or the complete metrics dict.

    - ``grounding``: QVHighlights MR + HD (``MR-full-mAP``, ``HL-min-VeryGood-mAP``, ...);
    - ``single``: Charades-STA / TACoS R1@t, R5@t, mIoU, plus the QVHighlights MR keys;
    - ``multimoment``: R_m / mAP_m / mAP per threshold, the decoder diagnostics (predictions
      with confidence >= ``active_threshold`` per query, % predictions matched, % GT matched),
      plus the QVHighlights MR keys.

    The complete dict has the flat metrics under ``brief`` (the official ones) and, with ``clip_len``
    given, the query diagnostics of :func:`momentkit.metrics.diagnostics.query_diagnostics` under
    ``diagnostics``; the flat dict has their numbers too. When the rows carry ``slot_windows``, the
    diagnostics per decoder query (:mod:`momentkit.metrics.decoder_queries`, active at
    ``decoder_threshold``) are under ``diagnostics`` / ``decoder_queries``, and their ``decoder-*`` keys
    in the flat dict.
    """
    from momentkit.metrics import evaluate_grounding, evaluate_multimoment, evaluate_single_moment

    if task == "grounding":
        res = evaluate_grounding(preds, gt)
        flat = dict(res["brief"])
    else:
        mr = evaluate_grounding([{k: v for k, v in p.items() if k != "pred_saliency_scores"} for p in preds],
                                [{k: v for k, v in g.items() if k != "saliency_scores"} for g in gt])
        extra = evaluate_single_moment(preds, gt) if task == "single" else \
            evaluate_multimoment(preds, gt, active_threshold=active_threshold)
        flat = {**mr["brief"], **{k: v for k, v in extra.items() if isinstance(v, (int, float))}}
        res = {"brief": flat, task: extra, **{k: v for k, v in mr.items() if k != "brief"}}
    if clip_len is not None:
        from momentkit.metrics.diagnostics import query_diagnostics

        diag = query_diagnostics(preds, gt, clip_len=clip_len)
        if full:
            res = {**res, "diagnostics": diag}
        else:
            flat = {**flat, **{k: v for k, v in diag.items() if isinstance(v, (int, float))}}
    if preds and all(SLOTS in p for p in preds):
        from momentkit.metrics.decoder_queries import evaluate_decoder_queries

        dec = evaluate_decoder_queries(preds, gt, score_threshold=decoder_threshold)
        if full:  # beside the query diagnostics: the official part stays identical to `momentkit evaluate`
            res = {**res, "diagnostics": {**res.get("diagnostics", {}), "decoder_queries": dec}}
        else:
            flat = {**flat, **dec["brief"]}
    return res if full else flat


class GroundingDataModule(L.LightningDataModule):
    """Annotation files + feature stores -> deterministic, resumable batches of every split."""

    def __init__(self, cfg: GroundingDataConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = seed
        self.samplers: dict[str, ResumableSampler] = {}
        self.resume_from: tuple[int, int] | None = None  # (global_step, epoch) of a restored checkpoint
        self.test_split = "test"

    # stores are opened once and shared by every split
    @cached_property
    def video_store(self):
        from momentkit.data.features import open_store

        if not self.cfg.video_features:
            raise InputError("no video features configured", field="data.video_features")
        paths = self.cfg.video_features
        return open_store(paths if len(paths) > 1 else paths[0], kind="video")

    @cached_property
    def text_store(self):
        from momentkit.data.features import open_store

        if self.cfg.text_features is None:
            raise InputError("no text features configured", field="data.text_features")
        return open_store(self.cfg.text_features, kind="text")

    def samples(self, split: str):
        path = getattr(self.cfg, split)
        if path is None:
            raise InputError(f"no annotation file for split '{split}'", field=f"data.{split}")
        return _cached_read(str(path), self.cfg.format)

    def dataset(self, split: str):
        from momentkit.data.datasets import GroundingDataset

        return GroundingDataset(
            self.samples(split), self.video_store, self.text_store, clip_len=self.cfg.clip_len,
            max_v_len=self.cfg.max_v_len, max_q_len=self.cfg.max_q_len, use_tef=self.cfg.use_tef,
            layer=self.cfg.layer,
        )

    # ------------------------------------------------------------------ the engine's questions
    def model_inputs(self) -> dict:
        """``video_dim`` (including the TEF) and ``text_dim``, as the model's input projections need."""
        item = self.dataset("train" if self.cfg.train else "val")[0]
        return {"video_dim": int(item["video_feats"].shape[-1]), "text_dim": int(item["text_feats"].shape[-1])}

    def resolved_data(self) -> GroundingDataConfig:
        return self.cfg

    def has_split(self, split: str) -> bool:
        return getattr(self.cfg, split) is not None

    def eval_sets(self, split: str) -> list[str]:
        if getattr(self.cfg, split) is None:
            raise InputError(f"no annotation file for split '{split}'", field=f"data.{split}")
        return [split]

    def ground_truth(self, set_name: str) -> list[dict]:
        from momentkit.data.annotations.grounding_jsonl import grounding_row

        return [grounding_row(s) for s in self.samples(set_name)]

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, train: bool) -> torch.utils.data.DataLoader:
        from momentkit.data.datasets import collate_grounding

        ds = self.dataset(split)
        bs = self.cfg.batch_size if train else self.cfg.eval_batch_size
        groups = [x.vid for x in ds.samples] if train and self.cfg.group_by_video else None
        sampler = ResumableSampler(len(ds), shuffle=train, seed=self.seed, batch_size=bs, dataset=ds, groups=groups)
        if train and self.resume_from is not None:
            sampler.skip_batches = batches_done(self.resume_from, -(-len(sampler) // bs))
            self.resume_from = None
        self.samplers[split] = sampler
        return torch.utils.data.DataLoader(
            ds, batch_size=bs, sampler=sampler, collate_fn=collate_grounding,
            num_workers=self.cfg.num_workers,
        )

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader(self.test_split, False)


_READ_CACHE: dict = {}


def _cached_read(path: str, fmt: str | None):
    from momentkit.data.annotations import read_annotations

    key = (path, fmt)
    if key not in _READ_CACHE:
        _READ_CACHE[key] = read_annotations(path, format=fmt)
    return _READ_CACHE[key]


def _example_metric_names(protocol: str) -> list[str]:
    """Every flat metric of ``protocol``: the keys of scoring one tiny example with saliency."""
    gt = [{"qid": 0, "query": "q", "vid": "v", "duration": 10.0, "relevant_windows": [[0.0, 4.0]],
           "relevant_clip_ids": [0, 1], "saliency_scores": [[4, 4, 4], [2, 2, 2]]}]
    pred = [{"qid": 0, "vid": "v", "pred_relevant_windows": [[0.0, 4.0, 0.9]],
             "pred_saliency_scores": [0.9, 0.1, 0.0, 0.0, 0.0]}]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(score_predictions(pred, gt, protocol, clip_len=2.0))


class GroundingTask(Task):
    name = "grounding"
    data_config = GroundingDataConfig
    eval_config = GroundingEvalConfig
    headline = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75",
                "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1", "R1@0.5", "R1@0.7", "mIoU", "R_m@0.5",
                "mAP_m@0.5")

    def datamodule(self, cfg, seed: int = 0) -> GroundingDataModule:
        return GroundingDataModule(cfg.data, seed=seed)

    def metric_names(self, cfg) -> list[str]:
        return _example_metric_names(cfg.eval.task)

    def default_monitor(self, cfg) -> str:
        return "MR-full-mAP"

    def postprocess_options(self, cfg) -> dict:
        e = cfg.eval
        options = {"max_windows": e.max_windows, "nms": e.nms, "nms_threshold": e.nms_threshold}
        return {**options, SLOTS: True} if e.decoder_queries else options

    def row_key(self, row: dict):
        return row["qid"]

    def score(self, rows: list[dict], gt: list[dict], cfg, dm, *, full: bool = False) -> dict:
        return score_predictions(rows, gt, cfg.eval.task, full=full, active_threshold=cfg.eval.active_threshold,
                                 clip_len=cfg.data.clip_len, decoder_threshold=cfg.eval.decoder_threshold)

    def fit_calibration(self, rows: list[dict], gt: list[dict], cfg) -> tuple[list[float] | None, list[dict]]:
        if not cfg.eval.calibrate:
            return None, rows
        import zlib

        import numpy as np

        from momentkit.metrics.diagnostics import top1_outcomes
        from momentkit.ops.calibration import calibrate_rows, fit_platt

        top = top1_outcomes(rows, gt)
        if not top:
            return None, rows
        conf = np.array([t[1] for t in top])
        correct = np.array([t[2] for t in top])
        fold = np.array([zlib.crc32(str(t[0]["vid"]).encode()) % 2 for t in top])
        params = list(fit_platt(conf, correct))
        out = {}
        for f in (0, 1):  # out of fold: each half mapped with the fit on the other half
            other = fold != f
            p = fit_platt(conf[other], correct[other]) if other.any() else tuple(params)
            for r in calibrate_rows([t[0] for t, k in zip(top, fold) if k == f], p):
                out[r["qid"]] = r
        return params, [out.get(r["qid"], r) for r in rows]

    def calibrate(self, rows: list[dict], params: list[float]) -> list[dict]:
        from momentkit.ops.calibration import calibrate_rows

        return calibrate_rows(rows, tuple(params))

    def per_unit_scores(self, run_dir: Path, split: str, cfg) -> tuple[str, list, dict] | None:
        from momentkit.metrics.per_query import grounding_per_query

        path = Path(run_dir) / f"predictions_{split}.jsonl"
        if not path.is_file():
            return None
        qids, values = grounding_per_query(path, self.datamodule(cfg).ground_truth(split))
        return "query", qids, values

    def write_predictions(self, out: Path, set_name: str, rows: list[dict], dm) -> Path:
        from momentkit.io import write_jsonl

        rows = sorted(rows, key=lambda p: str(p["qid"]))
        path = out / f"predictions_{set_name}.jsonl"
        write_jsonl(path, ({k: v for k, v in r.items() if k != SLOTS} for r in rows))
        if rows and all(SLOTS in r for r in rows):
            self.write_decoder_outputs(out, set_name, rows, dm.ground_truth(set_name))
        return path

    def write_decoder_outputs(self, out: Path, set_name: str, rows: list[dict], gt: list[dict]) -> tuple[Path, Path]:
        """``decoder_{set}.jsonl`` (per query: ``qid``, ``vid``, ``duration``, ``slot_windows``) and
        ``decoder_{set}.png`` (:func:`momentkit.viz.plot_decoder_slots`) of rows that carry slot windows."""
        from momentkit.io import write_jsonl
        from momentkit.viz import plot_decoder_slots

        duration = {g["qid"]: g.get("duration") for g in gt}
        dec = [{"qid": r["qid"], "vid": r.get("vid"), "duration": duration.get(r["qid"]), SLOTS: r[SLOTS]}
               for r in rows]
        path = out / f"decoder_{set_name}.jsonl"
        write_jsonl(path, dec)
        png = plot_decoder_slots(dec, out / f"decoder_{set_name}.png", gt=gt)
        return path, png


register_task(GroundingTask())
