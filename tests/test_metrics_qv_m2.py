"""QV-M2 / FlashMMR multi-moment metrics: hand values, the official evaluator's numbers on the real
QV-M2 files, the documented departures, the QV-M2 files themselves and ``momentkit evaluate``.

The "official" numbers below were printed by ``standalone_eval/eval.py`` of github.com/Zhuo-Cao/QV-M2
(commit d5d4038) on the same predictions; the hand case was computed by hand first and the script
printed the same numbers.
"""

from __future__ import annotations

import json
import warnings

import pytest

from conftest import DATA
from momentkit.cli.main import main
from momentkit.data.annotations import detect_format, read_annotations
from momentkit.data.stats import annotation_stats
from momentkit.metrics import MetricsWarning, evaluate, evaluate_multimoment, evaluate_qv_m2

QV_M2 = DATA / "qv_m2"
QVH_VAL = DATA / "qvhighlights" / "highlight_val_release.jsonl"
BRIEF = ("MR-full-mAP", "MR-full-mAP@1_tgt", "MR-full-mAP@2_tgt", "MR-full-mAP@3+tgt", "MR-full-mR1",
         "MR-full-mR2", "MR-full-mR3", "MR-full-mIoU@1", "MR-full-mIoU@2", "MR-full-mIoU@3")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _brief(out):
    return {k: out[k] for k in BRIEF}


# ----------------------------------------------------------------------------- by hand
HAND_GT = [
    {"qid": 1, "relevant_windows": [[0, 10], [10, 20]]},
    {"qid": 2, "relevant_windows": [[0, 10]]},
    {"qid": 3, "relevant_windows": [[0, 10], [20, 30], [40, 50]]},
    {"qid": 4, "relevant_windows": [[0, 10], [20, 30], [40, 50], [60, 70]]},
    {"qid": 5, "relevant_windows": [[0, 10], [20, 30], [40, 50]]},
]
HAND_PREDS = [
    {"qid": 1, "pred_relevant_windows": [[5, 15, 0.9], [10, 20, 0.8]]},  # IoU 1/3 with both GT windows, then 1
    {"qid": 2, "pred_relevant_windows": [[0, 10, 0.5], [20, 30, 0.9]]},  # the hit is first in the file, second by score
    {"qid": 3, "pred_relevant_windows": [[0, 10, 0.9], [20, 30, 0.8], [40, 50, 0.7]]},  # perfect
    {"qid": 4, "pred_relevant_windows": [[0, 10, 0.9]]},  # one of four
    {"qid": 5, "pred_relevant_windows": [[100, 110, 0.9]]},  # nothing
]


def test_hand_values():
    out = evaluate_qv_m2(HAND_PREDS, HAND_GT)
    # per-query AP at every threshold 0.5..0.95: q1 FP then TP of 2 -> 1/2 * 1/2; q2 FP (score .9) then TP -> 1/2;
    # q3 1; q4 one TP of 4 -> 1/4; q5 0
    assert out["MR-full-mAP@1_tgt"] == 50.0 and out["MR-full-mAP@2_tgt"] == 25.0
    # 3+: the mean of the group means (n=3: (1 + 0) / 2, n=4: 1/4), not of the queries ((1 + 0 + 1/4) / 3)
    assert out["MR-full-mAP@3+tgt"] == 37.5
    assert out["MR-full-mAP"] == 40.0  # (1/4 + 1/2 + 1 + 1/4 + 0) / 5
    # R@1 (all 5 queries): at 0.30 q1's 1/3 counts -> 4/5; above it 3/5. mR1 = (80 + 13 * 60) / 14
    r1 = out["qv-m2"]["MR-R1"]
    assert r1["0.3"] == 80.0 and r1["0.35"] == 60.0 and r1["0.95"] == 60.0 and len(r1) == 14
    assert out["MR-full-mR1"] == 61.43
    # R@2 (q1, q3): at 0.30 q1's first window takes the FIRST of the two tied GT windows and the second window
    # the other -> 4/4; above 0.30 the first window matches nothing and the second takes GT 2 -> 3/4
    assert out["qv-m2"]["MR-R2"]["0.3"] == 100.0 and out["qv-m2"]["MR-R2"]["0.35"] == 75.0
    assert out["MR-full-mR2"] == 76.79  # (100 + 13 * 75) / 14 = 76.7857
    assert out["MR-full-mR3"] == 100.0  # q3 only
    assert out["qv-m2"]["queries-counted"] == {"top1": 5, "top2": 2, "top3": 1}
    # mIoU over (query, prediction) pairs: top 1 (1/3, 1, 1, 1, 0); top 2 (1/3, 1, 1, 1)
    assert out["MR-full-mIoU@1"] == 66.67 and out["MR-full-mIoU@2"] == 83.33 and out["MR-full-mIoU@3"] == 100.0
    assert out["qv-m2"]["targets"]["3"]["queries"] == 2 and out["qv-m2"]["targets"]["3"]["mAP"] == 50.0


def test_topk_uses_file_order_and_map_uses_scores():
    gt = [{"qid": 1, "relevant_windows": [[0, 10]]}]
    first_hit = [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.1], [50, 60, 0.9]]}]
    out = evaluate_qv_m2(first_hit, gt)
    assert out["MR-full-mR1"] == 100.0 and out["MR-full-mIoU@1"] == 100.0  # the first window as given
    assert out["MR-full-mAP"] == 50.0  # ranked by score: the miss first
    # only the first 10 windows count for mAP: a hit in 11th place is not seen
    late = [{"qid": 1, "pred_relevant_windows": [[50, 60, 0.9]] * 10 + [[0, 10, 0.95]]}]
    assert evaluate_qv_m2(late, gt)["MR-full-mAP"] == 0.0
    assert evaluate_qv_m2(late, gt, max_pred_windows=None)["MR-full-mAP"] == 100.0


def test_undefined_cases():
    # no query with 1 or 2 targets, no query with 2 predictions: None (the script crashes or prints 0)
    gt = [{"qid": 1, "relevant_windows": [[0, 10], [20, 30], [40, 50]]}]
    out = evaluate_qv_m2([{"qid": 1, "pred_relevant_windows": [[0, 10, 0.9]]}], gt)
    assert out["MR-full-mAP@1_tgt"] is None and out["MR-full-mAP@2_tgt"] is None
    assert out["MR-full-mAP@3+tgt"] == pytest.approx(100 / 3, abs=0.01)
    assert out["MR-full-mR2"] is None and out["MR-full-mIoU@3"] is None
    assert out["qv-m2"]["MR-R2"]["0.5"] is None
    # an empty prediction list: AP 0 in its group (the script drops the query), not counted for R@k; one warning
    gt2 = [{"qid": 1, "relevant_windows": [[0, 10]]}, {"qid": 2, "relevant_windows": [[0, 10]]}]
    preds = [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.9]]}, {"qid": 2, "pred_relevant_windows": []}]
    with pytest.warns(MetricsWarning, match="1 query has an empty pred_relevant_windows"):
        out = evaluate_qv_m2(preds, gt2)
    assert out["MR-full-mAP"] == 50.0 and out["MR-full-mAP@1_tgt"] == 50.0
    assert out["MR-full-mR1"] == 100.0 and out["qv-m2"]["queries-counted"]["top1"] == 1
    with warnings.catch_warnings(record=True) as caught:  # evaluate_multimoment warns once, not twice
        warnings.simplefilter("always")
        evaluate_multimoment(preds, gt2, thresholds=[0.5])
    assert len([w for w in caught if issubclass(w.category, MetricsWarning)]) == 1


# ----------------------------------------------------------------------------- the official script, real files
def make_preds(rows):
    """Deterministic predictions: GT windows shifted by -3..3 s with some missed, plus distractors, in an
    order that is not the score order; at least one window per query."""
    out = []
    for i, r in enumerate(rows):
        preds = []
        for j, (s, e) in enumerate(r["relevant_windows"]):
            if (i + j) % 4 == 0:
                continue
            d = ((i * 7 + j * 3) % 5 - 2) * 1.5
            a = max(0.0, s + d)
            preds.append([a, max(a + 1.0, min(150.0, e + d)), ((i * 13 + j * 17) % 100) / 100])
        for m in range(i % 4 + (3 if i % 9 == 0 else 0)):
            a = float((i * 11 + m * 23) % 140)
            preds.append([a, min(150.0, a + 2 + ((i + m) % 9) * 2), ((i * 31 + m * 7) % 100) / 100])
        if not preds:
            preds.append([10.0 * (i % 14), 10.0 * (i % 14) + 8.0, 0.05])
        out.append({"qid": r["qid"], "pred_relevant_windows": preds})
    return out


OFFICIAL = {
    "test.jsonl": {
        "brief": dict(zip(BRIEF, (24.5, 30.39, 23.93, 16.1, 55.7, 53.2, 48.95, 63.27, 61.42, 57.77))),
        "MR-R1": [80.19, 75.23, 75.23, 74.92, 66.25, 61.61, 61.3, 54.49, 51.39, 46.75, 43.03, 38.39, 29.72, 21.36],
        "MR-R3": [76.98, 71.23, 71.23, 71.23, 58.93, 54.17, 53.97, 47.02, 42.46, 37.5, 32.34, 27.38, 22.22, 18.65],
    },
    "val.jsonl": {
        "brief": dict(zip(BRIEF, (33.31, 38.04, 30.35, 12.14, 62.34, 54.28, 48.54, 66.88, 61.43, 56.35))),
        "MR-R1": [79.03, 77.46, 77.12, 77.01, 73.47, 71.95, 71.95, 66.95, 63.46, 58.57, 53.91, 44.91, 33.33, 23.61],
        "MR-R3": [72.95, 68.16, 67.86, 67.66, 58.08, 54.99, 54.79, 47.8, 43.61, 36.73, 33.03, 28.44, 24.75, 20.76],
    },
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_evaluator_numbers_on_qv_m2(name):
    gt = _rows(QV_M2 / name)
    out = evaluate_qv_m2(make_preds(gt), gt)
    assert _brief(out) == OFFICIAL[name]["brief"]
    for k in (1, 3):
        assert list(out["qv-m2"][f"MR-R{k}"].values()) == OFFICIAL[name][f"MR-R{k}"]


def test_generalized_map_is_the_qvhighlights_mr_map():
    gt = _rows(QV_M2 / "test.jsonl")
    preds = make_preds(gt)
    _, qvh = evaluate("grounding", preds, gt)
    assert evaluate_qv_m2(preds, gt)["MR-full-mAP"] == qvh["brief"]["MR-full-mAP"] == 24.5


def test_perfect_predictions_on_qv_m2_val():
    gt = _rows(QV_M2 / "val.jsonl")
    preds = [{"qid": r["qid"], "pred_relevant_windows": [[s, e, 1.0] for s, e in r["relevant_windows"]]} for r in gt]
    out = evaluate_multimoment(preds, gt)
    # only 10 windows per query count for mAP: the queries with n > 10 targets reach AP 10 / n at best, and
    # the 3+ mean weighs each group size alike (the official script prints the same 81.59 and 99.79)
    assert out["MR-full-mAP@3+tgt"] == 81.59 and out["MR-full-mAP"] == 99.79
    group25 = out["qv-m2"]["targets"]["25"]  # 10 of 25 found at every threshold: AP 10 / 25
    assert group25 == {"queries": 1, "mAP": 40.0, **{k: 40.0 for k in group25 if k not in ("queries", "mAP")}}
    assert len(group25) == 12
    assert all(out[k] == 100.0 for k in BRIEF if k not in ("MR-full-mAP@3+tgt", "MR-full-mAP"))
    assert out["R_m@0.5"] == 100.0 and out["mAP_m@0.75"] == 100.0
    assert out["qv-m2"]["queries-counted"] == {"top1": 1779, "top2": 697, "top3": 375}
    assert evaluate_qv_m2(preds, gt, max_pred_windows=None)["MR-full-mAP@3+tgt"] == 100.0


# ----------------------------------------------------------------------------- the QV-M2 files
def test_qv_m2_files():
    val = read_annotations(QV_M2 / "val.jsonl")
    test = read_annotations(QV_M2 / "test.jsonl")
    assert detect_format(QV_M2 / "test.jsonl") == "grounding-jsonl"
    st = annotation_stats(val)
    assert (st["queries"], st["videos"], st["moments"], st["with_saliency"]) == (1779, 1546, 3516, 1550)
    assert st["queries_by_moments"] == {"1": 1082, "2": 322, "3": 164, "4": 73, "5": 45, "6": 31, "7": 15, "8": 16,
                                        "9": 13, "10": 4, "11": 4, "12": 2, "13": 2, "14": 1, "16": 1, "17": 1,
                                        "18": 1, "21": 1, "25": 1}
    st = annotation_stats(test)
    assert (st["queries"], st["videos"], st["moments"], st["with_saliency"]) == (323, 173, 1069, 0)
    assert st["queries_by_moments"] == {"1": 78, "2": 62, "3": 60, "4": 41, "5": 38, "6": 16, "7": 11, "8": 4,
                                        "9": 8, "10": 2, "11": 2, "14": 1}
    # val = the QVHighlights val queries unchanged + 229 new queries (qids 11970..12198, no saliency)
    qvh = {r["qid"]: r for r in _rows(QVH_VAL)}
    rows = _rows(QV_M2 / "val.jsonl")
    old = [r for r in rows if r["qid"] in qvh]
    new = [r for r in rows if r["qid"] not in qvh]
    assert len(old) == len(qvh) == 1550 and all(r == qvh[r["qid"]] for r in old)
    assert len(new) == 229 and {r["qid"] for r in new} == set(range(11970, 12199))
    assert not any("saliency_scores" in r for r in new)
    assert {r["qid"] for r in _rows(QV_M2 / "test.jsonl")} == set(range(12199, 12522))
    assert "MIT License" in (QV_M2 / "LICENSE").read_text()


def test_data_stats_and_evaluate_cli(tmp_path, capsys):
    assert main(["data", "stats", str(QV_M2 / "test.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "queries with 1 / 2 / 3+ moments" in out and "78 / 62 / 183" in out
    gt = _rows(QV_M2 / "test.jsonl")
    pred = tmp_path / "preds.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in make_preds(gt)))
    metrics = tmp_path / "m.json"
    assert main(["evaluate", str(pred), str(QV_M2 / "test.jsonl"), "--task", "multimoment", "--out", str(metrics)]) == 0
    printed = capsys.readouterr().out
    assert "MR-full-mAP@3+tgt" in printed and "R_m@0.5" in printed and "QV-M2 recall of the top k" in printed
    saved = json.loads(metrics.read_text())
    assert _brief(saved) == OFFICIAL["test.jsonl"]["brief"] and "mAP_m@0.5" in saved
