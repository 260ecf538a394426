"""Moment-retrieval JSON Lines (QVHighlights, and the TACoS / Charades-STA releases of Lighthouse).

One JSON object per line::

    {"qid": 9769, "query": "...", "duration": 150, "vid": "j7rJstUseKg_360.0_510.0",
     "relevant_clip_ids": [36, 37], "saliency_scores": [[4, 3, 2], [4, 1, 3]],
     "relevant_windows": [[72, 82], [84, 94]]}

Required keys: ``qid`` (int or string, unique in the file), ``query``, ``vid``, ``duration`` and
``relevant_windows`` (a non-empty list of ``[start, end]`` in seconds; with ``require_windows=False``
it may be missing, for test files released without ground truth). ``relevant_clip_ids`` and
``saliency_scores`` are optional and go together (same length, one score per annotator and clip),
except that ``relevant_clip_ids`` alone (QV-M², which marks relevant clips without scores) is kept
as it is in ``extra`` and gives no saliency. Any other key is kept in ``GroundingSample.extra`` and written back by the writer.

Windows follow :mod:`momentkit.data.annotations.windows` (default ``on_invalid="error"``: the
official QVHighlights and TACoS files have no invalid window). With ``on_invalid="skip"`` a query
whose windows are all invalid is dropped.
"""

from __future__ import annotations

import math
import os
from itertools import chain, repeat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from momentkit.data.annotations.fields import (
    as_duration,
    as_int,
    as_list,
    as_number,
    as_pairs,
    as_text,
    json_number,
    require,
    utf8_text,
)
from momentkit.data.annotations.registry import AnnotationFormat, expect_samples, first_line, register_format
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, check_windows, enforce, validate_options
from momentkit.data.records import GroundingSample
from momentkit.errors import InputError
from momentkit.io import iter_jsonl, write_jsonl

NAME = "grounding-jsonl"
KNOWN_KEYS = ("qid", "query", "duration", "vid", "relevant_clip_ids", "saliency_scores", "relevant_windows")


def read_grounding_jsonl(
    path: str | os.PathLike,
    *,
    on_invalid: str = "error",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
    require_windows: bool = True,
) -> list[GroundingSample]:
    """Read a moment-retrieval JSON Lines file into :class:`GroundingSample` records (file order)."""
    validate_options(on_invalid, clip_tolerance)
    if not isinstance(require_windows, bool):
        raise InputError(f"must be true or false, got {require_windows!r}", field="require_windows")
    rows: list[dict] = []
    lines: list[int] = []
    first_line_of: dict = {}
    # Flat window table: owner row, index within the row, bounds, the owner's duration.
    owner: list[int] = []
    index: list[int] = []
    bounds: list[tuple[float, float]] = []
    durations: list[float] = []
    with utf8_text(path):
        for lineno, obj in iter_jsonl(path):
            where = {"path": path, "line": lineno}
            qid = require(obj, "qid", **where)
            if isinstance(qid, bool) or not isinstance(qid, int | str):
                raise InputError(f"qid must be an integer or a string, got {type(qid).__name__}",
                                 field="qid", **where)
            if qid in first_line_of:
                raise InputError(f"duplicate qid {qid!r} (first seen on line {first_line_of[qid]})",
                                 field="qid", **where)
            first_line_of[qid] = lineno
            query = as_text(require(obj, "query", **where), field="query", **where)
            vid = as_text(require(obj, "vid", **where), field="vid", **where)
            duration = as_duration(require(obj, "duration", **where), **where)
            if "relevant_windows" in obj or require_windows:
                windows = as_pairs(require(obj, "relevant_windows", **where), field="relevant_windows", **where)
                if require_windows and not windows:
                    raise InputError("no ground-truth window", field="relevant_windows", **where)
            else:
                windows = []
            clip_ids, scores = _saliency(obj, where)
            row = len(rows)
            owner.extend([row] * len(windows))
            index.extend(range(len(windows)))
            bounds.extend(windows)
            durations.extend([duration] * len(windows))
            rows.append({
                "qid": qid, "query": query, "vid": vid, "duration": duration, "n": len(windows),
                "clip_ids": clip_ids, "scores": scores,
                "extra": {k: v for k, v in obj.items() if k not in KNOWN_KEYS or (
                    k == "relevant_clip_ids" and "saliency_scores" not in obj)},
            })
            lines.append(lineno)

    b = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    check = check_windows(b[:, 0], b[:, 1], durations, clip_tolerance)
    keep = enforce(check, on_invalid=on_invalid, path=path,
                   locate=lambda i: {"line": lines[owner[i]], "field": f"relevant_windows[{index[i]}]"})
    kept = np.stack([check.starts, check.ends], axis=1).tolist()
    keep = keep.tolist()
    all_kept = all(keep)

    samples = []
    cursor = 0
    for row in rows:
        n = row["n"]
        if all_kept:
            windows = tuple(map(tuple, kept[cursor:cursor + n]))
        else:
            windows = tuple(tuple(kept[j]) for j in range(cursor, cursor + n) if keep[j])
        cursor += n
        if n and not windows:
            continue  # every window of this query was invalid and skipped
        samples.append(GroundingSample(
            qid=row["qid"], query=row["query"], vid=row["vid"], duration=row["duration"], windows=windows,
            relevant_clip_ids=row["clip_ids"], saliency_scores=row["scores"], extra=row["extra"],
        ))
    return samples


def _saliency(obj: dict, where: dict) -> tuple[tuple[int, ...], tuple[tuple[float, ...], ...]]:
    has_ids, has_scores = "relevant_clip_ids" in obj, "saliency_scores" in obj
    if not has_scores:  # no saliency (clip ids alone are kept in ``extra``)
        return (), ()
    if not has_ids:
        raise InputError("missing required key 'relevant_clip_ids' (saliency scores need their clip ids)",
                         field="relevant_clip_ids", **where)
    ids, rows = obj["relevant_clip_ids"], obj["saliency_scores"]
    fast = _fast_saliency(ids, rows)
    if fast is not None:
        return fast
    # Slow path: find and name the first bad value.
    ids = as_list(ids, field="relevant_clip_ids", **where)
    rows = as_list(rows, field="saliency_scores", **where)
    if len(ids) != len(rows):
        raise InputError(f"{len(rows)} score rows for {len(ids)} relevant clips", field="saliency_scores", **where)
    clip_ids = tuple(as_int(c, field=f"relevant_clip_ids[{i}]", minimum=0, **where) for i, c in enumerate(ids))
    scores = []
    for i, r in enumerate(rows):
        field = f"saliency_scores[{i}]"
        r = as_list(r, field=field, **where)
        if not r or (scores and len(r) != len(scores[0])):
            raise InputError(f"expected {len(scores[0]) if scores else 'at least 1'} annotator score(s), "
                             f"got {len(r)}", field=field, **where)
        scores.append(tuple(as_number(x, field=field, **where) for x in r))
    return clip_ids, tuple(scores)


def _fast_saliency(ids, rows):
    """The parsed saliency when it is well formed (the common case, checked in bulk), else None."""
    if type(ids) is not list or type(rows) is not list or len(ids) != len(rows):
        return None
    if not ids:
        return (), ()
    if set(map(type, ids)) != {int} or min(ids) < 0 or set(map(type, rows)) != {list}:
        return None
    widths = set(map(len, rows))
    if len(widths) != 1 or 0 in widths:
        return None
    flat = list(chain.from_iterable(rows))
    types = set(map(type, flat))
    if not types <= {int, float} or (float in types and not all(map(math.isfinite, flat))):
        return None
    return tuple(ids), tuple(map(tuple, map(map, repeat(float), rows)))


def grounding_row(sample: GroundingSample) -> dict:
    """The JSON object of one sample, keys in the order of the QVHighlights release."""
    row = {"qid": sample.qid, "query": sample.query, "duration": json_number(sample.duration), "vid": sample.vid}
    if sample.relevant_clip_ids or sample.saliency_scores:
        row["relevant_clip_ids"] = list(sample.relevant_clip_ids)
        row["saliency_scores"] = [[json_number(x) for x in r] for r in sample.saliency_scores]
    row["relevant_windows"] = [[json_number(s), json_number(e)] for s, e in sample.windows]
    row.update({k: v for k, v in sample.extra.items() if k not in row})
    return row


def write_grounding_jsonl(path: str | os.PathLike, samples: Sequence[GroundingSample]) -> None:
    """Write samples as moment-retrieval JSON Lines (atomically); qids must be unique."""
    samples = expect_samples(samples, GroundingSample, NAME)
    seen: set = set()
    for i, s in enumerate(samples):
        if s.qid in seen:
            raise InputError(f"duplicate qid {s.qid!r} (sample {i})", field="qid")
        seen.add(s.qid)
    write_jsonl(path, (grounding_row(s) for s in samples))


def _sniff(path: Path, head: str) -> bool:
    line = first_line(head)
    return line.startswith("{") and '"query"' in line and '"vid"' in line


register_format(AnnotationFormat(
    name=NAME, kind="grounding", reader=read_grounding_jsonl, writer=write_grounding_jsonl,
    suffixes=(".jsonl",), sniff=_sniff,
    description="moment retrieval JSON Lines (QVHighlights, Lighthouse TACoS / Charades-STA)",
))
