"""Training / validation splits of a benchmark's videos: a seeded hash split, or a user CSV.

The split file is a ``video_id,subset`` CSV, subset ``training`` or ``validation``::

    video_id,subset
    P01_01,training
    P01_102,validation
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Sequence

from momentkit.data.annotations.fields import utf8_text
from momentkit.errors import InputError
from momentkit.tal.benchmarks.common import SUBSETS, existing_file


def hash_split(videos: Iterable[str], num_val: int, *, seed: int = 0) -> dict[str, str]:
    """``{video: subset}`` with the ``num_val`` videos of smallest ``sha256(f"{seed}:{video}")`` in
    validation: the same on every machine and Python version."""
    ranked = sorted(videos, key=lambda v: (hashlib.sha256(f"{seed}:{v}".encode()).hexdigest(), v))
    return {v: ("validation" if i < num_val else "training") for i, v in enumerate(ranked)}


def read_split_file(path: str | os.PathLike, videos: Sequence[str], *, known: set[str] | None = None) -> dict[str, str]:
    """A ``video_id,subset`` CSV (subset ``training`` or ``validation``) covering every video of ``videos``.

    Ids in ``known`` but not in ``videos`` (e.g. of excluded participants) are ignored; other unknown ids
    are an error, as are duplicates and a video of ``videos`` the file does not list.
    """
    path = existing_file(path, "split")
    wanted = set(videos)
    known = wanted if known is None else known | wanted
    out: dict[str, str] = {}
    lines: dict[str, int] = {}
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        for col in ("video_id", "subset"):
            if col not in (reader.fieldnames or []):
                raise InputError(f"missing required column '{col}' (header: video_id,subset)", path=path, line=1,
                                 field=col)
        for row in reader:
            line = reader.line_num
            vid, sub = (row["video_id"] or "").strip(), (row["subset"] or "").strip()
            if sub not in SUBSETS:
                raise InputError(f"subset must be training or validation, got {sub!r}", path=path, line=line,
                                 field="subset")
            if vid in lines:
                raise InputError(f"duplicate video {vid!r} (first on line {lines[vid]})", path=path, line=line,
                                 field="video_id")
            if vid not in known:
                raise InputError(f"unknown video {vid!r}", path=path, line=line, field="video_id")
            lines[vid] = line
            if vid in wanted:
                out[vid] = sub
    missing = sorted(wanted - set(out))
    if missing:
        raise InputError(f"{len(missing)} video(s) of the benchmark have no subset, e.g. {', '.join(missing[:5])}",
                         path=path, field="video_id")
    return out
