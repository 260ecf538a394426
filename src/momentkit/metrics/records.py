"""Reading and checking query records (one JSON object per query) for the grounding protocols.

Metrics take plain Python structures so that any tool's files work: a list of dicts, or the path of
a JSON Lines file (or of a JSON file holding a list). Either way the records are wrapped in
:class:`Records`, which remembers where each record came from, so that every problem is reported as
one :class:`~momentkit.errors.InputError` naming the file and line (or the record number and field).

Field conventions are the QVHighlights ones: ``qid``, ``pred_relevant_windows [[st, ed, score], ...]``,
``pred_saliency_scores [float, ...]`` for predictions; ``qid``, ``duration``,
``relevant_windows [[st, ed], ...]``, ``relevant_clip_ids``, ``saliency_scores`` for ground truth.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from momentkit.errors import InputError
from momentkit.io import iter_jsonl, read_json
from momentkit.metrics.common import JsonObject, pad_ragged


class Records(list):
    """A list of record dicts plus their origin (``path`` and per-record ``lines``) for messages."""

    def __init__(
        self, items: Iterable[dict], *, what: str, path: str | None = None, lines: Sequence[int] | None = None
    ):
        super().__init__(items)
        self.what = what
        self.path = path
        self.lines = list(lines) if lines is not None else None

    def error(self, i: int, message: str, field: str | None = None) -> InputError:
        """An :class:`InputError` located at record ``i``."""
        if self.lines is not None:
            return InputError(message, path=self.path, line=self.lines[i], field=field)
        return InputError(f"{self.what} record #{i + 1}: {message}", path=self.path, field=field)

    def checked(self) -> Records:
        """Self, after checking that there is at least one record and every record is a dict."""
        if not self:
            raise self.file_error("no records")
        for i, rec in enumerate(self):
            if not isinstance(rec, dict):
                raise self.error(i, f"expected a JSON object, got {type(rec).__name__}")
        return self

    def file_error(self, message: str, field: str | None = None) -> InputError:
        """An :class:`InputError` about the whole collection."""
        if self.path is None:
            return InputError(f"{self.what}: {message}", field=field)
        return InputError(message, path=self.path, field=field)


def load_records(src, what: str) -> Records:
    """Records from a path (JSON Lines, or JSON holding a list) or from an iterable of dicts."""
    if isinstance(src, Records):
        return src
    if isinstance(src, (str, os.PathLike)):
        loaded = load_file(src, what)
        if not isinstance(loaded, Records):
            raise InputError(f"expected {what} records (JSON Lines or a JSON list), got a JSON object", path=src)
        return loaded
    if isinstance(src, dict):
        raise InputError(f"{what}: expected a list of records (one dict per query), got a dict")
    return Records(src, what=what).checked()


def load_file(path: str | os.PathLike, what: str):
    """A JSON Lines file or a JSON list as :class:`Records`; a JSON object as a :class:`JsonObject`.

    A ``.jsonl`` file is read as JSON Lines; any other file as JSON, falling back to JSON Lines when
    it holds several documents.
    """
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return read_jsonl_records(path, what)
    try:
        data = read_json(path)
    except InputError as e:
        if "Extra data" in e.message:  # several JSON documents: JSON Lines under another name
            return read_jsonl_records(path, what)
        raise
    if isinstance(data, list):
        return Records(data, what=what, path=str(path)).checked()
    if isinstance(data, dict) and "qid" in data:  # a single query record
        return Records([data], what=what, path=str(path)).checked()
    if isinstance(data, dict):
        return JsonObject(data, source_path=str(path))
    raise InputError(f"expected a JSON object or list, got {type(data).__name__}", path=path)


def read_jsonl_records(path: str | os.PathLike, what: str) -> Records:
    """Every object of a JSON Lines file, with its line number."""
    lines, items = [], []
    for lineno, obj in iter_jsonl(path):
        lines.append(lineno)
        items.append(obj)
    return Records(items, what=what, path=str(path), lines=lines)


def qid_index(records: Records) -> dict:
    """``qid -> record index``; every record needs a unique int or str ``qid``."""
    out: dict = {}
    for i, rec in enumerate(records):
        if "qid" not in rec:
            raise records.error(i, "missing 'qid'", field="qid")
        qid = rec["qid"]
        if isinstance(qid, bool) or not isinstance(qid, (int, str)):
            raise records.error(i, f"qid must be an integer or a string, got {qid!r}", field="qid")
        if qid in out:
            raise records.error(i, f"duplicate qid {qid!r} (first seen in record #{out[qid] + 1})", field="qid")
        out[qid] = i
    return out


def align(preds: Records, gt: Records) -> np.ndarray:
    """Ground-truth index of every prediction record (prediction order); the qid sets must match."""
    p_index = qid_index(preds)
    g_index = qid_index(gt)
    if p_index.keys() != g_index.keys():
        missing = [q for q in g_index if q not in p_index]
        extra = [q for q in p_index if q not in g_index]
        parts = []
        if missing:
            parts.append(f"{len(missing)} ground-truth qid(s) have no prediction ({_show(missing)})")
        if extra:
            parts.append(f"{len(extra)} predicted qid(s) are not in the ground truth ({_show(extra)})")
        hint = ""
        if {str(q) for q in p_index} == {str(q) for q in g_index}:
            hint = "; the qids differ only in type (number vs text)"
        raise preds.file_error(
            f"predictions ({len(p_index)} queries) and ground truth ({len(g_index)} queries) cover different "
            f"queries: {'; '.join(parts)}{hint}",
            field="qid",
        )
    return np.fromiter((g_index[q] for q in p_index), dtype=np.int64, count=len(p_index))


def _show(items: list, limit: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:limit])
    return f"e.g. {shown}, ..." if len(items) > limit else shown


def windows(records: Records, i: int, key: str, with_score: bool, *, required: bool = True) -> np.ndarray:
    """Windows of record ``i`` as ``(n, 3)`` (start, end, score) or ``(n, 2)``; checked.

    Each window must be ``[start, end]`` (plus ``score`` when ``with_score``) of finite numbers with
    ``start <= end``; a score given but not needed must still be finite. Further columns are ignored.
    """
    rec = records[i]
    if key not in rec:
        if not required:
            return np.zeros((0, 3 if with_score else 2))
        raise records.error(i, f"missing '{key}'", field=key)
    val = rec[key]
    ncols = 3 if with_score else 2
    shape = "[start, end, score]" if with_score else "[start, end]"
    if not isinstance(val, list):
        raise records.error(i, f"expected a list of {shape}, got {type(val).__name__}", field=key)
    if not val:
        return np.zeros((0, ncols))
    try:
        arr = np.asarray(val, dtype=np.float64)
    except (TypeError, ValueError):
        raise records.error(i, f"expected a list of {shape} numbers", field=key) from None
    if arr.ndim != 2 or arr.shape[1] < ncols:
        raise records.error(i, f"expected a list of {shape} numbers", field=key)
    bad = ~np.isfinite(arr[:, :3])  # a score, when given, must be a number even if unused
    if bad.any():
        j, c = np.argwhere(bad)[0]
        what = ("start", "end", "score")[c]
        raise records.error(i, f"window {j} has a non-finite {what} ({val[j][c]!r})", field=key)
    inverted = arr[:, 0] > arr[:, 1]
    if inverted.any():
        j = int(np.argmax(inverted))
        raise records.error(i, f"window {j} has start > end ({arr[j, 0]:g} > {arr[j, 1]:g})", field=key)
    return arr[:, :ncols]


def number(records: Records, i: int, key: str, *, positive: bool = False) -> float:
    """A finite number field of record ``i``."""
    rec = records[i]
    if key not in rec:
        raise records.error(i, f"missing '{key}'", field=key)
    val = rec[key]
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not np.isfinite(val):
        raise records.error(i, f"expected a finite number, got {val!r}", field=key)
    if positive and val <= 0:
        raise records.error(i, f"must be > 0, got {val!r}", field=key)
    return float(val)


def scores_vector(records: Records, i: int, key: str) -> np.ndarray:
    """A non-empty list of finite numbers (e.g. ``pred_saliency_scores``) of record ``i``."""
    rec = records[i]
    if key not in rec:
        raise records.error(i, f"missing '{key}'", field=key)
    val = rec[key]
    if not isinstance(val, list):
        raise records.error(i, f"expected a list of numbers, got {type(val).__name__}", field=key)
    if not val:
        raise records.error(i, "is empty", field=key)
    try:
        arr = np.asarray(val, dtype=np.float64)
    except (TypeError, ValueError):
        raise records.error(i, "expected a flat list of numbers", field=key) from None
    if arr.ndim != 1:
        raise records.error(i, "expected a flat list of numbers", field=key)
    bad = ~np.isfinite(arr)
    if bad.any():
        j = int(np.argmax(bad))
        raise records.error(i, f"entry {j} is not a finite number ({val[j]!r})", field=key)
    return arr


# ----------------------------------------------------------------------------- many records at once
# Fast paths: one numpy conversion for all records. When anything looks wrong they re-check record by
# record with the functions above, which raise the precise, located error.
def padded_windows(
    records: Records, indices: Sequence[int], key: str, with_score: bool, *, cap: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of the given records, padded: ``((N, K, 3 or 2), counts)``; ``cap`` keeps the first ones."""
    ncols = 3 if with_score else 2
    try:
        lists = [records[i][key] for i in indices]
        if not all(type(v) is list for v in lists):
            raise ValueError
        if cap is not None:
            lists = [v[:cap] for v in lists]
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = np.asarray(list(chain.from_iterable(lists)), dtype=np.float64)
        if flat.size == 0:
            return np.zeros((len(lists), 0, ncols)), counts
        if flat.ndim != 2 or flat.shape[1] < ncols:
            raise ValueError
        if not np.all(np.isfinite(flat[:, :3])) or np.any(flat[:, 0] > flat[:, 1]):
            raise ValueError
        flat = flat[:, :ncols]
    except (KeyError, TypeError, ValueError):
        per_record = [windows(records, i, key, with_score) for i in indices]
        per_record = [w if cap is None else w[:cap] for w in per_record]
        counts = np.fromiter(map(len, per_record), dtype=np.int64, count=len(per_record))
        flat = np.concatenate(per_record) if len(per_record) else np.zeros((0, ncols))
    return _scatter(flat, counts, 0.0), counts


def padded_vectors(records: Records, indices: Sequence[int], key: str, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Non-empty lists of finite numbers of the given records, padded with ``fill``: ``((N, L), lengths)``."""
    try:
        lists = [records[i][key] for i in indices]
        if not all(type(v) is list and v for v in lists):
            raise ValueError
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = np.asarray(list(chain.from_iterable(lists)), dtype=np.float64)
        if flat.ndim != 1 or not np.all(np.isfinite(flat)):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        per_record = [scores_vector(records, i, key) for i in indices]
        return pad_ragged(per_record, fill)
    return _scatter(flat, lengths, fill), lengths


def _scatter(flat: np.ndarray, counts: np.ndarray, fill: float) -> np.ndarray:
    width = int(counts.max()) if counts.size else 0
    out = np.full((len(counts), width, *flat.shape[1:]), fill, dtype=np.float64)
    if flat.shape[0]:
        rows = np.repeat(np.arange(len(counts)), counts)
        cols = np.arange(flat.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
        out[rows, cols] = flat
    return out
