"""Multi-moment metrics (R_m, mAP_m, standard mAP): the thesis example, hand values, real files."""

from __future__ import annotations

import json

import numpy as np

from conftest import DATA
from momentkit.metrics import evaluate_multimoment, evaluate_single_moment


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- multi-moment
def test_thesis_example():
    """Two GT moments; AP_m 1 and 1/4 -> mAP_m 62.5 while the standard AP is 0.7."""
    gt = [{"qid": 1, "relevant_windows": [[0, 10], [50, 60]]}]
    preds = [{"qid": 1, "pred_relevant_windows": [
        [0, 10, 0.9],  # TP of g1
        [20, 22, 0.8],  # three predictions matching nothing
        [30, 32, 0.7],
        [40, 42, 0.6],
        [50, 60, 0.5],  # TP of g2, after 3 FPs -> AP_m(g2) = 1 / (1 + 3)
    ]}]
    out = evaluate_multimoment(preds, gt, thresholds=[0.5])
    assert out["mAP_m@0.5"] == 62.5  # (1 + 0.25) / 2
    # standard AP: precision 1 at recall 1/2, 2/5 at recall 1 -> 0.5 + 0.5 * 0.4 = 0.7
    assert out["mAP@0.5"] == 70.0
    assert out["R_m@0.5"] == 50.0  # g1 found before any FP, g2 not
    assert out["matched-preds@0.5"] == 40.0 and out["matched-gt@0.5"] == 100.0
    assert out["num-moments"] == 2


def test_predictions_of_other_moments_are_ignored():
    gt = [{"qid": 1, "relevant_windows": [[0, 10], [20, 30]]}]
    preds = [{"qid": 1, "pred_relevant_windows": [[20, 30, 0.9], [0, 10, 0.8], [40, 50, 0.7]]}]
    out = evaluate_multimoment(preds, gt, thresholds=[0.5])
    # for g1, the first prediction found g2 (ignored), so g1's TP has no FP above it
    assert out["R_m@0.5"] == 100.0 and out["mAP_m@0.5"] == 100.0
    # a moment nobody finds has AP_m 0
    out = evaluate_multimoment([{"qid": 1, "pred_relevant_windows": [[0, 10, 0.9]]}], gt, thresholds=[0.5])
    assert out["mAP_m@0.5"] == 50.0 and out["R_m@0.5"] == 50.0


def test_ranking_by_score_and_active_predictions():
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}]
    # file order puts the FP first, but scores rank the TP first
    preds = [{"qid": 1, "pred_relevant_windows": [[40, 50, 0.2], [0, 10, 0.9]]}]
    out = evaluate_multimoment(preds, gt, thresholds=[0.5], active_threshold=0.5)
    assert out["R_m@0.5"] == 100.0
    assert out["active-preds@score>=0.5"] == 1.0


def test_rm_equals_r1_with_one_moment_per_query():
    rows = _rows(DATA / "tacos" / "tacos_val_release.jsonl")
    assert len(rows) == 4436 and all(len(r["relevant_windows"]) == 1 for r in rows)
    rng = np.random.default_rng(0)
    preds = []
    for r in rows:
        s, e = r["relevant_windows"][0]
        n = 5
        jitter = rng.normal(0, (e - s) * 0.4, size=(n, 2))
        w = np.sort(np.array([s, e]) + jitter, axis=1)
        score = np.sort(rng.random(n))[::-1]  # file order = score order
        preds.append({"qid": r["qid"], "pred_relevant_windows": [[a, b, c] for (a, b), c in zip(w.tolist(), score)]})
    thresholds = (0.3, 0.5, 0.7)
    mm = evaluate_multimoment(preds, rows, thresholds=thresholds)
    single = evaluate_single_moment(preds, rows, thresholds=thresholds, top_k=[1])
    for t in thresholds:
        assert mm[f"R_m@{t}"] == single[f"R1@{t}"]
    assert 10 < single["R1@0.5"] < 90  # a non-trivial case


def test_multimoment_on_youcook2_style_queries():
    """Perfect predictions give 100 on real multi-moment data (YouCook2 val steps as one query per video)."""
    data = json.loads((DATA / "youcook2" / "yc2_val.json").read_text())
    gt = [{"qid": vid, "relevant_windows": v["timestamps"]} for vid, v in data.items()]
    preds = [{"qid": g["qid"], "pred_relevant_windows": [[s, e, 1.0] for s, e in g["relevant_windows"]]} for g in gt]
    out = evaluate_multimoment(preds, gt)
    assert out["num-queries"] == len(data)
    assert out["num-moments"] == sum(len(v["timestamps"]) for v in data.values())
    for t in ("0.1", "0.3", "0.5", "0.75"):
        assert out[f"R_m@{t}"] == 100.0 and out[f"mAP_m@{t}"] == 100.0
