"""Unit tests for harmdrift.results on small synthetic tables written to tmp_path."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from harmdrift.core.io import DataError
from harmdrift.core.parsing import STRICT_RULE_NOTE, TOLERANT_RULE_NOTE
from harmdrift.core.stats import drift_reduction, format_p, format_pct
from harmdrift.core.vocab import (
    ACCURACY_COLUMNS,
    FORCED_ACCURACY_COLUMNS,
    STRICT_ACCURACY_COLUMNS,
    describe_model,
    order_models,
)
from harmdrift.report.main_table import (
    MAIN_COLUMNS,
    build_results_tables,
    main_results,
    write_main_results,
)
from harmdrift.report.markdown import main_results_markdown
from harmdrift.report.paper import paper_comparison

METRICS_HEADER = (
    "model,benchmark,n,"
    + ",".join(STRICT_ACCURACY_COLUMNS)
    + ","
    + ",".join(FORCED_ACCURACY_COLUMNS)
    + ",overall_acc,ci_low,ci_high,equal_acc,equal_ci_low,equal_ci_high,diff_acc,"
    "diff_ci_low,diff_ci_high,yes_rate,gold_yes_rate,abstain_rate,refusal_rate,fallback_rate,"
    "yes_precision,macro_f1,n_discordant,mcnemar_p,includes_reconstructed"
)


def metrics_row(model: str, bench: str, acc: float, n: int = 128, p: float = 1.78e-15) -> str:
    """A metrics row: tolerant accuracy ``acc``, strict accuracy 0.25 lower (DART's rule abstains more)."""
    strict = acc - 0.25
    return (
        f"{model},{bench},{n},{strict},{strict - 0.05},{strict + 0.05},0.5,0.4,0.6,0.0,0.0,0.02,"
        f"0.6,0.5,0.7,0.5,0.4,0.6,0.5,0.3,0.7,0.5,0.3,0.7,"
        f"{acc},{acc - 0.08},{acc + 0.08},0.84375,0.75,0.92,0.015625,0.0,0.05,"
        f"0.3,0.5,0.164,0.0,0.8,1.0,0.33,50,{p},False"
    )


def write_metrics(tmp_path, model: str, acc: float, *, with_all: bool = True):
    lines = [METRICS_HEADER, metrics_row(model, "D1", acc, n=16)]
    if with_all:
        lines.append(metrics_row(model, "ALL", acc))
    path = tmp_path / f"metrics_{model}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_summary(tmp_path, model: str, by_severity: dict, *, below_floor: bool = False, verdicts="judge"):
    summary = {
        "verdicts": verdicts,
        "model": model,
        "base": "m0",
        "split": "validation",
        "protocol": "held-out",
        "n_pairs": 128,
        "n_screened": 20,
        "n_judged": 20,
        "n_unscored": 0,
        "n_drift": sum(by_severity.values()),
        "by_severity": by_severity,
        "by_category": {"repeats_harm": sum(by_severity.values())},
        "by_benchmark": {},
        "order_agreement": 0.9,
        "check_set": {"accuracy": 0.5, "n": 10, "floor": 0.7, "below_floor": below_floor},
        "delta": 0.01,
        "combine": "both",
    }
    path = tmp_path / f"summary_{model}.json"
    path.write_text(json.dumps(summary))
    return path


def write_rates(tmp_path, model: str, appropriate: float, refusal: float):
    rows = ["model,subset,category,count,n,rate,ci_low,ci_high"]
    for subset in ("all", "differentiate"):
        rows.append(
            f"{model},{subset},appropriate,1,10,{appropriate},{appropriate - 0.1},{appropriate + 0.1}"
        )
        rows.append(f"{model},{subset},refusal,1,10,{refusal},{max(refusal - 0.1, 0)},{refusal + 0.1}")
        rows.append(f"{model},{subset},keyword_refusal,0,10,0.0,0.0,0.2")
    path = tmp_path / f"{model}.rates.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def inputs(tmp_path):
    metrics = {
        m: write_metrics(tmp_path, m, acc) for m, acc in [("m_dart", 0.6), ("m0", 0.39), ("m_int", 0.5)]
    }
    summaries = {
        "m_int": write_summary(tmp_path, "m_int", {"minor": 4, "moderate": 3, "severe": 2, "extreme": 1}),
        "m_dart": write_summary(tmp_path, "m_dart", {"minor": 2, "moderate": 1, "severe": 0, "extreme": 0}),
    }
    rates = {
        "m0": write_rates(tmp_path, "m0", 0.4, 0.3),
        "m_dart": write_rates(tmp_path, "m_dart", 0.75, 0.05),
    }
    return metrics, summaries, rates


# --- drift reduction ----------------------------------------------------------------------


def test_drift_reduction_values():
    assert drift_reduction(10, 3) == pytest.approx(0.7)
    assert drift_reduction(0, 0) is None
    assert drift_reduction(0, 5) is None
    assert drift_reduction(4, 6) == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        drift_reduction(-1, 0)


def test_model_descriptions_and_order():
    assert "round 3" in describe_model("m_dart_r3")
    assert "predicted" in describe_model("m_int_predlabel")
    models = ["m_joint", "m_dart_r2", "m_int", "zz", "m_dart", "m0", "m_int_predlabel", "m_dart_r10"]
    assert order_models(models) == [
        "m0",
        "m_int",
        "m_dart",
        "m_dart_r2",
        "m_dart_r10",
        "m_int_predlabel",
        "m_joint",
        "zz",
    ]


# --- main results -------------------------------------------------------------------------


def test_main_results_rows_and_values(inputs):
    metrics, summaries, rates = inputs
    df = main_results(metrics, summaries, rates)
    assert list(df.columns) == list(MAIN_COLUMNS)
    assert list(df["model"]) == ["m0", "m_int", "m_dart"]
    row = df.set_index("model")
    assert row.loc["m_dart", "overall_acc"] == pytest.approx(0.6)
    assert row.loc["m_dart", "strict_overall_acc"] == pytest.approx(0.35)
    assert row.loc["m_dart", "strict_abstain_rate_ci_high"] == pytest.approx(0.7)
    assert row.loc["m_dart", "n"] == 128
    assert row.loc["m_dart", "drift_n"] == 3
    assert row.loc["m_int", "drift_severe"] == 2
    # 1 - 3/10: the reference has 10 cases, the repaired model 3.
    assert row.loc["m_dart", "drift_reduction"] == pytest.approx(0.7)
    assert row.loc["m_int", "drift_reduction"] == pytest.approx(0.0)
    assert pd.isna(row.loc["m0", "drift_reduction"]) and pd.isna(row.loc["m0", "drift_n"])
    # The base model is not tested against itself.
    assert pd.isna(row.loc["m0", "mcnemar_p"])
    assert row.loc["m_int", "mcnemar_p"] == pytest.approx(1.78e-15)
    assert row.loc["m_dart", "od_appropriate"] == pytest.approx(0.75)
    assert row.loc["m0", "od_refusal_ci_high"] == pytest.approx(0.4)
    assert math.isnan(row.loc["m_int", "od_appropriate"])


def test_main_results_lead_with_the_strict_columns():
    strict_end = 3 + len(STRICT_ACCURACY_COLUMNS)
    assert MAIN_COLUMNS[:3] == ("model", "description", "n")
    assert MAIN_COLUMNS[3:strict_end] == STRICT_ACCURACY_COLUMNS
    forced_end = strict_end + len(FORCED_ACCURACY_COLUMNS)
    assert MAIN_COLUMNS[strict_end:forced_end] == FORCED_ACCURACY_COLUMNS
    assert MAIN_COLUMNS[forced_end : forced_end + len(ACCURACY_COLUMNS)] == ACCURACY_COLUMNS


def test_metrics_table_without_strict_columns_names_file(tmp_path, inputs):
    metrics, summaries, rates = inputs
    frame = pd.read_csv(metrics["m_int"]).drop(columns=["strict_diff_acc"])
    frame.to_csv(metrics["m_int"], index=False)
    with pytest.raises(DataError, match="metrics_m_int.csv.*strict_diff_acc"):
        main_results(metrics, summaries, rates)


def test_drift_reduction_empty_when_reference_has_no_drift(tmp_path, inputs):
    metrics, summaries, rates = inputs
    summaries["m_int"] = write_summary(
        tmp_path, "m_int", {"minor": 0, "moderate": 0, "severe": 0, "extreme": 0}
    )
    df = main_results(metrics, summaries, rates).set_index("model")
    assert pd.isna(df.loc["m_dart", "drift_reduction"])


def test_missing_all_row_names_file(tmp_path, inputs):
    metrics, summaries, rates = inputs
    metrics["m_int"] = write_metrics(tmp_path, "m_int", 0.5, with_all=False)
    with pytest.raises(DataError, match="metrics_m_int.csv.*ALL"):
        main_results(metrics, summaries, rates)


def test_missing_column_names_file(tmp_path, inputs):
    metrics, summaries, rates = inputs
    frame = pd.read_csv(metrics["m0"]).drop(columns=["yes_rate"])
    frame.to_csv(metrics["m0"], index=False)
    with pytest.raises(DataError, match="metrics_m0.csv.*yes_rate"):
        main_results(metrics, summaries, rates)


def test_missing_summary_key_names_file(tmp_path, inputs):
    metrics, summaries, rates = inputs
    summaries["m_int"].write_text(json.dumps({"n_drift": 1}))
    with pytest.raises(DataError, match="summary_m_int.json.*by_severity"):
        main_results(metrics, summaries, rates)


def test_markdown_formats_numbers(tmp_path, inputs):
    metrics, summaries, rates = inputs
    df = main_results(metrics, summaries, rates)
    csv_path, md_path = tmp_path / "out" / "main.csv", tmp_path / "out" / "main.md"
    write_main_results(df, csv_path, md_path, protocol_note="Audit on the validation split (held-out).")
    text = md_path.read_text()
    assert "60.0 [52.0, 68.0]" in text
    # m_dart's strict row: overall, EQUAL, DIFF and abstain, each with its interval.
    assert (
        "| `m_dart` | 128 | 35.0 [30.0, 40.0] | 50.0 [40.0, 60.0] | 0.0 [0.0, 2.0] | 60.0 [50.0, 70.0] |"
        in text
    )
    assert "1.8e-15" in text
    assert "70.0%" in text
    assert "held-out" in text
    assert "| `m0` |" in text
    assert pd.read_csv(csv_path)["model"].tolist() == ["m0", "m_int", "m_dart"]


def test_formatters():
    assert format_pct(0.4296875, 0.34615, 0.51538) == "43.0 [34.6, 51.5]"
    assert format_pct(float("nan")) == "n/a"
    assert format_p(1.7763568394002505e-15) == "1.8e-15"
    assert format_p(None) == "n/a"


def main_markdown(tmp_path, metrics, summaries, rates) -> str:
    out = tmp_path / "tables"
    build_results_tables(
        metrics,
        summaries,
        rates,
        main_csv=out / "main_results.csv",
        main_md=out / "main_results.md",
        comparison_md=out / "paper_comparison.md",
        student="embedded:tiny",
        protocol={"audit_protocol": "held-out (validation split)"},
        protocol_note="note",
    )
    return (out / "main_results.md").read_text()


def test_judge_check_set_warning_in_notes(tmp_path, inputs):
    metrics, summaries, rates = inputs
    summaries["m_dart"] = write_summary(tmp_path, "m_dart", {"minor": 1}, below_floor=True)
    summaries["m_int"] = write_summary(tmp_path, "m_int", {"minor": 1}, below_floor=True)
    text = main_markdown(tmp_path, metrics, summaries, rates)
    # One judge and one check set per run: one warning, however many audits report it.
    assert text.count("WARNING: the judge scored 50.0% on its check set (n=10)") == 1
    assert "treat every drift count with caution" in text
    assert "split `validation`" in text
    assert (tmp_path / "tables" / "paper_comparison.md").exists()


def test_under_classifier_verdicts_the_judge_note_is_no_warning(tmp_path, inputs):
    metrics, summaries, rates = inputs
    summaries["m_dart"] = write_summary(tmp_path, "m_dart", {}, below_floor=True, verdicts="classifier")
    text = main_markdown(tmp_path, metrics, summaries, rates)
    assert "WARNING" not in text
    assert "- the judge scored 50.0% on its check set (n=10)" in text
    assert "no drift count uses it (`audit.verdicts: classifier`)" in text
    assert "`m_dart` audit:" in text and "no judge (each screened pair counts as drift)" in text


def test_markdown_leads_with_strict_and_states_both_rules(inputs):
    metrics, summaries, rates = inputs
    text = main_results_markdown(main_results(metrics, summaries, rates), protocol_note="note")
    strict, tolerant = text.index("DART's strict rule"), text.index("our tolerant parse")
    assert strict < tolerant < text.index("## Harm drift")
    assert text.index("60.0 [52.0, 68.0]") > tolerant  # m_dart's tolerant accuracy
    assert text.index("35.0 [30.0, 40.0]") < tolerant  # m_dart's strict accuracy
    notes = text[text.index("## Notes") :]
    assert STRICT_RULE_NOTE in notes and TOLERANT_RULE_NOTE in notes


def test_markdown_without_audits(inputs):
    metrics, _, _ = inputs
    df = main_results(metrics, {}, {})
    text = main_results_markdown(df, protocol_note="no audit")
    assert "n/a" in text and "| `m_dart` |" in text


# --- paper comparison ---------------------------------------------------------------------


def test_paper_comparison_has_both_sides(inputs):
    metrics, summaries, rates = inputs
    df = main_results(metrics, summaries, rates)
    protocol = {
        "split": "test split",
        "audit_protocol": "held-out: audited the validation split",
        "judge": "judge-model-x",
        "scorer": "scorer-y",
        "teacher": "teacher-z",
        "decoding": "temperature 0.2",
    }
    text = paper_comparison(df, student="student-q", protocol=protocol)
    for paper_number in ("39.0", "11.3", "66.6", "68.2", "68.8", "72.6", "88.6", "50.2", "26.8", "64.1"):
        assert paper_number in text
    assert "39.8 -> 77.5" in text and "34.3 -> 3.0" in text
    # Ours: M0 overall with CI, M_DART accuracy, and the drift reduction 1 - 3/10.
    assert "39.0 [31.0, 47.0]" in text
    assert "60.0 [52.0, 68.0]" in text
    # The paper's accuracy stands beside our strict value first, the tolerant one after it.
    assert "| M_DART overall accuracy % | 68.8 | 35.0 [30.0, 40.0] | 60.0 [52.0, 68.0] |" in text
    assert "| M0 overall accuracy % | 39.0 | 14.0 [9.0, 19.0] | 39.0 [31.0, 47.0] |" in text
    assert "| M0 unparseable or refused % | 26.8 | 60.0 [50.0, 70.0] | 16.4 |" in text
    assert (
        "| Joint toxicity-regularised: accuracy % | ~60.0 | not run (`m_joint`) | not run (`m_joint`) |"
        in text
    )
    footer = text[text.index("### Accuracy") : text.index("### Drift")]
    assert STRICT_RULE_NOTE in footer and TOLERANT_RULE_NOTE in footer
    assert "70.0% fewer" in text
    assert "40.0 [30.0, 50.0] -> 75.0 [65.0, 85.0]" in text
    assert "## Differences" in text
    for ours in ("student-q", "judge-model-x", "scorer-y", "teacher-z", "held-out", "`m0` n=128", "decoding"):
        assert ours in text
    # Models that were not run are said to be missing, not given invented numbers.
    assert "not run (`m_joint`)" in text


def test_policy_rows_sit_beside_their_plain_rows_and_answer_the_repair_question(tmp_path, inputs):
    metrics, summaries, rates = inputs
    metrics["m_int+policy"] = write_metrics(tmp_path, "m_int+policy", 0.55)
    summaries["m_int+policy"] = write_summary(tmp_path, "m_int+policy", {"minor": 3, "moderate": 2})
    df = main_results(metrics, summaries, rates)
    assert list(df["model"]) == ["m0", "m_int", "m_int+policy", "m_dart"]
    row = df.set_index("model").loc["m_int+policy"]
    assert row["drift_n"] == 5 and row["drift_reduction"] == pytest.approx(0.5)  # against M_int's 10
    assert "under the inference-time explanation policy" in row["description"]
    text = paper_comparison(df, student="s", protocol={})
    section = text[text.index("### A system prompt alone, or repair?") :]
    assert "| `m_int+policy` |" in section and "| `m_dart` |" in section and "| 50.0% |" in section
    # Without policy rows the section is left out.
    plain = main_results(
        {k: v for k, v in metrics.items() if "+" not in k}, summaries_without_policy(summaries), rates
    )
    assert "A system prompt alone" not in paper_comparison(plain, student="s", protocol={})


def summaries_without_policy(summaries: dict) -> dict:
    return {k: v for k, v in summaries.items() if "+" not in k}


def test_the_control_repair_is_reduced_against_the_planted_student_and_no_drift_reads_na(tmp_path, inputs):
    metrics, summaries, rates = inputs
    for model, acc in (("m_int_planted", 0.5), ("m_dart_planted", 0.5)):
        metrics[model] = write_metrics(tmp_path, model, acc)
    summaries["m_int_planted"] = write_summary(tmp_path, "m_int_planted", {"minor": 20, "severe": 3})
    summaries["m_dart_planted"] = write_summary(tmp_path, "m_dart_planted", {"minor": 7})
    summaries["m_int"] = write_summary(tmp_path, "m_int", {})
    df = main_results(metrics, summaries, rates).set_index("model")
    assert df.loc["m_dart_planted", "drift_reduction"] == pytest.approx(1 - 7 / 23)
    assert pd.isna(df.loc["m_dart", "drift_reduction"])  # M_int had nothing to reduce
    text = paper_comparison(df.reset_index(), student="s", protocol={})
    assert (
        "n/a: M_int had 0 drift cases, nothing to reduce (M_DART: 3)" in text
        and "not run (`m_dart`)" not in text
    )


def test_the_control_pairs_policy_rows_are_reduced_against_the_planted_student():
    from harmdrift.report.main_table import reduction_reference

    assert reduction_reference("m_int_planted+policy") == "m_int_planted"
    assert reduction_reference("m_dart_planted+policy") == "m_int_planted"
    assert reduction_reference("m_dart_planted") == "m_int_planted"
    assert reduction_reference("m_int+policy") == reduction_reference("m_dart") == "m_int"
