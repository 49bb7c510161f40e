"""Has the traffic moved away from the reference? Black-box shift detection on outputs.

After "Failing Loudly" (Rabanser et al., NeurIPS 2019), which found univariate tests on
a model's softmax outputs among the best detectors of dataset shift without access to
the model's insides: one two-sample Kolmogorov-Smirnov test per class probability,
the window's rows against the reference's, and (see :data:`WITH_SHARES`) a chi-square
test of the predicted-class counts. Only the images' outputs are compared, so a shift
the model's answers do not reflect cannot be seen; one they do reflect, from a new
scanner to a changed class mix, can.

The same tests run twice: on the whole window, and on its newer half. A shift that
began while the window was full fills the newer half first; diluted by the older
half's images, it took 550 to 850 images to show on synthetic streams where the newer
half alone shows it within 450 to 500, and in-distribution windows were not flagged
more often (0.1% of 2,000 against 0.2% for the whole window alone).

The family of tests is corrected by Bonferroni: the reported p-value is the smallest
p-value times the number of tests (capped at 1), and the window is declared shifted
when it falls below the significance. So on traffic from the reference's distribution
the chance that a window is flagged is at most the significance, whatever the
dependence between the tests (the class probabilities of one row are far from
independent, which rules out corrections that assume independence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from dann_serve.drift.probabilities import class_counts

# The false-alarm budget per window: at most 1% of windows of in-distribution traffic
# should be flagged, and Bonferroni keeps the rate under the significance whatever the
# tests' dependence; half the budget leaves room for a pool of traffic that happens to
# sit apart from the reference. The usual 0.05 flags 3 to 4% of such windows. Measured
# on seven models (docs/MONITORING.md): at 0.005, 3 of 1,500 windows of in-distribution
# answers flagged and all 70 shifted streams within 500 images; at 0.002, 1 of 1,500
# and 69 of 70 (the miss, a model's own source, at p = 0.004).
SIGNIFICANCE = 0.005
# Windows smaller than this get the KS tests' exact p-values (see ks_tests).
EXACT_BELOW = 100
# Whether the chi-square test of predicted-class counts joins the family.
WITH_SHARES = True


@dataclass(frozen=True)
class ShiftTest:
    """The verdict on one window: ``p_value`` is the family's Bonferroni-adjusted
    p-value, ``tests`` how many tests it covers, and ``statistics`` the whole window's
    KS statistic for each class probability (the largest gap between the two CDFs),
    for a reader wondering which output moved."""

    p_value: float
    shifted: bool
    tests: int
    statistics: tuple[float, ...]

    def to_json(self) -> dict:
        """The contract's ``drift`` object: ``p_value`` and ``shifted``, then the rest."""
        return {
            "p_value": self.p_value,
            "shifted": self.shifted,
            "tests": self.tests,
            "ks_statistics": list(self.statistics),
        }


def ks_tests(window: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class probability, the two-sample KS statistic and p-value of the window's
    column against the reference's. Below :data:`EXACT_BELOW` images the exact
    distribution (where the asymptotic one is least accurate, and cheap), else the
    asymptotic one: the exact one takes a quarter second per window of 1,000 images of
    a strongly shifted stream (seconds for larger windows), and the asymptotic p-values
    are within 5% of it down to 1e-4 at these sizes."""
    method = "exact" if len(window) < EXACT_BELOW else "asymp"
    result = stats.ks_2samp(window, reference, axis=0, method=method)
    return np.atleast_1d(result.statistic), np.atleast_1d(result.pvalue)


def shares_test(window: np.ndarray, reference: np.ndarray) -> float:
    """The chi-square test of homogeneity of the two samples' predicted-class counts
    (a 2 x classes table; classes neither sample predicts are left out, and with one
    class left there is nothing to compare: p-value 1)."""
    table = np.stack([class_counts(window), class_counts(reference)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def _tests(
    window: np.ndarray, reference: np.ndarray, with_shares: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The KS statistics and the p-values of every test of one sample."""
    statistics, p_values = ks_tests(window, reference)
    if with_shares:
        p_values = np.append(p_values, shares_test(window, reference))
    return statistics, p_values


def bonferroni(p_values: np.ndarray) -> float:
    """The family's p-value: the smallest times how many there are, at most 1."""
    return float(min(1.0, np.min(p_values) * len(p_values)))


def check_significance(significance: float) -> None:
    """Refuse a significance that is not a probability strictly between 0 and 1."""
    if not 0 < significance < 1:
        raise ValueError(f"drift significance: must be in (0, 1), got {significance}")


def detect(
    window: np.ndarray,
    reference: np.ndarray,
    significance: float = SIGNIFICANCE,
    with_shares: bool = WITH_SHARES,
) -> ShiftTest:
    """The shift test of ``window``'s probabilities (oldest row first) against
    ``reference``'s: the whole window's tests and its newer half's, one family. An
    empty window holds no evidence of anything: no tests, p-value 1, not shifted."""
    check_significance(significance)
    if len(window) == 0:
        return ShiftTest(1.0, False, 0, (0.0,) * reference.shape[1])
    statistics, p_values = _tests(window, reference, with_shares)
    if len(window) >= 2:
        _, newer = _tests(window[len(window) // 2 :], reference, with_shares)
        p_values = np.append(p_values, newer)
    p_value = bonferroni(p_values)
    return ShiftTest(
        p_value=p_value,
        shifted=p_value < significance,
        tests=len(p_values),
        statistics=tuple(float(value) for value in statistics),
    )
