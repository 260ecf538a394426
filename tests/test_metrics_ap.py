"""AP flavours and greedy matching: hand-computed values, plus independent reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from momentkit.metrics.ap import detection_ap, interpolated_ap, positive_precision_ap, ranking_ap
from momentkit.metrics.common import pad_ragged, parse_thresholds
from momentkit.errors import InputError
from momentkit.metrics.matching import greedy_match


# ----------------------------------------------------------------------------- interpolated AP
def test_interpolated_ap_by_hand():
    # precision [1, 1/2, 2/3] at recall [1/2, 1/2, 1]: steps 1/2 x 1 + 1/2 x 2/3 = 5/6
    assert interpolated_ap([1.0, 0.5, 2 / 3], [0.5, 0.5, 1.0]) == pytest.approx(5 / 6)
    # interpolation: precision 1/2 at recall 1/2 is lifted to the later 2/3
    assert interpolated_ap([0.0, 0.5, 2 / 3], [0.0, 0.5, 1.0]) == pytest.approx(2 / 3)


def test_detection_ap_by_hand():
    assert detection_ap([True, False, True], 2) == pytest.approx(5 / 6)
    # padding adds nothing
    assert detection_ap([True, False, True, False], 2, valid=[True, True, True, False]) == pytest.approx(5 / 6)
    # recall never reaches 1: two of three positives found at ranks 1, 2
    assert detection_ap([True, True], 3) == pytest.approx(2 / 3)
    assert detection_ap([False, False], 1) == 0.0
    # a row without predictions
    assert detection_ap(np.zeros((1, 0), bool), [1])[0] == 0.0
    # batched rows
    out = detection_ap(np.array([[True, False], [False, True]]), np.array([1, 1]))
    np.testing.assert_allclose(out, [1.0, 0.5])


# ----------------------------------------------------------------------------- ranking AP (HD)
def test_ranking_ap_by_hand():
    # ranks: pos (p=1), neg, pos (p=2/3), neg -> mean(1, 2/3)
    assert ranking_ap(np.array([[1, 0, 1, 0]]), np.array([[0.9, 0.8, 0.7, 0.1]]))[0] == pytest.approx(5 / 6)
    # the running maximum goes from recall 1 towards recall 0: a late high precision lifts an early one
    # ranks: neg, pos (p=1/2), pos (p=2/3) -> interpolated (2/3, 2/3) -> 2/3
    assert ranking_ap(np.array([[0, 1, 1]]), np.array([[0.9, 0.8, 0.7]]))[0] == pytest.approx(2 / 3)


def test_ranking_ap_ties_form_one_step():
    # scores tie in pairs: {pos, neg} at 0.5 (p=1/2), {neg, pos} at 0.2 (p=1/2) -> 0.5
    # (ranked item by item in the given order it would be (1 + 1/2) / 2 = 0.75)
    assert ranking_ap(np.array([[1, 0, 0, 1]]), np.array([[0.5, 0.5, 0.2, 0.2]]))[0] == pytest.approx(0.5)


def test_ranking_ap_all_negative_and_all_positive():
    out = ranking_ap(np.array([[0, 0, 0], [1, 1, 1]]), np.array([[0.3, 0.2, 0.1], [0.1, 0.2, 0.3]]))
    np.testing.assert_array_equal(out, [0.0, 1.0])


def test_ranking_ap_lengths_ignore_padding_and_several_label_sets():
    labels = np.array([[[1, 0, 1, 1], [0, 1, 0, 0]]])  # (1 row, 2 label sets, 4) - last entry is padding
    scores = np.array([[0.9, 0.8, 0.7, 5.0]])
    out = ranking_ap(labels, scores, lengths=np.array([3]))
    np.testing.assert_allclose(out, [[5 / 6, 0.5]])


def _sklearn_style_ap(y_true, y_score):
    """moment_detr's get_ap on top of scikit-learn (independent reference)."""
    from sklearn.metrics import precision_recall_curve

    if len(set(y_true)) == 1:
        return float(y_true[0] != 0)
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    recall = recall.astype(np.float32)
    for i in range(1, len(precision)):
        precision[i] = max(precision[i - 1], precision[i])
    return float(np.mean(precision[np.where(np.diff(recall))]))


def test_ranking_ap_matches_scikit_learn_reference():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    rows, lengths, labels, expected = [], [], [], []
    for _ in range(200):
        n = int(rng.integers(1, 30))
        y = (rng.random(n) < rng.random()).astype(int)
        s = np.round(rng.random(n), 1)  # coarse scores: many ties
        rows.append(s)
        labels.append(y)
        lengths.append(n)
        expected.append(_sklearn_style_ap(y, s))
    scores, _ = pad_ragged(rows, 0.0)
    lab, _ = pad_ragged(labels, 0.0)
    np.testing.assert_allclose(ranking_ap(lab, scores, np.array(lengths)), expected, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- per-positive AP (dense)
def test_positive_precision_ap_by_hand():
    labels = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    out = positive_precision_ap(labels, scores)
    assert out[0] == pytest.approx(5 / 6)  # precisions 1 and 2/3 at the positives
    assert np.isnan(out[1])  # no positive


def test_positive_precision_ap_ties_keep_input_order():
    assert positive_precision_ap(np.array([[0], [1]]), np.array([[0.5], [0.5]]))[0] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- greedy matching
def _match(preds, gts, thresholds):
    p, pc = pad_ragged([np.asarray(x, float).reshape(-1, 2) for x in preds], 0.0)
    g, gc = pad_ragged([np.asarray(x, float).reshape(-1, 2) for x in gts], 0.0)
    return greedy_match(p, pc, g, gc, thresholds)


def test_greedy_match_each_gt_once():
    tp = _match([[[0, 10], [0, 10]]], [[[0, 10]]], [0.5])
    np.testing.assert_array_equal(tp[0, 0], [True, False])


def test_greedy_match_takes_highest_iou_first():
    # the first prediction takes [0, 9] (IoU 0.9), leaving [0, 5] for the second (IoU 1)
    tp = _match([[[0, 10], [0, 5]]], [[[0, 5], [0, 9]]], [0.5])
    np.testing.assert_array_equal(tp[0, 0], [True, True])


def test_greedy_match_ties_go_to_the_last_gt():
    # [0, 8] has IoU 0.5 with both; it takes the LAST ([4, 8]), so [4, 8] then finds nothing free
    tp = _match([[[0, 8], [4, 8]]], [[[0, 4], [4, 8]]], [0.5])
    np.testing.assert_array_equal(tp[0, 0], [True, False])


def test_greedy_match_threshold_is_inclusive_and_per_threshold():
    # IoU([0, 9.5], [0, 10]) = 0.95 exactly
    tp = _match([[[0, 9.5]]], [[[0, 10]]], [0.5, 0.95])
    np.testing.assert_array_equal(tp[0, :, 0], [True, True])
    tp = _match([[[0, 9.4]]], [[[0, 10]]], [0.5, 0.95])
    np.testing.assert_array_equal(tp[0, :, 0], [True, False])


def _reference_match(pred, gt, thresholds):
    """Plain loops following the ActivityNet evaluator (iou.argsort()[::-1] on a stable sort)."""
    tp = np.zeros((len(thresholds), len(pred)), bool)
    for ti, t in enumerate(thresholds):
        locked = set()
        for k, (ps, pe) in enumerate(pred):
            ious = []
            for gs, ge in gt:
                inter = max(0.0, min(pe, ge) - max(ps, gs))
                union = (pe - ps) + (ge - gs) - inter
                ious.append(inter / union if union > 0 else 0.0)
            for j in np.argsort(ious, kind="stable")[::-1]:
                if ious[j] < t:
                    break
                if j in locked:
                    continue
                locked.add(j)
                tp[ti, k] = True
                break
    return tp


def test_greedy_match_agrees_with_loop_reference():
    rng = np.random.default_rng(1)
    thresholds = (0.1, 0.3, 0.5, 0.7, 0.9)
    preds, gts = [], []
    for _ in range(150):
        g = np.sort(rng.integers(0, 30, size=(int(rng.integers(1, 6)), 2)), axis=1).astype(float)
        p = np.sort(rng.integers(0, 30, size=(int(rng.integers(0, 12)), 2)), axis=1).astype(float)
        preds.append(p)
        gts.append(g)
    tp = greedy_match(*pad_ragged(preds, 0.0), *pad_ragged(gts, 0.0), thresholds)
    for i, (p, g) in enumerate(zip(preds, gts)):
        np.testing.assert_array_equal(tp[i, :, : len(p)], _reference_match(p, g, thresholds), err_msg=f"group {i}")
        assert not tp[i, :, len(p):].any()


# ----------------------------------------------------------------------------- thresholds
def test_parse_thresholds():
    assert parse_thresholds("thumos", "thumos") == (0.3, 0.4, 0.5, 0.6, 0.7)
    assert parse_thresholds("epic", "thumos") == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert parse_thresholds("0.3:0.1:0.7", "thumos") == (0.3, 0.4, 0.5, 0.6, 0.7)
    assert parse_thresholds("0.5:0.05:0.95", "thumos")[1] == 0.55  # rounded, not 0.5499999
    assert parse_thresholds("0.3,0.5", "thumos") == (0.3, 0.5)
    assert parse_thresholds(None, (0.1, 0.3)) == (0.1, 0.3)
    for bad in ("fast", "0.3:x:0.7", "1.5"):
        with pytest.raises(InputError):
            parse_thresholds(bad, "thumos")
