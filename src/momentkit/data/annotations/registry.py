"""The list of annotation formats, how a file's format is recognised, and the two entry points.

A format is an :class:`AnnotationFormat`: a name, the kind of records it holds (``"grounding"`` ->
:class:`~momentkit.data.records.GroundingSample`, ``"detection"`` ->
:class:`~momentkit.data.records.DetectionSample`), a reader, optionally a writer, the file suffixes
it uses and a ``sniff`` test on the start of the file. New formats join with
:func:`register_format`; :func:`detect_format` and :func:`read_annotations` then know them.

Detection of a file's format: the formats whose suffixes match the file name are asked first, in
registration order, whether they recognise the first 64 KiB of the file; then all the others.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from momentkit.errors import InputError

Kind = Literal["grounding", "detection"]
SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class AnnotationFormat:
    """One annotation format.

    ``reader(path, **options) -> list[samples]``; ``writer(path, samples) -> None``;
    ``sniff(path, head) -> bool`` where ``head`` is the start of the file as text.
    """

    name: str
    kind: Kind
    reader: Callable[..., list]
    writer: Callable[..., None] | None = None
    suffixes: tuple[str, ...] = ()
    sniff: Callable[[Path, str], bool] | None = None
    description: str = ""

    def options(self) -> tuple[str, ...]:
        """Names of the keyword options the reader takes."""
        params = list(inspect.signature(self.reader).parameters.values())[1:]
        return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


_FORMATS: dict[str, AnnotationFormat] = {}


def register_format(fmt: AnnotationFormat, *, replace: bool = False) -> AnnotationFormat:
    """Add a format (``replace=True`` to override one of the same name)."""
    if fmt.kind not in ("grounding", "detection"):
        raise ValueError(f"format kind must be 'grounding' or 'detection', got {fmt.kind!r}")
    if fmt.name in _FORMATS and not replace:
        raise ValueError(f"annotation format {fmt.name!r} is already registered")
    _FORMATS[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> AnnotationFormat:
    """Remove a format (returns it); unknown names are an :class:`InputError`."""
    fmt = get_format(name)
    del _FORMATS[name]
    return fmt


def available_formats() -> tuple[str, ...]:
    return tuple(_FORMATS)


def get_format(name: str) -> AnnotationFormat:
    try:
        return _FORMATS[name]
    except KeyError:
        raise InputError(f"unknown annotation format {name!r}; known formats: {', '.join(_FORMATS)}",
                         field="format") from None


def detect_format(path: str | os.PathLike) -> str:
    """The name of the format of ``path``, from its suffix and its first bytes."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("expected a file, found a folder", path=path)
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES).decode("utf-8-sig", errors="replace")
    if not head.strip():
        raise InputError("file is empty", path=path)
    name = path.name.lower()
    by_suffix = [f for f in _FORMATS.values() if any(name.endswith(s) for s in f.suffixes)]
    others = [f for f in _FORMATS.values() if f not in by_suffix]
    for fmt in by_suffix + others:
        if fmt.sniff is not None and fmt.sniff(path, head):
            return fmt.name
    raise InputError(f"cannot tell the annotation format; pass one of: {', '.join(_FORMATS)}", path=path)


def read_annotations(path: str | os.PathLike, format: str | None = None, **options) -> list:
    """Read any supported annotation file into a list of typed records.

    ``format=None`` detects it (:func:`detect_format`). ``options`` go to the format's reader;
    an option the reader does not take is an :class:`InputError` naming it.
    """
    fmt = get_format(format if format is not None else detect_format(path))
    known = fmt.options()
    for key in options:
        if key not in known:
            raise InputError(f"format {fmt.name!r} has no option {key!r}; its options: {', '.join(known) or 'none'}",
                             field=key)
    return fmt.reader(path, **options)


def write_annotations(path: str | os.PathLike, samples: Sequence, format: str) -> None:
    """Write records in a format that has a writer (atomically)."""
    fmt = get_format(format)
    if fmt.writer is None:
        writable = [f.name for f in _FORMATS.values() if f.writer is not None]
        raise InputError(f"format {fmt.name!r} cannot be written; writable formats: {', '.join(writable)}",
                         field="format")
    fmt.writer(path, samples)


def first_line(head: str) -> str:
    """The first non-blank line of ``head`` (for sniffers)."""
    for line in head.splitlines():
        if line.strip():
            return line.strip()
    return ""


def expect_samples(samples: Sequence, cls: type, format_name: str) -> list:
    """The samples as a list, refusing records of the wrong kind (a programming error)."""
    samples = list(samples)
    for i, s in enumerate(samples):
        if not isinstance(s, cls):
            raise TypeError(f"{format_name} writes {cls.__name__} records; item {i} is {type(s).__name__}")
    return samples
