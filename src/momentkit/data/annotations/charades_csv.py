"""Charades / CharadesEgo annotation CSVs (``Charades_v1_train.csv``, ``CharadesEgo_v1_test.csv``)
as detection samples, and the class files beside them.

Shape (one video per row; the columns other than ``id``, ``actions``, ``length`` and
``egocentric`` are not read)::

    id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length
    46GP8,HR43,Kitchen,6,7,Yes,"A person cooks.",food;stove,"A person ...","c092 11.90 21.20;c147 0.00 12.60",24.83

``actions`` is a ``;``-separated list of ``cNNN start end`` (seconds; may be empty), ``length`` the
video's duration in seconds. Videos are third-person or egocentric: the ``egocentric`` column of
CharadesEgo v1 (``Yes``/``No``) says which, else an id ending in ``EGO`` is egocentric.

``charades-csv`` reads one :class:`DetectionSample` per video (file order), videos without actions
included: ``label_id`` = the class number (``c092`` -> 92), ``label`` = the class id, or its name
with ``classes=`` (``Charades_v1_classes.txt``: ``c092 Holding a phone/camera`` lines, or a mapping).
``view="third"`` / ``"ego"`` keeps the videos of one view; ``extra["view"]`` is ``"third-person"``
or ``"egocentric"``. The files name no subset: ``subset=`` sets one for every video. Windows follow
:mod:`momentkit.data.annotations.windows`, default ``on_invalid="skip"`` (a dropped window is kept in
``extra["invalid_segments"]``).

Class files: :func:`read_id_names` (``Charades_v1_classes.txt``, ``Charades_v1_verbclasses.txt``:
``v009 hold``) and :func:`load_charades_verbs` (``Charades_v1_mapping.txt``: ``c000 o011 v009``, every
action class to its verb). :func:`iter_charades_rows` is the row parser the readers share.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from momentkit.data.annotations.fields import parse_number, utf8_text
from momentkit.data.annotations.registry import AnnotationFormat, first_line, register_format
from momentkit.data.annotations.segments import SegmentTable
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, validate_options
from momentkit.data.records import DetectionSample
from momentkit.errors import InputError
from momentkit.io import existing_file

NAME = "charades-csv"
REQUIRED_COLUMNS = ("id", "actions", "length")
VIEWS = {"third": "third-person", "ego": "egocentric"}
CLASS_ID = re.compile(r"c(\d+)")


@dataclass(frozen=True)
class CharadesRow:
    """One video of a Charades CSV: ``actions`` are ``(class id, start s, end s)`` in file order."""

    video: str
    length: float
    egocentric: bool
    actions: tuple[tuple[str, float, float], ...]
    line: int

    @property
    def view(self) -> str:
        return VIEWS["ego" if self.egocentric else "third"]


def read_charades_csv(
    path: str | os.PathLike,
    *,
    view: str = "all",
    classes: str | os.PathLike | Mapping[str, str] | None = None,
    subset: str | None = None,
    on_invalid: str = "skip",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> list[DetectionSample]:
    """Read a Charades / CharadesEgo CSV into one :class:`DetectionSample` per video (file order)."""
    validate_options(on_invalid, clip_tolerance)
    names = _class_names(classes) if classes is not None else None
    named_in = Path(classes).name if isinstance(classes, str | os.PathLike) else "the class names"
    table = SegmentTable()
    for row in iter_charades_rows(path, view=view, classes=names, classes_from=named_in):
        v = table.add_video(row.video, row.length, subset, None, {"view": row.view})
        for cls, start, end in row.actions:
            where = {"line": row.line, "field": "actions"}
            table.add_segment(v, start, end, names[cls] if names else cls, _class_number(cls, path, row.line),
                              where, path)
    if not table.videos:
        raise InputError("no video in the file" if view == "all" else f"no {VIEWS[view]} video in the file",
                         path=path, field="id")
    return table.build(path=path, on_invalid=on_invalid, clip_tolerance=clip_tolerance)


def iter_charades_rows(
    path: str | os.PathLike,
    *,
    view: str = "all",
    classes: Collection[str] | None = None,
    classes_from: str = "the class list",
) -> Iterator[CharadesRow]:
    """The videos of ``view`` (``"all"``, ``"third"`` or ``"ego"``) of a Charades CSV, one row at a time.

    Rows of the other view are checked only for their id and view. An action class not in
    ``classes`` (when given) is an error that names ``classes_from``; so are an empty or repeated
    id, a ``length`` that is not a number > 0 and an action that is not ``cNNN start end``.
    """
    if view not in ("all", *VIEWS):
        raise InputError(f"must be one of all, {', '.join(VIEWS)}, got {view!r}", field="view")
    path = existing_file(path)
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if not header:
            raise InputError("file is empty", path=path)
        for col in REQUIRED_COLUMNS:
            if col not in header:
                raise InputError(f"missing required column '{col}'", path=path, line=1, field=col)
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            vid = (row["id"] or "").strip()
            if not vid:
                raise InputError("empty video id", path=path, line=line, field="id")
            ego = _is_ego(row, vid, path, line)
            if view != "all" and ego != (view == "ego"):
                continue
            if vid in seen:
                raise InputError(f"duplicate video {vid!r} (first on line {seen[vid]})", path=path, line=line,
                                 field="id")
            seen[vid] = line
            length = parse_number(row["length"], path=path, line=line, field="length")
            if length <= 0:
                raise InputError(f"length must be > 0, got {row['length']!r}", path=path, line=line, field="length")
            actions = _parse_actions(row["actions"] or "", classes, classes_from, path, line)
            yield CharadesRow(vid, length, ego, actions, line)


def read_id_names(path: str | os.PathLike, *, field: str | None = None,
                  expected: str = "'ID name'") -> dict[str, str]:
    """``{id: name}`` from ``ID name words`` lines (``Charades_v1_classes.txt``: ``c092 Holding a
    phone/camera``; ``Charades_v1_verbclasses.txt``: ``v009 hold``), blank lines skipped. A line
    without a name is an error saying ``expected``; ``field`` names the option the path came from."""
    path = existing_file(path, field)
    out: dict[str, str] = {}
    for line, parts in _lines(path):
        if len(parts) < 2:
            raise InputError(f"expected {expected}", path=path, line=line)
        out[parts[0]] = " ".join(parts[1:])
    if not out:
        raise InputError("file is empty", path=path)
    return out


def read_verb_classes(path: str | os.PathLike) -> dict[str, str]:
    """``{verb id: verb}`` from ``Charades_v1_verbclasses.txt`` (``v009 hold`` lines)."""
    return read_id_names(path, field="verb_classes", expected="'vNNN verb'")


def load_charades_verbs(mapping: str | os.PathLike, verb_classes: str | os.PathLike) -> dict[str, str]:
    """``{action class id: verb}`` from ``Charades_v1_mapping.txt`` (``c000 o011 v009``) and
    ``Charades_v1_verbclasses.txt`` (``v009 hold``)."""
    vpath = existing_file(verb_classes, "verb_classes")
    verbs = read_verb_classes(vpath)
    mpath = existing_file(mapping, "mapping")
    out: dict[str, str] = {}
    for line, parts in _lines(mpath):
        if len(parts) != 3:
            raise InputError("expected 'cNNN oNNN vNNN'", path=mpath, line=line)
        if parts[2] not in verbs:
            raise InputError(f"verb {parts[2]!r} is not in {vpath.name}", path=mpath, line=line, field="verb")
        out[parts[0]] = verbs[parts[2]]
    if not out:
        raise InputError("file is empty", path=mpath)
    return out


# ------------------------------------------------------------------------------------- parsing
def _parse_actions(text: str, classes: Collection[str] | None, classes_from: str, path: Path,
                   line: int) -> tuple[tuple[str, float, float], ...]:
    """``"c092 11.90 21.20;c147 0.00 12.60"`` -> ``(("c092", 11.9, 21.2), ("c147", 0.0, 12.6))``."""
    out = []
    for item in text.split(";"):
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 3:
            raise InputError(f"expected 'cNNN start end', got {item.strip()!r}", path=path, line=line,
                             field="actions")
        cls = parts[0]
        if classes is not None and cls not in classes:
            raise InputError(f"unknown action class {cls!r} (not in {classes_from})", path=path, line=line,
                             field="actions")
        start = parse_number(parts[1], path=path, line=line, field="actions")
        end = parse_number(parts[2], path=path, line=line, field="actions")
        out.append((cls, start, end))
    return tuple(out)


def _is_ego(row: dict, vid: str, path: Path, line: int) -> bool:
    value = row.get("egocentric")
    if value is None:
        return vid.upper().endswith("EGO")
    value = value.strip().lower()
    if value in ("yes", "true", "1"):
        return True
    if value in ("no", "false", "0"):
        return False
    raise InputError(f"expected Yes or No, got {row['egocentric']!r}", path=path, line=line, field="egocentric")


def _class_number(cls: str, path, line: int) -> int:
    m = CLASS_ID.fullmatch(cls)
    if m is None:
        raise InputError(f"expected an action class cNNN, got {cls!r}", path=path, line=line, field="actions")
    return int(m.group(1))


def _class_names(classes: str | os.PathLike | Mapping[str, str]) -> dict[str, str]:
    if isinstance(classes, Mapping):
        return {str(k): str(v) for k, v in classes.items()}
    if not isinstance(classes, str | os.PathLike):
        raise InputError(f"expected a file path or a mapping, got {type(classes).__name__}", field="classes")
    return read_id_names(classes, field="classes", expected="'cNNN class name'")


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, words)`` of every non-blank line."""
    with utf8_text(path), open(path, encoding="utf-8-sig") as fh:
        for line, raw in enumerate(fh, start=1):
            parts = raw.split()
            if parts:
                yield line, parts


def _sniff(path: Path, head: str) -> bool:
    header = next(csv.reader([first_line(head)]), [])
    return all(col in header for col in REQUIRED_COLUMNS)


register_format(AnnotationFormat(
    name=NAME, kind="detection", reader=read_charades_csv, suffixes=(".csv",), sniff=_sniff,
    description="Charades / CharadesEgo CSV (id, ..., actions 'cNNN start end;...', length)",
))
