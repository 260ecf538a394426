"""Temporal NMS and soft-NMS: hand-computed cases and the QVHighlights reference algorithm."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from momentkit.errors import InputError
from momentkit.ops import nms, soft_nms, temporal_nms

W = np.array([[0.0, 10.0, 0.9], [0.0, 5.0, 0.8], [20.0, 30.0, 0.7]])  # IoU(w0, w1) = 0.5, w2 disjoint


def test_hard_nms_hand():
    assert np.array_equal(temporal_nms(W, 0.4), W[[0, 2]])
    assert np.array_equal(temporal_nms(W, 0.5), W)  # strict ">": IoU 0.5 is kept at threshold 0.5
    assert np.array_equal(temporal_nms(W[::-1], 0.4), W[[0, 2]])  # output sorted by score
    assert np.array_equal(temporal_nms(W, 1.0, max_keep=2), W[:2])


def test_soft_nms_gaussian_hand():
    out = soft_nms(W, "gaussian", sigma=0.5)
    # pick w0 (0.9); w1 decays to 0.8 * exp(-0.5**2 / 0.5); w2 untouched (IoU 0) and now the best
    expected = np.array([[0, 10, 0.9], [20, 30, 0.7], [0, 5, 0.8 * math.exp(-0.5)]])
    assert np.allclose(out, expected)


def test_soft_nms_linear_hand():
    out = soft_nms(W, "linear", iou_threshold=0.3)
    assert np.allclose(out, [[0, 10, 0.9], [20, 30, 0.7], [0, 5, 0.4]])  # 0.8 * (1 - 0.5)
    # below the IoU threshold nothing decays
    assert np.allclose(soft_nms(W, "linear", iou_threshold=0.6), W)


def test_soft_nms_drops_low_scores_and_caps():
    w = np.array([[0, 10, 0.9], [0, 10, 0.5], [50, 60, 0.0005]])
    # duplicate decays to 0 under linear soft-NMS and is dropped, as is the window under 1e-3
    assert np.allclose(soft_nms(w, "linear"), [[0, 10, 0.9]])
    assert len(soft_nms(W, "gaussian", max_keep=2)) == 2


def test_empty_and_bad_inputs():
    assert temporal_nms(np.zeros((0, 3)), 0.5).shape == (0, 3)
    assert soft_nms([], "gaussian").shape == (0, 3)
    with pytest.raises(InputError, match="windows"):
        temporal_nms(np.zeros((4, 2)), 0.5)
    with pytest.raises(InputError, match="NaN"):
        temporal_nms([[0, 1, float("nan")]], 0.5)
    with pytest.raises(InputError, match="iou_threshold"):
        temporal_nms(W, 1.5)
    with pytest.raises(InputError, match="nms"):
        nms(W, "fancy")


def _reference_nms(predictions, nms_thd, max_after_nms=100):
    """The QVHighlights reference greedy NMS (jayleicn/moment_detr utils/temporal_nms.py), transcribed."""

    def iou(p, g):
        inter = max(0, min(p[1], g[1]) - max(p[0], g[0]))
        union = max(p[1], g[1]) - min(p[0], g[0])
        return 0 if union == 0 else inter / union

    if len(predictions) == 1:
        return predictions
    t = sorted(predictions, key=lambda x: x[2], reverse=True)
    r = []
    while len(t) > 1 and len(r) < max_after_nms:
        i = 1
        while i < len(t):
            if iou(t[0], t[i]) > nms_thd:
                t.pop(i)
            else:
                i += 1
        r.append(t.pop(0))
    if len(r) < max_after_nms and t:
        r.append(t.pop(0))
    return r


@pytest.mark.parametrize("thd,total", [(0.5, 14009), (0.7, 14976)])
def test_matches_reference_on_real_predictions(testvectors, thd, total):
    rows = [json.loads(line) for line in open(testvectors / "qvhighlights_val_sample_preds.jsonl")]
    assert len(rows) == 1550
    kept = 0
    for r in rows:
        ours = nms(r["pred_relevant_windows"], "hard", iou_threshold=thd)
        ref = _reference_nms(r["pred_relevant_windows"], thd)
        assert np.allclose(ours, np.asarray(ref, dtype=np.float64).reshape(-1, 3))
        kept += len(ours)
    assert kept == total


def test_relative_threshold_keeps_the_best_of_tiny_scores():
    w = np.array([[0, 10, 4e-4], [1, 11, 3e-4], [30, 40, 1e-5]])
    assert len(soft_nms(w, "gaussian", score_threshold=1e-3)) == 0  # absolute: every window is gone
    kept = soft_nms(w, "gaussian", score_threshold=1e-3, relative=True)  # threshold 1e-3 x 4e-4
    # [1, 11] decays by exp(-(9/11)^2 / 0.5) but stays above 4e-7; [30, 40] does not overlap
    assert kept[:, :2].tolist() == [[0, 10], [1, 11], [30, 40]]
    assert kept[1, 2] == pytest.approx(3e-4 * math.exp(-((9 / 11) ** 2) / 0.5))
    assert len(soft_nms(w, "gaussian", score_threshold=0.5, relative=True)) == 1  # the best always stays
