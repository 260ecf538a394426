"""Platt scaling of window scores: recovers a known map, keeps the order, fixes a query-blind ECE."""

from __future__ import annotations

import numpy as np
import pytest

from momentkit.metrics.diagnostics import reliability
from momentkit.ops.calibration import apply_platt, calibrate_rows, fit_platt


def test_recovers_the_map_that_generated_the_outcomes():
    rng = np.random.default_rng(0)
    scores = rng.uniform(1e-4, 2e-2, size=20000)  # tiny scores, as SDST's
    truth = apply_platt(scores, 1.5, 6.0)
    correct = rng.uniform(size=scores.size) < truth
    a, b = fit_platt(scores, correct)
    assert a == pytest.approx(1.5, abs=0.1) and b == pytest.approx(6.0, abs=0.5)
    before, _ = reliability(scores, correct)
    after, _ = reliability(apply_platt(scores, a, b), correct)
    assert before > 0.15 and after < 0.02


def test_map_is_increasing_and_rows_keep_their_order():
    a, b = fit_platt([0.001, 0.002, 0.01, 0.02], [False, True, False, True])
    assert a > 0
    rows = [{"qid": 1, "pred_relevant_windows": [[0, 2, 0.02], [4, 6, 0.01], [8, 9, 0.001]]}, {"qid": 2}]
    out = calibrate_rows(rows, (a, b), decimals=None)
    scores = [w[2] for w in out[0]["pred_relevant_windows"]]
    assert scores[0] > scores[1] > scores[2] > 0 and scores[0] < 1
    assert [w[:2] for w in out[0]["pred_relevant_windows"]] == [[0, 2], [4, 6], [8, 9]]
    assert out[1] == {"qid": 2} and rows[0]["pred_relevant_windows"][0][2] == 0.02  # input untouched


def test_degenerate_inputs():
    assert fit_platt([], []) == (1.0, 0.0)
    a, b = fit_platt([0.1, 0.2], [True, True])  # one outcome only: the base rate, nearly flat
    assert apply_platt(np.array([0.1, 0.9]), a, b) == pytest.approx([0.99, 0.99], abs=1e-2)
