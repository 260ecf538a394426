"""Query diagnostics: saliency correlation between queries of a video, top-1 overlap, calibration (by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from momentkit.metrics.diagnostics import query_diagnostics, reliability

GT = [
    {"qid": 1, "vid": "a", "duration": 8, "relevant_windows": [[0, 4]], "relevant_clip_ids": [0, 1],
     "saliency_scores": [[4], [2]]},
    {"qid": 2, "vid": "a", "duration": 8, "relevant_windows": [[4, 8]], "relevant_clip_ids": [2, 3],
     "saliency_scores": [[2], [4]]},
    {"qid": 3, "vid": "b", "duration": 8, "relevant_windows": [[2, 4]]},  # alone in its video: no pair
]
PREDS = [
    {"qid": 1, "pred_relevant_windows": [[0, 4, 0.9]], "pred_saliency_scores": [1, 2, 3, 4]},
    {"qid": 2, "pred_relevant_windows": [[2, 6, 0.3], [4, 8, 0.2]], "pred_saliency_scores": [4, 3, 2, 1]},
    {"qid": 3, "pred_relevant_windows": [[2, 4, 0.95]], "pred_saliency_scores": [0, 1, 0, 0]},
]


def test_hand_values():
    d = query_diagnostics(PREDS, GT, clip_len=2.0)
    assert d["query-pairs"] == 1
    assert d["query-sensitivity"] == -100.0  # [1, 2, 3, 4] vs [4, 3, 2, 1]
    # ground truth [4, 2, 0, 0] vs [0, 0, 2, 4]: covariance -9, variances 11 -> -9 / 11
    assert d["query-sensitivity-gt"] == pytest.approx(round(-900 / 11, 2))
    assert d["top1-overlap"] == pytest.approx(33.33)  # [0, 4] vs [2, 6]
    assert d["top1-overlap-gt"] == 0.0  # [0, 4] vs [4, 8] touch only
    # top-1: 0.9 right, 0.3 wrong (IoU 1/3 with [4, 8]), 0.95 right: bins 9 -> |1 - 0.925| * 2/3, 3 -> 0.3 * 1/3
    assert d["ECE"] == pytest.approx(round(100 * (0.075 * 2 / 3 + 0.3 / 3), 2))
    assert d["top1-accuracy"] == pytest.approx(66.67)
    assert [r["count"] for r in d["reliability"]] == [1, 2]


def test_query_blind_saliency_is_visible():
    blind = [{**p, "pred_saliency_scores": [1, 2, 3, 4]} for p in PREDS]
    assert query_diagnostics(blind, GT)["query-sensitivity"] == 100.0


def test_windows_give_the_ground_truth_curve_without_scores():
    gt = [{k: v for k, v in g.items() if k not in ("relevant_clip_ids", "saliency_scores")} for g in GT]
    # clips inside the windows: [1, 1, 0, 0] vs [0, 0, 1, 1] -> -1
    assert query_diagnostics(PREDS, gt, clip_len=2.0)["query-sensitivity-gt"] == -100.0


def test_reliability_of_a_calibrated_score_is_near_zero():
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=20000)
    correct = rng.uniform(size=conf.size) < conf
    ece, rows = reliability(conf, correct)
    assert ece < 0.02 and len(rows) == 10 and sum(r["count"] for r in rows) == conf.size
    assert reliability(np.full(10, 0.01), np.ones(10, bool))[0] == pytest.approx(0.99)
