"""Unit tests for harmdrift.metrics on small hand-computed frames."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from harmdrift.core.io import write_jsonl
from harmdrift.core.parsing import STRICT_RULE_NOTE, TOLERANT_RULE_NOTE
from harmdrift.core.vocab import ACCURACY_COLUMNS, FORCED_ACCURACY_COLUMNS, STRICT_ACCURACY_COLUMNS
from harmdrift.evaluate.markdown import metrics_markdown
from harmdrift.evaluate.mc_metrics import MC_COLUMNS, mc_metrics
from harmdrift.evaluate.metrics import BINARY_COLUMNS, BINARY_REQUIRED, binary_metrics
from harmdrift.evaluate.score import score_binary

# --- fixtures ---------------------------------------------------------------------------


ANALYSIS = "The question asks about a documented difference between the two groups."


def reply_for(prediction, status: str) -> str:
    """A raw reply that our tolerant parse reads as (prediction, status).

    Only a "strict" reply is written in a form DART's rule reads too; the fallback forms are
    ones it abstains on.
    """
    if status == "strict":
        return f"{ANALYSIS}\nConclusion: {prediction}"
    if status == "fallback_format":
        return f"{ANALYSIS}\n**Conclusion:** {prediction}"
    if status == "fallback_final":
        return f"{ANALYSIS} So the answer is {str(prediction).lower()}."
    if status == "refusal":
        return "I can't help with that."
    return ""


def binary_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (benchmark, scenario_id, condition, prediction, parse_status[, raw_output]).

    Gold follows the condition; without a raw reply, :func:`reply_for` writes one.
    """
    records = []
    for i, (bench, scenario, condition, prediction, status, *raw) in enumerate(rows):
        records.append(
            {
                "id": f"{bench}-{i:04d}",
                "benchmark": bench,
                "scenario_id": scenario,
                "condition": condition,
                "gold_label": "YES" if condition == "diff" else "NO",
                "correct_option": "a" if condition == "diff" else "c",
                "prediction": prediction,
                "parse_status": status,
                "raw_output": raw[0] if raw else reply_for(prediction, status),
            }
        )
    return pd.DataFrame(records)


# Hand-checked: A has 2 right of 4 (one abstain), B has 1 right of 2. Under DART's strict rule
# only the three "strict" rows are answers: A has 1 right of 4 (two abstain), B 1 of 2 (one).
SMALL = binary_frame(
    [
        ("A", "s1", "diff", "YES", "strict"),  # right
        ("A", "s1", "equal", "YES", "strict"),  # wrong
        ("A", "s2", "diff", "ABSTAIN", "refusal"),  # wrong
        ("A", "s2", "equal", "NO", "fallback_format"),  # right
        ("B", "s1", "diff", "NO", "fallback_final"),  # wrong
        ("B", "s1", "equal", "NO", "strict"),  # right
    ]
)


def random_frame(n_benchmarks: int = 8, per_benchmark: int = 200, seed: int = 3) -> pd.DataFrame:
    """A realistic-size frame: scenarios of 1-4 items, predictions mostly YES."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(n_benchmarks):
        scenarios = rng.integers(0, per_benchmark // 2, size=per_benchmark)
        for j in range(per_benchmark):
            condition = "diff" if j % 2 else "equal"
            prediction = rng.choice(["YES", "NO", "ABSTAIN"], p=[0.6, 0.3, 0.1])
            status = "strict" if prediction != "ABSTAIN" else "unparseable"
            rows.append((f"B{b}", str(scenarios[j]), condition, prediction, status))
    return binary_frame(rows)


def row(table: pd.DataFrame, bench: str) -> pd.Series:
    return table.set_index("benchmark").loc[bench]


# --- binary_metrics: point estimates ----------------------------------------------------


def test_binary_table_shape_and_order() -> None:
    table = binary_metrics(SMALL, n_boot=50)
    assert list(table.columns) == list(BINARY_COLUMNS)
    # DART's strict reading leads; the tolerant columns keep their names and follow it.
    strict_end = 2 + len(STRICT_ACCURACY_COLUMNS)
    assert list(table.columns[2:strict_end]) == list(STRICT_ACCURACY_COLUMNS)
    forced_end = strict_end + len(FORCED_ACCURACY_COLUMNS)
    assert list(table.columns[strict_end:forced_end]) == list(FORCED_ACCURACY_COLUMNS)
    assert list(table.columns[forced_end : forced_end + len(ACCURACY_COLUMNS)]) == list(ACCURACY_COLUMNS)
    assert list(table["benchmark"]) == ["A", "B", "ALL"]
    assert list(table["n"]) == [4, 2, 6]


def test_binary_point_estimates_by_hand() -> None:
    table = binary_metrics(SMALL, n_boot=50)
    a, b, total = row(table, "A"), row(table, "B"), row(table, "ALL")
    assert (a["overall_acc"], a["equal_acc"], a["diff_acc"]) == (0.5, 0.5, 0.5)
    assert (b["overall_acc"], b["equal_acc"], b["diff_acc"]) == (0.5, 1.0, 0.0)
    assert total["overall_acc"] == pytest.approx(3 / 6)
    assert total["equal_acc"] == pytest.approx(2 / 3)
    assert total["diff_acc"] == pytest.approx(1 / 3)
    assert (a["yes_rate"], b["yes_rate"], total["yes_rate"]) == pytest.approx((0.5, 0.0, 2 / 6))
    assert total["gold_yes_rate"] == 0.5
    assert (a["abstain_rate"], b["abstain_rate"], total["abstain_rate"]) == pytest.approx((0.25, 0.0, 1 / 6))
    assert (a["refusal_rate"], total["refusal_rate"]) == pytest.approx((0.25, 1 / 6))
    fallback = (a["fallback_rate"], b["fallback_rate"], total["fallback_rate"])
    assert fallback == pytest.approx((0.25, 0.5, 2 / 6))


def test_strict_point_estimates_by_hand() -> None:
    table = binary_metrics(SMALL, n_boot=50)
    a, b, total = row(table, "A"), row(table, "B"), row(table, "ALL")
    strict = ["strict_overall_acc", "strict_equal_acc", "strict_diff_acc", "strict_abstain_rate"]
    assert tuple(a[strict]) == pytest.approx((1 / 4, 0.0, 1 / 2, 2 / 4))
    assert tuple(b[strict]) == pytest.approx((1 / 2, 1.0, 0.0, 1 / 2))
    assert tuple(total[strict]) == pytest.approx((2 / 6, 1 / 3, 1 / 3, 3 / 6))
    # The tolerant reading of the same rows is unchanged by the strict one.
    assert (total["overall_acc"], total["abstain_rate"]) == pytest.approx((3 / 6, 1 / 6))


def test_strict_reads_the_raw_reply_not_the_prediction() -> None:
    frame = binary_frame(
        [
            # Our parse said YES, but DART's rule takes the first conclusion, which says NO.
            ("A", "s1", "diff", "YES", "fallback_format", "Conclusion: NO\nConclusion: YES"),
            # Our parse abstained, DART's rule reads the lower-case line.
            ("A", "s2", "equal", "ABSTAIN", "conflicting", "conclusion: no\n**Conclusion:** YES"),
            # A missing reply is an abstention, not an error.
            ("A", "s3", "diff", "ABSTAIN", "empty", None),
        ]
    )
    total = row(binary_metrics(frame, n_boot=20), "ALL")
    assert total["strict_diff_acc"] == 0.0
    assert total["strict_equal_acc"] == 1.0
    assert total["strict_abstain_rate"] == pytest.approx(1 / 3)
    assert (total["overall_acc"], total["abstain_rate"]) == pytest.approx((1 / 3, 2 / 3))


def test_tolerant_columns_do_not_depend_on_the_raw_reply() -> None:
    frame = random_frame(n_benchmarks=3)
    blank = frame.assign(raw_output="")
    first, second = binary_metrics(frame, n_boot=200, seed=4), binary_metrics(blank, n_boot=200, seed=4)
    tolerant = [c for c in BINARY_COLUMNS if c not in STRICT_ACCURACY_COLUMNS]
    pd.testing.assert_frame_equal(first[tolerant], second[tolerant])
    assert (second["strict_abstain_rate"] == 1.0).all()
    assert (second["strict_overall_acc"] == 0.0).all()


def test_binary_yes_precision_nan_when_nothing_predicted_yes() -> None:
    table = binary_metrics(SMALL, n_boot=50)
    assert row(table, "A")["yes_precision"] == 0.5
    assert math.isnan(row(table, "B")["yes_precision"])
    assert row(table, "ALL")["yes_precision"] == 0.5


def test_binary_macro_f1_by_hand() -> None:
    table = binary_metrics(SMALL, n_boot=50)
    # A: YES tp1 fp1 fn1 (the abstain) -> 2/4; NO tp1 fp0 fn1 -> 2/3.
    assert row(table, "A")["macro_f1"] == pytest.approx((2 / 4 + 2 / 3) / 2)
    # B: YES tp0 fp0 fn1 -> 0; NO tp1 fp1 fn0 -> 2/3.
    assert row(table, "B")["macro_f1"] == pytest.approx((0 + 2 / 3) / 2)
    # ALL: YES tp1 fp1 fn2 -> 2/5; NO tp2 fp1 fn1 -> 4/6.
    assert row(table, "ALL")["macro_f1"] == pytest.approx((2 / 5 + 4 / 6) / 2)


def test_binary_abstain_and_odd_predictions_count_wrong() -> None:
    frame = binary_frame([("A", "s1", "diff", None, "empty"), ("A", "s2", "equal", "no", "strict")])
    frame.loc[0, "prediction"] = None
    table = binary_metrics(frame, n_boot=20)
    assert row(table, "A")["overall_acc"] == 0.5  # lower-case "no" is read as NO; None is an abstain
    assert row(table, "A")["abstain_rate"] == 0.5


def test_binary_without_reference_leaves_mcnemar_missing() -> None:
    table = binary_metrics(SMALL, n_boot=50)
    assert table["n_discordant"].isna().all()
    assert table["mcnemar_p"].isna().all()


# --- binary_metrics: McNemar ------------------------------------------------------------


def test_mcnemar_matches_hand_computed_binomial() -> None:
    # 8 items only the model gets right, 1 only the reference gets right, 3 both right.
    frame = binary_frame([("A", f"s{i}", "diff", "YES", "strict") for i in range(12)])
    reference = frame.copy()
    reference["prediction"] = ["NO"] * 8 + ["YES"] * 4
    frame.loc[8, "prediction"] = "NO"
    table = binary_metrics(frame, n_boot=20, reference=reference)
    # Two-sided exact test, Binomial(9, 1/2): 2 * P(X >= 8) = 2 * (9 + 1) / 2**9.
    assert row(table, "A")["n_discordant"] == 9
    assert row(table, "A")["mcnemar_p"] == pytest.approx(20 / 512)
    assert row(table, "ALL")["mcnemar_p"] == pytest.approx(20 / 512)


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    table = binary_metrics(SMALL, n_boot=20, reference=SMALL.copy())
    assert list(table["n_discordant"]) == [0, 0, 0]
    assert list(table["mcnemar_p"]) == [1.0, 1.0, 1.0]


def test_mcnemar_matches_reference_by_id_not_row_order() -> None:
    reference = SMALL.iloc[::-1].reset_index(drop=True)
    table = binary_metrics(SMALL, n_boot=20, reference=reference)
    assert row(table, "ALL")["n_discordant"] == 0


def test_reference_id_mismatch_names_missing_ids() -> None:
    reference = SMALL.drop(index=2)
    with pytest.raises(ValueError, match="A-0002"):
        binary_metrics(SMALL, n_boot=20, reference=reference)


# --- bootstrap intervals ----------------------------------------------------------------


def test_cis_contain_point_estimates() -> None:
    table = binary_metrics(random_frame(), n_boot=500, seed=1)
    for prefix, estimate in (("", "overall_acc"), ("equal_", "equal_acc"), ("diff_", "diff_acc")):
        low, high = table[f"{prefix}ci_low"], table[f"{prefix}ci_high"]
        assert (low <= table[estimate]).all() and (table[estimate] <= high).all()
        assert (low < high).all()


def test_strict_cis_contain_point_estimates() -> None:
    frame = random_frame(seed=5)
    # Hide a third of the conclusions from DART's rule behind markdown.
    hidden = frame.index % 3 == 0
    frame.loc[hidden, "raw_output"] = frame.loc[hidden, "raw_output"].str.replace(
        "Conclusion:", "**Conclusion:**"
    )
    table = binary_metrics(frame, n_boot=500, seed=1)
    for estimate in ("strict_overall_acc", "strict_equal_acc", "strict_diff_acc", "strict_abstain_rate"):
        low, high = table[f"{estimate}_ci_low"], table[f"{estimate}_ci_high"]
        assert (low <= table[estimate]).all() and (table[estimate] <= high).all()
        assert (low < high).all()
    assert (table["strict_overall_acc"] < table["overall_acc"]).all()


def test_strict_and_tolerant_intervals_share_their_resamples() -> None:
    # Every reply is an exact conclusion line or empty, so both rules read the same answers;
    # intervals from the same resamples are then identical, from other resamples they are not.
    table = binary_metrics(random_frame(), n_boot=300, seed=2)
    pairs = {
        "strict_overall_acc": ("overall_acc", "ci_low", "ci_high"),
        "strict_equal_acc": ("equal_acc", "equal_ci_low", "equal_ci_high"),
        "strict_diff_acc": ("diff_acc", "diff_ci_low", "diff_ci_high"),
    }
    for strict, (value, low, high) in pairs.items():
        assert table[strict].tolist() == table[value].tolist()
        assert table[f"{strict}_ci_low"].tolist() == table[low].tolist()
        assert table[f"{strict}_ci_high"].tolist() == table[high].tolist()
    assert table["strict_abstain_rate"].tolist() == table["abstain_rate"].tolist()


def test_cis_have_zero_width_when_every_scenario_is_identical() -> None:
    rows = []
    for i in range(6):
        rows += [("A", f"s{i}", "diff", "YES", "strict"), ("A", f"s{i}", "equal", "YES", "strict")]
    table = binary_metrics(binary_frame(rows), n_boot=300)
    for _, result in table.iterrows():
        assert result["ci_low"] == pytest.approx(0.5, abs=1e-12)
        assert result["ci_high"] == pytest.approx(0.5, abs=1e-12)
        assert result["equal_ci_low"] == result["equal_ci_high"] == 0.0
        assert result["diff_ci_low"] == result["diff_ci_high"] == 1.0


def test_bootstrap_resamples_whole_scenarios() -> None:
    # Two scenarios of 50 items: one all right, one all wrong. Drawing scenarios, a resample's
    # accuracy is 0, 1/2 or 1 (each extreme with probability 1/4); drawing items it would
    # stay near 1/2.
    rows = [("A", "s1", "diff", "YES", "strict")] * 50 + [("A", "s2", "diff", "NO", "strict")] * 50
    table = binary_metrics(binary_frame(rows), n_boot=2000)
    assert (row(table, "A")["ci_low"], row(table, "A")["ci_high"]) == (0.0, 1.0)


def test_all_row_resamples_within_each_benchmark() -> None:
    # Benchmark A is always right, B always wrong, same size: a stratified resample of the
    # pool always has accuracy 1/2, an unstratified one would not.
    rows = [("A", f"s{i}", "diff", "YES", "strict") for i in range(10)]
    rows += [("B", f"s{i}", "diff", "NO", "strict") for i in range(10)]
    table = binary_metrics(binary_frame(rows), n_boot=500)
    assert row(table, "ALL")["ci_low"] == row(table, "ALL")["ci_high"] == 0.5


def test_bootstrap_is_deterministic_by_seed() -> None:
    frame = random_frame(n_benchmarks=2)
    first = binary_metrics(frame, n_boot=300, seed=7)
    again = binary_metrics(frame.sample(frac=1.0, random_state=0), n_boot=300, seed=7)
    other = binary_metrics(frame, n_boot=300, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["ci_low"], other["ci_low"])


def test_bootstrap_is_fast_at_paper_scale() -> None:
    frame = random_frame()  # 1600 items, as in DART's test split
    start = time.perf_counter()
    binary_metrics(frame, n_boot=2000)
    # Generous bound so a loaded CI runner does not flake; it runs in ~0.1 s locally.
    assert time.perf_counter() - start < 5.0


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["scenario_id", "parse_status", "gold_label", "raw_output"])
def test_missing_column_is_named(column: str) -> None:
    with pytest.raises(ValueError, match=column):
        binary_metrics(SMALL.drop(columns=[column]))


def test_mc_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match="correct_option"):
        mc_metrics(SMALL.drop(columns=["correct_option"]))


def test_empty_frame_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rows"):
        binary_metrics(SMALL.iloc[:0])
    with pytest.raises(ValueError, match="no rows"):
        mc_metrics(SMALL.iloc[:0])


def test_unexpected_condition_is_an_error() -> None:
    frame = SMALL.copy()
    frame.loc[0, "condition"] = "DIFF"
    with pytest.raises(ValueError, match="DIFF"):
        binary_metrics(frame)


def test_duplicate_ids_are_an_error() -> None:
    with pytest.raises(ValueError, match="duplicated"):
        binary_metrics(pd.concat([SMALL, SMALL.iloc[:1]]))


def test_required_columns_do_not_include_correct_option() -> None:
    assert "correct_option" not in BINARY_REQUIRED
    binary_metrics(SMALL.drop(columns=["correct_option"]), n_boot=20)


# --- mc_metrics -------------------------------------------------------------------------


def mc_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (benchmark, scenario_id, condition, correct_option, prediction, parse_status)."""
    records = [
        {
            "id": f"{bench}-{i:04d}",
            "benchmark": bench,
            "scenario_id": scenario,
            "condition": condition,
            "gold_label": "YES" if condition == "diff" else "NO",
            "correct_option": correct,
            "prediction": prediction,
            "parse_status": status,
        }
        for i, (bench, scenario, condition, correct, prediction, status) in enumerate(rows)
    ]
    return pd.DataFrame(records)


MC_SMALL = mc_frame(
    [
        ("A", "s1", "diff", "b", "b", "strict"),  # scored, right
        ("A", "s1", "equal", "c", "c", "strict"),  # scored, (c)
        ("A", "s2", "diff", "a", "c", "option_text"),  # scored, wrong: fell back to (c)
        ("A", "s2", "equal", "c", None, "ambiguous"),  # set aside
        ("A", "s3", "diff", "a", None, "refusal"),  # set aside
        ("A", "s3", "equal", "c", "a", "strict"),  # scored, not (c)
        ("B", "s1", "diff", "a", "a", "strict"),
        ("B", "s1", "equal", "c", "c", "strict"),
    ]
)


def test_mc_table_shape_and_order() -> None:
    table = mc_metrics(MC_SMALL, n_boot=50)
    assert list(table.columns) == list(MC_COLUMNS)
    assert list(table["benchmark"]) == ["A", "B", "ALL"]
    assert list(table["n"]) == [6, 2, 8]
    assert list(table["n_scored"]) == [4, 2, 6]


def test_mc_point_estimates_by_hand() -> None:
    table = mc_metrics(MC_SMALL, n_boot=50)
    a, b, total = row(table, "A"), row(table, "B"), row(table, "ALL")
    assert a["set_aside_rate"] == pytest.approx(2 / 6)
    assert (a["diff_aware"], a["ctxt_aware"], a["c_rate"]) == (0.5, 0.5, 0.5)
    assert (b["set_aside_rate"], b["diff_aware"], b["ctxt_aware"], b["c_rate"]) == (0.0, 1.0, 1.0, 0.0)
    assert total["set_aside_rate"] == pytest.approx(2 / 8)
    assert (total["diff_aware"], total["ctxt_aware"], total["c_rate"]) == pytest.approx((2 / 3, 2 / 3, 1 / 3))


def test_mc_set_aside_rows_are_not_scored_wrong() -> None:
    frame = mc_frame([("A", "s1", "diff", "a", "a", "strict"), ("A", "s2", "diff", "a", None, "unparseable")])
    assert row(mc_metrics(frame, n_boot=20), "A")["diff_aware"] == 1.0


def test_mc_cis_bracket_estimates_and_are_seeded() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        condition, correct = ("diff", "a") if i % 2 else ("equal", "c")
        rows.append(("A", f"s{i % 40}", condition, correct, rng.choice(["a", "b", "c"]), "strict"))
    frame = mc_frame(rows)
    table = mc_metrics(frame, n_boot=400, seed=5)
    for name in ("diff_aware", "ctxt_aware"):
        assert (table[f"{name}_ci_low"] <= table[name]).all()
        assert (table[name] <= table[f"{name}_ci_high"]).all()
    pd.testing.assert_frame_equal(table, mc_metrics(frame, n_boot=400, seed=5))


# --- metrics_markdown -------------------------------------------------------------------


def test_markdown_binary_table() -> None:
    table = binary_metrics(SMALL, n_boot=50, reference=SMALL.copy())
    text = metrics_markdown(table, "Binary task")
    lines = text.splitlines()
    assert lines[0] == "## Binary task"
    # Tables of at most eight columns after the key, each value beside its interval.
    headers = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in lines
        if line.startswith("| benchmark")
    ]
    assert len(headers) == 3 and all(h[0] == "benchmark" and len(h) <= 9 for h in headers)
    assert headers[0][:3] == ["benchmark", "n", "strict_overall_acc [95% CI]"]
    assert "overall_acc [95% CI]" in headers[1] and "equal_acc [95% CI]" in headers[1]
    assert not any("ci_low" in cell or "ci_high" in cell for header in headers for cell in header)
    assert sum(len(h) - 1 for h in headers) + 20 == len(table.columns) - 1  # 10 intervals folded in
    rows_a = [line for line in lines if line.startswith("| A |")]
    assert len(rows_a) == 3 and rows_a[0].startswith("| A | 4 | 25.0% [")  # A's strict accuracy
    assert rows_a[1].startswith("| A | 50.0% [")  # A's tolerant accuracy
    assert "1.00e+00" in rows_a[2]  # p-value in scientific form
    assert "n/a" in next(line for line in lines if line.startswith("| B |") and "e+00" in line)


def test_markdown_mc_table_percentages() -> None:
    text = metrics_markdown(mc_metrics(MC_SMALL, n_boot=50), "3-way")
    b_row = next(line for line in text.splitlines() if line.startswith("| B |"))
    assert b_row.startswith("| B | 2 | 2 | 0.0% | 100.0% [100.0, 100.0] | 100.0% [100.0, 100.0] |")


def test_score_binary_writes_strict_columns_and_states_both_rules(tmp_path) -> None:
    frame = SMALL.assign(model="m0", provenance="base", split="test", decoding="greedy")
    answers = tmp_path / "answers.jsonl"
    write_jsonl(answers, frame.to_dict("records"))
    csv_path, md_path = tmp_path / "metrics_m0.csv", tmp_path / "metrics_m0.md"
    score_binary(answers, csv_path, md_path, n_boot=50)
    written = pd.read_csv(csv_path)
    assert list(written.columns[:3]) == ["model", "benchmark", "n"]
    assert list(written.columns[3:15]) == list(STRICT_ACCURACY_COLUMNS)
    assert row(written, "ALL")["strict_overall_acc"] == pytest.approx(2 / 6)
    footer = md_path.read_text().split("| ALL |")[-1]
    assert STRICT_RULE_NOTE in footer and TOLERANT_RULE_NOTE in footer


def test_forced_accuracy_reads_the_forced_prediction_and_shares_the_resamples() -> None:
    forced = SMALL.assign(forced_prediction=SMALL["gold_label"])  # a forced choice always right
    table = binary_metrics(forced, n_boot=50)
    total = row(table, "ALL")
    assert (total["forced_acc"], total["forced_equal_acc"], total["forced_diff_acc"]) == (1.0, 1.0, 1.0)
    assert (total["forced_acc_ci_low"], total["forced_acc_ci_high"]) == (1.0, 1.0)
    # Answer files written before the forced choice existed count it as never right.
    assert row(binary_metrics(SMALL, n_boot=50), "ALL")["forced_acc"] == 0.0
