"""ActivityNet-style detection JSON (ActivityNet 1.3, ActionFormer / TriDet, OpenTAD / G-TAD files).

Shape::

    {"version": ..., "taxonomy": ..., "database": {
        "video_test_0000004": {"subset": "Test", "duration": 33.83, "fps": 30.0,
                               "annotations": [{"label": "CricketBowling", "segment": [0.2, 1.1],
                                                "label_id": 5}]}}}

A flat ``{video: {...}}`` object without ``"database"`` is read the same way. Per video,
``duration`` and ``annotations`` (possibly empty) are required; ``subset`` and ``fps`` are
optional; other keys (``url``, ``resolution``, OpenTAD's ``frame``) go to ``extra``. Per
annotation, ``segment`` (seconds) and ``label`` are required, ``label_id`` optional (``None``
when absent; when present, one label must always have the same id).

Subset names are kept as the file writes them: ActionFormer's THUMOS14 file says
``"Validation"``/``"Test"``; the OpenTAD file says ``"training"`` (= THUMOS validation videos) and
``"validation"`` (= THUMOS test videos). ``subset=`` keeps only the videos of the given subset(s).

Default ``on_invalid="skip"``: the ActionFormer THUMOS14 file has 30 segments that start after the
stated duration of their video (22 in ``video_test_0000270``, the other 8 in the 4 videos where the
OpenTAD file has fewer segments), and the TriDet MultiTHUMOS file 72 invalid segments (reversed,
zero-length, outside the video, or ending more than ``clip_tolerance`` past it). Skipped segments stay listed
in ``extra["invalid_segments"]`` (see :mod:`momentkit.data.annotations.segments`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from momentkit.data.annotations.fields import (
    as_duration,
    as_int,
    as_list,
    as_number,
    as_pair,
    as_text,
    json_number,
    require,
    utf8_text,
)
from momentkit.data.annotations.registry import AnnotationFormat, expect_samples, register_format
from momentkit.data.annotations.segments import SegmentTable
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, validate_options
from momentkit.data.records import DetectionSample
from momentkit.errors import InputError
from momentkit.io import read_json, write_json

NAME = "detection-json"
VIDEO_KEYS = ("subset", "duration", "fps", "annotations")
INTERNAL_EXTRA = ("invalid_segments",)


def read_detection_json(
    path: str | os.PathLike,
    *,
    subset: str | Sequence[str] | None = None,
    on_invalid: str = "skip",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> list[DetectionSample]:
    """Read an ActivityNet-style detection JSON file into one :class:`DetectionSample` per video."""
    validate_options(on_invalid, clip_tolerance)
    with utf8_text(path):
        data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, got {type(data).__name__}", path=path)
    database, base = (data["database"], "database.") if "database" in data else (data, "")
    if not isinstance(database, dict) or not database:
        raise InputError("no videos in the file", path=path, field=base.rstrip(".") or None)
    wanted = select_subsets(database, subset, path=path, prefix=base)

    table = SegmentTable()
    for video, entry, prefix, duration, sub in iter_videos(database, wanted, path=path, base=base):
        fps = entry.get("fps")
        if fps is not None:
            fps = as_number(fps, path=path, field=prefix + "fps")
            if fps <= 0:
                raise InputError(f"fps must be > 0, got {fps:g}", path=path, field=prefix + "fps")
        annotations = as_list(require(entry, "annotations", path=path, prefix=prefix), path=path,
                              field=prefix + "annotations")
        v = table.add_video(video, duration, sub, fps, {k: x for k, x in entry.items() if k not in VIDEO_KEYS})
        for i, ann in enumerate(annotations):
            at = f"{prefix}annotations[{i}]"
            segment = require(ann, "segment", path=path, prefix=at + ".")
            start, end = as_pair(segment, path=path, field=at + ".segment")
            label = as_text(require(ann, "label", path=path, prefix=at + "."), path=path, field=at + ".label")
            label_id = ann.get("label_id")
            if label_id is not None:
                label_id = as_int(label_id, path=path, field=at + ".label_id", minimum=0)
            table.add_segment(v, start, end, label, label_id, {"field": at + ".segment"}, path)
    return table.build(path=path, on_invalid=on_invalid, clip_tolerance=clip_tolerance)


def select_subsets(database: dict, subset, *, path, prefix: str = "") -> set | None:
    """The set of wanted subset names, refusing names the file does not have."""
    if subset is None:
        return None
    if isinstance(subset, str):
        wanted = {subset}
    elif isinstance(subset, list | tuple | set) and all(isinstance(x, str) for x in subset):
        wanted = set(subset)
    else:
        raise InputError(f"expected a subset name or a list of them, got {subset!r}", field="subset")
    present = {e.get("subset") for e in database.values() if isinstance(e, dict)}
    missing = sorted(wanted - present, key=str)
    if missing:
        have = ", ".join(sorted(repr(s) for s in present if s is not None)) or "none"
        raise InputError(f"no video has subset {', '.join(map(repr, missing))}; subsets in the file: {have}",
                         path=path, field="subset")
    return wanted


def iter_videos(database: dict, wanted, *, path, base: str = ""):
    """``(video, entry, field prefix, duration, subset)`` for each video of a database-style mapping
    whose subset is in ``wanted`` (all when None), with duration and subset checked."""
    for video, entry in database.items():
        prefix = f"{base}{video}."
        sub = entry.get("subset") if isinstance(entry, dict) else None
        if wanted is not None and sub not in wanted:
            continue
        duration = as_duration(require(entry, "duration", path=path, prefix=prefix), path=path,
                               field=prefix + "duration")
        if sub is not None:
            sub = as_text(sub, path=path, field=prefix + "subset")
        yield video, entry, prefix, duration, sub


def write_detection_json(path: str | os.PathLike, samples: Sequence[DetectionSample]) -> None:
    """Write ``{"version", "database": {video: {subset, duration, fps, annotations}}}`` atomically.

    ``subset``/``fps``/``label_id`` are written when known; JSON-compatible ``extra`` entries are
    written beside them (``invalid_segments`` is not). Video names must be unique.
    """
    samples = expect_samples(samples, DetectionSample, NAME)
    database: dict[str, dict] = {}
    for i, s in enumerate(samples):
        if s.video in database:
            raise InputError(f"duplicate video {s.video!r}", field=f"samples[{i}].video")
        entry: dict = {}
        if s.subset is not None:
            entry["subset"] = s.subset
        entry["duration"] = json_number(s.duration)
        if s.fps is not None:
            entry["fps"] = json_number(s.fps)
        anns = []
        for seg in s.segments:
            ann = {"label": seg.label, "segment": [json_number(seg.start), json_number(seg.end)]}
            if seg.label_id is not None:
                ann["label_id"] = seg.label_id
            anns.append(ann)
        entry["annotations"] = anns
        entry.update({k: v for k, v in s.extra.items()
                      if k not in entry and k not in INTERNAL_EXTRA and _jsonable(v)})
        database[s.video] = entry
    write_json(path, {"version": "momentkit", "database": database}, indent=None)


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _sniff(path: Path, head: str) -> bool:
    head = head.lstrip()
    return head.startswith("{") and ('"database"' in head or ('"annotations"' in head and '"segment"' in head))


register_format(AnnotationFormat(
    name=NAME, kind="detection", reader=read_detection_json, writer=write_detection_json,
    suffixes=(".json",), sniff=_sniff,
    description="ActivityNet-style detection {database: {video: {subset, duration, annotations}}}",
))
