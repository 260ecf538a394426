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

Modules:

- :mod:`.epic`: :func:`build_epic_benchmark` (S1-S6, from the official EPIC-Kitchens-100 annotation
  folder), with the thesis's Tab. 2.1 / 2.2 counts; :mod:`.splits` (seeded hash split or a user
  ``video_id,subset`` CSV) and :mod:`.colours` (the user's kitchen -> counter colour map of S1-S4).
- :mod:`.charades`: :func:`build_charades_ego` (from the user's Charades / CharadesEgo files, read by
  :mod:`momentkit.data.annotations.charades_csv`).
- :mod:`.common`: :class:`Benchmark` and the count summary.

Every builder returns a :class:`Benchmark` (samples and a ``summary`` of counts per domain, subset
and verb beside the thesis's Tab. 2.1 / 2.2 counts, with notes on every difference);
:meth:`Benchmark.write` writes ``source.json``, ``target.json`` and ``summary.json`` atomically.
"""

from momentkit.data.annotations.charades_csv import load_charades_verbs, read_verb_classes
from momentkit.tal.benchmarks.charades import (
    CHARADES_EGO,
    CHARADES_EGO_VERBS,
    THESIS_CHARADES_EGO_RETAINED,
    build_charades_ego,
    charades_ego_files,
    read_charades_domain,
)
from momentkit.tal.benchmarks.colours import COLOURS, ERAS, read_colour_map, video_colours
from momentkit.tal.benchmarks.common import SUBSETS, Benchmark, count_domain, format_summary
from momentkit.tal.benchmarks.epic import (
    EPIC_SCENARIOS,
    EPIC_VERBS,
    THESIS_COUNTS,
    THESIS_EXCLUDED_PARTICIPANTS,
    THESIS_VAL_SHARE,
    THESIS_VERB_COUNTS,
    EpicScenario,
    build_epic_benchmark,
    era_of,
    get_epic_scenario,
    load_epic_videos,
)
from momentkit.tal.benchmarks.splits import hash_split, read_split_file

SCENARIOS = (*EPIC_SCENARIOS, CHARADES_EGO)

__all__ = [
    "CHARADES_EGO",
    "CHARADES_EGO_VERBS",
    "COLOURS",
    "EPIC_SCENARIOS",
    "EPIC_VERBS",
    "ERAS",
    "SCENARIOS",
    "SUBSETS",
    "THESIS_CHARADES_EGO_RETAINED",
    "THESIS_COUNTS",
    "THESIS_EXCLUDED_PARTICIPANTS",
    "THESIS_VAL_SHARE",
    "THESIS_VERB_COUNTS",
    "Benchmark",
    "EpicScenario",
    "build_charades_ego",
    "build_epic_benchmark",
    "charades_ego_files",
    "count_domain",
    "era_of",
    "format_summary",
    "get_epic_scenario",
    "hash_split",
    "load_charades_verbs",
    "load_epic_videos",
    "read_charades_domain",
    "read_colour_map",
    "read_split_file",
    "read_verb_classes",
    "video_colours",
]
