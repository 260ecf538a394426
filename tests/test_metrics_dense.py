"""Dense per-frame multi-label mAP: hand-computed values, Charades-style sampling, MultiTHUMOS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DATA
from momentkit.errors import InputError
from momentkit.metrics import MetricsWarning, evaluate_dense

MULTITHUMOS = DATA / "multithumos" / "tridetplus" / "multithumos.json"


def test_per_frame_map_by_hand():
    labels = {"v": [[1, 0], [0, 0], [1, 1], [0, 1]]}
    scores = {"v": [[0.9, 0.2], [0.8, 0.3], [0.7, 0.4], [0.1, 0.1]]}
    out = evaluate_dense(scores, labels)
    # class 0: pos, neg, pos, neg -> (1 + 2/3) / 2; class 1: pos (.4), neg, neg, pos (.1) -> (1 + 2/4) / 2
    assert out["per-class"] == {"0": 83.33, "1": 75.0}
    assert out["mAP"] == 79.17
    assert "weighted-mAP" not in out
    # Charades rule: frame 1 has no label, so it goes last for every class
    out = evaluate_dense(scores, labels, protocol="charades", num_frames=4)
    # class 0: pos, pos, neg, (frame 1) -> 1; class 1: pos (.4), neg (.2), pos (.1) -> (1 + 2/3) / 2
    assert out["per-class"] == {"0": 100.0, "1": 83.33}
    assert out["mAP"] == 91.67 and out["weighted-mAP"] == 91.67


def test_weighted_map_by_hand():
    labels = {"v": [[1, 0], [0, 1], [0, 1]]}
    scores = {"v": [[0.9, 0.1], [0.1, 0.9], [0.2, 0.05]]}
    out = evaluate_dense(scores, labels, weighted=True)
    # class 0 (1 positive): AP 1; class 1 (2 positives): pos, neg, pos -> (1 + 2/3) / 2
    assert out["mAP"] == 91.67
    assert out["weighted-mAP"] == 88.89  # (1 * 1 + 2 * 5/6) / 3


def test_class_without_positive_is_left_out():
    out = evaluate_dense({"v": [[0.9, 0.5], [0.1, 0.5]]}, {"v": [[1, 0], [0, 0]]})
    assert out["per-class"] == {"0": 100.0, "1": None}
    assert out["mAP"] == 100.0 and out["num-classes"] == 1


def test_segments_are_rasterised_at_frame_times():
    # 5 frames over 10 s: times 0, 2, 4, 6, 8; strict inside test s < t < e
    gt = {"database": {"v": {"duration": 10, "annotations": [
        {"segment": [1, 5], "label_id": 0},  # frames at 2 and 4
        {"segment": [4, 8], "label_id": 1},  # frame at 6 only (4 and 8 are on the boundary)
    ]}}}
    # class 0 scores rank frames 1, 2 above the rest -> AP 1 only if exactly frames 1, 2 are positive
    scores = {"v": [[0.1, 0.5], [0.9, 0.4], [0.8, 0.3], [0.2, 0.9], [0.0, 0.1]]}
    out = evaluate_dense(scores, gt)
    assert out["per-class"] == {"0": 100.0, "1": 100.0}
    # frame 2 (t=4) ranked top for class 1 would be a FP: precision 1/2 at the positive
    scores["v"][2][1] = 0.95
    assert evaluate_dense(scores, gt)["per-class"]["1"] == 50.0


def test_charades_samples_25_frames():
    # 50 frames: the 25 sampled ones are the even frames; odd frames carry misleading scores
    rng = np.random.default_rng(0)
    labels = (rng.random((50, 3)) < 0.3).astype(int)
    labels[:, 0] = 1  # every frame has a label
    scores = rng.random((50, 3))
    scores[0::2] = labels[0::2] + 0.01 * scores[0::2]  # perfect on even frames
    scores[1::2] = 1 - labels[1::2]  # inverted on odd frames
    out = evaluate_dense({"v": scores.tolist()}, {"v": labels.tolist()}, protocol="charades")
    assert out["num-frames"] == 25
    assert out["mAP"] == 100.0 and out["weighted-mAP"] == 100.0
    assert evaluate_dense({"v": scores.tolist()}, {"v": labels.tolist()})["mAP"] < 100.0


def test_multithumos_perfect_scores():
    data = json.loads(MULTITHUMOS.read_text())
    db = {v: info for v, info in data["database"].items() if info["subset"] == "Test"}
    assert len(db) == 212
    preds = {}
    for vid, info in list(db.items())[:40]:
        n = max(1, int(info["duration"]))  # one frame per second
        s = np.zeros((n, 65))
        for a in info["annotations"]:
            for i in range(n):
                t = i * info["duration"] / n
                if a["segment"][0] < t < a["segment"][1]:
                    s[i, a["label_id"]] = 1.0
        preds[vid] = s.tolist()
    gt = {"database": {v: db[v] for v in preds}}
    out = evaluate_dense(preds, gt)
    assert out["mAP"] == 100.0 and out["num-videos"] == 40
    assert out["num-frames"] == sum(len(p) for p in preds.values())


def test_dense_bad_input():
    with pytest.raises(InputError, match=r"1 of 2 ground-truth videos have no prediction \('w'\)"):
        evaluate_dense({"v": [[0.1]]}, {"v": [[1]], "w": [[1]]})
    with pytest.raises(InputError, match="not a finite number"):
        evaluate_dense({"v": [[float("nan")]]}, {"v": [[1]]})
    with pytest.raises(InputError, match="must be 0 or 1"):
        evaluate_dense({"v": [[0.5]]}, {"v": [[2]]})
    with pytest.raises(InputError, match="unknown dense protocol"):
        evaluate_dense({"v": [[0.5]]}, {"v": [[1]]}, protocol="thumos")
    with pytest.warns(MetricsWarning, match="1 predicted videos are not in the ground truth"):
        evaluate_dense({"v": [[0.5]], "x": [[0.1]]}, {"v": [[1]]})
