"""QVHighlights MR + HD: the official test vector, hand-computed cases, edge cases and bad input."""

from __future__ import annotations

import json

import pytest

from conftest import DATA, TESTVECTORS
from momentkit.errors import InputError
from momentkit.metrics import MetricsWarning, evaluate_grounding

VAL = DATA / "qvhighlights" / "highlight_val_release.jsonl"
PREDS = TESTVECTORS / "qvhighlights_val_sample_preds.jsonl"
EXPECTED = TESTVECTORS / "qvhighlights_val_sample_preds_metrics.json"


@pytest.fixture(scope="module")
def testvector_metrics():
    with pytest.warns(MetricsWarning, match="13 queries have a pred_saliency_scores length"):
        return evaluate_grounding(PREDS, VAL)


def test_testvector_brief_block_exactly(testvector_metrics):
    expected = json.loads(EXPECTED.read_text())
    assert testvector_metrics["brief"] == expected["brief"]
    assert list(testvector_metrics["brief"]) == list(expected["brief"])  # official key order
    assert testvector_metrics["brief"]["MR-full-R1@0.5"] == 53.94
    assert testvector_metrics["brief"]["HL-min-VeryGood-Hit1"] == 55.55


def test_testvector_whole_structure_exactly(testvector_metrics):
    expected = json.loads(EXPECTED.read_text())
    assert testvector_metrics == expected
    assert list(testvector_metrics) == list(expected)
    for name in ("full", "long", "middle", "short"):
        assert list(testvector_metrics[name]["MR-mAP"]) == list(expected[name]["MR-mAP"])


def test_val_file_counts():
    rows = [json.loads(line) for line in VAL.read_text().splitlines() if line.strip()]
    assert len(rows) == 1550
    preds = [json.loads(line) for line in PREDS.read_text().splitlines() if line.strip()]
    assert {r["qid"] for r in preds} == {r["qid"] for r in rows}


def test_perfect_windows_on_val():
    rows = [json.loads(line) for line in VAL.read_text().splitlines() if line.strip()]
    preds = [{"qid": r["qid"], "pred_relevant_windows": [[s, e, 1.0] for s, e in r["relevant_windows"]]} for r in rows]
    out = evaluate_grounding(preds, rows)
    # 13 val queries have more than 10 GT windows; only the first 10 predictions count, so such a
    # query has AP 10 / n (precision 1 up to recall 10 / n)
    expected = round(100 * sum(min(1.0, 10 / len(r["relevant_windows"])) for r in rows) / len(rows), 2)
    assert sum(len(r["relevant_windows"]) > 10 for r in rows) == 13
    assert expected == 99.76
    assert set(out["full"]["MR-mAP"].values()) == {expected}
    assert set(out["full"]["MR-R1"].values()) == {100.0}
    assert "HL-min-VeryGood-mAP" not in out["brief"]  # no saliency predicted -> no HD
    # without the cap every query is perfect, in every length range
    out = evaluate_grounding(preds, rows, max_pred_windows=None)
    assert set(out["full"]["MR-mAP"].values()) == {100.0}


# ----------------------------------------------------------------------------- hand-computed MR
def _gt(qid, windows, duration=150, clips=None, scores=None):
    return {
        "qid": qid,
        "duration": duration,
        "relevant_windows": windows,
        "relevant_clip_ids": clips or [],
        "saliency_scores": scores or [],
    }


def test_length_ranges_drop_windows_by_hand():
    gt = [_gt(1, [[0, 12]]), _gt(2, [[0, 4], [10, 24]])]
    preds = [
        {"qid": 1, "pred_relevant_windows": [[0, 12, 0.9], [12, 20, 0.8]]},
        {"qid": 2, "pred_relevant_windows": [[10, 24, 0.9], [0, 4, 0.8]]},
    ]
    out = evaluate_grounding(preds, gt)
    # full: every prediction is exact -> 100
    assert set(out["full"]["MR-mAP"].values()) == {100.0}
    assert set(out["full"]["MR-R1"].values()) == {100.0}
    # short keeps q2's [0, 4] only: [10, 24] is a FP ranked first -> AP 1/2; top-1 misses
    assert set(out["short"]["MR-mAP"].values()) == {50.0}
    assert set(out["short"]["MR-R1"].values()) == {0.0}
    # middle keeps q1's [0, 12] and q2's [10, 24]: both found first -> 100
    assert set(out["middle"]["MR-mAP"].values()) == {100.0}
    # long: no query -> None
    assert out["long"]["MR-mAP"]["average"] is None and out["brief"]["MR-long-mAP"] is None


def test_map_per_threshold_and_average_by_hand():
    gt = [_gt(1, [[0, 12]]), _gt(2, [[0, 4], [10, 14]])]
    preds = [
        {"qid": 1, "pred_relevant_windows": [[0, 12, 0.9], [12, 20, 0.8]]},
        # sorted by score: [0, 2] (IoU 0.5 with [0, 4]), [0, 4], [10, 14]
        {"qid": 2, "pred_relevant_windows": [[10, 14, 0.5], [0, 2, 0.7], [0, 4, 0.6]]},
    ]
    out = evaluate_grounding(preds, gt)["full"]
    # t = 0.5: q2 TP, FP, TP -> 5/6; q1 -> 1; mean 11/12
    assert out["MR-mAP"]["0.5"] == 91.67
    # t >= 0.55: q2 FP, TP, TP -> 2/3; mean 5/6
    assert out["MR-mAP"]["0.55"] == 83.33 and out["MR-mAP"]["0.95"] == 83.33
    # average of unrounded values: (11/12 + 9 * 5/6) / 10 = 0.841666...
    assert out["MR-mAP"]["average"] == 84.17
    # R1 uses the first window AS GIVEN ([10, 14], IoU 1), not the best-scored one
    assert set(out["MR-R1"].values()) == {100.0}


def test_ties_in_scores_keep_file_order():
    gt = [_gt(1, [[0, 10]])]
    preds = [{"qid": 1, "pred_relevant_windows": [[20, 30, 0.5], [0, 10, 0.5]]}]
    out = evaluate_grounding(preds, gt)
    assert out["full"]["MR-mAP"]["0.5"] == 50.0  # FP first, then TP (a reversed order would give 100)


def test_only_first_ten_windows_count():
    gt = [_gt(1, [[0, 10]])]
    windows = [[20, 30, 0.9]] * 10 + [[0, 10, 1.0]]  # the perfect 11th window is cut off
    out = evaluate_grounding([{"qid": 1, "pred_relevant_windows": windows}], gt)
    assert out["full"]["MR-mAP"]["0.5"] == 0.0


def test_zero_length_prediction():
    gt = [_gt(1, [[0, 10]])]
    preds = [{"qid": 1, "pred_relevant_windows": [[5, 5, 0.9], [0, 10, 0.8]]}]
    out = evaluate_grounding(preds, gt)["full"]
    assert out["MR-mAP"]["0.5"] == 50.0  # zero-length window: IoU 0, a FP ranked first
    assert out["MR-R1"]["0.5"] == 0.0


def test_query_without_prediction_counts_as_zero_with_warning():
    gt = [_gt(1, [[0, 10]]), _gt(2, [[0, 10]])]
    preds = [{"qid": 1, "pred_relevant_windows": [[0, 10, 1.0]]}, {"qid": 2, "pred_relevant_windows": []}]
    with pytest.warns(MetricsWarning, match="1 query has an empty pred_relevant_windows"):
        out = evaluate_grounding(preds, gt)
    assert out["brief"]["MR-full-mAP"] == 50.0
    assert out["brief"]["MR-full-R1@0.5"] == 50.0


# ----------------------------------------------------------------------------- hand-computed HD
def _hd_case():
    gt = [
        # 10 clips; annotators: a0 = [4, 3, 2], a1 = [2, 3, 4], a2 = [0, 0, 0] on clips 0..2
        _gt(1, [[0, 6]], duration=20, clips=[0, 1, 2], scores=[[4, 2, 0], [3, 3, 0], [2, 4, 0]]),
        # 2 clips, every annotator says VeryGood everywhere
        _gt(2, [[0, 4]], duration=4, clips=[0, 1], scores=[[4, 4, 4], [4, 4, 4]]),
    ]
    preds = [
        {"qid": 1, "pred_saliency_scores": [0.1, 0.9, 0.5, 0.2, 0, 0, 0, 0, 0, 0]},
        # one value too many: truncated for AP; its maximum (index 2) is beyond the 2 clips -> a miss
        {"qid": 2, "pred_saliency_scores": [0.1, 0.2, 0.9]},
    ]
    return preds, gt


def test_highlight_detection_by_hand():
    preds, gt = _hd_case()
    with pytest.warns(MetricsWarning, match="1 query has a pred_saliency_scores length"):
        out = evaluate_grounding(preds, gt)
    # ranking of q1: clip1 (.9), clip2 (.5), clip3 (.2), clip0 (.1), six tied zeros
    # VeryGood: a0 positive clip0 at rank 4 -> 1/4; a1 clip2 at rank 2 -> 1/2; a2 none -> 0; q2 all positive -> 1
    assert out["HL-min-VeryGood"] == {"HL-mAP": 62.5, "HL-Hit1": 0.0}  # (1/4 + 1/2 + 0 + 3) / 6
    # Good: a0 {0, 1}: (1 + 2/4) / 2 = 3/4; a1 {1, 2}: 1 -> (3/4 + 1 + 0 + 3) / 6 = 0.791666
    assert out["HL-min-Good"] == {"HL-mAP": 79.17, "HL-Hit1": 50.0}
    # Fair: a0 {0, 1, 2}: (1 + 1 + 3/4) / 3 = 11/12, same for a1 -> (11/6 + 0 + 3) / 6 = 29/36
    assert out["HL-min-Fair"] == {"HL-mAP": 80.56, "HL-Hit1": 50.0}
    assert out["brief"] == {
        "HL-min-Fair-mAP": 80.56,
        "HL-min-Fair-Hit1": 50.0,
        "HL-min-Good-mAP": 79.17,
        "HL-min-Good-Hit1": 50.0,
        "HL-min-VeryGood-mAP": 62.5,
        "HL-min-VeryGood-Hit1": 0.0,
    }


def test_highlight_all_negative_gives_zero_and_perfect_gives_100():
    gt = [_gt(1, [[0, 4]], duration=8, clips=[0, 1], scores=[[1, 1, 1], [4, 4, 4]])]
    out = evaluate_grounding([{"qid": 1, "pred_saliency_scores": [0.5, 0.9, 0.1, 0.0]}], gt)
    assert out["HL-min-VeryGood"] == {"HL-mAP": 100.0, "HL-Hit1": 100.0}  # clip 1 ranked first
    assert out["HL-min-Fair"]["HL-mAP"] == 100.0
    gt0 = [_gt(1, [[0, 4]], duration=8, clips=[0], scores=[[1, 1, 1]])]  # nothing reaches Fair
    out = evaluate_grounding([{"qid": 1, "pred_saliency_scores": [0.5, 0.9, 0.1, 0.0]}], gt0)
    assert out["HL-min-Fair"] == {"HL-mAP": 0.0, "HL-Hit1": 0.0}


def test_hit1_takes_first_maximum():
    gt = [_gt(1, [[0, 4]], duration=8, clips=[1], scores=[[4, 4, 4]])]
    out = evaluate_grounding([{"qid": 1, "pred_saliency_scores": [0.9, 0.9, 0.0, 0.0]}], gt)
    assert out["HL-min-VeryGood"]["HL-Hit1"] == 0.0  # clip 0 (first maximum) is negative


# ----------------------------------------------------------------------------- bad input
def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mismatched_qids_say_how_many_and_show_five(tmp_path):
    gt = [_gt(q, [[0, 10]]) for q in range(10)]
    preds = [{"qid": q, "pred_relevant_windows": [[0, 10, 1.0]]} for q in range(3, 12)]
    with pytest.raises(InputError) as err:
        evaluate_grounding(_write_jsonl(tmp_path / "p.jsonl", preds), gt)
    msg = str(err.value)
    assert "3 ground-truth qid(s) have no prediction (0, 1, 2)" in msg
    assert "2 predicted qid(s) are not in the ground truth (10, 11)" in msg
    preds = [{"qid": q, "pred_relevant_windows": [[0, 10, 1.0]]} for q in range(100, 107)]
    with pytest.raises(InputError, match=r"\(e\.g\. 100, 101, 102, 103, 104, \.\.\.\)"):
        evaluate_grounding(preds, gt + [_gt(q, [[0, 1]]) for q in range(10, 12)])


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"qid": 1, "pred_relevant_windows": [[0, 10, 1]]}\n\n{"qid": 2,\n')
    with pytest.raises(InputError, match=r"p\.jsonl:3: malformed JSON"):
        evaluate_grounding(path, [_gt(1, [[0, 10]]), _gt(2, [[0, 10]])])


def test_window_with_start_after_end(tmp_path):
    path = _write_jsonl(tmp_path / "p.jsonl", [
        {"qid": 1, "pred_relevant_windows": [[0, 10, 1.0]]},
        {"qid": 2, "pred_relevant_windows": [[0, 10, 1.0], [12, 8, 0.5]]},
    ])
    with pytest.raises(InputError, match=r"p\.jsonl:2, field 'pred_relevant_windows': window 1 has start > end"):
        evaluate_grounding(path, [_gt(1, [[0, 10]]), _gt(2, [[0, 10]])])


def test_nan_score(tmp_path):
    path = _write_jsonl(tmp_path / "p.jsonl", [{"qid": 1, "pred_relevant_windows": [[0, 10, float("nan")]]}])
    with pytest.raises(InputError, match=r"p\.jsonl:1, field 'pred_relevant_windows': window 0 has a non-finite score"):
        evaluate_grounding(path, [_gt(1, [[0, 10]])])
    path = _write_jsonl(tmp_path / "s.jsonl", [{"qid": 1, "pred_saliency_scores": [0.1, float("nan")]}])
    with pytest.raises(InputError, match=r"s\.jsonl:1, field 'pred_saliency_scores': entry 1 is not a finite number"):
        evaluate_grounding(path, [_gt(1, [[0, 4]], duration=4, clips=[0], scores=[[4, 4, 4]])])


def test_bad_ground_truth_located(tmp_path):
    gt = _write_jsonl(tmp_path / "gt.jsonl", [
        _gt(1, [[0, 4]], duration=4, clips=[0], scores=[[4, 4, 4]]),
        _gt(2, [[0, 4]], duration=4, clips=[5], scores=[[4, 4, 4]]),  # clip 5 of a 2-clip video
    ])
    preds = [{"qid": q, "pred_saliency_scores": [0.1, 0.2]} for q in (1, 2)]
    with pytest.raises(InputError, match=r"gt\.jsonl:2, field 'relevant_clip_ids': clip id 5 is outside"):
        evaluate_grounding(preds, gt)
    with pytest.raises(InputError, match=r"empty"):
        evaluate_grounding([{"qid": 1, "pred_saliency_scores": []}], [_gt(1, [[0, 4]], duration=4)])
    with pytest.raises(InputError, match="duplicate qid 1"):
        evaluate_grounding([{"qid": 1, "pred_relevant_windows": []}] * 2, [_gt(1, [[0, 4]])])
