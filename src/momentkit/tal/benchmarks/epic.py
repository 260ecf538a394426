"""EPIC-Kitchens-100 scenarios S1-S6 (thesis Sec. 2.4.1), from the official annotation folder.

The six scenarios and their domains are tabled in :mod:`momentkit.tal.benchmarks`. "55" are the
EPIC-Kitchens-55 videos (``PXX_YY``), "100" the videos new in EPIC-Kitchens-100 (``PXX_1YY``);
"All-Dark" means the white- and other-counter kitchens.

- Segments: the labelled train videos (``EPIC_100_train.csv``, else its public conversion
  ``EPIC_100_train_new.txt``) and ``EPIC_100_validation.csv``; the test videos have no labels and are
  not used. Only the 10 majority verbs are kept (:data:`EPIC_VERBS`, looked up by key in
  ``EPIC_100_verb_classes.csv``); ``label_id`` is the verb's position in that tuple. Videos left with
  no segment stay (``keep_empty``): the thesis counts all 432 EPIC-Kitchens-55 videos, one of which
  (``P04_15``) has none of the 10 verbs.
- Participants: :data:`THESIS_EXCLUDED_PARTICIPANTS` (``P35``) is left out by default. The thesis's
  "100" domain has 194 videos and 27,038 segments: exactly the labelled new videos without P35's 7
  (with them: 201 and 29,483). The thesis does not say why.
- Training / validation: the thesis re-splits each era's videos (342 / 90 old, 150 / 44 new; EPIC's
  own validation split holds 138 old videos and no new one) and does not publish the split. Default:
  a seeded hash split per era with the thesis's validation share (90 of 432, 44 of 194), or a user
  ``video_id,subset`` CSV (``split=``; :mod:`.splits`). One split per era serves every scenario, so
  the S1-S4 domains partition those of S5/S6, as in the thesis's tables.
- Counter colours (S1-S4): the kitchen -> colour map is user input (:mod:`.colours`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from momentkit.data.records import DetectionSample, Segment
from momentkit.errors import InputError
from momentkit.tal.benchmarks.colours import COLOURS, colour_mapping, read_colour_map, video_colours
from momentkit.tal.benchmarks.common import SUBSETS, Benchmark, check_disjoint, existing_folder, summarise
from momentkit.tal.benchmarks.splits import hash_split, read_split_file

EPIC_VERBS = ("take", "put", "wash", "open", "close", "insert", "turn-on", "cut", "turn-off", "pour")
THESIS_EXCLUDED_PARTICIPANTS = ("P35",)
# Validation videos per era in the thesis (Tab. 2.1 / 2.2): 90 of the 432 old, 44 of the 194 new.
THESIS_VAL_SHARE = {"55": 90 / 432, "100": 44 / 194}

# Tab. 2.1 (sources) and Tab. 2.2 (targets): (videos, segments, mean segment length in s) per subset.
THESIS_COUNTS = {
    "Dark(55)": {"training": (126, 8336, 3.11), "validation": (35, 2944, 3.05)},
    "White(55)": {"training": (124, 9995, 2.95), "validation": (31, 1595, 3.75)},
    "Dark(100)": {"training": (45, 5487, 2.34), "validation": (13, 1504, 1.95)},
    "White(100)": {"training": (49, 6895, 2.26), "validation": (19, 2328, 2.79)},
    "All(55)": {"training": (342, 25634, 3.12), "validation": (90, 5510, 3.29)},
    "All(100)": {"training": (150, 20512, 2.10), "validation": (44, 6526, 2.27)},
    "All-Dark(55)": {"training": (216, 17298, 3.12), "validation": (55, 2566, 3.56)},
    "All-White(55)": {"training": (218, 15639, 3.23), "validation": (59, 3915, 3.10)},
    "All-Dark(100)": {"training": (105, 15025, 2.02), "validation": (31, 5022, 2.38)},
    "All-White(100)": {"training": (101, 13617, 2.01), "validation": (25, 4198, 1.99)},
}
# Per-verb counts of the S5/S6 domains, in EPIC_VERBS order. The tables' columns c1..c10 are not in
# one verb order: the training and validation rows list the verbs in different orders. For every verb
# exactly one (training column, validation column) pair sums to its total in the EPIC files, and the
# pairs form a permutation of the columns; these are the counts so re-ordered.
THESIS_VERB_COUNTS = {
    "All(55)": {"training": (6449, 5529, 3828, 2717, 1762, 1708, 1013, 1109, 760, 759),
                "validation": (1352, 1110, 715, 587, 400, 451, 232, 284, 170, 209)},
    "All(100)": {"training": (6347, 5021, 2215, 1715, 1319, 1173, 930, 459, 788, 545),
                 "validation": (1964, 1573, 812, 540, 395, 291, 306, 176, 241, 228)},
}


@dataclasses.dataclass(frozen=True)
class EpicScenario:
    """A scenario: the era (``"55"``/``"100"``) and counter colours (``None``: every kitchen) of each domain."""

    name: str
    source_era: str
    target_era: str
    source_colours: tuple[str, ...] | None  # None: every kitchen
    target_colours: tuple[str, ...] | None
    description: str

    def era(self, role: str) -> str:
        return self.source_era if role == "source" else self.target_era

    def colours(self, role: str) -> tuple[str, ...] | None:
        return self.source_colours if role == "source" else self.target_colours

    def domain_name(self, role: str) -> str:
        """The thesis's name of a domain: ``All(55)``, ``Dark(100)``, ``All-White(55)``, ..."""
        era, colours = self.era(role), self.colours(role)
        if colours is None:
            return f"All({era})"
        if len(colours) == 1:
            return f"{colours[0].capitalize()}({era})"
        (left,) = set(COLOURS) - set(colours)
        return f"All-{left.capitalize()}({era})"


EPIC_SCENARIOS = {
    "s1": EpicScenario("S1", "55", "55", ("dark",), ("white", "other"), "dark -> white + other counters, EK55 videos"),
    "s2": EpicScenario("S2", "55", "55", ("white",), ("dark", "other"), "white -> dark + other counters, EK55 videos"),
    "s3": EpicScenario("S3", "100", "100", ("dark",), ("white", "other"), "dark -> white + other counters, new videos"),
    "s4": EpicScenario("S4", "100", "100", ("white",), ("dark", "other"), "white -> dark + other counters, new videos"),
    "s5": EpicScenario("S5", "55", "100", None, None, "acquisition shift: EK55 videos -> videos new in EK100"),
    "s6": EpicScenario("S6", "100", "55", None, None, "acquisition shift: videos new in EK100 -> EK55 videos"),
}


def get_epic_scenario(name: str) -> EpicScenario:
    """The scenario ``s1`` ... ``s6`` (any case)."""
    try:
        return EPIC_SCENARIOS[str(name).lower()]
    except KeyError:
        raise InputError(f"unknown EPIC-Kitchens scenario {name!r}; expected one of "
                         f"{', '.join(s.name for s in EPIC_SCENARIOS.values())}", field="scenario") from None


def era_of(video_id: str) -> str:
    """``"55"`` for ``PXX_YY`` (EPIC-Kitchens-55), ``"100"`` for ``PXX_1YY`` (new in EPIC-Kitchens-100)."""
    participant, _, number = video_id.partition("_")
    if not (number.isdigit() and len(number) in (2, 3) and participant.startswith("P")):
        raise InputError(f"not an EPIC-Kitchens video id (PXX_YY or PXX_1YY): {video_id!r}", field="video_id")
    return "55" if len(number) == 2 else "100"


def load_epic_videos(epic_dir: str | os.PathLike, *, verbs: Sequence[str] = EPIC_VERBS) -> list[DetectionSample]:
    """Every labelled EPIC-Kitchens-100 video (train and validation files) with its segments of ``verbs``.

    Segments get ``label`` = the verb key and ``label_id`` = its index in ``verbs``; ``extra`` holds
    ``participant_id``, ``era`` (``"55"``/``"100"``) and ``epic_subset`` (``"train"``/``"validation"``).
    """
    from momentkit.data.annotations.epic import load_classes

    root = existing_folder(epic_dir, "epic")
    classes_path = root / "EPIC_100_verb_classes.csv"
    ids = _class_ids(load_classes(classes_path), verbs, classes_path)
    train, val, val_path = _read_labelled_files(root)
    out, seen = [], {}
    for epic_subset, samples in (("train", train), ("validation", val)):
        for s in samples:
            if s.video in seen:
                raise InputError(f"video {s.video!r} is in both the EPIC train and validation files", path=val_path,
                                 field="video_id")
            seen[s.video] = epic_subset
            segs = tuple(Segment(g.start, g.end, verbs[ids[g.label_id]], ids[g.label_id])
                         for g in s.segments if g.label_id in ids)
            extra = {"participant_id": s.video.split("_", 1)[0], "era": era_of(s.video), "epic_subset": epic_subset}
            out.append(DetectionSample(s.video, s.duration, segs, None, s.fps, extra))
    return out


def build_epic_benchmark(
    scenario: str,
    epic_dir: str | os.PathLike,
    *,
    colours: str | os.PathLike | Mapping[str, str] | None = None,
    split: str | os.PathLike | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
    exclude_participants: Sequence[str] = THESIS_EXCLUDED_PARTICIPANTS,
    keep_empty: bool = True,
) -> Benchmark:
    """Build EPIC-Kitchens-100 scenario ``s1`` ... ``s6`` (see the module docstring).

    ``colours``: the kitchen -> counter colour map (a file for :func:`read_colour_map`, or a mapping),
    needed by S1-S4. ``split``: a ``video_id,subset`` CSV; otherwise a hash split seeded by ``seed``
    with ``val_fraction`` of each era's videos in validation (default the thesis's share).
    """
    sc = get_epic_scenario(scenario)
    if sc.source_colours is not None and colours is None:
        raise InputError(f"{sc.name} needs the kitchen -> counter colour map (dark|white|other)", field="colours")
    if val_fraction is not None and not 0.0 < val_fraction < 1.0:
        raise InputError(f"must be in (0, 1), got {val_fraction}", field="val_fraction")
    from momentkit.data.annotations.epic import VIDEO_INFO, load_video_info

    videos = load_epic_videos(epic_dir)
    # every participant of the dataset (test-only ones too), for checking the colour map's kitchens
    participants = {v.split("_", 1)[0] for v in load_video_info(Path(epic_dir) / VIDEO_INFO)}
    excluded = _check_participants(exclude_participants)
    removed = [s for s in videos if s.extra["participant_id"] in excluded]
    videos = [s for s in videos if s.extra["participant_id"] not in excluded]
    empty = sorted(s.video for s in videos if not s.segments)
    if not keep_empty:
        videos = [s for s in videos if s.segments]
    eras = sorted({sc.source_era, sc.target_era})
    by_era = {e: [s for s in videos if s.extra["era"] == e] for e in eras}

    if split is not None:
        known = {s.video for s in videos} | {s.video for s in removed} | set(empty)
        subsets = read_split_file(split, [s.video for e in eras for s in by_era[e]], known=known)
        split_info = {"split": str(split)}
    else:
        subsets = _hash_subsets(by_era, val_fraction, seed)
        split_info = {"split": "hash", "seed": seed,
                      "val_fraction": "thesis" if val_fraction is None else val_fraction}
    colour_of = {}
    if sc.source_colours is not None:
        colour_of = _kitchen_colours(colours, by_era[sc.source_era], participants)

    source, target = (_domain(sc, role, by_era, subsets, colour_of) for role in ("source", "target"))
    check_disjoint(source, target)
    settings = {**split_info, "exclude_participants": sorted(excluded), "keep_empty": keep_empty,
                "train_annotations": "EPIC_100_train.csv" if (Path(epic_dir) / "EPIC_100_train.csv").is_file()
                else "EPIC_100_train_new.txt"}
    domains = (sc.domain_name("source"), sc.domain_name("target"))
    summary = summarise(sc.name, sc.description, source, target, EPIC_VERBS, domains, settings,
                        thesis=_thesis_counts(domains))
    summary["notes"] = _epic_notes(summary, removed, empty, keep_empty, split is None)
    return Benchmark(sc.name, source, target, EPIC_VERBS, summary)


def thesis_domain(name: str) -> dict | None:
    """The thesis's counts of domain ``name`` in the form of :func:`.common.count_domain` (per-verb
    counts for the S5/S6 domains only), or ``None`` for a domain the thesis does not count."""
    counts = THESIS_COUNTS.get(name)
    if counts is None:
        return None
    out = {}
    for sub in SUBSETS:
        v, s, a = counts[sub]
        out[sub] = {"videos": v, "segments": s, "avg_segment_s": a}
    v = sum(out[sub]["videos"] for sub in SUBSETS)
    s = sum(out[sub]["segments"] for sub in SUBSETS)
    out["total"] = {"videos": v, "segments": s,
                    "avg_segment_s": round(sum(counts[x][1] * counts[x][2] for x in SUBSETS) / s, 2)}
    if name in THESIS_VERB_COUNTS:
        per = THESIS_VERB_COUNTS[name]
        for sub in SUBSETS:
            out[sub]["per_verb"] = dict(zip(EPIC_VERBS, per[sub]))
        out["total"]["per_verb"] = {v: a + b for v, a, b in zip(EPIC_VERBS, per["training"], per["validation"])}
    return out


# ------------------------------------------------------------------------------------- steps
def _read_labelled_files(root: Path) -> tuple[list[DetectionSample], list[DetectionSample], Path]:
    """The train videos (official CSV, else ``EPIC_100_train_new.txt``), the validation videos and
    the validation file's path."""
    from momentkit.data.annotations import read_epic_csv, read_epic_frames_txt

    if (root / "EPIC_100_train.csv").is_file():
        train = read_epic_csv(root / "EPIC_100_train.csv")
    elif (root / "EPIC_100_train_new.txt").is_file():
        train = read_epic_frames_txt(root / "EPIC_100_train_new.txt")
    else:
        raise InputError("no labelled EPIC train file (EPIC_100_train.csv or EPIC_100_train_new.txt)", path=root,
                         field="epic")
    val_path = root / "EPIC_100_validation.csv"
    if not val_path.is_file():
        raise InputError("EPIC_100_validation.csv is missing", path=root, field="epic")
    return train, read_epic_csv(val_path), val_path


def _hash_subsets(by_era: Mapping[str, list[DetectionSample]], val_fraction: float | None,
                  seed: int) -> dict[str, str]:
    """``{video: subset}``: a hash split per era, ``val_fraction`` (default the thesis's share) in validation."""
    subsets = {}
    for era, samples in by_era.items():
        share = THESIS_VAL_SHARE[era] if val_fraction is None else val_fraction
        subsets.update(hash_split([s.video for s in samples], round(share * len(samples)), seed=seed))
    return subsets


def _kitchen_colours(colours: str | os.PathLike | Mapping[str, str], videos: Sequence[DetectionSample],
                     participants: set[str]) -> dict[str, str]:
    """``{video: colour}`` of ``videos`` from a colour map file or mapping."""
    if isinstance(colours, Mapping):
        return video_colours(colour_mapping(colours), videos, participants=participants)
    return video_colours(read_colour_map(colours), videos, participants=participants, path=colours)


def _domain(sc: EpicScenario, role: str, by_era: Mapping[str, list[DetectionSample]], subsets: Mapping[str, str],
            colour_of: Mapping[str, str]) -> list[DetectionSample]:
    """The videos of one domain, with their subset (and counter colour in ``extra`` for S1-S4)."""
    keep = sc.colours(role)
    out = []
    for s in by_era[sc.era(role)]:
        extra = dict(s.extra)
        if colour_of:
            extra["colour"] = colour_of[s.video]
            if colour_of[s.video] not in keep:
                continue
        out.append(dataclasses.replace(s, subset=subsets[s.video], extra=extra))
    return out


def _thesis_counts(domains: tuple[str, str]) -> dict[str, dict]:
    pairs = zip(("source", "target"), domains)
    return {role: counts for role, name in pairs if (counts := thesis_domain(name)) is not None}


def _class_ids(names: Mapping[int, str], verbs: Sequence[str], path: Path) -> dict[int, int]:
    """``{EPIC verb class id: index in verbs}``; a verb missing from the classes file is an error."""
    by_key = {key: i for i, key in names.items()}
    unknown = [v for v in verbs if v not in by_key]
    if unknown:
        raise InputError(f"verb(s) {', '.join(map(repr, unknown))} not in the classes file", path=path, field="key")
    return {by_key[v]: i for i, v in enumerate(verbs)}


def _check_participants(names: Sequence[str]) -> set[str]:
    """Participant ids to leave out (ones absent from the annotations simply match nothing)."""
    if isinstance(names, str):
        names = [names]
    for name in names:
        if not (isinstance(name, str) and name[:1] == "P" and name[1:].isdigit()):
            raise InputError(f"expected a participant id such as P35, got {name!r}", field="exclude_participants")
    return set(names)


def _epic_notes(summary: dict, removed, empty, keep_empty: bool, hashed: bool) -> list[str]:
    """The summary's notes: every difference from the thesis's counts and where it comes from."""
    notes = []
    for role in ("source", "target"):
        dom = summary[role]
        thesis = summary["thesis"].get(role)
        if thesis is None:
            continue
        ours_t, th_t = dom["total"], thesis["total"]
        same = ours_t["videos"] == th_t["videos"] and ours_t["segments"] == th_t["segments"]
        notes.append(f"{role} {dom['domain']}: {ours_t['videos']} videos, {ours_t['segments']} segments in all; "
                     f"thesis {th_t['videos']}, {th_t['segments']} ({'same' if same else 'different'}).")
        if "per_verb" in th_t:
            diff = [v for v in summary["classes"] if ours_t["per_verb"][v] != th_t["per_verb"][v]]
            notes.append(f"{role} per-verb totals: " + ("all 10 equal the thesis's." if not diff else
                                                       f"differ for {', '.join(diff)}."))
    if hashed:
        notes.append("Training / validation: the thesis's video split is not published; this one is a seeded hash "
                     "split per era with the thesis's validation share (90 of 432 old videos, 44 of 194 new), so "
                     "per-subset segment and verb counts differ from the thesis's while the totals do not.")
    else:
        notes.append("Training / validation from the given split file.")
    if removed:
        segs = sum(len(s.segments) for s in removed)
        who = ", ".join(sorted({s.extra["participant_id"] for s in removed}))
        notes.append(f"Excluded participant(s) {who}: {len(removed)} videos, {segs} segments of the 10 verbs"
                     + (" (the thesis's new-video domain is the labelled new videos without P35's)."
                        if "P35" in who else "."))
    if empty:
        notes.append(f"Videos without any of the 10 verbs {'kept' if keep_empty else 'dropped'}: {', '.join(empty)}"
                     + (" (the thesis's video counts include such videos)." if keep_empty else "."))
    notes.append("Per-verb thesis counts: Tab. 2.1/2.2 columns re-ordered per subset (see THESIS_VERB_COUNTS).")
    if summary["settings"]["train_annotations"] == "EPIC_100_train_new.txt":
        notes.append("EPIC_100_train.csv is absent: train-video segments come from EPIC_100_train_new.txt, frames "
                     "/ 60 fps (old videos) or 50 fps (new), within one frame of the official timestamps.")
    return notes
