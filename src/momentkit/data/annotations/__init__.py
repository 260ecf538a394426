"""Annotation readers and writers: every format users have, as the typed records of
:mod:`momentkit.data.records`.

Entry points::

    samples = read_annotations("highlight_val_release.jsonl")          # format detected
    samples = read_annotations("charades_sta_test.txt", durations="Charades_v1_test.csv")
    write_annotations("out.jsonl", samples, "grounding-jsonl")

Formats (``available_formats()``; new ones join with :func:`register_format`):

================== ========= ====== ===========================================================
name               records   writer files
================== ========= ====== ===========================================================
grounding-jsonl    grounding yes    QVHighlights, Lighthouse TACoS / Charades-STA ``.jsonl``
charades-txt       grounding yes    Charades-STA ``VIDEOID start end##sentence``
captions-json      grounding yes    ActivityNet Captions, YouCook2 (PDVC) ``{vid: {timestamps, sentences}}``
detection-json     detection yes    ActivityNet 1.3, ActionFormer / TriDet, OpenTAD ``{database: ...}``
superevents-json   detection no     MultiTHUMOS / Charades ``{vid: {actions: [[cls, s, e]]}}``
charades-csv       detection no     Charades / CharadesEgo ``Charades_v1_train.csv`` (``id,...,actions,length``)
clips-csv          detection no     clip-level labels, Kinetics-style ``label,youtube_id,time_start,time_end,split``
epic-csv           detection no     EPIC-Kitchens-100 CSVs (labelled and ``*_timestamps.csv``)
epic-frames-txt    detection no     ``EPIC_100_train_new.txt`` (frame numbers and class ids)
hd-epic-csv        grounding no     HD-EPIC narrations (the table of ``HD_EPIC_Narrations.pkl`` as CSV), cut
                                    into the HD-EPIC-S windows, 80/20 split per participant
================== ========= ====== ===========================================================

Every problem in a file raises :class:`~momentkit.errors.InputError` naming the file and the line
or field. Windows obey one rule, see :mod:`momentkit.data.annotations.windows`.
"""

from momentkit.data.annotations import (  # noqa: F401  (each module registers its formats)
    captions_json,
    charades_csv,
    clips_csv,
    charades_txt,
    detection_json,
    epic,
    grounding_jsonl,
    hdepic,
    superevents_json,
)
from momentkit.data.annotations.captions_json import read_captions_json, write_captions_json
from momentkit.data.annotations.charades_csv import read_charades_csv
from momentkit.data.annotations.charades_txt import read_charades_txt, write_charades_txt
from momentkit.data.annotations.clips_csv import read_clips_csv
from momentkit.data.annotations.detection_json import read_detection_json, write_detection_json
from momentkit.data.annotations.epic import read_epic_csv, read_epic_frames_txt
from momentkit.data.annotations.grounding_jsonl import read_grounding_jsonl, write_grounding_jsonl
from momentkit.data.annotations.hdepic import read_hdepic_csv
from momentkit.data.annotations.registry import (
    AnnotationFormat,
    available_formats,
    detect_format,
    get_format,
    read_annotations,
    register_format,
    unregister_format,
    write_annotations,
)
from momentkit.data.annotations.superevents_json import read_superevents_json
from momentkit.data.annotations.windows import AnnotationWarning

__all__ = [
    "AnnotationFormat",
    "AnnotationWarning",
    "available_formats",
    "detect_format",
    "get_format",
    "read_annotations",
    "read_captions_json",
    "read_charades_csv",
    "read_charades_txt",
    "read_clips_csv",
    "read_detection_json",
    "read_epic_csv",
    "read_epic_frames_txt",
    "read_grounding_jsonl",
    "read_hdepic_csv",
    "read_superevents_json",
    "register_format",
    "unregister_format",
    "write_annotations",
    "write_captions_json",
    "write_charades_txt",
    "write_detection_json",
    "write_grounding_jsonl",
]
