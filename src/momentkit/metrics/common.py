"""Small helpers every protocol shares: percentages, IoU thresholds, ragged-to-padded arrays.

- :func:`pct` turns a fraction into the official printed number: ``x 100``, two decimals.
- :func:`parse_thresholds` reads IoU thresholds given as a name (``thumos``, ``epic``, ...), a range
  ``start:step:stop`` or a list; every threshold is rounded to 2 decimals, as the official
  QVHighlights evaluator does, so that ``0.55`` is ``0.55`` and not ``0.5499999``.
- :func:`pad_ragged` stacks arrays of different lengths into one padded array, so that per-query
  and per-video work runs as a few vectorised numpy operations instead of a Python loop.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np

from momentkit.errors import InputError

#: Named IoU threshold sets (tIoU for detection).
THRESHOLD_SETS: dict[str, tuple[float, ...]] = {
    "thumos": (0.3, 0.4, 0.5, 0.6, 0.7),
    "epic": (0.1, 0.2, 0.3, 0.4, 0.5),
    "sada": (0.1, 0.2, 0.3, 0.4, 0.5),
    "activitynet": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
    "anet": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
    "qvhighlights": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
}


class JsonObject(dict):
    """A parsed JSON object that remembers the file it came from (for error messages)."""

    def __init__(self, data: dict, source_path: str | None = None):
        super().__init__(data)
        self.source_path = source_path


def json_source(src) -> tuple[object, str | None]:
    """``(data, path)`` of a JSON path or of an already loaded structure."""
    from momentkit.io import read_json

    if isinstance(src, (str, os.PathLike)):
        return read_json(src), str(src)
    return src, getattr(src, "source_path", None)


class MetricsWarning(UserWarning):
    """A recoverable oddity in the inputs (the official rule was applied; numbers are still valid)."""


def warn(message: str) -> None:
    warnings.warn(message, MetricsWarning, stacklevel=3)


def pct(x: float) -> float:
    """``100 * x`` rounded to 2 decimals exactly as the official evaluators format it."""
    return float(f"{100 * float(x):.2f}")


def round_thresholds(values) -> tuple[float, ...]:
    """Round thresholds to 2 decimals (``float(f"{t:.2f}")``), the official convention."""
    return tuple(float(f"{float(t):.2f}") for t in values)


def threshold_key(t: float) -> str:
    """The JSON key of a threshold: ``"0.5"``, ``"0.55"`` (Python's shortest float repr)."""
    return str(float(t))


def parse_thresholds(spec: str | float | Sequence[float] | None, default: str | Sequence[float]) -> tuple[float, ...]:
    """IoU thresholds from a name, ``"start:step:stop"`` (inclusive), ``"0.3,0.5"`` or numbers.

    Raises :class:`InputError` (field ``tiou``) for anything else or for values outside (0, 1].
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        spec = default
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in THRESHOLD_SETS:
            values: Sequence[float] = THRESHOLD_SETS[text]
        elif ":" in text:
            parts = text.split(":")
            try:
                start, step, stop = (float(p) for p in parts)
            except ValueError:
                raise InputError(
                    f"cannot read thresholds {spec!r}: expected start:step:stop, e.g. 0.3:0.1:0.7", field="tiou"
                ) from None
            if not (step > 0 and stop >= start):
                raise InputError(f"cannot read thresholds {spec!r}: step must be > 0 and stop >= start", field="tiou")
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [start + i * step for i in range(n)]
        else:
            try:
                values = [float(p) for p in text.replace(" ", ",").split(",") if p]
            except ValueError:
                names = ", ".join(sorted(THRESHOLD_SETS))
                raise InputError(
                    f"cannot read thresholds {spec!r}: give a name ({names}), start:step:stop or a list like 0.3,0.5",
                    field="tiou",
                ) from None
    elif isinstance(spec, (int, float)):
        values = [float(spec)]
    else:
        values = list(spec)
    out = round_thresholds(values)
    if not out:
        raise InputError("no thresholds given", field="tiou")
    for t in out:
        if not (0.0 < t <= 1.0):
            raise InputError(f"threshold {t} is outside (0, 1]", field="tiou")
    return out


def pad_ragged(arrays: Sequence[np.ndarray], fill: float, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Stack arrays of shape ``(n_i, *rest)`` into ``(N, max n_i, *rest)`` padded with ``fill``.

    Returns the padded array and the lengths ``n_i``.
    """
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    width = int(lengths.max()) if len(arrays) else 0
    nonempty = [np.asarray(a, dtype=dtype) for a in arrays if len(a)]
    rest = nonempty[0].shape[1:] if nonempty else ()
    out = np.full((len(arrays), width, *rest), fill, dtype=dtype)
    if nonempty:
        flat = np.concatenate(nonempty)
        rows = np.repeat(np.arange(len(arrays)), lengths)
        starts = np.cumsum(lengths) - lengths
        cols = np.arange(len(flat)) - np.repeat(starts, lengths)
        out[rows, cols] = flat
    return out, lengths


def stable_desc_order(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Indices sorting ``scores`` by descending value; ties keep their original order."""
    return np.argsort(-scores, axis=axis, kind="stable")
