"""From model outputs to QVHighlights-style predictions, and the prediction writer.

Output rows: ``{"qid", "query" (if the meta has it), "vid", "pred_relevant_windows": [[st, ed,
score], ...], "pred_saliency_scores": [...]}`` with windows in seconds, clamped to [0, duration],
sorted by descending score (stable), optionally NMS-ed, at most ``max_windows``; one saliency score
per valid clip. With ``slot_windows=True`` a row also carries ``"slot_windows": [[st, ed, score], ...]``:
the window of every decoder query, in slot order (row ``q`` = query ``q``), before sorting, NMS and
``max_windows``, with the model's own score (what :mod:`momentkit.metrics.decoder_queries` reads).

Normalised spans are turned into seconds by multiplying by the span the clips cover,
``num_clips * clip_len`` (how the grounding dataset normalises its targets), or by ``duration`` when
the meta lacks those; the two agree on QVHighlights except for videos cut at ``max_v_len`` clips.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch

from momentkit.errors import InputError
from momentkit.io import write_jsonl
from momentkit.models.heads import foreground_prob
from momentkit.ops.nms import nms as apply_nms
from momentkit.spans import cxw_to_xx


def spans_to_windows(spans_cxw, scores, duration: float, round_multiple: float | None = None,
                     length: float | None = None) -> np.ndarray:
    """Normalised (centre, width) spans (Q, 2) + scores (Q,) -> (Q, 3) ``[st, ed, score]`` in seconds.

    Spans are multiplied by ``length`` (default ``duration``) and clamped to [0, duration]; with
    ``round_multiple`` (e.g. the clip length) the boundaries are rounded to the nearest multiple
    before clamping; sorted by descending score (ties keep order).
    """
    spans = np.asarray(spans_cxw, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(spans) != len(scores):
        raise InputError(f"{len(spans)} spans but {len(scores)} scores", field="scores")
    if not duration > 0:
        raise InputError(f"must be positive, got {duration}", field="duration")
    xx = cxw_to_xx(torch.from_numpy(spans)).numpy() * (duration if length is None else length)
    if round_multiple:
        xx = np.round(xx / round_multiple) * round_multiple
    xx = np.clip(xx, 0.0, duration)
    order = np.argsort(-scores, kind="stable")
    return np.concatenate([xx, scores[:, None]], axis=1)[order]


def postprocess(
    outputs: dict,
    batch: dict,
    max_windows: int = 10,
    nms: str | None = None,
    nms_threshold: float = 0.7,
    soft_nms_sigma: float = 0.5,
    max_before_nms: int | None = None,
    round_multiple: float | None = None,
    decimals: int | None = 4,
    slot_windows: bool = False,
) -> list[dict]:
    """Turn a batch of outputs (``pred_logits``, ``pred_spans``, ``saliency_scores``) into rows.

    ``nms``: None, ``"hard"``, ``"gaussian"`` or ``"linear"`` (soft-NMS); applied to the top
    ``max_before_nms`` windows (all if None), then ``max_windows`` are kept. ``decimals`` rounds the
    window values as the reference implementation does (None: no rounding). ``slot_windows``: add every
    decoder query's window in slot order (see the module docstring).
    """
    scores = foreground_prob(outputs["pred_logits"].detach().float()).cpu().numpy()
    spans = outputs["pred_spans"].detach().float().cpu().numpy()
    saliency = outputs["saliency_scores"].detach().float().cpu().numpy()
    n_valid = batch["video_mask"].detach().bool().sum(1).cpu().numpy()
    rows = []
    for b, meta in enumerate(batch["meta"]):
        for key in ("qid", "vid", "duration"):
            if key not in meta:
                raise InputError(f"sample {b} has no '{key}'", field="meta")
        length = float(meta["num_clips"]) * float(meta["clip_len"]) if {"num_clips", "clip_len"} <= set(meta) else None
        windows = spans_to_windows(spans[b], scores[b], float(meta["duration"]), round_multiple, length)
        if slot_windows:
            slots = np.empty_like(windows)
            slots[np.argsort(-scores[b], kind="stable")] = windows  # back to slot order
        if nms is not None:
            # soft-NMS's score threshold is relative to the query's best window: a query always keeps
            # its top windows, however small a model's confidences are
            windows = apply_nms(windows[:max_before_nms], nms, nms_threshold, soft_nms_sigma, max_keep=max_windows,
                                relative=True)
        windows = windows[:max_windows]
        if decimals is not None:
            windows = np.round(windows, decimals)
        row = {"qid": meta["qid"]}
        if "query" in meta:
            row["query"] = meta["query"]
        row["vid"] = meta["vid"]
        row["pred_relevant_windows"] = windows.tolist()
        row["pred_saliency_scores"] = saliency[b, : int(n_valid[b])].tolist()
        if slot_windows:
            row["slot_windows"] = (slots if decimals is None else np.round(slots, decimals)).tolist()
        rows.append(row)
    return rows


def write_predictions(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write prediction rows as QVHighlights JSON Lines, atomically."""
    write_jsonl(path, (_jsonable(r) for r in rows))


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, (np.ndarray, torch.Tensor)):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out
