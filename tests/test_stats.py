"""momentkit.stats against hand-computed values and Demsar's (2006) worked example of the Friedman and
Nemenyi tests (JMLR 7, 1-30: Table 6, Section 3.2.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from momentkit import stats
from momentkit.errors import InputError

# Demsar (2006), Table 6: AUC of C4.5 with and without tuning m and cf, on 14 UCI data sets. The paper
# ranks 'voting' (0.972, 0.981, 0.975, 0.975) as 4, 1, 2, 3: its values differ in a digit the table does
# not print; 0.97501 reproduces its ranks.
DEMSAR_METHODS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = np.array([
    [0.763, 0.768, 0.771, 0.798],  # adult (sample)
    [0.599, 0.591, 0.590, 0.569],  # breast cancer
    [0.954, 0.971, 0.968, 0.967],  # breast cancer wisconsin
    [0.628, 0.661, 0.654, 0.657],  # cmc
    [0.882, 0.888, 0.886, 0.898],  # ionosphere
    [0.936, 0.931, 0.916, 0.931],  # iris
    [0.661, 0.668, 0.609, 0.685],  # liver disorders
    [0.583, 0.583, 0.563, 0.625],  # lung cancer
    [0.775, 0.838, 0.866, 0.875],  # lymphography
    [1.000, 1.000, 1.000, 1.000],  # mushroom
    [0.940, 0.962, 0.965, 0.962],  # primary tumor
    [0.619, 0.666, 0.614, 0.669],  # rheum
    [0.972, 0.981, 0.97501, 0.975],  # voting
    [0.957, 0.978, 0.946, 0.970],  # wine
])


def test_q_alpha_is_demsar_table_5():
    # Table 5a (alpha 0.05) and 5b (alpha 0.10), k = 2 ... 10
    at05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    at10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]
    for k, (a, b) in enumerate(zip(at05, at10), start=2):
        assert stats.q_alpha(k, 0.05) == pytest.approx(a, abs=1e-3), k  # the table cuts 2.3437
        assert stats.q_alpha(k, 0.10) == pytest.approx(b, abs=1e-3), k


def test_demsar_worked_example():
    plain = stats.friedman(DEMSAR_AUC, DEMSAR_METHODS, tie_correction=False)
    # average ranks 3.143, 2.000, 2.893, 1.964; chi2_F = 9.28; F_F = 3.69 > F(3, 39) critical 2.85
    assert np.round(plain.average_ranks, 3).tolist() == [3.143, 2.000, 2.893, 1.964]
    assert round(plain.chi2, 2) == 9.28 and round(plain.f, 2) == 3.69
    assert plain.p_value_f < 0.05 and plain.n == 14 and plain.k == 4
    # the tie-corrected statistic is scipy's
    from scipy.stats import friedmanchisquare

    corrected = stats.friedman(DEMSAR_AUC, DEMSAR_METHODS)
    want = friedmanchisquare(*DEMSAR_AUC.T)
    assert corrected.chi2 == pytest.approx(want.statistic) and corrected.p_value == pytest.approx(want.pvalue)
    assert corrected.chi2 > plain.chi2  # mushroom and iris are ties
    # Nemenyi: CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25 at 0.05: no pair differs (best and worst: 1.18)
    at05 = stats.nemenyi(plain.average_ranks, 14, DEMSAR_METHODS, alpha=0.05)
    assert round(at05.cd, 2) == 1.25 and at05.significant_pairs() == []
    assert at05.cd == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 14)), abs=1e-3)
    assert at05.cliques == [["C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"]]
    # at 0.10, CD = 2.291 sqrt(20 / 84) = 1.12: C4.5 is worse than C4.5+m and C4.5+m+cf
    at10 = stats.nemenyi(plain.average_ranks, 14, DEMSAR_METHODS, alpha=0.10)
    assert round(at10.cd, 2) == 1.12
    assert [(a, b) for a, b, _ in at10.significant_pairs()] == [("C4.5+m+cf", "C4.5"), ("C4.5+m", "C4.5")]
    i, j = DEMSAR_METHODS.index("C4.5"), DEMSAR_METHODS.index("C4.5+m+cf")
    assert 0.05 < at10.p_values[i, j] < 0.10 and at10.p_values[i, i] == 1.0


def test_two_methods_hand_computed():
    # one method better on all 5 blocks: ranks 1 and 2; chi2 = 12 * 5 / (2 * 3) * (1 + 4 - 2 * 9 / 4) = 5
    table = np.array([[2.0, 1.0], [3.0, 1.0], [5.0, 4.0], [1.0, 0.5], [9.0, 8.0]])
    fr = stats.friedman(table, ["a", "b"])
    assert fr.average_ranks.tolist() == [1.0, 2.0] and fr.chi2 == pytest.approx(5.0)
    from scipy.stats import chi2

    assert fr.p_value == pytest.approx(chi2.sf(5.0, 1))
    assert fr.f == math.inf and fr.p_value_f == 0.0  # every block ranks them alike
    ne = stats.nemenyi(fr.average_ranks, 5, ["a", "b"])
    assert ne.cd == pytest.approx(1.959964 * math.sqrt(2 * 3 / 30), abs=1e-5)  # 0.877
    assert ne.significant_pairs() == [("a", "b", 1.0)] and ne.cliques == []
    # lower is better in the second row: ranks flip there; a tie shares 1.5
    fr = stats.friedman(np.array([[2.0, 1.0], [2.0, 1.0], [1.0, 1.0]]), ["a", "b"],
                        higher_is_better=[True, False, True])
    assert fr.ranks.tolist() == [[1.0, 2.0], [2.0, 1.0], [1.5, 1.5]] and fr.average_ranks.tolist() == [1.5, 1.5]
    assert fr.chi2 == 0.0 and fr.p_value == pytest.approx(1.0)


def test_friedman_three_methods_is_scipy_and_hand_computed():
    from scipy.stats import friedmanchisquare

    table = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0], [3.0, 2.0, 1.0], [2.0, 3.0, 1.0]])
    fr = stats.friedman(table, list("abc"))
    # ranks (1 = highest): a 1,1,1,2 -> 1.25; b 2,3,2,1 -> 2; c 3,2,3,3 -> 2.75
    assert fr.average_ranks.tolist() == [1.25, 2.0, 2.75]
    # 12 * 4 / (3 * 4) * (1.5625 + 4 + 7.5625 - 12) = 4.5
    assert fr.chi2 == pytest.approx(4.5) == friedmanchisquare(*table.T).statistic
    assert fr.f == pytest.approx(3 * 4.5 / (4 * 2 - 4.5))


def test_all_ties_and_bad_tables():
    fr = stats.friedman(np.ones((3, 4)))
    assert fr.chi2 == 0.0 and fr.p_value == 1.0 and fr.f == 0.0
    for bad in (np.ones((1, 3)), np.ones((3, 1)), np.array([[1.0, np.nan], [1.0, 2.0]])):
        with pytest.raises(InputError):
            stats.friedman(bad)
    with pytest.raises(InputError, match="alpha"):
        stats.q_alpha(3, 1.5)


def test_mean_std():
    assert stats.mean_std([10.0, 14.0, None]) == (12.0, pytest.approx(math.sqrt(8)), 2)
    assert stats.mean_std([7.0]) == (7.0, None, 1) and stats.mean_std([None]) == (None, None, 0)


def test_paired_bootstrap_hand_computed_and_deterministic():
    # a shift by a constant: every resample's difference is that constant
    a = np.array([1.0, 5.0, 2.0, 8.0])
    res = stats.paired_bootstrap(a + 3.0, a, n_boot=200, seed=1)
    assert res.difference == pytest.approx(3.0) and res.low == pytest.approx(3.0) and res.high == pytest.approx(3.0)
    assert res.p_value == pytest.approx(1 / 200)  # never on the other side of zero (floored at 1 / n_boot)
    # two units with differences 0 and 1: resampled means are 0, 0.5, 1 with chances 1/4, 1/2, 1/4
    res = stats.paired_bootstrap([0.0, 1.0], [0.0, 0.0], n_boot=4000, seed=0)
    assert res.difference == 0.5 and res.low == 0.0 and res.high == 1.0
    assert res.p_value == pytest.approx(2 * 0.25, abs=0.04)  # P(diff <= 0) = 1/4
    # the same numbers from the same seed; the resampling by hand (numpy's PCG64 draws as documented)
    x, y = np.random.default_rng(5).random((2, 30))
    one, two = stats.paired_bootstrap(x, y, n_boot=300, seed=7), stats.paired_bootstrap(x, y, n_boot=300, seed=7)
    assert one == two
    idx = np.random.default_rng(7).integers(0, 30, size=(300, 30))
    by_hand = (x[idx] - y[idx]).mean(axis=1)
    assert one.low == pytest.approx(np.quantile(by_hand, 0.025)) and one.high == pytest.approx(np.quantile(by_hand, 0.975))


def test_paired_bootstrap_resamples_seeds():
    # two seeds of a that disagree (0 and 2 everywhere), one seed of b at 1: the units tell nothing,
    # the seeds do: the resampled difference is -1 (both seeds 0), 0 or +1 (both 2)
    a = np.array([[0.0] * 10, [2.0] * 10])
    res = stats.paired_bootstrap(a, np.ones(10), n_boot=2000, seed=0)
    assert res.difference == 0.0 and res.low == -1.0 and res.high == 1.0 and res.seeds == (2, 1)
    with pytest.raises(InputError, match="different units"):
        stats.paired_bootstrap(np.ones(3), np.ones(4))


def test_critical_difference_diagram(tmp_path):
    fr = stats.friedman(DEMSAR_AUC, DEMSAR_METHODS, tie_correction=False)
    ne = stats.nemenyi(fr.average_ranks, 14, DEMSAR_METHODS, alpha=0.10)
    path = stats.plot_critical_difference(ne, tmp_path / "cd.png", title="Demsar 2006")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["cd.png"]  # written atomically, nothing else left
