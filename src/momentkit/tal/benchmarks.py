"""Cross-domain temporal action localisation benchmarks of thesis chapter 2 (Sec. 2.4).

Each scenario is a labelled *source* domain and a *target* domain whose training videos are used
without labels (transductive unsupervised adaptation). Both are ActivityNet-style detection JSON
files (``{"database": {video: {"subset": "training"|"validation", "duration", "fps",
"annotations": [{"segment", "label", "label_id"}]}}}``), the ``data.source`` / ``data.target`` of
``momentkit train`` (``configs/tal/epic100_s5.yaml``, ``epic100_s6.yaml``).

============  ==================  ====================  ==============================================
scenario      source              target                shift
============  ==================  ====================  ==============================================
S1            Dark(55)            All-Dark(55)          counter colour, EPIC-Kitchens-55 videos
S2            White(55)           All-White(55)         counter colour, EPIC-Kitchens-55 videos
S3            Dark(100)           All-Dark(100)         counter colour, videos new in EPIC-Kitchens-100
S4            White(100)          All-White(100)        counter colour, videos new in EPIC-Kitchens-100
S5            All(55)             All(100)              acquisition (camera, lighting): old -> new
S6            All(100)            All(55)               acquisition: new -> old
charades-ego  Charades            CharadesEgo           viewpoint: third person -> egocentric
============  ==================  ====================  ==============================================

"55" are the EPIC-Kitchens-55 videos (``PXX_YY``), "100" the videos new in EPIC-Kitchens-100
(``PXX_1YY``); "All-Dark" means the white- and other-counter kitchens.

EPIC-Kitchens-100 (:func:`build_epic_benchmark`, from the official annotation folder):

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
  ``video_id,subset`` CSV (``split=``). One split per era serves every scenario, so the S1-S4
  domains partition those of S5/S6, as in the thesis's tables.
- Counter colours (S1-S4): the thesis labelled kitchens by eye; no annotation file has them, so the
  map is user input (:func:`read_colour_map`): ``kitchen,colour`` CSV or a JSON object, colour one of
  ``dark``/``white``/``other``, kitchen a participant id (``P01``: all of their videos) or a
  participant qualified by era (``P01@55``, ``P01@100``; wins over ``P01``) for the participants who
  moved kitchen between the two recordings (``ChangingKitchen`` in ``Extension_Participants.csv``).

Charades -> CharadesEgo (:func:`build_charades_ego`, from user files: the AI2 licence forbids
redistributing them): Charades-format CSVs (``id, ..., actions "c092 11.90 21.20;...", length``).
Source: the third-person videos of the Charades train / test CSVs; target: the egocentric videos of
the CharadesEgo train / test CSVs (``egocentric`` column of v1, else an id ending in ``EGO``). Each
action class becomes its verb (``Charades_v1_mapping.txt``: ``c000 o011 v009``;
``Charades_v1_verbclasses.txt``: ``v009 hold``); the 10 majority verbs of the thesis are kept
(:data:`CHARADES_EGO_VERBS`); segments repeated by the collapse (same verb and times in one video)
are kept once.

Every builder returns a :class:`Benchmark` (samples and a ``summary`` of counts per domain, subset
and verb beside the thesis's Tab. 2.1 / 2.2 counts, with notes on every difference);
:meth:`Benchmark.write` writes ``source.json``, ``target.json`` and ``summary.json`` atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from momentkit.data.annotations.fields import parse_number, utf8_text
from momentkit.data.annotations.segments import SegmentTable
from momentkit.data.annotations.windows import DEFAULT_CLIP_TOLERANCE, validate_options
from momentkit.data.records import DetectionSample, Segment
from momentkit.errors import InputError

SUBSETS = ("training", "validation")
COLOURS = ("dark", "white", "other")
ERAS = ("55", "100")
EPIC_VERBS = ("take", "put", "wash", "open", "close", "insert", "turn-on", "cut", "turn-off", "pour")
CHARADES_EGO_VERBS = ("take", "put", "sit", "walk", "hold", "stand", "open", "drink", "smile", "laugh")
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
# Sec. 2.4.2: the verb collapse and the 10 verbs keep 70 % of the CharadesEgo annotations.
THESIS_CHARADES_EGO_RETAINED = 0.70


@dataclasses.dataclass(frozen=True)
class EpicScenario:
    name: str
    source_era: str
    target_era: str
    source_colours: tuple[str, ...] | None  # None: every kitchen
    target_colours: tuple[str, ...] | None
    description: str

    def domain_name(self, role: str) -> str:
        era = self.source_era if role == "source" else self.target_era
        colours = self.source_colours if role == "source" else self.target_colours
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
CHARADES_EGO = "charades-ego"
SCENARIOS = (*EPIC_SCENARIOS, CHARADES_EGO)


@dataclasses.dataclass
class Benchmark:
    """A built scenario: source and target videos (``subset`` set), class names, count summary."""

    scenario: str
    source: list[DetectionSample]
    target: list[DetectionSample]
    classes: tuple[str, ...]
    summary: dict

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``source.json``, ``target.json`` (detection JSON) and ``summary.json`` into ``out_dir``."""
        from momentkit.data.annotations import write_detection_json
        from momentkit.io import write_json

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError("expected a folder, found a file", path=out, field="out")
        out.mkdir(parents=True, exist_ok=True)
        paths = {"source": out / "source.json", "target": out / "target.json", "summary": out / "summary.json"}
        write_detection_json(paths["source"], self.source)
        write_detection_json(paths["target"], self.target)
        write_json(paths["summary"], self.summary)
        return paths


# ------------------------------------------------------------------------------ EPIC-Kitchens
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
    from momentkit.data.annotations import read_epic_csv, read_epic_frames_txt
    from momentkit.data.annotations.epic import load_classes

    root = _folder(epic_dir, "epic")
    classes_path = root / "EPIC_100_verb_classes.csv"
    ids = _class_ids(load_classes(classes_path), verbs, classes_path)
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
    val = read_epic_csv(val_path)
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
        subsets = {}
        for e in eras:
            share = THESIS_VAL_SHARE[e] if val_fraction is None else val_fraction
            subsets.update(hash_split([s.video for s in by_era[e]], round(share * len(by_era[e])), seed=seed))
        split_info = {"split": "hash", "seed": seed,
                      "val_fraction": "thesis" if val_fraction is None else val_fraction}

    colour_of: dict[str, str] = {}
    if sc.source_colours is not None:
        colour_map = read_colour_map(colours) if not isinstance(colours, Mapping) else _colour_mapping(colours)
        colour_of = video_colours(colour_map, by_era[sc.source_era], participants=participants,
                                  path=None if isinstance(colours, Mapping) else colours)

    def domain(role: str) -> list[DetectionSample]:
        era = sc.source_era if role == "source" else sc.target_era
        keep = sc.source_colours if role == "source" else sc.target_colours
        out = []
        for s in by_era[era]:
            extra = dict(s.extra)
            if colour_of:
                extra["colour"] = colour_of[s.video]
                if colour_of[s.video] not in keep:
                    continue
            out.append(dataclasses.replace(s, subset=subsets[s.video], extra=extra))
        return out

    source, target = domain("source"), domain("target")
    _check_disjoint(source, target)
    settings = {**split_info, "exclude_participants": sorted(excluded), "keep_empty": keep_empty,
                "train_annotations": "EPIC_100_train.csv" if (Path(epic_dir) / "EPIC_100_train.csv").is_file()
                else "EPIC_100_train_new.txt"}
    summary = _summary(sc.name, sc.description, source, target, EPIC_VERBS,
                       (sc.domain_name("source"), sc.domain_name("target")), settings)
    summary["notes"] = _epic_notes(summary, removed, empty, keep_empty, split is None)
    return Benchmark(sc.name, source, target, EPIC_VERBS, summary)


def get_epic_scenario(name: str) -> EpicScenario:
    try:
        return EPIC_SCENARIOS[str(name).lower()]
    except KeyError:
        raise InputError(f"unknown EPIC-Kitchens scenario {name!r}; expected one of "
                         f"{', '.join(s.name for s in EPIC_SCENARIOS.values())}", field="scenario") from None


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
    path = _file(path, "split")
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


def read_colour_map(path: str | os.PathLike) -> dict[str, tuple[str, int | None]]:
    """``{kitchen: (colour, line)}`` from a ``kitchen,colour`` CSV (``color`` also accepted) or a JSON
    object ``{"P01": "dark", "P01@100": "white", ...}`` (line ``None``)."""
    path = _file(path, "colours")
    with utf8_text(path):
        text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON: {e.msg}", path=path, line=e.lineno) from None
        if not isinstance(data, dict):
            raise InputError("expected a JSON object {kitchen: colour}", path=path)
        out = {}
        for key, colour in data.items():
            out[_kitchen_key(key, path, None)] = (_colour(colour, path, None, key), None)
    else:
        out = {}
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
    if not out:
        raise InputError("no kitchen in the colour map", path=path)
    return out


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


def _colour_mapping(colours: Mapping[str, str]) -> dict[str, tuple[str, None]]:
    return {_kitchen_key(k, None, None): (_colour(v, None, None, k), None) for k, v in colours.items()}


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


def _check_participants(names: Sequence[str]) -> set[str]:
    """Participant ids to leave out (ones absent from the annotations simply match nothing)."""
    if isinstance(names, str):
        names = [names]
    for name in names:
        if not (isinstance(name, str) and name[:1] == "P" and name[1:].isdigit()):
            raise InputError(f"expected a participant id such as P35, got {name!r}", field="exclude_participants")
    return set(names)


def _epic_notes(summary: dict, removed, empty, keep_empty: bool, hashed: bool) -> list[str]:
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


# ------------------------------------------------------------------------- Charades -> CharadesEgo
def load_charades_verbs(mapping: str | os.PathLike, verb_classes: str | os.PathLike) -> dict[str, str]:
    """``{action class id: verb}`` from ``Charades_v1_mapping.txt`` (``c000 o011 v009``) and
    ``Charades_v1_verbclasses.txt`` (``v009 hold``)."""
    vpath = _file(verb_classes, "verb_classes")
    verbs = read_verb_classes(vpath)
    mpath = _file(mapping, "mapping")
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


def read_verb_classes(path: str | os.PathLike) -> dict[str, str]:
    """``{verb id: verb}`` from ``Charades_v1_verbclasses.txt`` (``v009 hold`` lines)."""
    path = _file(path, "verb_classes")
    verbs: dict[str, str] = {}
    for line, parts in _lines(path):
        if len(parts) < 2:
            raise InputError("expected 'vNNN verb'", path=path, line=line)
        verbs[parts[0]] = " ".join(parts[1:])
    if not verbs:
        raise InputError("file is empty", path=path)
    return verbs


def read_charades_csv(
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
    path = _file(path, "charades")
    index = {v: i for i, v in enumerate(verbs)}
    table = SegmentTable()
    counts: Counter = Counter()
    with utf8_text(path), open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for col in ("id", "actions", "length"):
            if col not in header:
                raise InputError(f"missing required column '{col}'", path=path, line=1, field=col)
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            vid = (row["id"] or "").strip()
            if not vid:
                raise InputError("empty video id", path=path, line=line, field="id")
            if _is_ego(row, vid, path, line) != (view == "ego"):
                continue
            if vid in seen:
                raise InputError(f"duplicate video {vid!r} (first on line {seen[vid]})", path=path, line=line,
                                 field="id")
            seen[vid] = line
            length = parse_number(row["length"], path=path, line=line, field="length")
            if length <= 0:
                raise InputError(f"length must be > 0, got {row['length']!r}", path=path, line=line, field="length")
            v = table.add_video(vid, length, subset, None, {"view": "egocentric" if view == "ego" else "third-person"})
            done = set()
            for item in (row["actions"] or "").split(";"):
                if not item.strip():
                    continue
                parts = item.split()
                if len(parts) != 3:
                    raise InputError(f"expected 'cNNN start end', got {item.strip()!r}", path=path, line=line,
                                     field="actions")
                cls = parts[0]
                if cls not in class_to_verb:
                    raise InputError(f"unknown action class {cls!r} (not in the mapping file)", path=path, line=line,
                                     field="actions")
                start = parse_number(parts[1], path=path, line=line, field="actions")
                end = parse_number(parts[2], path=path, line=line, field="actions")
                counts["actions"] += 1
                verb = class_to_verb[cls]
                if verb not in index:
                    continue
                if dedupe and (verb, start, end) in done:
                    counts["duplicates"] += 1
                    continue
                done.add((verb, start, end))
                table.add_segment(v, start, end, verb, index[verb], {"line": line, "field": "actions"}, path)
    samples = table.build(path=path, on_invalid=on_invalid, clip_tolerance=clip_tolerance)
    for s in samples:
        counts["invalid"] += len(s.extra.pop("invalid_segments", ()))
        counts["kept"] += len(s.segments)
    return samples, counts


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
    views = (("source", "third", (source_train, source_val)), ("target", "ego", (target_train, target_val)))
    if verbs is None:  # count the segments of every verb in the videos used, keep the most frequent
        counts: Counter = Counter()
        for _, view, files in views:
            for f in files:
                got, _ = read_charades_csv(f, class_to_verb, known, view=view, subset="training", dedupe=dedupe,
                                           on_invalid=on_invalid)
                counts.update(g.label for s in got for g in s.segments)
        verbs = [v for v, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:num_verbs]]
    verbs = tuple(verbs)
    unknown = [v for v in verbs if v not in known]
    if unknown:
        raise InputError(f"verb(s) {', '.join(map(repr, unknown))} not in {Path(verb_classes).name} "
                         f"(verbs: {', '.join(known)})", field="verbs")
    stats: dict[str, Counter] = {}
    domains = {}
    for role, view, files in views:
        samples, total = [], Counter()
        for subset, f in zip(SUBSETS, files):
            got, counts = read_charades_csv(f, class_to_verb, verbs, view=view, subset=subset, dedupe=dedupe,
                                            on_invalid=on_invalid)
            if not got:
                raise InputError(f"no {'egocentric' if view == 'ego' else 'third-person'} video in the file",
                                 path=f, field="id")
            samples += got
            total += counts
        if not keep_empty:
            samples = [s for s in samples if s.segments]
        domains[role], stats[role] = samples, total
    _check_disjoint(domains["source"], domains["target"])
    settings = {"verbs": list(verbs), "dedupe": dedupe, "keep_empty": keep_empty, "on_invalid": on_invalid}
    summary = _summary("CharadesEgo", "viewpoint shift: Charades third-person -> CharadesEgo egocentric videos",
                       domains["source"], domains["target"], verbs, ("Charades", "CharadesEgo"), settings)
    notes = []
    for role in ("source", "target"):
        c = stats[role]
        kept = summary[role]["total"]["segments"]
        frac = kept / c["actions"] if c["actions"] else 0.0
        summary[role]["actions_read"] = c["actions"]
        summary[role]["retained_fraction"] = round(frac, 4)
        notes.append(f"{role}: {kept} of {c['actions']} action segments kept ({100 * frac:.1f} %; thesis: about "
                     f"{100 * THESIS_CHARADES_EGO_RETAINED:.0f} % of CharadesEgo); {c['duplicates']} repeats from "
                     f"the verb collapse merged, {c['invalid']} invalid windows dropped.")
    notes.append("The thesis gives no per-domain counts for this benchmark.")
    summary["notes"] = notes
    return Benchmark("CharadesEgo", domains["source"], domains["target"], verbs, summary)


def charades_ego_files(charades_dir: str | os.PathLike, ego_dir: str | os.PathLike, *,
                       mapping: str | os.PathLike | None = None,
                       verb_classes: str | os.PathLike | None = None) -> dict[str, Path]:
    """The files of the official layout: ``Charades_v1_{train,test}.csv`` in ``charades_dir``,
    ``CharadesEgo_v1_{train,test}.csv`` in ``ego_dir``, the mapping and verb classes in either."""
    cdir, edir = _folder(charades_dir, "charades"), _folder(ego_dir, "charades_ego")

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
        "mapping": _file(mapping, "mapping") if mapping else find("Charades_v1_mapping.txt", [cdir, edir], "mapping"),
        "verb_classes": (_file(verb_classes, "verb_classes") if verb_classes
                         else find("Charades_v1_verbclasses.txt", [cdir, edir], "verb_classes")),
    }


def _is_ego(row: dict, vid: str, path, line: int) -> bool:
    value = row.get("egocentric")
    if value is None:
        return vid.upper().endswith("EGO")
    value = value.strip().lower()
    if value in ("yes", "true", "1"):
        return True
    if value in ("no", "false", "0"):
        return False
    raise InputError(f"expected Yes or No, got {row['egocentric']!r}", path=path, line=line, field="egocentric")


def _lines(path: Path):
    with utf8_text(path), open(path, encoding="utf-8-sig") as fh:
        for line, raw in enumerate(fh, start=1):
            parts = raw.split()
            if parts:
                yield line, parts


# ------------------------------------------------------------------------------------- summary
def count_domain(samples: Sequence[DetectionSample], verbs: Sequence[str]) -> dict:
    """Videos, segments, mean segment length (s) and per-verb counts, per subset and in total."""
    out = {}
    for name, group in (*((sub, [s for s in samples if s.subset == sub]) for sub in SUBSETS), ("total", samples)):
        segs = [g for s in group for g in s.segments]
        per = Counter(g.label for g in segs)
        out[name] = {"videos": len(group), "segments": len(segs),
                     "avg_segment_s": round(sum(g.end - g.start for g in segs) / len(segs), 3) if segs else 0.0,
                     "per_verb": {v: per[v] for v in verbs}}
    return out


def _thesis_domain(name: str) -> dict | None:
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


def _summary(name, description, source, target, verbs, domain_names, settings) -> dict:
    summary = {"scenario": name, "description": description, "classes": list(verbs), "settings": settings}
    thesis = {}
    for role, samples, dname in (("source", source, domain_names[0]), ("target", target, domain_names[1])):
        summary[role] = {"domain": dname, **count_domain(samples, verbs)}
        th = _thesis_domain(dname)
        if th is not None:
            thesis[role] = th
    summary["thesis"] = thesis
    return summary


def format_summary(summary: dict) -> str:
    """The summary as text tables: counts per domain and subset, then per verb (thesis beside)."""
    thesis = summary.get("thesis", {})

    def cell(d, key):
        return "-" if d is None else (f"{d[key]:.2f}" if key == "avg_segment_s" else str(d[key]))

    lines = [f"{summary['scenario']}: {summary['description']}", ""]
    head = f"{'domain':<16}{'subset':<12}{'videos':>8}{'segments':>10}{'avg s':>8}"
    if thesis:
        head += f"  | thesis {'videos':>7}{'segments':>10}{'avg s':>8}"
    lines.append(head)
    for role in ("source", "target"):
        dom, th = summary[role], thesis.get(role)
        for sub in (*SUBSETS, "total"):
            row = f"{dom['domain'] if sub == 'training' else '':<16}{sub:<12}" + "".join(
                f"{cell(dom[sub], k):>{w}}" for k, w in (("videos", 8), ("segments", 10), ("avg_segment_s", 8)))
            if thesis:
                t = th[sub] if th else None
                row += "  | " + f"{'':7}" + "".join(
                    f"{cell(t, k):>{w}}" for k, w in (("videos", 7), ("segments", 10), ("avg_segment_s", 8)))
            lines.append(row)
    lines.append("")
    lines.append(f"{'verb':<12}" + "".join(f"{summary[r]['domain'] + ' ' + s[:5]:>22}"
                                          for r in ("source", "target") for s in ("total",)))
    for verb in summary["classes"]:
        row = f"{verb:<12}"
        for role in ("source", "target"):
            ours = summary[role]["total"]["per_verb"][verb]
            th = thesis.get(role, {}).get("total", {}).get("per_verb")
            row += f"{(str(ours) + (f' (thesis {th[verb]})' if th else '')):>22}"
        lines.append(row)
    if summary.get("notes"):
        lines.append("")
        lines += [f"- {n}" for n in summary["notes"]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- helpers
def _check_disjoint(source: Sequence[DetectionSample], target: Sequence[DetectionSample]) -> None:
    both = sorted({s.video for s in source} & {s.video for s in target})
    if both:
        raise InputError(f"{len(both)} video(s) in both domains, e.g. {', '.join(both[:5])}", field="video_id")


def _class_ids(names: Mapping[int, str], verbs: Sequence[str], path: Path) -> dict[int, int]:
    by_key = {key: i for i, key in names.items()}
    unknown = [v for v in verbs if v not in by_key]
    if unknown:
        raise InputError(f"verb(s) {', '.join(map(repr, unknown))} not in the classes file", path=path, field="key")
    return {by_key[v]: i for i, v in enumerate(verbs)}


def _folder(value, field: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise InputError("folder not found" if not path.exists() else "expected a folder, found a file",
                         path=path, field=field)
    return path


def _file(value, field: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise InputError("file not found", path=path, field=field)
    if path.is_dir():
        raise InputError("expected a file, found a folder", path=path, field=field)
    return path
