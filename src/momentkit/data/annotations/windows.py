"""One rule for every ground-truth window any reader produces.

A window ``[start, end]`` (seconds) of a video lasting ``duration`` seconds is:

- **valid** when ``0 <= start < end <= duration``;
- **clipped** to ``[start, duration]`` when it ends past the video by at most ``clip_tolerance``
  seconds (default 1 s). Real releases do this by rounding: ActivityNet Captions ends up to 0.01 s
  past the duration, EPIC-Kitchens-100 validation once by 0.013 s;
- **invalid** otherwise: a bound that is not a finite number, ``start < 0``, ``start >= end``,
  ``start >= duration`` (the window lies outside the video) or an end more than ``clip_tolerance``
  past the duration.

What happens to invalid windows is the reader option ``on_invalid``:

- ``"error"`` raises :class:`~momentkit.errors.InputError` naming the file and the line or field of
  the first one;
- ``"skip"`` drops them and emits one :class:`AnnotationWarning` per file with their count and the
  first one's location.

The checks run vectorised over all the windows of a file (:func:`check_windows`), readers only
collect the numbers and say where each came from.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from momentkit.errors import InputError

ON_INVALID = ("error", "skip")
DEFAULT_CLIP_TOLERANCE = 1.0

OK, NOT_FINITE, NEGATIVE_START, EMPTY, OUTSIDE, OVERSHOOT = range(6)


class AnnotationWarning(UserWarning):
    """Something in an annotation file was dropped (with ``on_invalid="skip"``)."""


@dataclass(frozen=True)
class WindowCheck:
    """Result of :func:`check_windows`: clipped bounds and one reason code per window (0 = valid)."""

    starts: np.ndarray
    ends: np.ndarray
    durations: np.ndarray
    reasons: np.ndarray
    clip_tolerance: float

    @property
    def valid(self) -> np.ndarray:
        return self.reasons == OK

    @property
    def num_invalid(self) -> int:
        return int(np.count_nonzero(self.reasons))

    def describe(self, i: int) -> str:
        """Why window ``i`` is invalid, in words."""
        s, e, d = float(self.starts[i]), float(self.ends[i]), float(self.durations[i])
        shown = f"window [{_num(s)}, {_num(e)}]"
        reason = int(self.reasons[i])
        if reason == NOT_FINITE:
            return f"{shown} has a bound that is not a finite number"
        if reason == NEGATIVE_START:
            return f"{shown} starts before 0"
        if reason == EMPTY:
            return f"{shown} does not end after it starts"
        if reason == OUTSIDE:
            return f"{shown} starts at or after the end of the video (duration {_num(d)})"
        if reason == OVERSHOOT:
            return (f"{shown} ends {_num(e - d)} s after the end of the video (duration {_num(d)}); "
                    f"only ends up to clip_tolerance={_num(self.clip_tolerance)} s past it are clipped")
        return f"{shown} is valid"


def validate_options(on_invalid: str, clip_tolerance: float) -> None:
    """Refuse unknown ``on_invalid`` values and negative or non-finite tolerances."""
    if on_invalid not in ON_INVALID:
        raise InputError(f"must be one of {', '.join(ON_INVALID)}, got {on_invalid!r}", field="on_invalid")
    if (isinstance(clip_tolerance, bool) or not isinstance(clip_tolerance, int | float)
            or not math.isfinite(clip_tolerance) or clip_tolerance < 0):
        raise InputError(f"must be a finite number >= 0, got {clip_tolerance!r}", field="clip_tolerance")


def check_windows(starts, ends, durations, clip_tolerance: float = DEFAULT_CLIP_TOLERANCE) -> WindowCheck:
    """Classify every window and clip the small overshoots (see the module docstring)."""
    s = np.asarray(starts, dtype=np.float64).reshape(-1)
    e = np.asarray(ends, dtype=np.float64).reshape(-1)
    d = np.broadcast_to(np.asarray(durations, dtype=np.float64), s.shape)
    with np.errstate(invalid="ignore"):
        reasons = np.select(
            [~(np.isfinite(s) & np.isfinite(e)), s < 0, s >= e, s >= d, e > d + clip_tolerance],
            [NOT_FINITE, NEGATIVE_START, EMPTY, OUTSIDE, OVERSHOOT],
            OK,
        ).astype(np.int8)
        clipped = np.where((reasons == OK) & (e > d), d, e)
    return WindowCheck(s, clipped, np.array(d), reasons, float(clip_tolerance))


def enforce(
    check: WindowCheck,
    *,
    on_invalid: str,
    path: str | os.PathLike,
    locate: Callable[[int], dict],
    what: str = "window",
) -> np.ndarray:
    """Apply ``on_invalid`` to a :class:`WindowCheck`; return the boolean mask of windows to keep.

    ``locate(i)`` gives the ``line=``/``field=`` arguments of :class:`InputError` for window ``i``.
    """
    bad = np.flatnonzero(check.reasons)
    if bad.size == 0:
        return np.ones(check.reasons.shape, dtype=bool)
    first = int(bad[0])
    message, where = check.describe(first), locate(first)
    if on_invalid == "error":
        hint = ("; pass on_invalid='skip' to drop invalid windows"
                if check.reasons[first] != OVERSHOOT else
                "; pass a larger clip_tolerance to clip it, or on_invalid='skip' to drop it")
        raise InputError(message + hint, path=path, **where)
    error = InputError(message, path=path, **where)
    warnings.warn(
        AnnotationWarning(f"dropped {bad.size} invalid {what}(s); the first: {error}"),
        stacklevel=3,
    )
    return check.valid


def _num(x: float) -> str:
    return f"{x:.6g}"
