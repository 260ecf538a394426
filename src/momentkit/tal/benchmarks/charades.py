"""Charades -> CharadesEgo (thesis Sec. 2.4.2): viewpoint shift, third person -> egocentric.

Built from user files (the AI2 licence forbids redistributing them): Charades-format CSVs (``id, ...,
actions "c092 11.90 21.20;...", length``). Source: the third-person videos of the Charades train /
test CSVs; target: the egocentric videos of the CharadesEgo train / test CSVs (``egocentric`` column
of v1, else an id ending in ``EGO``). Train CSVs become ``training``, test CSVs ``validation``.

Each action class becomes its verb (``Charades_v1_mapping.txt``: ``c000 o011 v009``;
``Charades_v1_verbclasses.txt``: ``v009 hold``); the 10 majority verbs of the thesis are kept
(:data:`CHARADES_EGO_VERBS`); segments repeated by the collapse (same verb and times in one video)
are kept once. The files are read by :mod:`momentkit.data.annotations.charades_csv` (format
``charades-csv``, whose row parser :func:`read_charades_domain` shares).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from momentkit.data.annotations.charades_csv import iter_charades_rows, load_charades_verbs, read_verb_classes
from momentkit.data.annotations.segments import SegmentTable
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, validate_options
from momentkit.data.records import DetectionSample
from momentkit.errors import InputError
from momentkit.tal.benchmarks.common import (
    SUBSETS,
    Benchmark,
    check_disjoint,
    existing_file,
    existing_folder,
    summarise,
)

CHARADES_EGO = "charades-ego"
CHARADES_EGO_VERBS = ("take", "put", "sit", "walk", "hold", "stand", "open", "drink", "smile", "laugh")
# Sec. 2.4.2: the verb collapse and the 10 verbs keep 70 % of the CharadesEgo annotations.
THESIS_CHARADES_EGO_RETAINED = 0.70
# (summary role, view of the CSV rows it takes)
VIEWS = (("source", "third"), ("target", "ego"))


def build_charades_ego(
    source_train: str | os.PathLike,
    source_val: str | os.PathLike,
    target_train: str | os.PathLike,
    target_val: str | os.PathLike,
    mapping: str | os.PathLike,
    verb_classes: str | os.PathLike,
    *,
    verbs: Sequence[str] | None = CHARADES_EGO_VERBS,
    num_verbs: int = 10,
    dedupe: bool = True,
    keep_empty: bool = True,
    on_invalid: str = "skip",
) -> Benchmark:
    """Charades (third person, source) -> CharadesEgo (egocentric, target), verbs collapsed.

    ``verbs=None`` keeps the ``num_verbs`` most frequent verbs (segments in the videos used, ties by
    name) instead of the thesis's list. Train CSVs become ``training``, test CSVs ``validation``.
    """
    class_to_verb = load_charades_verbs(mapping, verb_classes)
    known = sorted(set(read_verb_classes(verb_classes).values()))
    files = {"source": (source_train, source_val), "target": (target_train, target_val)}
    options = {"dedupe": dedupe, "on_invalid": on_invalid}
    if verbs is None:
        verbs = majority_verbs(files, class_to_verb, known, num_verbs, **options)
    verbs = tuple(verbs)
    unknown = [v for v in verbs if v not in known]
    if unknown:
        raise InputError(f"verb(s) {', '.join(map(repr, unknown))} not in {Path(verb_classes).name} "
                         f"(verbs: {', '.join(known)})", field="verbs")
    domains, stats = {}, {}
    for role, view in VIEWS:
        domains[role], stats[role] = _read_domain(files[role], view, class_to_verb, verbs, **options)
        if not keep_empty:
            domains[role] = [s for s in domains[role] if s.segments]
    check_disjoint(domains["source"], domains["target"])
    settings = {"verbs": list(verbs), "dedupe": dedupe, "keep_empty": keep_empty, "on_invalid": on_invalid}
    summary = summarise("CharadesEgo", "viewpoint shift: Charades third-person -> CharadesEgo egocentric videos",
                        domains["source"], domains["target"], verbs, ("Charades", "CharadesEgo"), settings)
    summary["notes"] = _notes(summary, stats)
    return Benchmark("CharadesEgo", domains["source"], domains["target"], verbs, summary)


def charades_ego_files(charades_dir: str | os.PathLike, ego_dir: str | os.PathLike, *,
                       mapping: str | os.PathLike | None = None,
                       verb_classes: str | os.PathLike | None = None) -> dict[str, Path]:
    """The files of the official layout: ``Charades_v1_{train,test}.csv`` in ``charades_dir``,
    ``CharadesEgo_v1_{train,test}.csv`` in ``ego_dir``, the mapping and verb classes in either
    (keyword arguments of :func:`build_charades_ego`)."""
    cdir, edir = existing_folder(charades_dir, "charades"), existing_folder(ego_dir, "charades_ego")

    def find(name: str, dirs, field: str) -> Path:
        for d in dirs:
            if (d / name).is_file():
                return d / name
        raise InputError(f"{name} not found in {' or '.join(str(d) for d in dirs)}", field=field)

    return {
        "source_train": find("Charades_v1_train.csv", [cdir], "charades"),
        "source_val": find("Charades_v1_test.csv", [cdir], "charades"),
        "target_train": find("CharadesEgo_v1_train.csv", [edir], "charades_ego"),
        "target_val": find("CharadesEgo_v1_test.csv", [edir], "charades_ego"),
        "mapping": (existing_file(mapping, "mapping") if mapping
                    else find("Charades_v1_mapping.txt", [cdir, edir], "mapping")),
        "verb_classes": (existing_file(verb_classes, "verb_classes") if verb_classes
                         else find("Charades_v1_verbclasses.txt", [cdir, edir], "verb_classes")),
    }


def majority_verbs(files: Mapping[str, Sequence[str | os.PathLike]], class_to_verb: Mapping[str, str],
                   known: Sequence[str], num_verbs: int, **options) -> list[str]:
    """The ``num_verbs`` verbs with the most segments in the videos used (ties by name)."""
    counts: Counter = Counter()
    for role, view in VIEWS:
        for f in files[role]:
            got, _ = read_charades_domain(f, class_to_verb, known, view=view, subset="training", **options)
            counts.update(g.label for s in got for g in s.segments)
    return [v for v, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:num_verbs]]


def read_charades_domain(
    path: str | os.PathLike,
    class_to_verb: Mapping[str, str],
    verbs: Sequence[str],
    *,
    view: str,
    subset: str,
    dedupe: bool = True,
    on_invalid: str = "skip",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
) -> tuple[list[DetectionSample], Counter]:
    """The ``view`` (``"third"`` or ``"ego"``) videos of a Charades / CharadesEgo CSV with their segments
    of ``verbs`` (``label_id`` = index in ``verbs``), and counts: ``actions`` (all segments of those
    videos), ``kept``, ``duplicates`` (dropped repeats), ``invalid`` (windows dropped by ``on_invalid``)."""
    validate_options(on_invalid, clip_tolerance)
    path = existing_file(path, "charades")
    index = {v: i for i, v in enumerate(verbs)}
    table = SegmentTable()
    counts: Counter = Counter()
    for row in iter_charades_rows(path, view=view, classes=class_to_verb, classes_from="the mapping file"):
        v = table.add_video(row.video, row.length, subset, None, {"view": row.view})
        counts["actions"] += len(row.actions)
        done = set()
        for cls, start, end in row.actions:
            verb = class_to_verb[cls]
            if verb not in index:
                continue
            if dedupe and (verb, start, end) in done:
                counts["duplicates"] += 1
                continue
            done.add((verb, start, end))
            table.add_segment(v, start, end, verb, index[verb], {"line": row.line, "field": "actions"}, path)
    samples = table.build(path=path, on_invalid=on_invalid, clip_tolerance=clip_tolerance)
    for s in samples:
        counts["invalid"] += len(s.extra.pop("invalid_segments", ()))
        counts["kept"] += len(s.segments)
    return samples, counts


# ---------------------------------------------------------------------------------- steps
def _read_domain(files: Sequence[str | os.PathLike], view: str, class_to_verb: Mapping[str, str],
                 verbs: Sequence[str], **options) -> tuple[list[DetectionSample], Counter]:
    """The ``view`` videos of a domain's train and test CSVs (``training`` / ``validation``) and the
    counts of :func:`read_charades_domain` summed over both."""
    samples, total = [], Counter()
    for subset, f in zip(SUBSETS, files):
        got, counts = read_charades_domain(f, class_to_verb, verbs, view=view, subset=subset, **options)
        if not got:
            raise InputError(f"no {'egocentric' if view == 'ego' else 'third-person'} video in the file",
                             path=f, field="id")
        samples += got
        total += counts
    return samples, total


def _notes(summary: dict, stats: Mapping[str, Counter]) -> list[str]:
    """Per domain the share of action segments kept (also set in the summary), repeats and invalid windows."""
    notes = []
    for role, _ in VIEWS:
        c = stats[role]
        kept = summary[role]["total"]["segments"]
        frac = kept / c["actions"] if c["actions"] else 0.0
        summary[role]["actions_read"] = c["actions"]
        summary[role]["retained_fraction"] = round(frac, 4)
        notes.append(f"{role}: {kept} of {c['actions']} action segments kept ({100 * frac:.1f} %; thesis: about "
                     f"{100 * THESIS_CHARADES_EGO_RETAINED:.0f} % of CharadesEgo); {c['duplicates']} repeats from "
                     f"the verb collapse merged, {c['invalid']} invalid windows dropped.")
    notes.append("The thesis gives no per-domain counts for this benchmark.")
    return notes
