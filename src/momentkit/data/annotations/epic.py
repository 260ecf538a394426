"""EPIC-Kitchens-100 action segments as detection samples.

Two formats:

``epic-csv``
    The official CSVs (``EPIC_100_validation.csv``, ``EPIC_100_uda_*.csv``, ...): one action per
    row, ``start_timestamp``/``stop_timestamp`` as ``HH:MM:SS.ff`` (seconds). Segments are labelled
    by verb (default) or noun (``label="noun"``): ``label_id`` = ``verb_class``/``noun_class``,
    ``label`` = that class's ``key`` in ``EPIC_100_{verb,noun}_classes.csv``. The
    ``*_timestamps.csv`` files (test and unlabelled UDA splits) have no class columns: their
    segments are read unlabelled (``label=""``, ``label_id=None``) and the samples carry
    ``extra["unlabelled"] = True``; no classes file is needed for them.

``epic-frames-txt``
    ``EPIC_100_train_new.txt`` (a public conversion of the train CSV, whose official file is not
    in the shared data): ``P01/rgb_frames/P01_01 start_frame stop_frame verb_class noun_class``.
    Frames count the released RGB frames: 60 fps for EPIC-Kitchens-55 videos (``PXX_YY``), 50 fps for
    videos new in EPIC-Kitchens-100 (``PXX_1YY``); seconds = frame / that rate, within one frame of
    the official timestamps. ``extra["frame_rate"]`` records the rate used.

Both take one sample per video (order of first appearance), ``duration`` and ``fps`` (native) from
``EPIC_100_video_info.csv`` and the class names from the classes CSV. By default these are looked up
beside the annotation file (the layout of the official repository); ``video_info=`` and
``classes=`` point elsewhere. Per video, ``extra`` holds tuples aligned with the segments:
``narration_ids`` (CSV only), ``verb_classes`` and ``noun_classes`` (when labelled), and
``participant_id``. Windows follow :mod:`momentkit.data.annotations.windows` (default
``on_invalid="error"``; the official validation file has one end 0.013 s past its video, clipped).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from momentkit.data.annotations.fields import as_path, parse_int, parse_number, utf8_text
from momentkit.data.annotations.registry import AnnotationFormat, first_line, register_format
from momentkit.data.annotations.segments import SegmentTable
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, validate_options
from momentkit.data.records import DetectionSample
from momentkit.errors import InputError
from momentkit.io import existing_file

CSV_NAME = "epic-csv"
FRAMES_NAME = "epic-frames-txt"
LABELS = ("verb", "noun")
VIDEO_INFO = "EPIC_100_video_info.csv"
TIMESTAMP = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}(?:\.\d*)?)$")
FRAME_RATE_EK55, FRAME_RATE_EK100 = 60.0, 50.0
FRAME_COLUMNS = ("start_frame", "stop_frame", "verb_class", "noun_class")


def _prepare(path, label: str, video_info, on_invalid: str, clip_tolerance: float):
    """Checks shared by the EPIC readers; returns the annotation path and the video info table."""
    validate_options(on_invalid, clip_tolerance)
    path = existing_file(path)
    _check_label(label)
    info = load_video_info(as_path(video_info, field="video_info") if video_info is not None
                           else path.parent / VIDEO_INFO)
    return path, info


def read_epic_csv(
    path: str | os.PathLike,
    *,
    label: str = "verb",
    classes: str | os.PathLike | None = None,
    video_info: str | os.PathLike | None = None,
    on_invalid: str = "error",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> list[DetectionSample]:
    """Read an EPIC-Kitchens-100 annotation CSV into one :class:`DetectionSample` per video."""
    path, info = _prepare(path, label, video_info, on_invalid, clip_tolerance)
    table = SegmentTable()
    videos: dict[str, int] = {}
    seen: dict[str, int] = {}
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if not header:
            raise InputError("file is empty", path=path)
        for col in ("narration_id", "video_id", "start_timestamp", "stop_timestamp"):
            if col not in header:
                raise InputError(f"missing required column '{col}'", path=path, line=1, field=col)
        labelled = "verb_class" in header or "noun_class" in header
        if labelled:
            for col in ("verb_class", "noun_class"):
                if col not in header:
                    raise InputError(f"missing required column '{col}'", path=path, line=1, field=col)
            names = load_classes(_classes_path(classes, path, label))
        for row in reader:
            line = reader.line_num
            nid = row["narration_id"]
            if nid in seen:
                raise InputError(f"duplicate narration_id {nid!r} (first on line {seen[nid]})", path=path, line=line,
                                 field="narration_id")
            seen[nid] = line
            v = _video(table, videos, info, row["video_id"], path, line)
            start = parse_timestamp(row["start_timestamp"], path=path, line=line, field="start_timestamp")
            stop = parse_timestamp(row["stop_timestamp"], path=path, line=line, field="stop_timestamp")
            where = {"line": line, "field": "start_timestamp/stop_timestamp"}
            if labelled:
                verb = parse_int(row["verb_class"], path=path, line=line, field="verb_class")
                noun = parse_int(row["noun_class"], path=path, line=line, field="noun_class")
                label_id = verb if label == "verb" else noun
                name = _class_name(names, label_id, path, line, f"{label}_class")
                table.add_segment(v, start, stop, name, label_id, where, path, narration_ids=nid,
                                  verb_classes=verb, noun_classes=noun)
            else:
                table.add_segment(v, start, stop, "", None, where, path, narration_ids=nid)
    if not seen:
        raise InputError("no annotation rows", path=path)
    samples = table.build(path=path, on_invalid=on_invalid, clip_tolerance=clip_tolerance)
    if not labelled:
        for s in samples:
            s.extra["unlabelled"] = True
    return samples


def read_epic_frames_txt(
    path: str | os.PathLike,
    *,
    label: str = "verb",
    classes: str | os.PathLike | None = None,
    video_info: str | os.PathLike | None = None,
    on_invalid: str = "error",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> list[DetectionSample]:
    """Read ``EPIC_100_train_new.txt``-style lines into one :class:`DetectionSample` per video."""
    path, info = _prepare(path, label, video_info, on_invalid, clip_tolerance)
    names = load_classes(_classes_path(classes, path, label))
    table = SegmentTable()
    videos: dict[str, int] = {}
    with utf8_text(path), open(path, encoding="utf-8-sig") as fh:
        for line, raw in enumerate(fh, start=1):
            parts = raw.split()
            if not parts:
                continue
            if len(parts) != 5:
                raise InputError("expected 'PATH start_frame stop_frame verb_class noun_class'", path=path, line=line)
            vid = parts[0].rstrip("/").rsplit("/", 1)[-1]
            f0, f1, verb, noun = (parse_int(x, path=path, line=line, field=f)
                                  for x, f in zip(parts[1:], FRAME_COLUMNS))
            v = _video(table, videos, info, vid, path, line)
            rate = frame_rate(vid)
            table.videos[v]["extra"]["frame_rate"] = rate
            label_id = verb if label == "verb" else noun
            name = _class_name(names, label_id, path, line, f"{label}_class")
            where = {"line": line, "field": "start_frame/stop_frame"}
            table.add_segment(v, f0 / rate, f1 / rate, name, label_id, where, path,
                              verb_classes=verb, noun_classes=noun)
    if not table.videos:
        raise InputError("file is empty", path=path)
    return table.build(path=path, on_invalid=on_invalid, clip_tolerance=clip_tolerance)


def parse_timestamp(text: str, *, path, line: int | None = None, field: str) -> float:
    """``"HH:MM:SS.ff"`` -> seconds."""
    m = TIMESTAMP.match(text.strip())
    if not m:
        raise InputError(f"expected a HH:MM:SS.ff timestamp, got {text!r}", path=path, line=line, field=field)
    h, mi, s = m.groups()
    return int(h) * 3600 + int(mi) * 60 + float(s)


def frame_rate(video_id: str) -> float:
    """Rate of the released RGB frames: 50 for ``PXX_1YY`` (EPIC-Kitchens-100 extension), else 60."""
    suffix = video_id.rsplit("_", 1)[-1]
    return FRAME_RATE_EK100 if len(suffix) == 3 else FRAME_RATE_EK55


def load_video_info(path: str | os.PathLike) -> dict[str, tuple[float, float]]:
    """``{video_id: (duration_s, native_fps)}`` from ``EPIC_100_video_info.csv``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video info file not found (durations come from {VIDEO_INFO}; pass video_info=)",
                         path=path, field="video_info")
    out = {}
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        for col in ("video_id", "duration", "fps"):
            if col not in (reader.fieldnames or []):
                raise InputError(f"missing required column '{col}'", path=path, line=1, field=col)
        for row in reader:
            line = reader.line_num
            duration = parse_number(row["duration"], path=path, line=line, field="duration")
            fps = parse_number(row["fps"], path=path, line=line, field="fps")
            if duration <= 0 or fps <= 0:
                raise InputError("duration and fps must be > 0", path=path, line=line)
            out[row["video_id"]] = (duration, fps)
    if not out:
        raise InputError("file is empty", path=path)
    return out


def load_classes(path: str | os.PathLike) -> dict[int, str]:
    """``{id: key}`` from ``EPIC_100_{verb,noun}_classes.csv``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("classes file not found (pass classes=)", path=path, field="classes")
    out = {}
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        for col in ("id", "key"):
            if col not in (reader.fieldnames or []):
                raise InputError(f"missing required column '{col}'", path=path, line=1, field=col)
        for row in reader:
            out[parse_int(row["id"], path=path, line=reader.line_num, field="id")] = row["key"]
    if not out:
        raise InputError("file is empty", path=path)
    return out


def _classes_path(classes, path: Path, label: str) -> Path:
    if classes is not None:
        return as_path(classes, field="classes")
    return path.parent / f"EPIC_100_{label}_classes.csv"


def _check_label(label: str) -> None:
    if label not in LABELS:
        raise InputError(f"must be one of {', '.join(LABELS)}, got {label!r}", field="label")


def _class_name(names: dict[int, str], label_id: int, path, line: int, field: str) -> str:
    try:
        return names[label_id]
    except KeyError:
        raise InputError(f"unknown class id {label_id}", path=path, line=line, field=field) from None


def _video(table: SegmentTable, videos: dict[str, int], info: dict, vid: str, path, line: int) -> int:
    v = videos.get(vid)
    if v is None:
        if vid not in info:
            raise InputError(f"video {vid!r} is not in the video info file (no duration)", path=path, line=line,
                             field="video_id")
        duration, fps = info[vid]
        v = videos[vid] = table.add_video(vid, duration, None, fps, {"participant_id": vid.split("_", 1)[0]})
    return v


def _sniff_csv(path: Path, head: str) -> bool:
    header = first_line(head).split(",")
    return "video_id" in header and "start_timestamp" in header and "stop_timestamp" in header


_FRAMES_LINE = re.compile(r"^\S+(\s+-?\d+){4}$")


def _sniff_frames(path: Path, head: str) -> bool:
    return bool(_FRAMES_LINE.match(first_line(head)))


register_format(AnnotationFormat(
    name=CSV_NAME, kind="detection", reader=read_epic_csv, suffixes=(".csv",), sniff=_sniff_csv,
    description="EPIC-Kitchens-100 annotation CSV (HH:MM:SS.ff timestamps, verb/noun classes)",
))
register_format(AnnotationFormat(
    name=FRAMES_NAME, kind="detection", reader=read_epic_frames_txt, suffixes=(".txt",), sniff=_sniff_frames,
    description="EPIC-Kitchens-100 'PATH start_frame stop_frame verb_class noun_class' lines",
))
