"""Dense-caption JSON (ActivityNet Captions, the PDVC conversion of YouCook2) as grounding samples.

Shape::

    {"v_QOlSCBRmfWY": {"duration": 82.73,
                       "timestamps": [[0.83, 19.86], [17.37, 60.81]],
                       "sentences": ["A young woman is seen ...", " The girl dances ..."]}}

One :class:`GroundingSample` per (video, sentence), in file order. ``qid`` is ``f"{vid}_{i}"``
with ``i`` the index of the sentence in its video's list, so qids do not move when a window is
skipped. The query is the sentence with surrounding white space removed (ActivityNet Captions
sentences after the first often start with a space).

Default ``on_invalid="skip"`` (see :mod:`momentkit.data.annotations.windows`): the official
ActivityNet Captions train file has 4 windows that do not end after they start (2 of zero length,
2 reversed); they are dropped with a warning, as the usual grounding loaders (e.g. 2D-TAN) do.
Ends up to 0.01 s past the duration (hundreds of them, rounding) are clipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from momentkit.data.annotations.fields import (
    as_duration,
    as_list,
    as_pair,
    as_text,
    json_number,
    require,
    utf8_text,
)
from momentkit.data.annotations.registry import AnnotationFormat, expect_samples, register_format
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, check_windows, enforce, validate_options
from momentkit.data.records import GroundingSample
from momentkit.errors import InputError
from momentkit.io import read_json, write_json

NAME = "captions-json"


def read_captions_json(
    path: str | os.PathLike,
    *,
    on_invalid: str = "skip",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> list[GroundingSample]:
    """Read a dense-caption JSON file into one :class:`GroundingSample` per sentence."""
    validate_options(on_invalid, clip_tolerance)
    with utf8_text(path):
        data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object of videos, got {type(data).__name__}", path=path)
    if not data:
        raise InputError("no videos in the file", path=path)
    vids, index, bounds, durations, queries = [], [], [], [], []
    for vid, entry in data.items():
        prefix = f"{vid}."
        duration = as_duration(require(entry, "duration", path=path, prefix=prefix), path=path,
                               field=prefix + "duration")
        stamps = as_list(require(entry, "timestamps", path=path, prefix=prefix), path=path,
                         field=prefix + "timestamps")
        sentences = as_list(require(entry, "sentences", path=path, prefix=prefix), path=path,
                            field=prefix + "sentences")
        if len(stamps) != len(sentences):
            raise InputError(f"{len(stamps)} timestamps for {len(sentences)} sentences", path=path,
                             field=prefix + "timestamps")
        for i, (stamp, sentence) in enumerate(zip(stamps, sentences)):
            bounds.append(as_pair(stamp, path=path, field=f"{prefix}timestamps[{i}]"))
            queries.append(as_text(sentence, path=path, field=f"{prefix}sentences[{i}]").strip())
            vids.append(vid)
            index.append(i)
            durations.append(duration)

    b = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    check = check_windows(b[:, 0], b[:, 1], durations, clip_tolerance)
    keep = enforce(check, on_invalid=on_invalid, path=path,
                   locate=lambda k: {"field": f"{vids[k]}.timestamps[{index[k]}]"})
    starts, ends = check.starts.tolist(), check.ends.tolist()
    return [
        GroundingSample(qid=f"{vids[k]}_{index[k]}", query=queries[k], vid=vids[k], duration=durations[k],
                        windows=((starts[k], ends[k]),))
        for k in np.flatnonzero(keep).tolist()
    ]


def write_captions_json(path: str | os.PathLike, samples: Sequence[GroundingSample]) -> None:
    """Group samples by video (first-appearance order) into dense-caption JSON, atomically.

    Each sample must have exactly one window; all samples of a video must agree on its duration.
    """
    samples = expect_samples(samples, GroundingSample, NAME)
    out: dict[str, dict] = {}
    for i, s in enumerate(samples):
        if len(s.windows) != 1:
            raise InputError(f"{NAME} holds exactly one window per sentence; qid {s.qid!r} has {len(s.windows)}",
                             field=f"samples[{i}].windows")
        entry = out.setdefault(s.vid, {"duration": json_number(s.duration), "timestamps": [], "sentences": []})
        if entry["duration"] != json_number(s.duration):
            raise InputError(f"video {s.vid!r} has two durations: {entry['duration']} and {s.duration}",
                             field=f"samples[{i}].duration")
        (st, ed), = s.windows
        entry["timestamps"].append([json_number(st), json_number(ed)])
        entry["sentences"].append(s.query)
    write_json(path, out, indent=None)


def _sniff(path: Path, head: str) -> bool:
    return head.lstrip().startswith("{") and '"timestamps"' in head and '"sentences"' in head \
        and '"database"' not in head


register_format(AnnotationFormat(
    name=NAME, kind="grounding", reader=read_captions_json, writer=write_captions_json,
    suffixes=(".json",), sniff=_sniff,
    description="dense captions {vid: {duration, timestamps, sentences}} (ActivityNet Captions, YouCook2)",
))
