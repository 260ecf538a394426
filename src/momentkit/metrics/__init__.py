"""Evaluation that prints the numbers the community's official evaluators print.

One module per protocol:

- :func:`evaluate_grounding`: QVHighlights moment retrieval + highlight detection (official JSON);
- :func:`evaluate_single_moment`: Charades-STA / TACoS R1@t, R5@t, mIoU;
- :func:`evaluate_multimoment`: R_m, mAP_m and standard mAP for multi-moment search queries, beside
  the QV-M2 / FlashMMR metrics;
- :func:`evaluate_qv_m2`: the QV-M2 / FlashMMR multi-moment metrics alone (mAP per number of target
  moments, G-mAP, mR@1..3, mIoU@1..3);
- :func:`evaluate_detection`: ActivityNet-style temporal action localisation mAP per tIoU;
- :func:`evaluate_dense`: per-frame multi-label mAP (Charades localize, MultiTHUMOS);
- :func:`evaluate_classification`: video classification top-1 / top-5 accuracy and multi-label mAP;
- :func:`query_diagnostics` (not an official metric): does the model's saliency and top-1 window depend
  on the query, and is its top-1 confidence calibrated.

Every function takes plain Python structures (the community file formats, already parsed) or file
paths, checks them, and raises :class:`~momentkit.errors.InputError` naming the file and line or
field for bad input. :func:`evaluate` picks the protocol from the files when none is given.
"""

from momentkit.metrics.classification import evaluate_classification
from momentkit.metrics.common import MetricsWarning, parse_thresholds
from momentkit.metrics.dense import evaluate_dense
from momentkit.metrics.diagnostics import query_diagnostics
from momentkit.metrics.detection import evaluate_detection
from momentkit.metrics.multimoment import evaluate_multimoment
from momentkit.metrics.qv_m2 import evaluate_qv_m2
from momentkit.metrics.qvhighlights import evaluate_grounding
from momentkit.metrics.records import load_file, load_records
from momentkit.metrics.single_moment import evaluate_single_moment
from momentkit.metrics.tasks import TASKS, evaluate, infer_task

__all__ = [
    "TASKS",
    "MetricsWarning",
    "evaluate",
    "evaluate_classification",
    "evaluate_dense",
    "evaluate_detection",
    "evaluate_grounding",
    "evaluate_multimoment",
    "evaluate_qv_m2",
    "evaluate_single_moment",
    "infer_task",
    "load_file",
    "load_records",
    "parse_thresholds",
    "query_diagnostics",
]
