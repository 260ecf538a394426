"""Statistics for comparing methods: over seeds, over the queries of one dataset, over datasets.

- :func:`mean_std`: mean and sample standard deviation over seeds.
- :func:`paired_bootstrap`: confidence interval of the difference between two methods evaluated on
  the same units (queries, videos), resampling the units with replacement, the same resample for both
  methods (paired); with several seeds per method the seeds are resampled too, independently per
  method, so the interval covers both the test set's and the training seeds' variation.
- :func:`friedman`: the Friedman test of ``k`` methods over ``N`` blocks (datasets, or dataset x metric
  pairs), with average ranks (1 = best, ties shared) and the Iman-Davenport F form;
  :func:`nemenyi`: the Nemenyi post-hoc test -- every pair whose average ranks differ by at least the
  critical difference ``CD = q_alpha * sqrt(k (k + 1) / (6 N))`` differs significantly, with
  ``q_alpha`` the studentized range quantile over sqrt(2) (:func:`q_alpha`);
  :func:`plot_critical_difference`: Demsar's critical-difference diagram.

References: J. Demsar, "Statistical Comparisons of Classifiers over Multiple Data Sets", JMLR 7 (2006)
1-30 (Friedman, Iman-Davenport, Nemenyi, the diagram; its worked example is a test of this module);
B. Efron and R. Tibshirani, "An Introduction to the Bootstrap" (1993) for percentile intervals.

Everything is scipy (``friedmanchisquare``, ``studentized_range``, ``chi2``, ``f``, ``rankdata``) plus a
few lines; scikit-posthocs and autorank would add a dependency (and pandas) for the same numbers and a
diagram that is a dozen matplotlib calls here.

The blocks of a Friedman test should be independent; metrics of one dataset are not (R1@0.5 and mAP of
the same predictions move together), so ranks over dataset x metric blocks describe, and the test's
p-value is optimistic there. Over several datasets, rank one metric per dataset for the strict test.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from momentkit.errors import InputError


# ----------------------------------------------------------------------------- seeds
def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """``(mean, sample std, n)`` of the values that are not None; std is None for fewer than 2."""
    vals = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    if vals.size == 0:
        return None, None, 0
    std = float(vals.std(ddof=1)) if vals.size > 1 else None
    return float(vals.mean()), std, int(vals.size)


# ----------------------------------------------------------------------------- paired bootstrap
@dataclass
class BootstrapResult:
    """``difference`` = mean(a) - mean(b) over the units (and seeds); ``low``/``high``: the percentile
    interval at ``confidence``; ``p_value``: two-sided, twice the smaller share of resampled
    differences on either side of zero (floored at 1 / n_boot)."""

    difference: float
    low: float
    high: float
    p_value: float
    confidence: float
    n_units: int
    n_boot: int
    seeds: tuple[int, int] = (1, 1)

    def to_dict(self) -> dict:
        return {"difference": self.difference, "low": self.low, "high": self.high, "p_value": self.p_value,
                "confidence": self.confidence, "units": self.n_units, "n_boot": self.n_boot,
                "seeds": list(self.seeds)}


def _per_seed(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[0] == 0:
        raise InputError(f"expected per-unit values (units,) or (seeds, units), got shape {arr.shape}", field=name)
    if not np.all(np.isfinite(arr)):
        raise InputError("per-unit values must be finite", field=name)
    return arr


def paired_bootstrap(a, b, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
                     chunk: int = 256) -> BootstrapResult:
    """Paired bootstrap interval of ``mean(a) - mean(b)``.

    ``a`` and ``b`` hold one value per unit (``(n,)``) or per seed and unit (``(seeds, n)``), the units
    in the same order for both. Each of ``n_boot`` replicates draws ``n`` unit indices with replacement
    (the same for both methods) and, per method, as many seed indices with replacement as it has seeds;
    its difference is the mean over the drawn seeds and units of ``a`` less that of ``b``. Deterministic
    for a given ``seed`` (numpy's PCG64)."""
    a, b = _per_seed(a, "a"), _per_seed(b, "b")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"the methods are scored on different units ({a.shape[1]} and {b.shape[1]})", field="b")
    if n_boot < 1 or not 0 < confidence < 1:
        raise InputError(f"need n_boot >= 1 and 0 < confidence < 1, got {n_boot}, {confidence}", field="n_boot")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        units = rng.integers(0, n, size=(m, n))
        means = []
        for x in (a, b):
            s = x.shape[0]
            if s == 1:
                per_unit = np.broadcast_to(x[0], (m, n))
            else:  # seeds drawn with replacement: per replicate, the mean of the drawn seeds' values
                counts = np.stack([np.bincount(r, minlength=s) for r in rng.integers(0, s, size=(m, s))])
                per_unit = counts @ x / s
            means.append(np.take_along_axis(per_unit, units, axis=1).mean(axis=1))
        diffs[start:start + m] = means[0] - means[1]
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    p = 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))
    p = float(min(1.0, max(p, 1.0 / n_boot)))
    return BootstrapResult(float(a.mean() - b.mean()), float(low), float(high), p, confidence, n, n_boot,
                           (a.shape[0], b.shape[0]))


# ----------------------------------------------------------------------------- ranks, Friedman, Nemenyi
def rank_rows(table, higher_is_better: bool | Sequence[bool] = True) -> np.ndarray:
    """Ranks within each row of a ``(blocks, methods)`` table: 1 = best, ties get their mean rank.
    ``higher_is_better``: one flag, or one per row."""
    from scipy.stats import rankdata

    t = np.asarray(table, dtype=np.float64)
    flags = np.broadcast_to(np.asarray(higher_is_better, dtype=bool), (t.shape[0],))
    signed = np.where(flags[:, None], -t, t)
    return rankdata(signed, axis=1)


@dataclass
class FriedmanResult:
    """The Friedman test of ``k`` methods over ``n`` blocks.

    ``chi2``: Friedman's statistic, corrected for ties (divided by ``1 - sum(t^3 - t) / (n k (k^2 - 1))``
    as scipy does; without ties it is Demsar's ``12 N / (k (k + 1)) [sum R_j^2 - k (k + 1)^2 / 4]``),
    ``p_value`` from chi-square with ``k - 1`` degrees of freedom; ``f``: Iman and Davenport's
    ``(N - 1) chi2 / (N (k - 1) - chi2)`` with ``p_value_f`` from F(k - 1, (k - 1)(N - 1)) (infinite,
    p 0, when every block ranks the methods alike)."""

    methods: list[str]
    average_ranks: np.ndarray
    ranks: np.ndarray = field(repr=False)
    chi2: float
    p_value: float
    f: float
    p_value_f: float
    n: int
    k: int

    def to_dict(self) -> dict:
        return {"methods": list(self.methods), "average_ranks": [float(r) for r in self.average_ranks],
                "chi2": self.chi2, "p_value": self.p_value, "iman_davenport_f": self.f,
                "p_value_f": self.p_value_f, "blocks": self.n, "methods_count": self.k}


def friedman(table, methods: Sequence[str] | None = None, *, higher_is_better: bool | Sequence[bool] = True,
             tie_correction: bool = True) -> FriedmanResult:
    """Friedman test of a ``(blocks, methods)`` score table (see :class:`FriedmanResult`).

    With three or more methods and ``tie_correction`` the statistic is ``scipy.stats.friedmanchisquare``'s;
    scipy refuses two methods, where the same formula is computed here (it is then the two-sided sign
    test's chi-square form)."""
    from scipy import stats

    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] < 2 or t.shape[1] < 2:
        raise InputError(f"the Friedman test needs at least 2 blocks and 2 methods, got a table of shape "
                         f"{t.shape}", field="table")
    if not np.all(np.isfinite(t)):
        raise InputError("the score table has missing or non-finite values", field="table")
    n, k = t.shape
    methods = list(methods) if methods is not None else [str(i) for i in range(k)]
    ranks = rank_rows(t, higher_is_better)
    avg = ranks.mean(axis=0)
    plain = 12.0 * n / (k * (k + 1)) * (float(np.sum(avg ** 2)) - k * (k + 1) ** 2 / 4.0)
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts ** 3 - counts))
    correction = 1.0 - ties / (n * k * (k * k - 1)) if tie_correction else 1.0
    if correction <= 0:  # every block a complete tie: no evidence of any difference
        chi2, p = 0.0, 1.0
    elif tie_correction and k >= 3:
        chi2, p = (float(x) for x in stats.friedmanchisquare(*ranks.T))  # ranks: per-row directions applied
    else:
        chi2 = max(0.0, plain / correction)
        p = float(stats.chi2.sf(chi2, k - 1))
    denom = n * (k - 1) - chi2
    if denom <= 1e-12:
        f, p_f = math.inf, 0.0
    else:
        f = (n - 1) * chi2 / denom
        p_f = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    return FriedmanResult(methods, avg, ranks, float(chi2), float(p), float(f), p_f, n, k)


def q_alpha(k: int, alpha: float = 0.05) -> float:
    """The Nemenyi test's critical value for ``k`` methods: the studentized range quantile at
    ``1 - alpha`` with infinite degrees of freedom, over sqrt(2) (Demsar's Table 5a: 2.569 for k = 4
    at alpha 0.05)."""
    from scipy.stats import studentized_range

    if k < 2:
        raise InputError(f"need at least 2 methods, got {k}", field="k")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}", field="alpha")
    return float(studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """``CD = q_alpha * sqrt(k (k + 1) / (6 N))`` of the Nemenyi test (k methods, N blocks)."""
    if n < 1:
        raise InputError(f"need at least 1 block, got {n}", field="n")
    return q_alpha(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


@dataclass
class NemenyiResult:
    """Average ranks, the critical difference at ``alpha``, the pairwise p-values (``p_values[i, j]``,
    from the studentized range distribution of ``|R_i - R_j| / sqrt(k (k + 1) / (6 N)) * sqrt(2)``) and
    the cliques: maximal groups of methods (consecutive by rank) whose ranks differ by less than CD."""

    methods: list[str]
    average_ranks: np.ndarray
    cd: float
    alpha: float
    p_values: np.ndarray = field(repr=False)
    cliques: list[list[str]]
    n: int

    def significant_pairs(self) -> list[tuple[str, str, float]]:
        """``(better, worse, rank difference)`` of every pair whose ranks differ by at least CD."""
        out = []
        k = len(self.methods)
        for i in range(k):
            for j in range(k):
                diff = self.average_ranks[j] - self.average_ranks[i]
                if diff > 0 and diff >= self.cd - 1e-12:
                    out.append((self.methods[i], self.methods[j], float(diff)))
        return sorted(out, key=lambda x: -x[2])

    def to_dict(self) -> dict:
        return {"methods": list(self.methods), "average_ranks": [float(r) for r in self.average_ranks],
                "critical_difference": self.cd, "alpha": self.alpha, "blocks": self.n,
                "p_values": [[float(x) for x in row] for row in self.p_values],
                "cliques": self.cliques,
                "significant_pairs": [{"better": a, "worse": b, "rank_difference": d}
                                      for a, b, d in self.significant_pairs()]}


def nemenyi(average_ranks: Sequence[float], n: int, methods: Sequence[str] | None = None,
            alpha: float = 0.05) -> NemenyiResult:
    """The Nemenyi post-hoc test of average ranks over ``n`` blocks (see :class:`NemenyiResult`)."""
    from scipy.stats import studentized_range

    ranks = np.asarray(average_ranks, dtype=np.float64)
    k = ranks.size
    methods = list(methods) if methods is not None else [str(i) for i in range(k)]
    cd = critical_difference(k, n, alpha)
    se = math.sqrt(k * (k + 1) / (6.0 * n))
    z = np.abs(ranks[:, None] - ranks[None, :]) / se
    p = np.where(z > 0, studentized_range.sf(z * math.sqrt(2), k, np.inf), 1.0)
    return NemenyiResult(methods, ranks, cd, alpha, np.clip(p, 0.0, 1.0), _cliques(ranks, methods, cd), n)


def _cliques(ranks: np.ndarray, methods: list[str], cd: float) -> list[list[str]]:
    """Maximal runs of methods, in rank order, spanning less than ``cd`` (at least two methods each)."""
    order = np.argsort(ranks, kind="stable")
    r = ranks[order]
    spans = []
    for i in range(len(r)):
        j = i
        while j + 1 < len(r) and r[j + 1] - r[i] < cd - 1e-12:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in spans):
            spans.append((i, j))
    return [[methods[order[x]] for x in range(a, b + 1)] for a, b in spans]


# ----------------------------------------------------------------------------- the diagram
def plot_critical_difference(result: NemenyiResult, path: str | os.PathLike, title: str | None = None):
    """Demsar's critical-difference diagram: the rank axis (1, the best, on the left), every method on
    a line to its average rank (the better half named on the left, the others on the right), a bar of
    length CD above the axis and a thick line joining each clique (methods not significantly different).
    Written atomically as PNG; returns the path."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from momentkit.io import atomic_save

    methods, ranks, cd = result.methods, np.asarray(result.average_ranks, float), result.cd
    k = len(methods)
    order = list(np.argsort(ranks, kind="stable"))
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2:][::-1]
    rows = max(len(left), len(right))
    height = 1.5 + 0.3 * rows + 0.12 * len(result.cliques)
    fig, ax = plt.subplots(figsize=(7.5, height))
    lo, hi = 1, max(k, int(math.ceil(ranks.max())))
    ax.set_xlim(lo - 0.9, hi + 0.9)
    ax.set_ylim(-0.2 - 0.12 * len(result.cliques) - 0.32 * (rows - 1) - 0.25, 1.0)
    ax.axis("off")
    ax.hlines(0, lo, hi, color="black", lw=1)
    for tick in range(lo, hi + 1):
        ax.vlines(tick, 0, 0.08, color="black", lw=1)
        ax.text(tick, 0.13, str(tick), ha="center", va="bottom", fontsize=9)
    # the CD bar, from rank 1
    ax.hlines(0.62, lo, lo + cd, color="black", lw=1.5)
    for x in (lo, lo + cd):
        ax.vlines(x, 0.56, 0.68, color="black", lw=1)
    ax.text(lo + cd / 2, 0.72, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    # cliques, as thick bars just under the axis
    for i, clique in enumerate(result.cliques):
        r = [ranks[methods.index(m)] for m in clique]
        y = -0.12 - 0.12 * i
        ax.hlines(y, min(r) - 0.03, max(r) + 0.03, color="black", lw=3)
    base = -0.2 - 0.12 * len(result.cliques)
    for side, idx in (("left", left), ("right", right)):
        for row, m in enumerate(idx):
            y = base - 0.32 * row
            x = ranks[m]
            end = lo - 0.2 if side == "left" else hi + 0.2
            ax.vlines(x, y, 0, color="0.35", lw=0.8)
            ax.hlines(y, min(x, end), max(x, end), color="0.35", lw=0.8)
            ax.text(end - 0.05 if side == "left" else end + 0.05, y, f"{methods[m]} ({x:.2f})",
                    ha="right" if side == "left" else "left", va="center", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return path
