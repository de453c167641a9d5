"""Tests for meta_eval: arithmetic against hand-computed values, intervals, zero denominators, the floor."""

import json
import math

import pytest

from harmdrift.audit.meta_eval import f1_from_counts, meta_evaluate, passes_floor
from harmdrift.core.stats import wilson_interval


def rows_of(kind: str, expect: bool, verdicts) -> list[dict]:
    return [{"kind": kind, "expect_drift": expect, "predicted_drift": v} for v in verdicts]


# Hand-computed case. harm_inserted: TP, TP, FN, unscored; warning_dropped: TP, TP;
# identical: TN, TN, FP; tuned_safer: unscored.
# Overall: TP=4 FP=1 TN=2 FN=1, one unscored drift pair, one unscored no-drift pair, n=10.
ROWS = (
    rows_of("harm_inserted", True, [True, True, False, None])
    + rows_of("warning_dropped", True, [True, True])
    + rows_of("identical", False, [False, False, True])
    + rows_of("tuned_safer", False, [None])
)


@pytest.fixture(scope="module")
def report():
    return meta_evaluate(ROWS, seed=1)


def test_wilson_matches_hand_computed_values():
    # z = 1.959964; 8/10: centre 0.716737, half-width 0.226578 (worked by hand in the module's formula).
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.490159, abs=1e-5) and high == pytest.approx(0.943315, abs=1e-5)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.277533, abs=1e-5))
    assert wilson_interval(10, 10) == (pytest.approx(0.722467, abs=1e-5), 1.0)
    assert wilson_interval(0, 0) == (None, None)
    with pytest.raises(ValueError, match="need 0 <= successes <= total, got 4 of 3"):
        wilson_interval(4, 3)


def test_f1_from_counts():
    assert f1_from_counts(4, 1, 2) == pytest.approx(8 / 11)
    assert f1_from_counts(0, 3, 0) == 0.0
    assert f1_from_counts(0, 0, 0) is None


def test_overall_arithmetic(report):
    assert (report["n"], report["n_scored"], report["n_unscored"], report["n_expect_drift"]) == (10, 8, 2, 6)
    assert report["counts"] == {
        "tp": 4,
        "fp": 1,
        "tn": 2,
        "fn": 1,
        "unscored_drift": 1,
        "unscored_no_drift": 1,
    }
    assert report["accuracy"]["value"] == pytest.approx(6 / 10)  # unscored count as wrong
    assert report["accuracy_scored"]["value"] == pytest.approx(6 / 8)
    assert report["precision"]["value"] == pytest.approx(4 / 5)
    assert report["recall"]["value"] == pytest.approx(4 / 6)  # the unscored drift pair is missed
    assert report["f1"]["value"] == pytest.approx(8 / 11)  # 2PR/(P+R) with P=0.8, R=2/3
    assert report["specificity"]["value"] == pytest.approx(2 / 4)  # TN / (TN + FP + unscored no-drift)
    assert report["balanced_accuracy"]["value"] == pytest.approx((4 / 6 + 2 / 4) / 2)
    assert report["majority_baseline"] == pytest.approx(0.6)  # 6 of 10 pairs expect drift
    assert report["scored_rate"]["value"] == pytest.approx(0.8)
    low, high = wilson_interval(6, 10)
    assert (report["accuracy"]["ci_low"], report["accuracy"]["ci_high"]) == (low, high)
    assert (report["accuracy"]["numerator"], report["accuracy"]["denominator"]) == (6, 10)


def test_per_kind_arithmetic_and_zero_denominators(report):
    kinds = report["by_kind"]
    assert list(kinds) == ["harm_inserted", "identical", "tuned_safer", "warning_dropped"]
    harm = kinds["harm_inserted"]
    assert (harm["accuracy"]["value"], harm["recall"]["value"], harm["precision"]["value"]) == (0.5, 0.5, 1.0)
    assert harm["f1"]["value"] == pytest.approx(4 / 6)  # TP=2, FN=1, missed=1
    ident = kinds["identical"]
    assert ident["accuracy"]["value"] == pytest.approx(2 / 3)
    assert ident["recall"]["value"] is None and ident["recall"]["ci_low"] is None  # no drift expected
    assert ident["precision"]["value"] == 0.0 and ident["f1"]["value"] == 0.0
    safer = kinds["tuned_safer"]  # one pair, unscored: everything but accuracy has a 0 denominator
    assert (safer["n"], safer["n_scored"], safer["n_unscored"]) == (1, 0, 1)
    assert safer["accuracy"]["value"] == 0.0
    for key in ("accuracy_scored", "precision", "recall", "f1"):
        assert safer[key]["value"] is None and safer[key]["ci_low"] is None and safer[key]["ci_high"] is None
    assert kinds["warning_dropped"]["recall"]["value"] == 1.0


def _metrics(report):
    yield "overall", report
    yield from report["by_kind"].items()


def test_intervals_inside_unit_range_and_around_the_estimate(report):
    for name, group in _metrics(report):
        keys = (
            "scored_rate",
            "accuracy",
            "accuracy_scored",
            "precision",
            "recall",
            "specificity",
            "f1",
            "balanced_accuracy",
        )
        for key in keys:
            metric = group[key]
            if metric["value"] is None:
                continue
            assert 0.0 <= metric["ci_low"] <= metric["ci_high"] <= 1.0, (name, key)
            if key not in ("f1", "balanced_accuracy"):  # Wilson intervals always contain the estimate
                assert metric["ci_low"] <= metric["value"] <= metric["ci_high"], (name, key)


def test_report_has_no_nan_and_is_json(report):
    text = json.dumps(report, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text)["n"] == 10

    def walk(value):
        if isinstance(value, dict):
            for inner in value.values():
                walk(inner)
        elif isinstance(value, float):
            assert math.isfinite(value)

    walk(report)


def test_bootstrap_is_seeded_and_degenerate_cases():
    assert meta_evaluate(ROWS, seed=5) == meta_evaluate(ROWS, seed=5)
    assert meta_evaluate(ROWS, seed=5)["f1"] != meta_evaluate(ROWS, seed=6)["f1"]
    perfect = meta_evaluate(rows_of("harm_inserted", True, [True] * 20), seed=0)
    assert (perfect["f1"]["value"], perfect["f1"]["ci_low"], perfect["f1"]["ci_high"]) == (1.0, 1.0, 1.0)
    quiet = meta_evaluate(rows_of("identical", False, [False] * 5), seed=0)  # no drift either way
    assert quiet["f1"]["value"] is None and quiet["f1"]["ci_low"] is None
    assert quiet["accuracy"]["value"] == 1.0 and quiet["precision"]["value"] is None
    assert quiet["balanced_accuracy"]["value"] is None and quiet["majority_baseline"] == 1.0


def test_one_verdict_for_everything_is_chance():
    # 40 drift and 60 no-drift pairs, as with equal-sized kinds: saying "no drift" always scores 0.6.
    rows = rows_of("d", True, [False] * 40) + rows_of("n", False, [False] * 60)
    never = meta_evaluate(rows)
    assert never["accuracy"]["value"] == pytest.approx(0.6) == never["majority_baseline"]
    assert never["balanced_accuracy"]["value"] == 0.5
    always = meta_evaluate([{**row, "predicted_drift": True} for row in rows])
    assert always["accuracy"]["value"] == pytest.approx(0.4) and always["balanced_accuracy"]["value"] == 0.5
    ci = never["balanced_accuracy"]
    assert ci["ci_low"] == ci["ci_high"] == 0.5  # the same in every resample that has both classes


def test_a_kind_interval_does_not_depend_on_other_kinds():
    alone = meta_evaluate(ROWS[:4], seed=2)["by_kind"]["harm_inserted"]
    assert meta_evaluate(ROWS, seed=2)["by_kind"]["harm_inserted"] == alone


def test_empty_rows_give_none_not_errors():
    empty = meta_evaluate([])
    assert empty["n"] == 0 and empty["by_kind"] == {}
    assert empty["accuracy"]["value"] is None and empty["f1"]["value"] is None
    assert passes_floor(empty, 0.5) is False


@pytest.mark.parametrize(
    "row, message",
    [
        ({"expect_drift": True, "predicted_drift": True}, "row 0: missing key 'kind'"),
        ({"kind": "k", "expect_drift": True}, "row 0: missing key 'predicted_drift'"),
        ({"kind": "k", "expect_drift": 1, "predicted_drift": True}, "key 'expect_drift' must be a bool"),
        (
            {"kind": "k", "expect_drift": True, "predicted_drift": "yes"},
            "key 'predicted_drift' must be a bool or None",
        ),
        ({"kind": 3, "expect_drift": True, "predicted_drift": None}, "key 'kind' must be a string"),
    ],
)
def test_bad_rows_are_named(row, message):
    with pytest.raises(ValueError, match=message):
        meta_evaluate([row])


def test_bad_settings():
    with pytest.raises(ValueError, match="confidence"):
        meta_evaluate(ROWS, confidence=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        meta_evaluate(ROWS, n_boot=-1)


def test_floor_uses_the_lower_bound():
    nine_of_ten = meta_evaluate(rows_of("k", True, [True] * 9 + [False]))
    assert nine_of_ten["accuracy"]["value"] == 0.9
    assert passes_floor(nine_of_ten, 0.7) is False  # 0.9 > 0.7, but the lower bound is about 0.60
    assert passes_floor(nine_of_ten, 0.55) is True
    many = meta_evaluate(rows_of("k", True, [True] * 180 + [False] * 20))
    assert many["accuracy"]["ci_low"] == pytest.approx(0.8510, abs=1e-3)
    assert passes_floor(many, 0.85) is True and passes_floor(many, 0.86) is False
    exact = nine_of_ten["accuracy"]["ci_low"]
    assert passes_floor(nine_of_ten, exact) is True  # reaching the floor is enough
    assert passes_floor(meta_evaluate(rows_of("k", True, [None] * 4)), 0.1) is False  # all unscored


@pytest.mark.parametrize("floor", [-0.1, 1.2, "0.5", None, True])
def test_floor_must_be_a_proportion(report, floor):
    with pytest.raises(ValueError, match="floor must be a number between 0 and 1"):
        passes_floor(report, floor)
