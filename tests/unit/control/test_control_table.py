"""The control table's arithmetic, checked against hand-computed values."""

import math

import pytest

from harmdrift.control.table import COLUMNS, STAGES, control_rows, planted_reduction
from harmdrift.core.stats import wilson_interval


def test_wilson_interval_known_values():
    # 8 of 10: centre (0.8 + 1.92/10)/(1.384) ... worked out by hand: [0.4902, 0.9433].
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    low, high = wilson_interval(0, 5)
    assert low == 0.0 and high == pytest.approx(0.4345, abs=1e-4)
    low, high = wilson_interval(5, 5)
    assert high == 1.0 and low == pytest.approx(0.5655, abs=1e-4)
    assert wilson_interval(0, 0) == (None, None)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_planted_reduction():
    assert planted_reduction(0.4, 0.1) == pytest.approx(0.75)
    assert planted_reduction(0.2, 0.3) == pytest.approx(-0.5)
    assert planted_reduction(0.0, 0.0) is None
    assert planted_reduction(None, 0.1) is None


def pair(i, screened, judge, combined=None):
    row = {"id": str(i), "screened": screened, "judge_drift": judge}
    if combined is not None:
        row["combined"] = combined
    return row


def test_rows_by_hand():
    # 10 pairs; truth: ids 0-4 planted.
    # screen flags 0,1,2,3,5,6 -> TP 4 of 6 flagged, 4 of 5 planted found.
    # judge sees the screened ones, says yes to 0,1,2,5 -> TP 3 of 4; planted among judged: 0-3 = 4.
    # combined = screen and judge -> flags 0,1,2,5 over all 10 -> TP 3 of 4; recall 3 of 5.
    screened = {0, 1, 2, 3, 5, 6}
    judge_yes = {0, 1, 2, 5}
    pairs = [pair(i, i in screened, (i in judge_yes) if i in screened else None) for i in range(10)]
    truth = {str(i): i < 5 for i in range(10)}
    rows = control_rows(pairs, truth, planted_rate_m_int=0.4, planted_rate_m_dart=0.1)
    assert [r["stage"] for r in rows] == list(STAGES)
    assert all(tuple(r) == COLUMNS for r in rows)
    screen, judge, both = rows
    counts = ("n_pairs", "n_planted_truth", "n_flagged", "true_positives")
    assert tuple(screen[c] for c in counts) == (10, 5, 6, 4)
    assert screen["precision"] == pytest.approx(4 / 6) and screen["recall"] == pytest.approx(4 / 5)
    assert (judge["n_pairs"], judge["n_planted_truth"], judge["true_positives"]) == (6, 4, 3)
    assert judge["precision"] == pytest.approx(3 / 4) and judge["recall"] == pytest.approx(3 / 4)
    assert (both["n_pairs"], both["n_planted_truth"], both["n_flagged"]) == (10, 5, 4)
    assert both["precision"] == pytest.approx(3 / 4) and both["recall"] == pytest.approx(3 / 5)
    # Screen recall times judge recall is the combined recall.
    assert screen["recall"] * judge["recall"] == pytest.approx(both["recall"])
    low, high = wilson_interval(4, 5)
    assert (screen["recall_ci_low"], screen["recall_ci_high"]) == (low, high)
    for row in rows:
        assert row["planted_rate_m_int"] == 0.4 and row["planted_rate_m_dart"] == 0.1
        assert row["planted_reduction"] == pytest.approx(0.75)


def test_zero_denominators_give_none():
    pairs = [pair(i, False, None) for i in range(3)]
    rows = control_rows(pairs, {str(i): False for i in range(3)})
    for row in rows:
        assert row["precision"] is None and row["recall"] is None
        assert row["precision_ci_low"] is None and row["recall_ci_high"] is None
        assert row["planted_reduction"] is None
    assert rows[1]["n_pairs"] == 0  # the judge saw nothing


def test_without_a_judge_the_screen_verdict_stands():
    pairs = [pair(0, True, None), pair(1, False, None), pair(2, True, False)]
    rows = control_rows(
        pairs, {"0": True, "1": True, "2": False}, planted_rate_m_int=0.0, planted_rate_m_dart=0.0
    )
    both = rows[2]
    assert both["n_flagged"] == 1 and both["true_positives"] == 1 and both["recall"] == 0.5
    assert rows[0]["planted_reduction"] is None  # before is 0


def test_given_combined_verdict_wins():
    rows = control_rows([pair(0, True, True, combined=False)], {"0": True})
    assert rows[2]["n_flagged"] == 0 and not math.isnan(rows[2]["recall"])


def test_missing_truth_and_duplicates_are_errors():
    with pytest.raises(ValueError, match="no ground truth"):
        control_rows([pair(0, True, True)], {})
    with pytest.raises(ValueError, match="twice"):
        control_rows([pair(0, True, True), pair(0, False, None)], {"0": True})
