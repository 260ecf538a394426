"""Typed access to the fields of parsed annotation rows, with errors that say where.

Every helper takes the location of the value (``path`` and, when known, ``line``) and the name of
the field, and raises :class:`~momentkit.errors.InputError` naming all three when the value is
missing or of the wrong type. Readers use them so that every structural problem is reported the
same way.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from momentkit.errors import InputError

Where = str | os.PathLike


@contextlib.contextmanager
def utf8_text(path: Where) -> Iterator[None]:
    """Turn a decoding failure while reading ``path`` into an :class:`InputError`."""
    try:
        yield
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text (is this an annotation file?)", path=path) from None


def as_path(value: Any, *, field: str) -> Path:
    """An option that must be a file path."""
    if not isinstance(value, str | os.PathLike):
        raise InputError(f"expected a file path, got {_show(value)}", field=field)
    return Path(value)


def require(obj: dict, key: str, *, path: Where, line: int | None = None, prefix: str = "") -> Any:
    """``obj[key]``, or an error naming the missing key."""
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line,
                         field=prefix.rstrip(".") or None)
    try:
        return obj[key]
    except KeyError:
        raise InputError(f"missing required key '{key}'", path=path, line=line, field=prefix + key) from None


def as_number(value: Any, *, path: Where, line: int | None = None, field: str) -> float:
    """A finite JSON number (``true``/``false`` are refused) as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"expected a number, got {_show(value)}", path=path, line=line, field=field)
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"expected a finite number, got {value}", path=path, line=line, field=field)
    return value


def parse_number(text: str, *, path: Where, line: int | None = None, field: str) -> float:
    """A finite number written as text (CSV cells, whitespace-separated columns)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"expected a number, got {text!r}", path=path, line=line, field=field) from None
    if not math.isfinite(value):
        raise InputError(f"expected a finite number, got {text!r}", path=path, line=line, field=field)
    return value


def parse_int(text: str, *, path: Where, line: int | None = None, field: str) -> int:
    """A base-10 integer written as text."""
    try:
        return int(text)
    except (TypeError, ValueError):
        raise InputError(f"expected an integer, got {text!r}", path=path, line=line, field=field) from None


def as_int(value: Any, *, path: Where, line: int | None = None, field: str, minimum: int | None = None) -> int:
    """A JSON integer (``3.0`` is accepted, ``3.5`` and booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InputError(f"expected an integer, got {_show(value)}", path=path, line=line, field=field)
    value = int(value)
    if minimum is not None and value < minimum:
        raise InputError(f"expected an integer >= {minimum}, got {value}", path=path, line=line, field=field)
    return value


def as_duration(value: Any, *, path: Where, line: int | None = None, field: str = "duration") -> float:
    """A video duration in seconds: a finite number > 0."""
    value = as_number(value, path=path, line=line, field=field)
    if value <= 0:
        raise InputError(f"duration must be > 0, got {value:g}", path=path, line=line, field=field)
    return value


def as_text(value: Any, *, path: Where, line: int | None = None, field: str, allow_empty: bool = False) -> str:
    """A string; blank strings are refused unless ``allow_empty``."""
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {_show(value)}", path=path, line=line, field=field)
    if not allow_empty and not value.strip():
        raise InputError("must not be empty", path=path, line=line, field=field)
    return value


def as_list(value: Any, *, path: Where, line: int | None = None, field: str) -> list:
    if not isinstance(value, list):
        raise InputError(f"expected a list, got {_show(value)}", path=path, line=line, field=field)
    return value


def as_pair(value: Any, *, path: Where, line: int | None = None, field: str) -> tuple[float, float]:
    """A ``[start, end]`` pair of numbers (order and range are checked later, see ``windows``)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InputError(f"expected a [start, end] pair, got {_show(value)}", path=path, line=line, field=field)
    return (as_number(value[0], path=path, line=line, field=field),
            as_number(value[1], path=path, line=line, field=field))


def as_pairs(value: Any, *, path: Where, line: int | None = None, field: str) -> list[tuple[float, float]]:
    """A list of ``[start, end]`` pairs; each error names the index (``field[i]``)."""
    value = as_list(value, path=path, line=line, field=field)
    return [as_pair(v, path=path, line=line, field=f"{field}[{i}]") for i, v in enumerate(value)]


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    kind = type(value).__name__
    return kind if len(text) > 40 else f"{kind} {text}"


def json_number(x: float) -> int | float:
    """``72.0 -> 72`` and ``7.5 -> 7.5``: writers keep whole numbers as the releases write them."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x
