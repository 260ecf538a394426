"""Clip-level labels (Kinetics-style CSV) as detection samples: one labelled clip per row.

Shape (the Kinetics-400/600/700 release files; ``split`` optional, other columns ignored)::

    label,youtube_id,time_start,time_end,split
    abseiling,--07WQ2iBlw,1,11,train

Each row is one trimmed clip with one class: a :class:`DetectionSample` whose single segment covers
the whole clip (``[0, time_end - time_start]``), ``label`` the class name, ``label_id`` its index in
``classes`` when a class list is given. The video id is Kinetics' file name stem
``<youtube_id>_<time_start:06d>_<time_end:06d>`` (``--07WQ2iBlw_000001_000011``); a ``video`` (or
``id``) column, when present, names the clip instead and ``time_start`` / ``time_end`` may then be
left out with a ``duration`` column. ``subset`` is the ``split`` column.

This is what detection pretraining reads (``data.clip_labels: true`` in a dense config: every frame of
a clip takes the clip's label).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from momentkit.data.annotations.fields import parse_number, utf8_text
from momentkit.data.annotations.registry import AnnotationFormat, first_line, register_format
from momentkit.data.records import DetectionSample, Segment
from momentkit.errors import InputError
from momentkit.io import existing_file

NAME = "clips-csv"


def _number(row: dict, key: str, path, line: int) -> float:
    return parse_number(row.get(key) or "", path=path, line=line, field=key)


def read_clips_csv(path: str | os.PathLike, *, classes: Sequence[str] | None = None,
                   subset: str | None = None) -> list[DetectionSample]:
    """Read a clip-label CSV into one single-segment :class:`DetectionSample` per row (file order).

    ``classes``: the class list (``label_id`` = index; a label outside it is an error naming the line);
    ``subset``: keep the rows of this ``split``.
    """
    path = existing_file(path)
    index = {c: i for i, c in enumerate(classes)} if classes is not None else None
    out = []
    with utf8_text(path), open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if "label" not in cols or not ({"youtube_id", "video", "id"} & set(cols)):
            raise InputError(f"expected columns label and youtube_id (or video), got {', '.join(cols) or 'none'}",
                             path=path, line=1)
        seen = set()
        for row in reader:
            line = reader.line_num
            label = (row.get("label") or "").strip()
            if not label:
                raise InputError("empty label", path=path, line=line, field="label")
            split = (row.get("split") or "").strip() or None
            if subset is not None and (split or "").lower() != subset.lower():
                continue
            name = (row.get("video") or row.get("id") or "").strip()
            if row.get("time_start") not in (None, "") or not name:
                start = _number(row, "time_start", path, line)
                end = _number(row, "time_end", path, line)
                duration = end - start
                if not name:
                    name = f"{row['youtube_id'].strip()}_{int(start):06d}_{int(end):06d}"
            else:
                duration = _number(row, "duration", path, line)
            if not duration > 0:
                raise InputError(f"clip '{name}' has no positive length ({duration:g} s)", path=path, line=line,
                                 field="time_end")
            if name in seen:
                raise InputError(f"clip '{name}' appears twice", path=path, line=line, field="youtube_id")
            seen.add(name)
            label_id = None
            if index is not None:
                if label not in index:
                    raise InputError(f"label {label!r} is not one of the {len(index)} classes", path=path, line=line,
                                     field="label")
                label_id = index[label]
            out.append(DetectionSample(name, float(duration), (Segment(0.0, float(duration), label, label_id),),
                                       subset=split))
    if not out:
        raise InputError("no clip" + (f" of split {subset!r}" if subset else ""), path=path)
    return out


def _sniff(path, head: str) -> bool:
    cols = [c.strip() for c in first_line(head).split(",")]
    return "label" in cols and bool({"youtube_id", "video"} & set(cols))


register_format(AnnotationFormat(
    name=NAME, kind="detection", reader=read_clips_csv, suffixes=(".csv",), sniff=_sniff,
    description="clip-level labels, Kinetics-style CSV (label, youtube_id, time_start, time_end, split)",
))
