"""The drift test: its p-values on known samples, its false alarms on in-distribution
traffic and how soon it flags shifted streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from support.softmax_streams import IN_DISTRIBUTION, SHIFTED

from dann_serve.drift import shift
from dann_serve.drift.reference import build_reference
from dann_serve.drift.window import Window

REFERENCE, _ = IN_DISTRIBUTION.draw(2000, seed=100)
SOURCE, SOURCE_LABELS = IN_DISTRIBUTION.draw(2000, seed=101)


def test_ks_on_disjoint_samples_has_the_exact_p_value() -> None:
    # all three of one sample below the other: D = 1, and 2 of the C(6, 3) = 20
    # equally likely orderings are that extreme, so p = 0.1
    statistic, p_value = shift.ks_tests(np.array([[1.0], [2], [3]]), np.array([[4.0], [5], [6]]))
    assert statistic[0] == 1.0
    assert p_value[0] == pytest.approx(0.1)


@pytest.mark.parametrize(("images", "method"), [(99, "exact"), (300, "asymp")])
def test_ks_p_values_are_scipys_per_class_probability(images: int, method: str) -> None:
    window, _ = SHIFTED["fewer right answers"].draw(images, seed=1)
    statistics, p_values = shift.ks_tests(window, REFERENCE)
    for column in range(10):
        expected = stats.ks_2samp(window[:, column], REFERENCE[:, column], method=method)
        assert statistics[column] == pytest.approx(expected.statistic)
        assert p_values[column] == pytest.approx(expected.pvalue, rel=1e-9)


def rows_answering(counts: list[int]) -> np.ndarray:
    """One-hot rows, ``counts[k]`` of them answering class ``k``."""
    return np.eye(10, dtype=np.float32)[np.repeat(np.arange(len(counts)), counts)]


def test_the_class_shares_test_on_a_hand_computed_table() -> None:
    # counts [30, 10] against [20, 20]: expected 25 and 15 per row, chi-square 16/3
    # with one degree of freedom; its tail is erfc(sqrt(x / 2))
    p_value = shift.shares_test(rows_answering([30, 10]), rows_answering([20, 20]))
    assert p_value == pytest.approx(math.erfc(math.sqrt(16 / 3 / 2)))
    assert shift.shares_test(rows_answering([5]), rows_answering([7])) == 1.0


def test_the_family_p_value_is_bonferronis_over_the_window_and_its_newer_half() -> None:
    # the older half from the reference's distribution, the newer from another class mix
    window = np.concatenate(
        [IN_DISTRIBUTION.draw(400, seed=2)[0], SHIFTED["another class mix"].draw(400, seed=3)[0]]
    )
    family = []
    for sample in (window, window[400:]):
        family += [*shift.ks_tests(sample, REFERENCE)[1], shift.shares_test(sample, REFERENCE)]
    result = shift.detect(window, REFERENCE, significance=0.01)
    assert result.tests == 22
    assert result.p_value == pytest.approx(min(1.0, 22 * min(family)))
    assert result.p_value < 0.01 and result.shifted
    assert min(family[11:]) < min(family[:11])  # the newer half shows it more clearly
    assert shift.detect(window, REFERENCE, with_shares=False).tests == 20
    empty = shift.detect(window[:0], REFERENCE)
    assert (empty.p_value, empty.shifted, empty.tests) == (1.0, False, 0)
    with pytest.raises(ValueError, match=r"significance: must be in \(0, 1\), got 0"):
        shift.detect(window, REFERENCE, significance=0)


def test_at_most_one_percent_of_in_distribution_windows_are_flagged() -> None:
    """200 disjoint windows of 1,000 images from the reference's own distribution:
    disjoint, so that each window is an independent trial given the reference."""
    p_values = np.array(
        [
            shift.detect(IN_DISTRIBUTION.draw(1000, seed=1000 + window)[0], REFERENCE).p_value
            for window in range(200)
        ]
    )
    assert np.mean(p_values < shift.SIGNIFICANCE) <= 0.01
    # and the test is alive: under no shift its p-values spread over (0, 1]
    assert 0.2 < np.mean(p_values < 0.5) < 0.7


def images_until_flagged(stream, seed: int, before: int = 0, limit: int = 1500) -> int | None:
    """How many images of ``stream`` a window (first filled with ``before``
    in-distribution images) takes, in batches of 50, to be declared shifted."""
    window = Window(build_reference(REFERENCE, SOURCE, SOURCE_LABELS))
    if before:
        window.add(IN_DISTRIBUTION.draw(before, seed=seed + 1)[0])
    images, _ = stream.draw(limit, seed=seed)
    for end in range(50, limit + 1, 50):
        window.add(images[end - 50 : end])
        if window.snapshot().drift.shifted:
            return end
    return None


@pytest.mark.parametrize("before", [0, 1000], ids=["fresh window", "after a full window"])
@pytest.mark.parametrize("name", sorted(SHIFTED))
def test_every_shifted_stream_is_flagged_within_500_images(name: str, before: int) -> None:
    """Also once a full window of in-distribution traffic came first: at the 500th
    shifted image the window still holds 500 of those."""
    for seed in (1, 2, 3):
        flagged = images_until_flagged(SHIFTED[name], seed=seed, before=before)
        assert flagged is not None and flagged <= 500, (name, seed, flagged)


def test_in_distribution_traffic_is_not_flagged_by_the_same_loop() -> None:
    assert images_until_flagged(IN_DISTRIBUTION, seed=4) is None
