"""ActivityNet-style detection mAP: hand-computed values, a loop reference, THUMOS14 ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DATA
from momentkit.errors import InputError
from momentkit.metrics import MetricsWarning, evaluate_detection

THUMOS = DATA / "thumos14" / "thumos14.json"


def _gt():
    return {"database": {
        "v1": {"subset": "Test", "duration": 60, "annotations": [
            {"segment": [0, 10], "label": "A"},
            {"segment": [20, 30], "label": "A"},
            {"segment": [40, 50], "label": "B"},
        ]},
        "v2": {"subset": "Test", "duration": 60, "annotations": [{"segment": [0, 10], "label": "A"}]},
        "v3": {"subset": "Validation", "duration": 60, "annotations": [{"segment": [0, 10], "label": "A"}]},
    }}


def _preds():
    return {"results": {
        "v1": [
            {"segment": [0, 10], "label": "A", "score": 0.9},
            {"segment": [0, 10], "label": "A", "score": 0.8},  # duplicate: FP
            {"segment": [20, 31], "label": "A", "score": 0.7},  # IoU 10/11: TP at 0.5, FP at 0.95
            {"segment": [40, 50], "label": "B", "score": 0.6},
        ],
        "v2": [
            {"segment": [0, 10], "label": "A", "score": 0.95},
            {"segment": [0, 10], "label": "B", "score": 0.5},  # no B in v2: FP
        ],
    }}


def test_detection_by_hand():
    out = evaluate_detection(_preds(), _gt(), subset="test", tiou=[0.5, 0.95])
    # class A ranked: v2 TP, v1 TP, v1 FP, v1 TP@0.5 / FP@0.95; 3 GT
    #   t=0.5: precision 1, 1, 2/3, 3/4 at recall 1/3, 2/3, 2/3, 1 -> 1/3 + 1/3 + 1/3 * 3/4 = 11/12
    #   t=0.95: recall stops at 2/3 with precision 1 -> 2/3
    # class B: TP then FP, 1 GT -> 1
    assert out["per-class"]["A"] == {"AP@0.5": 91.67, "AP@0.95": 66.67, "average": 79.17, "num-gt": 3}
    assert out["per-class"]["B"] == {"AP@0.5": 100.0, "AP@0.95": 100.0, "average": 100.0, "num-gt": 1}
    assert out["mAP@0.5"] == 95.83  # (11/12 + 1) / 2
    assert out["mAP@0.95"] == 83.33  # (2/3 + 1) / 2
    assert out["average-mAP"] == 89.58  # mean of the unrounded values
    assert (out["num-videos"], out["num-classes"], out["num-gt-segments"]) == (2, 2, 4)


def test_labels_match_by_value_and_bare_prediction_dict():
    gt = _gt()
    for v in gt["database"].values():
        for a in v["annotations"]:
            a["label"] = {"A": 0, "B": 1}[a["label"]]
    preds = _preds()["results"]  # bare {video: [...]}
    for items in preds.values():
        for p in items:
            p["label"] = {"A": "0", "B": "1"}[p["label"]]
    out = evaluate_detection(preds, gt, subset="Test", tiou=[0.5, 0.95])
    assert out["mAP@0.5"] == 95.83 and out["per-class"]["0"]["AP@0.5"] == 91.67


def test_predictions_outside_the_subset_are_false_positives():
    preds = _preds()
    preds["results"]["v3"] = [{"segment": [0, 10], "label": "A", "score": 0.99}]
    with pytest.warns(MetricsWarning, match="1 predicted videos are not in the evaluated ground truth"):
        out = evaluate_detection(preds, _gt(), subset="test", tiou=[0.5])
    # class A: FP, TP, TP, FP, TP -> precision 0, 1/2, 2/3, 1/2, 3/5 at recall 0, 1/3, 2/3, 2/3, 1
    # interpolated: 1/3 * 2/3 + 1/3 * 2/3 + 1/3 * 3/5
    assert out["per-class"]["A"]["AP@0.5"] == round(100 * (2 / 9 + 2 / 9 + 1 / 5), 2)


def test_unknown_labels_are_ignored_with_warning():
    preds = _preds()
    preds["results"]["v1"].append({"segment": [0, 60], "label": "C", "score": 1.0})
    with pytest.warns(MetricsWarning, match="labels without any ground-truth segment"):
        out = evaluate_detection(preds, _gt(), subset="test", tiou=[0.5, 0.95])
    assert out["mAP@0.5"] == 95.83


def test_subset_is_required_when_several(tmp_path):
    with pytest.raises(InputError, match="several subsets"):
        evaluate_detection(_preds(), _gt())
    with pytest.raises(InputError, match="no video of subset 'train'"):
        evaluate_detection(_preds(), _gt(), subset="train")


def test_bad_predictions_are_located(tmp_path):
    bad = _preds()
    bad["results"]["v2"][1]["segment"] = [10, 0]
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"pred\.json, field 'results\.v2\[1\]\.segment': start > end"):
        evaluate_detection(path, _gt(), subset="test")
    bad = _preds()
    bad["results"]["v1"][0]["score"] = float("nan")
    with pytest.raises(InputError, match=r"field 'results\.v1\[0\]\.score': expected a finite number"):
        evaluate_detection(bad, _gt(), subset="test")


def _reference_map(preds, gt, thresholds):
    """Straight loops after the ActivityNet evaluator (stable score order, ties to the last GT)."""
    classes = sorted({a["label"] for v in gt.values() for a in v})
    aps = []
    for c in classes:
        gts = {vid: [a["segment"] for a in anns if a["label"] == c] for vid, anns in gt.items()}
        npos = sum(len(x) for x in gts.values())
        plist = [(p["score"], vid, p["segment"]) for vid, items in preds.items() for p in items if p["label"] == c]
        order = sorted(range(len(plist)), key=lambda i: -plist[i][0])
        row = []
        for t in thresholds:
            locked = set()
            tp = []
            for i in order:
                _, vid, (ps, pe) = plist[i]
                segs = gts.get(vid, [])
                ious = [max(0, min(pe, ge) - max(ps, gs)) / ((pe - ps) + (ge - gs) - max(0, min(pe, ge) - max(ps, gs)))
                        for gs, ge in segs]
                hit = False
                for j in np.argsort(ious, kind="stable")[::-1]:
                    if ious[j] < t:
                        break
                    if (vid, j) in locked:
                        continue
                    locked.add((vid, j))
                    hit = True
                    break
                tp.append(hit)
            tp = np.array(tp, float)
            tpc, fpc = np.cumsum(tp), np.cumsum(1 - tp)
            rec, prec = tpc / npos, tpc / np.maximum(tpc + fpc, 1)
            mprec = np.concatenate([[0], prec, [0]])
            mrec = np.concatenate([[0], rec, [1]])
            for k in range(len(mprec) - 2, -1, -1):
                mprec[k] = max(mprec[k], mprec[k + 1])
            idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
            row.append(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))
        aps.append(row)
    return np.mean(aps, axis=0)


def test_agrees_with_loop_reference_on_random_detections():
    rng = np.random.default_rng(3)
    gt, preds = {}, {}
    for v in range(12):
        anns = []
        for _ in range(int(rng.integers(1, 8))):
            s = float(rng.integers(0, 90))
            anns.append({"segment": [s, s + float(rng.integers(1, 15))], "label": f"c{rng.integers(0, 4)}"})
        gt[f"v{v}"] = anns
        preds[f"v{v}"] = [
            {"segment": [a["segment"][0] + float(rng.normal(0, 2)), a["segment"][1] + float(rng.normal(0, 2)) + 3],
             "label": a["label"] if rng.random() < 0.8 else f"c{rng.integers(0, 4)}",
             "score": float(np.round(rng.random(), 2))}  # rounded: ties across videos
            for a in anns for _ in range(int(rng.integers(1, 4)))
        ]
    thresholds = [0.1, 0.3, 0.5, 0.7]
    db = {"database": {v: {"subset": "test", "annotations": anns} for v, anns in gt.items()}}
    out = evaluate_detection(preds, db, tiou=thresholds)
    expected = _reference_map(preds, gt, thresholds)
    assert [out[f"mAP@{t}"] for t in thresholds] == [round(100 * x, 2) for x in expected]


def test_thumos14_ground_truth_as_predictions():
    db = json.loads(THUMOS.read_text())["database"]
    test = {v: info for v, info in db.items() if info["subset"] == "Test"}
    n_segments = sum(len(info["annotations"]) for info in test.values())
    n_classes = len({a["label"] for info in test.values() for a in info["annotations"]})
    assert (len(test), n_segments, n_classes) == (212, 3358, 20)
    preds = {v: [{"segment": a["segment"], "label": a["label"], "score": 1.0} for a in info["annotations"]]
             for v, info in test.items()}
    out = evaluate_detection({"results": preds}, THUMOS, subset="Test", tiou="thumos")
    assert [out[k] for k in ("mAP@0.3", "mAP@0.4", "mAP@0.5", "mAP@0.6", "mAP@0.7", "average-mAP")] == [100.0] * 6
    assert (out["num-videos"], out["num-gt-segments"], out["num-classes"]) == (212, 3358, 20)
    # dropping every second prediction of each video halves recall: AP = 1/2 per class
    half = {v: items[::2] for v, items in preds.items()}
    expected_ap = []
    for c in sorted({a["label"] for info in test.values() for a in info["annotations"]}):
        kept = sum(1 for items in half.values() for p in items if p["label"] == c)
        total = sum(1 for info in test.values() for a in info["annotations"] if a["label"] == c)
        expected_ap.append(kept / total)  # precision 1 up to recall kept / total
    out = evaluate_detection(half, THUMOS, subset="test", tiou=[0.5], per_class=False)
    assert out["mAP@0.5"] == round(100 * float(np.mean(expected_ap)), 2)
    assert "per-class" not in out
