"""Super-events JSON (piergiaj/super-events-cvpr18: MultiTHUMOS, Charades) as detection samples.

Shape::

    {"video_test_0000896": {"subset": "testing", "duration": 226.77,
                            "actions": [[12, 18.6, 24.8], [12, 29.1, 34.8]]}}

Each action is ``[class_index, start_s, end_s]``. The class index base differs between releases
(MultiTHUMOS: 1..65, Charades: 0..156), so it is an option: ``label_id = class_index -
index_base`` (default ``index_base=0``). ``class_names`` (a list, or a text file with one name per
line, line i = class i, like THUMOS ``category_idx.txt``) gives the labels; without it the label is
``str(label_id)``. For MultiTHUMOS pass ``index_base=1`` and the 65 names in class-list order.

Default ``on_invalid="skip"``: the MultiTHUMOS file has reversed, zero-length and out-of-video
actions (see :mod:`momentkit.data.annotations.segments` for where skipped ones are kept).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from momentkit.data.annotations.detection_json import iter_videos, select_subsets
from momentkit.data.annotations.fields import as_int, as_list, as_number, require, utf8_text
from momentkit.data.annotations.registry import AnnotationFormat, register_format
from momentkit.data.annotations.segments import SegmentTable
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, validate_options
from momentkit.data.records import DetectionSample
from momentkit.errors import InputError
from momentkit.io import read_json

NAME = "superevents-json"


def read_superevents_json(
    path: str | os.PathLike,
    *,
    index_base: int = 0,
    class_names: Sequence[str] | str | os.PathLike | None = None,
    subset: str | Sequence[str] | None = None,
    on_invalid: str = "skip",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> list[DetectionSample]:
    """Read a super-events JSON file into one :class:`DetectionSample` per video (file order)."""
    validate_options(on_invalid, clip_tolerance)
    if isinstance(index_base, bool) or not isinstance(index_base, int):
        raise InputError(f"must be an integer, got {index_base!r}", field="index_base")
    names = load_class_names(class_names) if class_names is not None else None
    with utf8_text(path):
        data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise InputError("expected a non-empty JSON object of videos", path=path)
    wanted = select_subsets(data, subset, path=path)

    table = SegmentTable()
    for video, entry, prefix, duration, sub in iter_videos(data, wanted, path=path):
        actions = as_list(require(entry, "actions", path=path, prefix=prefix), path=path, field=prefix + "actions")
        extra = {k: x for k, x in entry.items() if k not in ("subset", "duration", "actions")}
        v = table.add_video(video, duration, sub, None, extra)
        for i, action in enumerate(actions):
            at = f"{prefix}actions[{i}]"
            if not isinstance(action, list) or len(action) != 3:
                raise InputError("expected [class_index, start, end]", path=path, field=at)
            label_id = as_int(action[0], path=path, field=at) - index_base
            if label_id < 0 or (names is not None and label_id >= len(names)):
                n = f"{len(names)} class names" if names is not None else "no class names"
                raise InputError(f"class index {action[0]} is out of range (index_base={index_base}, {n})",
                                 path=path, field=at)
            label = names[label_id] if names is not None else str(label_id)
            start = as_number(action[1], path=path, field=at)
            end = as_number(action[2], path=path, field=at)
            table.add_segment(v, start, end, label, label_id, {"field": at}, path)
    return table.build(path=path, on_invalid=on_invalid, clip_tolerance=clip_tolerance)


def load_class_names(source: Sequence[str] | str | os.PathLike) -> list[str]:
    """Class names from a list or from a text file (one per line, blank lines ignored)."""
    if isinstance(source, str | os.PathLike):
        p = Path(source)
        if not p.is_file():
            raise InputError("class names file not found", path=p, field="class_names")
        with utf8_text(p):
            names = [line.strip() for line in p.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        if not names:
            raise InputError("file is empty", path=p, field="class_names")
        return names
    names = list(source) if isinstance(source, list | tuple) else []
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InputError("expected a non-empty list of non-empty strings", field="class_names")
    return names


_ACTIONS = re.compile(r'"actions"\s*:\s*\[')


def _sniff(path: Path, head: str) -> bool:
    return head.lstrip().startswith("{") and bool(_ACTIONS.search(head)) and '"database"' not in head


register_format(AnnotationFormat(
    name=NAME, kind="detection", reader=read_superevents_json, suffixes=(".json",), sniff=_sniff,
    description="super-events {video: {subset, duration, actions: [[class, start, end]]}} (MultiTHUMOS, Charades)",
))
