"""HD-EPIC narrations as caption queries, cut into the fixed windows of the HD-EPIC-S benchmarks.

**The file.** HD-EPIC (Perrett et al., CVPR 2025) ships its narrations as
``narrations-and-action-segments/HD_EPIC_Narrations.pkl`` of github.com/hd-epic/hd-epic-annotations: a
pickled pandas DataFrame, one narrated action per row, 16 columns. momentkit does not unpickle files
(loading a pickle runs code), so it reads the same table written as CSV, once, by whoever trusts the
pickle (Python)::

    import pandas as pd
    pd.read_pickle("HD_EPIC_Narrations.pkl").to_csv("HD_EPIC_Narrations.csv", index=False)

The columns read are ``unique_narration_id`` (``P01-20240202-110250-1``), ``participant_id`` (``P01``),
``video_id`` (``P01-20240202-110250``), ``narration`` (the caption), ``start_timestamp`` and
``end_timestamp`` (seconds); the others (``nouns``, ``verbs``, ``pairs``, ``main_actions``, the class
columns, ``hands``, ``narration_timestamp``) and a leading index column are ignored. Rows without a
narration text are skipped (one :class:`AnnotationWarning` with their count). A ``.pkl`` given by
mistake is one :class:`InputError` with the command above.

**Durations.** The table has none. ``durations=`` gives them: a mapping ``{video_id: seconds}`` or a CSV
with ``video_id`` and ``duration`` columns -- ``youtube-links/HD_EPIC_YouTube_URLs.csv`` of the same
repository is one, and is used by default when it lies where the repository puts it (beside the file's
folder) or in the file's folder. Without durations a video lasts until the end of its last narration
(``extra["duration_estimated"] = True``). Narration windows follow
:mod:`momentkit.data.annotations.windows` (default ``on_invalid="error"``).

**Windows (thesis 001, section 3.5.2.3).** The videos are long (954 s on average), so HD-EPIC-S cuts them
into windows of ``window_frames`` = 500 feature frames at ``fps`` = 3 (InternVideo2 features at 3 fps,
so 166.67 s), each an independent video, and drops the windows without any ground truth. Window k covers
``[k * window_frames / fps, (k + 1) * window_frames / fps)`` seconds of the video, i.e. feature frames
``k * 500`` to ``(k + 1) * 500``; its ``vid`` is ``f"{video_id}_{first_frame}_{end_frame}"`` (as
QVHighlights names its 150 s clips), its ``duration`` the window length (shorter for the last window when
the video's duration is known), and windows are relative to its start. The thesis does not say what
happens to a narration crossing a window boundary; ``boundary="clip"`` (default) keeps the part inside
every window it overlaps (the first part keeps the narration id as ``qid``, the next ones get
``f"{id}_w{k}"``), ``boundary="drop"`` keeps only narrations lying inside one window.
``window_frames=None`` keeps whole videos (``vid`` = ``video_id``).

**Split (ibid.: "an 80-20 split of the per-participant original data").** HD-EPIC has no grounding
split. Each participant's videos (the unit, so that no video is both trained and tested on) are sorted
by ``video_id`` -- recording date and time -- and the last ``round(test_fraction * n)`` of them (half
up; default 0.2) are test videos, the others train: the later recordings of every participant are held
out. ``split_seed=`` (an integer) instead shuffles each participant's videos with
``numpy.random.default_rng(split_seed)`` (participants in sorted order) before taking the last ones.
The thesis does not say which videos it held out. Every sample records its ``extra["split"]``;
``split="train"`` or ``"test"`` keeps one side.

Samples (:class:`GroundingSample`, one per narration and window, videos in order of first appearance,
then windows, then file order) carry ``extra``: ``participant_id``, ``video_id``, ``narration_id``,
``split``, and with windows ``window`` (k), ``window_start`` (seconds into the video) and ``frames``
(``[first, end)`` feature frames).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from momentkit.data.annotations.fields import parse_number, utf8_text
from momentkit.data.annotations.registry import AnnotationFormat, first_line, register_format
from momentkit.data.annotations.windows import (
    DEFAULT_CLIP_TOLERANCE,
    AnnotationWarning,
    check_windows,
    enforce,
    validate_options,
)
from momentkit.data.records import GroundingSample
from momentkit.errors import InputError
from momentkit.io import existing_file

NAME = "hd-epic-csv"
COLUMNS = ("unique_narration_id", "participant_id", "video_id", "narration", "start_timestamp", "end_timestamp")
DURATIONS_FILE = "HD_EPIC_YouTube_URLs.csv"
#: The thesis's windows: 500 frames of features at 3 fps.
WINDOW_FRAMES, FPS = 500, 3.0
TEST_FRACTION = 0.2
BOUNDARIES = ("clip", "drop")
SPLITS = ("train", "test")
PICKLE_HINT = ("HD-EPIC's narrations file is a pickled pandas DataFrame, which momentkit does not unpickle "
               "(loading a pickle runs code); convert it once: python -c \"import pandas as pd; "
               "pd.read_pickle('HD_EPIC_Narrations.pkl').to_csv('HD_EPIC_Narrations.csv', index=False)\" "
               "and read the CSV")
DIGITS = 6  # times are rounded to the microsecond (monotone: a window inside its clip stays inside)


def read_hdepic_csv(
    path: str | os.PathLike,
    *,
    window_frames: int | None = WINDOW_FRAMES,
    fps: float = FPS,
    boundary: str = "clip",
    split: str | None = None,
    test_fraction: float = TEST_FRACTION,
    split_seed: int | None = None,
    durations: Mapping[str, float] | str | os.PathLike | None = None,
    on_invalid: str = "error",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> list[GroundingSample]:
    """Read HD-EPIC narrations (CSV) into windowed caption queries (see the module notes)."""
    validate_options(on_invalid, clip_tolerance)
    _check_options(window_frames, fps, boundary, split, test_fraction, split_seed)
    path = existing_file(path)
    if path.suffix.lower() in (".pkl", ".pickle"):
        raise InputError(PICKLE_HINT, path=path)
    known = _load_durations(durations) if durations is not None else _default_durations(path)
    rows = _read_rows(path)

    # video durations (known, else the last narration end) and the narration windows' checks
    videos: dict[str, dict] = {}
    for r in rows:
        v = videos.setdefault(r["video"], {"participant": r["participant"], "line": r["line"], "end": 0.0})
        if v["participant"] != r["participant"]:
            raise InputError(f"video {r['video']!r} belongs to participant {v['participant']!r} on line {v['line']} "
                             f"and to {r['participant']!r} here", path=path, line=r["line"], field="participant_id")
        if math.isfinite(r["end"]):
            v["end"] = max(v["end"], r["end"])
    for vid, v in videos.items():
        v["estimated"] = vid not in known
        v["duration"] = known.get(vid, v["end"])
    check = check_windows([r["start"] for r in rows], [r["end"] for r in rows],
                          [videos[r["video"]]["duration"] for r in rows], clip_tolerance)
    keep = enforce(check, on_invalid=on_invalid, path=path,
                   locate=lambda i: {"line": rows[i]["line"], "field": "start_timestamp/end_timestamp"})

    sides = split_videos(videos, test_fraction, split_seed)
    samples: list[GroundingSample] = []
    order = {vid: i for i, vid in enumerate(videos)}
    pieces = []
    for i, r in enumerate(rows):
        if not keep[i]:
            continue
        v = videos[r["video"]]
        base = {"participant_id": r["participant"], "video_id": r["video"], "narration_id": r["nid"],
                "split": sides[r["video"]]}
        if v["estimated"]:
            base["duration_estimated"] = True
        start, end = float(check.starts[i]), float(check.ends[i])
        if window_frames is None:
            pieces.append(((order[r["video"]], 0, i), GroundingSample(
                qid=r["nid"], query=r["text"], vid=r["video"], duration=v["duration"],
                windows=((start, end),), extra=base)))
            continue
        for k, (a, b) in _window_pieces(start, end, window_frames, fps, boundary):
            w0, w1 = window_bounds(k, window_frames, fps)
            length = round(min(w1, v["duration"]) - w0 if not v["estimated"] else w1 - w0, DIGITS)
            a, b = round(a - w0, DIGITS), min(round(b - w0, DIGITS), length)
            if b <= a:
                continue
            first = k == _first_window(start, window_frames, fps)
            pieces.append(((order[r["video"]], k, i), GroundingSample(
                qid=r["nid"] if first else f"{r['nid']}_w{k}", query=r["text"],
                vid=f"{r['video']}_{k * window_frames}_{(k + 1) * window_frames}", duration=length,
                windows=((a, b),), extra={**base, "window": k, "window_start": round(w0, DIGITS),
                                          "frames": [k * window_frames, (k + 1) * window_frames]})))
    pieces.sort(key=lambda p: p[0])
    samples = [s for _, s in pieces]
    if split is not None:
        samples = [s for s in samples if s.extra["split"] == split]
    return samples


def window_bounds(k: int, window_frames: int, fps: float) -> tuple[float, float]:
    """Start and end (seconds) of window ``k``: ``[k, k + 1) * window_frames / fps``."""
    return k * window_frames / fps, (k + 1) * window_frames / fps


def _first_window(start: float, window_frames: int, fps: float) -> int:
    return int(math.floor(start * fps / window_frames))


def _window_pieces(start: float, end: float, window_frames: int, fps: float, boundary: str):
    """``(k, (a, b))`` for every window k the narration ``[start, end]`` overlaps (``clip``), or for the
    one window holding it whole (``drop``); times in the video's seconds."""
    k0 = _first_window(start, window_frames, fps)
    k1 = max(k0, int(math.ceil(end * fps / window_frames)) - 1)
    if boundary == "drop":
        return [(k0, (start, end))] if end <= window_bounds(k0, window_frames, fps)[1] else []
    out = []
    for k in range(k0, k1 + 1):
        w0, w1 = window_bounds(k, window_frames, fps)
        a, b = max(start, w0), min(end, w1)
        if b > a:
            out.append((k, (a, b)))
    return out


def split_videos(videos: Mapping[str, Mapping], test_fraction: float = TEST_FRACTION,
                 split_seed: int | None = None) -> dict[str, str]:
    """``{video_id: "train" | "test"}``: per participant (``videos[vid]["participant"]``), the last
    ``round(test_fraction * n)`` (half up) of its videos sorted by id -- shuffled first with
    ``split_seed`` -- are test videos."""
    by_participant: dict[str, list[str]] = {}
    for vid, v in videos.items():
        by_participant.setdefault(v["participant"], []).append(vid)
    rng = None if split_seed is None else np.random.default_rng(split_seed)
    out = {}
    for participant in sorted(by_participant):
        vids = sorted(by_participant[participant])
        if rng is not None:
            vids = [vids[i] for i in rng.permutation(len(vids))]
        n_test = int(math.floor(test_fraction * len(vids) + 0.5))
        for j, vid in enumerate(vids):
            out[vid] = "test" if j >= len(vids) - n_test else "train"
    return out


def _check_options(window_frames, fps, boundary, split, test_fraction, split_seed) -> None:
    if window_frames is not None and (isinstance(window_frames, bool) or not isinstance(window_frames, int)
                                      or window_frames < 1):
        raise InputError(f"must be a positive number of frames or None, got {window_frames!r}", field="window_frames")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
        raise InputError(f"must be a number > 0, got {fps!r}", field="fps")
    if boundary not in BOUNDARIES:
        raise InputError(f"must be one of {', '.join(BOUNDARIES)}, got {boundary!r}", field="boundary")
    if split is not None and split not in SPLITS:
        raise InputError(f"must be one of {', '.join(SPLITS)} (or absent for both), got {split!r}", field="split")
    if (isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float)
            or not 0 <= test_fraction <= 1):
        raise InputError(f"must be a number in [0, 1], got {test_fraction!r}", field="test_fraction")
    if split_seed is not None and (isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0):
        raise InputError(f"must be an integer >= 0 or None, got {split_seed!r}", field="split_seed")


def _read_rows(path: Path) -> list[dict]:
    rows: list[dict] = []
    seen: dict[str, int] = {}
    skipped: list[int] = []
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if not header:
            raise InputError("file is empty", path=path)
        for col in COLUMNS:
            if col not in header:
                raise InputError(f"missing required column '{col}' (an HD-EPIC narrations CSV has "
                                 f"{', '.join(COLUMNS)}, ...)", path=path, line=1, field=col)
        for row in reader:
            line = reader.line_num
            if None in row:  # more cells than the header has
                raise InputError(f"{len(header) + len(row[None])} cells for {len(header)} columns", path=path,
                                 line=line)
            values = {c: (row[c] or "").strip() for c in COLUMNS}
            nid = values["unique_narration_id"]
            for col in ("unique_narration_id", "participant_id", "video_id"):
                if not values[col]:
                    raise InputError("is empty", path=path, line=line, field=col)
            if nid in seen:
                raise InputError(f"duplicate unique_narration_id {nid!r} (first on line {seen[nid]})", path=path,
                                 line=line, field="unique_narration_id")
            seen[nid] = line
            start = _time(values["start_timestamp"], path, line, "start_timestamp")
            end = _time(values["end_timestamp"], path, line, "end_timestamp")
            text = " ".join(values["narration"].split())
            if not text or text.lower() == "nan":  # pandas writes a missing narration as an empty cell
                skipped.append(line)
                continue
            rows.append({"line": line, "nid": nid, "participant": values["participant_id"],
                         "video": values["video_id"], "text": text, "start": start, "end": end})
    if not seen:
        raise InputError("no narration rows", path=path)
    if skipped:
        warnings.warn(AnnotationWarning(f"{path}: skipped {len(skipped)} narration(s) without text "
                                        f"(first on line {skipped[0]})"), stacklevel=3)
    return rows


def _time(text: str, path: Path, line: int, field: str) -> float:
    return parse_number(text, path=path, line=line, field=field)


def _load_durations(source) -> dict[str, float]:
    """``{video_id: seconds}`` from a mapping or a CSV with ``video_id`` and ``duration`` columns."""
    if isinstance(source, Mapping):
        out = {}
        for vid, d in source.items():
            if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d) or d <= 0:
                raise InputError(f"duration of {vid!r} must be a number > 0, got {d!r}", field="durations")
            out[str(vid)] = float(d)
        return out
    if not isinstance(source, str | os.PathLike):
        raise InputError(f"expected a mapping or the path of a CSV, got {type(source).__name__}", field="durations")
    path = existing_file(source, field="durations")
    out = {}
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for col in ("video_id", "duration"):
            if col not in header:
                raise InputError(f"missing required column '{col}'", path=path, line=1, field=col)
        for row in reader:
            d = parse_number(row["duration"] or "", path=path, line=reader.line_num, field="duration")
            if d <= 0:
                raise InputError(f"duration must be > 0, got {d:g}", path=path, line=reader.line_num, field="duration")
            out[(row["video_id"] or "").strip()] = d
    if not out:
        raise InputError("no durations", path=path)
    return out


def _default_durations(path: Path) -> dict[str, float]:
    for candidate in (path.parent.parent / "youtube-links" / DURATIONS_FILE, path.parent / DURATIONS_FILE):
        if candidate.is_file():
            return _load_durations(candidate)
    return {}


def _sniff(path: Path, head: str) -> bool:
    if path.suffix.lower() in (".pkl", ".pickle"):
        return "narration" in path.name.lower()
    header = [c.strip() for c in next(csv.reader([first_line(head)]), [])]
    return all(c in header for c in COLUMNS)


register_format(AnnotationFormat(
    name=NAME, kind="grounding", reader=read_hdepic_csv, suffixes=(".csv", ".pkl"), sniff=_sniff,
    description="HD-EPIC narrations (the 16-column table as CSV), cut into HD-EPIC-S windows",
))
