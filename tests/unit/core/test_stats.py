"""Paired tests of a fine-tune against its base (core.stats.paired_tests), checked against
scipy and against arithmetic done by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harmdrift.core.stats import paired_tests

BASE = [0.10, 0.20, 0.05, 0.40, 0.30, 0.15, 0.25, 0.08, 0.12, 0.33]
TUNED = [0.30, 0.22, 0.05, 0.90, 0.10, 0.45, 0.26, 0.50, 0.02, 0.60]


def test_each_test_agrees_with_scipy_on_the_same_pairs():
    result = paired_tests(BASE, TUNED, 0.01, n_boot=500, seed=0)
    deltas = np.array(TUNED) - np.array(BASE)
    wilcoxon = stats.wilcoxon(deltas[deltas != 0])  # zero deltas dropped, two-sided
    assert result["wilcoxon"]["statistic"] == pytest.approx(wilcoxon.statistic)
    assert result["wilcoxon"]["p"] == pytest.approx(wilcoxon.pvalue)
    assert result["wilcoxon"]["n_nonzero"] == 9
    unpaired = stats.mannwhitneyu(TUNED, BASE, alternative="two-sided")
    assert result["mann_whitney"]["statistic"] == pytest.approx(unpaired.statistic)
    assert result["mann_whitney"]["p"] == pytest.approx(unpaired.pvalue)
    assert result["mean_delta"] == pytest.approx(deltas.mean())


def test_the_sign_test_counts_past_the_threshold_and_is_exact():
    result = paired_tests(BASE, TUNED, 0.01, n_boot=10, seed=0)
    sign = result["sign"]
    deltas = np.array(TUNED) - np.array(BASE)
    assert (sign["n_up"], sign["n_down"]) == (int((deltas > 0.01).sum()), int((deltas < -0.01).sum()))
    assert sign["n_up"] + sign["n_down"] + sign["n_tied"] == len(BASE)
    k, n = min(sign["n_up"], sign["n_down"]), sign["n_up"] + sign["n_down"]
    by_hand = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)  # two-sided, p = 1/2
    assert sign["p"] == pytest.approx(by_hand)
    assert sign["p"] == pytest.approx(stats.binomtest(sign["n_up"], n, 0.5).pvalue)


def test_the_mean_delta_interval_is_a_seeded_bootstrap_around_the_mean():
    first = paired_tests(BASE, TUNED, 0.01, n_boot=2000, seed=7)
    again = paired_tests(BASE, TUNED, 0.01, n_boot=2000, seed=7)
    other = paired_tests(BASE, TUNED, 0.01, n_boot=2000, seed=8)
    low, high = first["mean_delta_ci"]
    assert low < first["mean_delta"] < high
    assert first["mean_delta_ci"] == again["mean_delta_ci"] != other["mean_delta_ci"]
    # Resampling 10 deltas: the interval is narrower than the deltas' own range.
    deltas = np.array(TUNED) - np.array(BASE)
    assert deltas.min() < low and high < deltas.max()


def test_nothing_to_test_gives_none_not_an_error():
    same = paired_tests([0.2, 0.3], [0.2, 0.3], 0.01, n_boot=10, seed=0)
    assert same["wilcoxon"] == {"statistic": None, "p": None, "n_nonzero": 0}
    assert same["sign"]["p"] is None and same["sign"]["n_tied"] == 2
    assert same["mean_delta"] == 0 and same["mean_delta_ci"] == [0.0, 0.0]
    empty = paired_tests([], [], 0.01, n_boot=10, seed=0)
    assert empty["n"] == 0 and empty["wilcoxon"] is None and empty["mean_delta"] is None


def test_unpaired_lists_are_refused():
    with pytest.raises(ValueError, match="one base and one tuned score per item"):
        paired_tests([0.1, 0.2], [0.1], 0.01, n_boot=10, seed=0)
