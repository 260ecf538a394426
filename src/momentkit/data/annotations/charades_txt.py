"""Charades-STA native text: one query per line, ``VIDEOID start end##sentence`` (seconds).

The file holds no video durations. They come from, in this order:

1. ``durations=``: a mapping ``{vid: seconds}``, or the path(s) of Charades CSV files (``id,...,length``,
   e.g. ``Charades_v1_train.csv``);
2. otherwise every ``Charades_v1_*.csv`` in the folder of the text file (the layout the releases and
   2D-TAN use), when there is one;
3. otherwise ``missing_duration`` decides: ``"error"`` (default) refuses the file, naming the first
   line whose video has no duration; ``"estimate"`` sets the duration of such a video to the largest
   window end of its queries in this file and marks the sample with ``extra["duration_estimated"] =
   True`` (a lower bound of the real length; fine for statistics, not for training on features).

``qid`` is the 0-based index of the query among the non-blank lines of the file, so qids stay the
same whatever is skipped. Windows follow :mod:`momentkit.data.annotations.windows`
(default ``on_invalid="error"``).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from momentkit.data.annotations.fields import parse_number, utf8_text
from momentkit.data.annotations.registry import AnnotationFormat, expect_samples, first_line, register_format
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, check_windows, enforce, validate_options
from momentkit.data.records import GroundingSample
from momentkit.errors import InputError
from momentkit.io import atomic_write

NAME = "charades-txt"
MISSING_DURATION = ("error", "estimate")
DurationSource = Mapping[str, float] | str | os.PathLike | Sequence[str | os.PathLike]


def read_charades_txt(
    path: str | os.PathLike,
    *,
    durations: DurationSource | None = None,
    missing_duration: str = "error",
    on_invalid: str = "error",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> list[GroundingSample]:
    """Read a Charades-STA ``.txt`` file into :class:`GroundingSample` records (file order)."""
    validate_options(on_invalid, clip_tolerance)
    if missing_duration not in MISSING_DURATION:
        raise InputError(f"must be one of {', '.join(MISSING_DURATION)}, got {missing_duration!r}",
                         field="missing_duration")
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.is_dir():
        raise InputError("expected a file, found a folder", path=path)
    known = load_durations(durations) if durations is not None else _sibling_durations(path)

    lines, vids, starts, ends, queries = [], [], [], [], []
    with utf8_text(path), open(path, encoding="utf-8-sig") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            head, sep, sentence = raw.rstrip("\r\n").partition("##")
            parts = head.split()
            if not sep or len(parts) != 3:
                raise InputError("expected 'VIDEOID start end##sentence'", path=path, line=lineno)
            if not sentence.strip():
                raise InputError("empty sentence", path=path, line=lineno, field="sentence")
            lines.append(lineno)
            vids.append(parts[0])
            starts.append(parse_number(parts[1], path=path, line=lineno, field="start"))
            ends.append(parse_number(parts[2], path=path, line=lineno, field="end"))
            queries.append(sentence.strip())
    if not lines:
        raise InputError("file is empty", path=path)

    estimated: dict[str, float] = {}
    for i, vid in enumerate(vids):
        if vid in known:
            continue
        if missing_duration == "error":
            raise InputError(f"no duration for video {vid!r}; pass durations= (a mapping or Charades CSV "
                             "path(s) with 'id' and 'length') or missing_duration='estimate'",
                             path=path, line=lines[i])
        estimated[vid] = max(estimated.get(vid, 0.0), ends[i])
    dur = np.array([known.get(v, estimated.get(v, np.nan)) for v in vids], dtype=np.float64)
    # An estimate is a max over ends: NaN only if every end was <= 0, which check_windows refuses.
    dur = np.where(np.isfinite(dur) & (dur > 0), dur, np.inf)

    check = check_windows(starts, ends, dur, clip_tolerance)
    keep = enforce(check, on_invalid=on_invalid, path=path, locate=lambda i: {"line": lines[i]})
    samples = []
    for i in np.flatnonzero(keep).tolist():
        vid = vids[i]
        samples.append(GroundingSample(
            qid=i, query=queries[i], vid=vid, duration=float(dur[i]),
            windows=((float(check.starts[i]), float(check.ends[i])),),
            extra={"duration_estimated": True} if vid in estimated else {},
        ))
    return samples


def load_durations(source: DurationSource) -> dict[str, float]:
    """``{vid: seconds}`` from a mapping or from Charades CSV file(s) with ``id`` and ``length`` columns."""
    if isinstance(source, Mapping):
        out = {}
        for vid, d in source.items():
            try:
                d = float(d)
            except (TypeError, ValueError):
                raise InputError(f"duration of {vid!r} is not a number: {d!r}", field="durations") from None
            if not np.isfinite(d) or d <= 0:
                raise InputError(f"duration of {vid!r} must be > 0, got {d!r}", field="durations")
            out[str(vid)] = d
        return out
    if isinstance(source, str | os.PathLike):
        paths = [source]
    elif isinstance(source, list | tuple) and all(isinstance(p, str | os.PathLike) for p in source):
        paths = list(source)
    else:
        raise InputError(f"expected a mapping or Charades CSV path(s), got {type(source).__name__}",
                         field="durations")
    out = {}
    for p in paths:
        out.update(_read_charades_csv(Path(p)))
    return out


def _read_charades_csv(path: Path) -> dict[str, float]:
    if not path.is_file():
        raise InputError("durations file not found", path=path, field="durations")
    out = {}
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for col in ("id", "length"):
            if col not in header:
                raise InputError(f"missing required column '{col}'", path=path, line=1, field=col)
        for row in reader:
            d = parse_number(row["length"], path=path, line=reader.line_num, field="length")
            if d <= 0:
                raise InputError(f"length must be > 0, got {d:g}", path=path, line=reader.line_num, field="length")
            out[row["id"]] = d
    if not out:
        raise InputError("file is empty", path=path)
    return out


def _sibling_durations(path: Path) -> dict[str, float]:
    csvs = sorted(path.parent.glob("Charades_v1_*.csv"))
    return load_durations(csvs) if csvs else {}


def _fmt(x: float) -> str:
    return repr(float(x))


def write_charades_txt(path: str | os.PathLike, samples: Sequence[GroundingSample]) -> None:
    """Write one ``VIDEOID start end##sentence`` line per sample (one window each), atomically.

    Durations are not part of the format and are not written.
    """
    samples = expect_samples(samples, GroundingSample, NAME)
    lines = []
    for i, s in enumerate(samples):
        if len(s.windows) != 1:
            raise InputError(f"{NAME} holds exactly one window per query; qid {s.qid!r} has {len(s.windows)}",
                             field=f"samples[{i}].windows")
        if not s.vid or any(c.isspace() for c in s.vid):
            raise InputError(f"video id {s.vid!r} is empty or has white space", field=f"samples[{i}].vid")
        query = s.query.strip()
        if "##" in query or "\n" in query or "\r" in query:
            raise InputError("a query may not contain '##' or a line break", field=f"samples[{i}].query")
        (st, ed), = s.windows
        lines.append(f"{s.vid} {_fmt(st)} {_fmt(ed)}##{query}\n")
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)


_LINE = re.compile(r"^\S+\s+[-+0-9.eE]+\s+[-+0-9.eE]+\s*##")


def _sniff(path: Path, head: str) -> bool:
    return bool(_LINE.match(first_line(head)))


register_format(AnnotationFormat(
    name=NAME, kind="grounding", reader=read_charades_txt, writer=write_charades_txt,
    suffixes=(".txt",), sniff=_sniff, description="Charades-STA text, 'VIDEOID start end##sentence'",
))
