"""Single-moment grounding metrics (R1/R5@t, mIoU): hand values and TACoS."""

from __future__ import annotations

import json

import pytest

from conftest import DATA
from momentkit.errors import InputError
from momentkit.metrics import MetricsWarning, evaluate_single_moment

TACOS_TEST = DATA / "tacos" / "tacos_test_release.jsonl"


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- single moment
def test_single_moment_by_hand():
    gt = [{"qid": q, "relevant_windows": [[0, 10]]} for q in "abc"]
    preds = [
        {"qid": "a", "pred_relevant_windows": [[0, 10]]},  # IoU 1
        {"qid": "b", "pred_relevant_windows": [[0, 6], [0, 10]]},  # top-1 IoU 0.6, top-5 1
        {"qid": "c", "pred_relevant_windows": [[20, 30, 0.9], [5, 10, 0.1]]},  # top-1 0, top-5 0.5
    ]
    out = evaluate_single_moment(preds, gt)
    assert out == {
        "R1@0.3": 66.67,
        "R1@0.5": 66.67,
        "R1@0.7": 33.33,
        "R5@0.3": 100.0,
        "R5@0.5": 100.0,
        "R5@0.7": 66.67,
        "mIoU": 53.33,  # (1 + 0.6 + 0) / 3
    }


def test_single_moment_empty_prediction_is_a_miss():
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}, {"qid": 2, "relevant_windows": [[0, 10]]}]
    preds = [{"qid": 1, "pred_relevant_windows": [[0, 10]]}, {"qid": 2, "pred_relevant_windows": []}]
    with pytest.warns(MetricsWarning, match="1 query has an empty"):
        out = evaluate_single_moment(preds, gt, thresholds=[0.5], top_k=[1])
    assert out == {"R1@0.5": 50.0, "mIoU": 50.0}


def test_tacos_perfect_and_shifted_predictions():
    rows = _rows(TACOS_TEST)
    assert len(rows) == 4001
    perfect = [{"qid": r["qid"], "pred_relevant_windows": r["relevant_windows"]} for r in rows]
    assert set(evaluate_single_moment(perfect, rows).values()) == {100.0}
    # every window shifted by a quarter of its length: IoU = 0.75 / 1.25 = 0.6
    shifted = []
    for r in rows:
        s, e = r["relevant_windows"][0]
        q = (e - s) / 4
        shifted.append({"qid": r["qid"], "pred_relevant_windows": [[s + q, e + q]]})
    out = evaluate_single_moment(shifted, rows)
    assert (out["R1@0.3"], out["R1@0.5"], out["R1@0.7"], out["mIoU"]) == (100.0, 100.0, 0.0, 60.0)


def test_single_moment_bad_input(tmp_path):
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}]
    with pytest.raises(InputError, match="start > end"):
        evaluate_single_moment([{"qid": 1, "pred_relevant_windows": [[5, 1]]}], gt)
    with pytest.raises(InputError, match="no ground-truth window"):
        evaluate_single_moment([{"qid": 1, "pred_relevant_windows": [[0, 1]]}], [{"qid": 1, "relevant_windows": []}])
    with pytest.raises(InputError, match="missing 'pred_relevant_windows'"):
        evaluate_single_moment([{"qid": 1}], gt)
