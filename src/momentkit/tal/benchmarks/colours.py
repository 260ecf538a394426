"""The kitchen -> counter colour map of EPIC-Kitchens scenarios S1-S4 (user input: no annotation
file has the colours; the thesis labelled kitchens by eye).

Either a ``kitchen,colour`` CSV (``color`` also accepted) or a JSON object::

    kitchen,colour                      {"P01": "dark", "P01@100": "white", "P02": "other"}
    P01,dark
    P01@100,white

Colour: ``dark``, ``white`` or ``other``. Kitchen: a participant id (``P01``: all of their videos)
or a participant qualified by era (``P01@55``, ``P01@100``; wins over ``P01``) for the participants
who moved kitchen between the two recordings. Maps are ``{kitchen: (colour, line)}`` (line ``None``
for JSON and in-memory maps), so later errors can point at the line.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence

from momentkit.data.annotations.fields import utf8_text
from momentkit.data.records import DetectionSample
from momentkit.errors import InputError
from momentkit.tal.benchmarks.common import existing_file

COLOURS = ("dark", "white", "other")
ERAS = ("55", "100")
ColourMap = dict[str, tuple[str, int | None]]


def read_colour_map(path: str | os.PathLike) -> ColourMap:
    """``{kitchen: (colour, line)}`` from a ``kitchen,colour`` CSV (``color`` also accepted) or a JSON
    object ``{"P01": "dark", "P01@100": "white", ...}`` (line ``None``)."""
    path = existing_file(path, "colours")
    with utf8_text(path):
        text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        out = _json_colour_map(text, path)
    else:
        out = _csv_colour_map(text, path)
    if not out:
        raise InputError("no kitchen in the colour map", path=path)
    return out


def colour_mapping(colours: Mapping[str, str]) -> ColourMap:
    """An in-memory ``{kitchen: colour}`` map, checked, in the form of :func:`read_colour_map`."""
    return {_kitchen_key(k, None, None): (_colour(v, None, None, k), None) for k, v in colours.items()}


def video_colours(colour_map: Mapping[str, tuple[str, int | None]], videos: Sequence[DetectionSample], *,
                  participants: set[str], path=None) -> dict[str, str]:
    """``{video: colour}``: ``PXX@era`` when the map has it, else ``PXX``. Map keys naming none of
    ``participants`` are an error, as is a video whose kitchen has no colour."""
    for key, (_, line) in colour_map.items():
        if key.split("@", 1)[0] not in participants:
            raise InputError(f"unknown kitchen {key!r}: no EPIC-Kitchens video of participant {key.split('@', 1)[0]}",
                             path=path, line=line, field="kitchen" if line is not None else key)
    out, missing = {}, set()
    for s in videos:
        p, era = s.extra["participant_id"], s.extra["era"]
        hit = colour_map.get(f"{p}@{era}") or colour_map.get(p)
        if hit is None:
            missing.add(f"{p} (or {p}@{era})")
        else:
            out[s.video] = hit[0]
    if missing:
        raise InputError(f"missing colour for kitchen(s) {', '.join(sorted(missing))}", path=path, field="colour")
    return out


def _json_colour_map(text: str, path) -> ColourMap:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON: {e.msg}", path=path, line=e.lineno) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object {kitchen: colour}", path=path)
    return {_kitchen_key(key, path, None): (_colour(colour, path, None, key), None) for key, colour in data.items()}


def _csv_colour_map(text: str, path) -> ColourMap:
    out: ColourMap = {}
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    ccol = "colour" if "colour" in header else "color"
    for col in ("kitchen", ccol):
        if col not in header:
            raise InputError(f"missing required column '{col}' (header: kitchen,colour)", path=path, line=1,
                             field="colour" if col == ccol else col)
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            raise InputError("expected 2 cells: kitchen,colour", path=path, line=line)
        key = _kitchen_key(row["kitchen"], path, line)
        if key in out:
            raise InputError(f"duplicate kitchen {key!r} (first on line {out[key][1]})", path=path, line=line,
                             field="kitchen")
        out[key] = (_colour(row[ccol], path, line, ccol), line)
    return out


def _kitchen_key(key, path, line) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InputError(f"expected a kitchen id (P01, P01@55, P01@100), got {key!r}", path=path, line=line,
                         field="kitchen")
    key = key.strip()
    participant, at, era = key.partition("@")
    if not (participant[:1] == "P" and participant[1:].isdigit()) or (at and era not in ERAS):
        raise InputError(f"expected a kitchen id (P01, P01@55, P01@100), got {key!r}", path=path, line=line,
                         field="kitchen")
    return key


def _colour(value, path, line, field: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError("missing colour (dark, white or other)", path=path, line=line, field=field)
    colour = value.strip().lower() if isinstance(value, str) else value
    if colour not in COLOURS:
        raise InputError(f"colour must be dark, white or other, got {value!r}", path=path, line=line, field=field)
    return colour
