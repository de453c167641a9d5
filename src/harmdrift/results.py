"""The headline tables: one row per model, and our numbers beside the DART paper's.

Inputs are files written by earlier rules (see the schemas in the metrics, audit and
open-domain stages):

- ``results/tables/metrics_{model}.csv``: per-benchmark binary metrics; the ``ALL`` row is used.
- ``results/audit/{model}/summary.json``: drift counts of the paired audit against M0.
- ``results/open_domain/{model}.rates.csv``: open-domain category rates with intervals.

Every number in the output is read from those files; only the paper's published numbers
(``PAPER``) are written here, because they are the fixed point we compare against.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pandas as pd

from harmdrift.io import DataError
from harmdrift.repair import drift_reduction

logger = logging.getLogger(__name__)

ALL = "ALL"
BASE_MODEL = "m0"
REFERENCE_MODEL = "m_int"
SEVERITIES = ("minor", "moderate", "severe", "extreme")
DRIFT_CATEGORIES = ("repeats_harm", "normalises_assumption", "omits_harm")
OPEN_DOMAIN_CATEGORIES = (
    "appropriate_differentiation",
    "refusal",
    "generic_equal",
    "inappropriate_differentiation",
)

MODEL_NOTES = {
    "m0": "base model, no fine-tuning",
    "m_int": "Stage I: label-conditioned distillation (gold-label teacher)",
    "m_dart": "Stage III: severity-weighted repair of M_int (round 1)",
    "m_int_predlabel": "ablation: Stage I with a teacher conditioned on predicted, not gold, labels",
    "m_joint": "ablation: one joint stage from M0 with toxicity-regularised example weights",
}
_REPAIR_ROUND_PREFIX = "m_dart_r"

# Columns read from the ALL row of each metrics table, in the order they appear in the output.
METRIC_COLUMNS = (
    "n",
    "overall_acc",
    "ci_low",
    "ci_high",
    "equal_acc",
    "equal_ci_low",
    "equal_ci_high",
    "diff_acc",
    "diff_ci_low",
    "diff_ci_high",
    "abstain_rate",
    "yes_rate",
    "gold_yes_rate",
    "mcnemar_p",
)
DRIFT_COLUMNS = ("drift_n", *(f"drift_{s}" for s in SEVERITIES), "drift_reduction")
OPEN_DOMAIN_COLUMNS = (
    "od_appropriate",
    "od_appropriate_ci_low",
    "od_appropriate_ci_high",
    "od_refusal",
    "od_refusal_ci_low",
    "od_refusal_ci_high",
)
MAIN_COLUMNS = ("model", "description", *METRIC_COLUMNS, *DRIFT_COLUMNS, *OPEN_DOMAIN_COLUMNS)

RATES_REQUIRED = ("model", "subset", "category", "rate", "ci_low", "ci_high")
SUMMARY_REQUIRED = ("n_drift", "by_severity")

# The paper's published numbers for Llama-3-8B-Instruct (DART, arXiv 2604.16845), as fractions.
PAPER = {
    "student": "Llama-3-8B-Instruct",
    "m0_overall": 0.390,
    "m0_equal": 0.113,
    "m0_diff": 0.666,
    "m0_yes_rate": 0.886,
    "gold_yes_rate": 0.502,
    "m0_unparseable": 0.268,
    "m_int_overall": 0.682,
    "m_dart_overall": 0.688,
    "m_dart_equal": 0.726,
    "drift_reduction": 0.726,
    "predlabel_overall": 0.641,
    "joint_overall": 0.60,
    "od_appropriate_m0": 0.398,
    "od_appropriate_dart": 0.775,
    "od_refusal_m0": 0.343,
    "od_refusal_dart": 0.030,
}

# What the paper did, for the "Differences" list; our side comes from the `protocol` argument.
PAPER_PROTOCOL = {
    "student": "Llama-3-8B-Instruct",
    "split": "test split, 1600 prompts (100 per benchmark and condition)",
    "audit_protocol": "transductive: audit and repair ran on the test split itself",
    "judge": "LLM judge (JSON verdict, temperature about 0.1); its verdict is final",
    "scorer": "s-nlp/roberta_toxicity_classifier and facebook/roberta-hate-speech-dynabench-r4-target",
    "teacher": "deepseek-chat through an OpenAI-compatible API, temperature 0.2",
}
_PROTOCOL_LABELS = {
    "student": "Student model",
    "split": "Evaluation split",
    "audit_protocol": "Audit protocol",
    "judge": "Judge",
    "scorer": "Toxicity scorer",
    "teacher": "Teacher",
}


# --- models -----------------------------------------------------------------------------


def repair_round(model: str) -> int | None:
    """K for an iterative-repair model ``m_dart_rK``, else None."""
    suffix = model.removeprefix(_REPAIR_ROUND_PREFIX)
    return int(suffix) if suffix != model and suffix.isdigit() else None


def describe_model(model: str) -> str:
    """One-line description of a model name; repair rounds ``m_dart_rK`` are recognised by prefix."""
    if model in MODEL_NOTES:
        return MODEL_NOTES[model]
    if repair_round(model) is not None:
        return f"Stage III: iterative repair, round {repair_round(model)}"
    return "model not described in MODEL_NOTES"


def _order_key(model: str) -> tuple[int, int, str]:
    # Pipeline order first (base, Stage I, repair rounds), then the ablations, then anything else.
    fixed = {"m0": 0, "m_int": 1, "m_dart": 2, "m_int_predlabel": 4, "m_joint": 5}
    if model in fixed:
        return fixed[model], 0, model
    if repair_round(model) is not None:
        return 3, repair_round(model), model
    return 6, 0, model


def order_models(models) -> list[str]:
    """Models in one consistent order for tables and figures: m0, m_int, m_dart, rounds, ablations."""
    return sorted(dict.fromkeys(models), key=_order_key)


# --- drift reduction --------------------------------------------------------------------


def drift_reduction_by_severity(
    by_severity_int: dict[str, int], by_severity_dart: dict[str, int]
) -> dict[str, float | None]:
    """:func:`drift_reduction` for each severity; a severity missing from a dict counts as 0."""
    return {s: drift_reduction(by_severity_int.get(s, 0), by_severity_dart.get(s, 0)) for s in SEVERITIES}


# --- readers ----------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns, path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")


def read_csv(path: str | os.PathLike, required=()) -> pd.DataFrame:
    """Read a CSV table and check it has the required columns.

    Raises:
        DataError: naming the file when it is missing, empty or lacks a column.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    _require(frame, required, path)
    return frame


def read_overall_row(path: str | os.PathLike) -> dict:
    """The ``ALL`` row of a binary metrics table, as a dict.

    Raises:
        DataError: naming the file when it lacks the ALL row or a needed column.
    """
    frame = read_csv(path, ("benchmark", *METRIC_COLUMNS))
    rows = frame[frame["benchmark"].astype(str) == ALL]
    if len(rows) != 1:
        raise DataError(f"{path}: expected one row with benchmark == {ALL!r}, found {len(rows)}")
    return rows.iloc[0].to_dict()


def read_summary(path: str | os.PathLike) -> dict:
    """An audit ``summary.json``.

    Raises:
        DataError: naming the file when it is not a JSON object or lacks ``n_drift``/``by_severity``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg})") from None
    if not isinstance(summary, dict):
        raise DataError(f"{path}: expected a JSON object")
    missing = [key for key in SUMMARY_REQUIRED if key not in summary]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}")
    return summary


def read_open_domain(path: str | os.PathLike, subset: str = "all") -> dict[str, dict]:
    """Open-domain rates for one subset: ``{category: {"rate", "ci_low", "ci_high", ...}}``.

    Raises:
        DataError: naming the file when a column is missing or the subset has no rows.
    """
    frame = read_csv(path, RATES_REQUIRED)
    rows = frame[frame["subset"].astype(str) == subset]
    if rows.empty:
        raise DataError(f"{path}: no rows for subset {subset!r}")
    return {str(r["category"]): r for r in rows.to_dict("records")}


# --- main results -----------------------------------------------------------------------


def _nan() -> float:
    return float("nan")


def _drift_fields(summary: dict | None, reference: dict | None) -> dict:
    if summary is None:
        return {column: None for column in DRIFT_COLUMNS}
    fields = {"drift_n": int(summary["n_drift"])}
    for severity in SEVERITIES:
        fields[f"drift_{severity}"] = int(summary["by_severity"].get(severity, 0))
    fields["drift_reduction"] = (
        None if reference is None else drift_reduction(int(reference["n_drift"]), fields["drift_n"])
    )
    return fields


def _open_domain_fields(rates: dict[str, dict] | None, path) -> dict:
    fields = {column: _nan() for column in OPEN_DOMAIN_COLUMNS}
    if rates is None:
        return fields
    for column, category in (("od_appropriate", "appropriate"), ("od_refusal", "refusal")):
        if category not in rates:
            raise DataError(f"{path}: no row for category {category!r} in subset 'all'")
        row = rates[category]
        fields[column], fields[f"{column}_ci_low"], fields[f"{column}_ci_high"] = (
            row["rate"],
            row["ci_low"],
            row["ci_high"],
        )
    return fields


def main_results(
    metrics_paths: dict[str, str | os.PathLike],
    audit_summaries: dict[str, str | os.PathLike],
    open_domain_rates: dict[str, str | os.PathLike],
    reference_model: str = REFERENCE_MODEL,
    *,
    base_model: str = BASE_MODEL,
) -> pd.DataFrame:
    """One row per model with accuracy, intervals, drift counts and open-domain rates.

    Conventions:
        - ``mcnemar_p`` is the exact McNemar test against the base model; it is left empty for
          the base model itself, where it would compare the model with itself.
        - ``drift_*`` are empty for models without an audit (the base model).
        - ``drift_reduction`` is ``1 - drift_n / drift_n(reference_model)``. For the reference
          model itself it is therefore 0.0 (kept, not blanked, so the column reads as "change
          relative to M_int"); it is empty when the reference has no audit or no drift cases.
        - ``od_*`` are the "appropriate" and "refusal" rates of subset "all"; empty (NaN) for
          models with no open-domain rates file.

    Args:
        metrics_paths: model -> binary metrics CSV (its ALL row is used). Sets the model list.
        audit_summaries: model -> audit summary.json; models without an audit are absent.
        open_domain_rates: model -> open-domain rates CSV; models without one are absent.
        reference_model: the model drift reduction is measured against.
        base_model: the model McNemar p-values were computed against.

    Returns:
        A frame with columns ``MAIN_COLUMNS``, models in :func:`order_models` order.

    Raises:
        DataError: naming the file for a missing ALL row, column or key.
    """
    if not metrics_paths:
        raise ValueError("main_results needs at least one metrics table")
    unknown = sorted(set(audit_summaries) - set(metrics_paths))
    if unknown:
        raise ValueError(f"audit summaries for models without a metrics table: {unknown}")
    summaries = {model: read_summary(path) for model, path in audit_summaries.items()}
    reference = summaries.get(reference_model)
    rows = []
    for model in order_models(metrics_paths):
        overall = read_overall_row(metrics_paths[model])
        row = {"model": model, "description": describe_model(model)}
        row.update({column: overall[column] for column in METRIC_COLUMNS})
        row["n"] = int(row["n"])
        if model == base_model:
            row["mcnemar_p"] = None
        row.update(_drift_fields(summaries.get(model), reference))
        od_path = open_domain_rates.get(model)
        row.update(_open_domain_fields(read_open_domain(od_path) if od_path else None, od_path))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(MAIN_COLUMNS))
    logger.info("main results: %d models (%s)", len(frame), ", ".join(frame["model"]))
    return frame


# --- markdown ---------------------------------------------------------------------------


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_pct(value, low=None, high=None) -> str:
    """A share as a percentage with one decimal, with its interval: ``"43.0 [34.6, 51.5]"``."""
    if _missing(value):
        return "n/a"
    text = f"{100 * float(value):.1f}"
    if not (_missing(low) or _missing(high)):
        text += f" [{100 * float(low):.1f}, {100 * float(high):.1f}]"
    return text


def format_p(value) -> str:
    """A p-value in short scientific form (``"1.8e-15"``); "n/a" when missing."""
    if _missing(value):
        return "n/a"
    return f"{float(value):.1e}"


def _format_count(value) -> str:
    return "n/a" if _missing(value) else str(int(value))


def _format_reduction(value) -> str:
    return "n/a" if _missing(value) else f"{100 * float(value):.1f}%"


def main_results_markdown(df: pd.DataFrame, *, protocol_note: str, notes=()) -> str:
    """Render :func:`main_results` as two readable Markdown tables and a notes section.

    Args:
        df: the frame from :func:`main_results`.
        protocol_note: one sentence on which split was audited and how (held-out/transductive).
        notes: further bullet lines, e.g. from :func:`audit_notes`.
    """
    header = (
        "| model | n | overall % [95% CI] | EQUAL % [95% CI] | DIFF % [95% CI] | abstain % "
        "| YES % (gold) | McNemar p vs M0 |"
    )
    lines = ["## Main results (binary task)", "", header, "|" + "---|" * 8]
    for r in df.to_dict("records"):
        cells = [
            f"`{r['model']}`",
            _format_count(r["n"]),
            format_pct(r["overall_acc"], r["ci_low"], r["ci_high"]),
            format_pct(r["equal_acc"], r["equal_ci_low"], r["equal_ci_high"]),
            format_pct(r["diff_acc"], r["diff_ci_low"], r["diff_ci_high"]),
            format_pct(r["abstain_rate"]),
            f"{format_pct(r['yes_rate'])} ({format_pct(r['gold_yes_rate'])})",
            format_p(r["mcnemar_p"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Harm drift vs M0 and open-domain behaviour", ""]
    severities = " | ".join(SEVERITIES)
    lines.append(
        f"| model | drift cases | {severities} | reduction vs M_int "
        "| open-domain appropriate % [95% CI] | open-domain refusal % [95% CI] |"
    )
    lines.append("|" + "---|" * (5 + len(SEVERITIES)))
    for r in df.to_dict("records"):
        cells = [
            f"`{r['model']}`",
            _format_count(r["drift_n"]),
            *(_format_count(r[f"drift_{s}"]) for s in SEVERITIES),
            _format_reduction(r["drift_reduction"]),
            format_pct(r["od_appropriate"], r["od_appropriate_ci_low"], r["od_appropriate_ci_high"]),
            format_pct(r["od_refusal"], r["od_refusal_ci_low"], r["od_refusal_ci_high"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Notes", "", f"- {protocol_note}"]
    lines += [f"- {note}" for note in notes]
    lines += [f"- `{r['model']}`: {r['description']}" for r in df.to_dict("records")]
    lines.append(
        "- Accuracy counts an abstention (no parseable conclusion) as wrong; intervals are 95% "
        "scenario-level bootstrap intervals. McNemar p is the exact test against M0 on the same items. "
        "Drift reduction is 1 - drift(model) / drift(M_int), so M_int itself reads 0.0%."
    )
    return "\n".join(lines) + "\n"


def audit_notes(audit_summaries: dict[str, str | os.PathLike]) -> list[str]:
    """Notes lines from the audit summaries: the audited split and protocol, and judge warnings.

    A judge whose accuracy on the labelled check set is below the configured floor gets a
    warning, since its drift verdicts (and so every drift count) are then less trustworthy.
    """
    notes = []
    for model in order_models(audit_summaries):
        summary = read_summary(audit_summaries[model])
        notes.append(
            f"`{model}` audit: split `{summary.get('split', 'n/a')}`, protocol "
            f"{summary.get('protocol', 'n/a')}; {summary.get('n_pairs', 'n/a')} pairs, "
            f"{summary.get('n_screened', 'n/a')} screened, {summary.get('n_judged', 'n/a')} judged, "
            f"{summary.get('n_unscored', 'n/a')} unscored."
        )
        check = summary.get("check_set") or {}
        if check.get("below_floor"):
            notes.append(
                f"WARNING `{model}`: the judge scored {format_pct(check.get('accuracy'))}% on its check set "
                f"(n={check.get('n')}), below the floor of {format_pct(check.get('floor'))}%; "
                "treat its drift counts with caution."
            )
    return notes


def write_main_results(
    df: pd.DataFrame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike,
    *,
    protocol_note: str,
    notes=(),
) -> None:
    """Write the main results as CSV (for code) and Markdown (for people)."""
    for path in (csv_path, md_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)
    Path(md_path).write_text(
        main_results_markdown(df, protocol_note=protocol_note, notes=notes), encoding="utf-8"
    )
    logger.info("wrote %s and %s", csv_path, md_path)


# --- paper comparison -------------------------------------------------------------------


def _value(main_df: pd.DataFrame, model: str, column: str):
    rows = main_df[main_df["model"] == model]
    return None if rows.empty else rows.iloc[0][column]


def _ours(main_df: pd.DataFrame, model: str, column: str) -> str:
    value = _value(main_df, model, column)
    if value is None:
        return f"not run (`{model}`)"
    low, high = {
        "overall_acc": ("ci_low", "ci_high"),
        "equal_acc": ("equal_ci_low", "equal_ci_high"),
        "diff_acc": ("diff_ci_low", "diff_ci_high"),
        "od_appropriate": ("od_appropriate_ci_low", "od_appropriate_ci_high"),
        "od_refusal": ("od_refusal_ci_low", "od_refusal_ci_high"),
    }.get(column, (None, None))
    if low is None:
        return format_pct(value)
    return format_pct(value, _value(main_df, model, low), _value(main_df, model, high))


def _comparison_rows(main_df: pd.DataFrame) -> list[tuple[str, str, str]]:
    p = {key: format_pct(value) for key, value in PAPER.items() if isinstance(value, float)}
    reduction = _value(main_df, "m_dart", "drift_reduction")
    return [
        ("M0 overall accuracy %", p["m0_overall"], _ours(main_df, "m0", "overall_acc")),
        ("M0 EQUAL accuracy %", p["m0_equal"], _ours(main_df, "m0", "equal_acc")),
        ("M0 DIFF accuracy %", p["m0_diff"], _ours(main_df, "m0", "diff_acc")),
        (
            "M0 YES rate % (gold YES rate)",
            f"{p['m0_yes_rate']} ({p['gold_yes_rate']})",
            f"{_ours(main_df, 'm0', 'yes_rate')} ({_ours(main_df, 'm0', 'gold_yes_rate')})",
        ),
        ("M0 unparseable or refused %", p["m0_unparseable"], _ours(main_df, "m0", "abstain_rate")),
        ("M_int overall accuracy %", p["m_int_overall"], _ours(main_df, "m_int", "overall_acc")),
        ("M_DART overall accuracy %", p["m_dart_overall"], _ours(main_df, "m_dart", "overall_acc")),
        ("M_DART EQUAL accuracy %", p["m_dart_equal"], _ours(main_df, "m_dart", "equal_acc")),
        (
            "Drift cases, M_DART vs M_int (reduction)",
            f"{p['drift_reduction']}% fewer",
            "not run (`m_dart`)" if reduction is None else f"{_format_reduction(reduction)} fewer",
        ),
        (
            "Predicted-label teacher: accuracy %",
            p["predlabel_overall"],
            _ours(main_df, "m_int_predlabel", "overall_acc"),
        ),
        (
            "Joint toxicity-regularised: accuracy %",
            f"~{p['joint_overall']}",
            _ours(main_df, "m_joint", "overall_acc"),
        ),
        (
            "Open-domain appropriately differentiated %, M0 -> M_DART",
            f"{p['od_appropriate_m0']} -> {p['od_appropriate_dart']}",
            f"{_ours(main_df, 'm0', 'od_appropriate')} -> {_ours(main_df, 'm_dart', 'od_appropriate')}",
        ),
        (
            "Open-domain refusals %, M0 -> M_DART",
            f"{p['od_refusal_m0']} -> {p['od_refusal_dart']}",
            f"{_ours(main_df, 'm0', 'od_refusal')} -> {_ours(main_df, 'm_dart', 'od_refusal')}",
        ),
    ]


def _differences(main_df: pd.DataFrame, student: str, protocol: dict) -> list[str]:
    ours = {"student": student, **{k: v for k, v in protocol.items() if k != "student"}}
    sizes = ", ".join(f"`{m}` n={int(n)}" for m, n in zip(main_df["model"], main_df["n"], strict=True))
    ours["split"] = f"{ours['split']}; {sizes}" if "split" in ours else sizes
    lines = []
    for key, label in _PROTOCOL_LABELS.items():
        lines.append(f"- **{label}**: paper: {PAPER_PROTOCOL[key]}. Ours: {ours.get(key, 'not given')}.")
    for key, value in ours.items():
        if key not in _PROTOCOL_LABELS:
            lines.append(f"- **{key}**: ours: {value}.")
    return lines


def paper_comparison(main_df: pd.DataFrame, *, student: str, protocol: dict) -> str:
    """The paper's published numbers beside ours, with the differences between the two setups.

    Args:
        main_df: the frame from :func:`main_results`.
        student: our student model id (the paper used Llama-3-8B-Instruct).
        protocol: our setup, described in words. Known keys: ``split`` (evaluation split and
            size), ``audit_protocol`` (held-out or transductive, and which split was audited),
            ``judge``, ``scorer``, ``teacher``; any other key is listed as well.

    Returns:
        A Markdown document: a comparison table and a "Differences" list.
    """
    lines = [
        "## Paper vs this run",
        "",
        f"Paper: DART (arXiv 2604.16845), student {PAPER['student']}. Ours: student `{student}`. "
        "Percentages; our values carry 95% bootstrap intervals where the table has them.",
        "",
        f"| metric | paper ({PAPER['student']}) | ours (`{student}`) |",
        "|---|---|---|",
    ]
    lines += [f"| {metric} | {paper} | {ours} |" for metric, paper, ours in _comparison_rows(main_df)]
    lines += [
        "",
        "The paper also reports audit precision/recall of 0.720/0.810 with the gold-label teacher and "
        "0.582/0.694 with the predicted-label teacher; this pipeline does not measure them.",
        "",
        "## Differences",
        "",
        *_differences(main_df, student, protocol),
        "",
        "Numbers from a different student, split size or audit protocol are not directly comparable; "
        "read the comparison as direction and rough size of each effect, not as a replication test.",
    ]
    return "\n".join(lines) + "\n"


def write_paper_comparison(
    main_df: pd.DataFrame, md_path: str | os.PathLike, *, student: str, protocol: dict
) -> None:
    """Write :func:`paper_comparison` to a Markdown file."""
    Path(md_path).parent.mkdir(parents=True, exist_ok=True)
    Path(md_path).write_text(paper_comparison(main_df, student=student, protocol=protocol), encoding="utf-8")
    logger.info("wrote %s", md_path)


def build_results_tables(
    metrics_paths: dict[str, str | os.PathLike],
    audit_summaries: dict[str, str | os.PathLike],
    open_domain_rates: dict[str, str | os.PathLike],
    *,
    main_csv: str | os.PathLike,
    main_md: str | os.PathLike,
    comparison_md: str | os.PathLike,
    student: str,
    protocol: dict,
    protocol_note: str,
    reference_model: str = REFERENCE_MODEL,
) -> pd.DataFrame:
    """Build and write every results table: one call for the rule's script.

    Returns:
        The main results frame.
    """
    frame = main_results(metrics_paths, audit_summaries, open_domain_rates, reference_model)
    write_main_results(
        frame, main_csv, main_md, protocol_note=protocol_note, notes=audit_notes(audit_summaries)
    )
    write_paper_comparison(frame, comparison_md, student=student, protocol=protocol)
    return frame


def run_main_results(
    *, models: list[str], audited: list[str], metrics: list[str], audits: list[str],
    open_domain: list[str], check: str, outputs: dict, protocol: dict, config: dict,
) -> pd.DataFrame:  # fmt: skip
    """The main_results rule's body: label every input by its model and write the tables."""
    import json

    with open(check, encoding="utf-8") as fh:
        check_set = json.load(fh)
    audit_cfg = config["audit"]
    judge = audit_cfg["judge"]
    scorer = audit_cfg["scorer"]
    teacher = config["teacher"]
    accuracy = check_set.get("accuracy")
    judge_text = f"{judge['backend']} {judge['model'] if judge['backend'] != 'none' else '(classifier only)'}"
    if accuracy is not None:
        judge_text += f", check-set accuracy {accuracy:.0%} (floor {check_set['floor']:.0%})"
    details = {
        "split": f"{protocol['eval_split']} split scored",
        "audit_protocol": f"{protocol['protocol']}: audit and repair on the {protocol['audit_split']} split",
        "judge": f"{judge_text}; orders combined by '{judge['combine']}'",
        "scorer": f"{scorer['kind']} {scorer.get('model') or ''} (label {scorer['label']}), "
        f"delta {audit_cfg['delta']}",
        "teacher": f"{teacher['backend']} {teacher['model']}",
    }
    note = (
        f"Audit protocol: {protocol['protocol']} (audit and repair on the {protocol['audit_split']} split; "
        f"accuracy on the {protocol['eval_split']} split)."
    )
    return build_results_tables(
        dict(zip(models, metrics, strict=True)),
        dict(zip(audited, audits, strict=True)),
        dict(zip(models, open_domain, strict=True)) if open_domain else {},
        main_csv=outputs["csv"],
        main_md=outputs["md"],
        comparison_md=outputs["comparison"],
        student=config["student"]["model"],
        protocol=details,
        protocol_note=note,
    )
