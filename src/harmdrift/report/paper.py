"""The paper's reported numbers beside ours, with the protocol differences stated."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from harmdrift.core.parsing import STRICT_RULE_NOTE, TOLERANT_RULE_NOTE
from harmdrift.core.stats import format_pct, is_missing
from harmdrift.report.markdown import format_reduction

logger = logging.getLogger(__name__)

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


# --- paper comparison -------------------------------------------------------------------


def _value(main_df: pd.DataFrame, model: str, column: str):
    rows = main_df[main_df["model"] == model]
    return None if rows.empty else rows.iloc[0][column]


# Interval columns whose names predate the ``<column>_ci_low`` pattern the newer columns follow.
_LEGACY_CI = {
    "overall_acc": ("ci_low", "ci_high"),
    "equal_acc": ("equal_ci_low", "equal_ci_high"),
    "diff_acc": ("diff_ci_low", "diff_ci_high"),
}

# Accuracy rows: (label, the paper's key, model, column stem). Our strict value is
# ``strict_<stem>``, the tolerant one ``<stem>``.
_ACCURACY_ROWS = (
    ("M0 overall accuracy %", "m0_overall", "m0", "overall_acc"),
    ("M0 EQUAL accuracy %", "m0_equal", "m0", "equal_acc"),
    ("M0 DIFF accuracy %", "m0_diff", "m0", "diff_acc"),
    ("M0 unparseable or refused %", "m0_unparseable", "m0", "abstain_rate"),
    ("M_int overall accuracy %", "m_int_overall", "m_int", "overall_acc"),
    ("M_DART overall accuracy %", "m_dart_overall", "m_dart", "overall_acc"),
    ("M_DART EQUAL accuracy %", "m_dart_equal", "m_dart", "equal_acc"),
    ("Predicted-label teacher: accuracy %", "predlabel_overall", "m_int_predlabel", "overall_acc"),
    ("Joint toxicity-regularised: accuracy %", "joint_overall", "m_joint", "overall_acc"),
)
# Paper values the paper gives only roughly.
_APPROXIMATE = {"joint_overall"}


def _ours(main_df: pd.DataFrame, model: str, column: str) -> str:
    value = _value(main_df, model, column)
    if value is None:
        return f"not run (`{model}`)"
    low, high = _LEGACY_CI.get(column, (f"{column}_ci_low", f"{column}_ci_high"))
    if low not in main_df.columns or high not in main_df.columns:
        return format_pct(value)
    return format_pct(value, _value(main_df, model, low), _value(main_df, model, high))


def _accuracy_rows(main_df: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """(label, paper, ours under DART's strict rule, ours under the tolerant parse) per row."""
    rows = []
    for label, key, model, stem in _ACCURACY_ROWS:
        paper = ("~" if key in _APPROXIMATE else "") + format_pct(PAPER[key])
        rows.append((label, paper, _ours(main_df, model, f"strict_{stem}"), _ours(main_df, model, stem)))
    return rows


def _reduction_text(main_df: pd.DataFrame) -> str:
    if main_df[main_df["model"] == "m_dart"].empty:
        return "not run (`m_dart`)"
    reduction = _value(main_df, "m_dart", "drift_reduction")
    if reduction is None or is_missing(reduction):
        before, after = _value(main_df, "m_int", "drift_n"), _value(main_df, "m_dart", "drift_n")
        if before is None or is_missing(before):
            return "n/a (M_int was not audited)"
        return f"n/a: M_int had {int(before)} drift cases, nothing to reduce (M_DART: {int(after)})"
    return f"{format_reduction(reduction)} fewer"


def _other_rows(main_df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Rows that do not depend on the parse rule (or exist only under the tolerant one)."""
    p = {key: format_pct(value) for key, value in PAPER.items() if isinstance(value, float)}
    # Without a judge no answer was sorted into categories; the keyword refusal check still ran.
    judged = main_df["od_refusal"].notna().any()
    refusal = "od_refusal" if judged else "od_keyword_refusal"
    return [
        (
            "M0 YES rate % (gold YES rate); ours: tolerant parse",
            f"{p['m0_yes_rate']} ({p['gold_yes_rate']})",
            f"{_ours(main_df, 'm0', 'yes_rate')} ({_ours(main_df, 'm0', 'gold_yes_rate')})",
        ),
        (
            "Drift cases, M_DART vs M_int (reduction)",
            f"{p['drift_reduction']}% fewer",
            _reduction_text(main_df),
        ),
        (
            "Open-domain appropriately differentiated %, M0 -> M_DART",
            f"{p['od_appropriate_m0']} -> {p['od_appropriate_dart']}",
            f"{_ours(main_df, 'm0', 'od_appropriate')} -> {_ours(main_df, 'm_dart', 'od_appropriate')}"
            if judged
            else "n/a: no judge sorted the answers (`audit.verdicts: classifier`)",
        ),
        (
            "Open-domain refusals %, M0 -> M_DART" + ("" if judged else "; ours: keyword check, no judge"),
            f"{p['od_refusal_m0']} -> {p['od_refusal_dart']}",
            f"{_ours(main_df, 'm0', refusal)} -> {_ours(main_df, 'm_dart', refusal)}",
        ),
    ]


def _policy_rows(main_df: pd.DataFrame) -> list[str]:
    """M_int under the explanation policy beside M_DART, and the control's pair likewise: does a
    system prompt alone do what the repair does? (Only with policy rows: evaluation.policy on or
    both.)"""
    candidates = ("m_int", "m_int+policy", "m_dart", "m_dart+policy", "m_int_planted", "m_int_planted+policy",
                  "m_dart_planted", "m_dart_planted+policy")  # fmt: skip
    models = [m for m in candidates if _value(main_df, m, "n") is not None]
    if not any(m.endswith("+policy") for m in models):
        return []
    lines = [
        "",
        "### A system prompt alone, or repair? (inference-time explanation policy)",
        "",
        "Each `+policy` row is the same weights answering with DART's explanation policy as a system "
        "prompt (its analysis cut to 4 sentences and 700 characters), audited against M0 under the same "
        "policy; drift reduction is against M_int without it (the control's rows: against `m_int_planted`, "
        "whose drift was planted). The paper gives no numbers for this ablation.",
        "",
        "| model | strict overall accuracy % [95% CI] | drift cases | reduction |",
        "|---|---|---|---|",
    ]
    for model in models:
        drift, reduction = _value(main_df, model, "drift_n"), _value(main_df, model, "drift_reduction")
        drift_text = "n/a" if drift is None or is_missing(drift) else str(int(drift))
        accuracy = _ours(main_df, model, "strict_overall_acc")
        lines.append(f"| `{model}` | {accuracy} | {drift_text} | {format_reduction(reduction)} |")
    return lines


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
        A Markdown document: the accuracy table (paper, ours under DART's strict rule, ours
        under the tolerant parse) with both rules stated under it, a table of drift and
        open-domain rates, and a "Differences" list.
    """
    lines = [
        "## Paper vs this run",
        "",
        f"Paper: DART (arXiv 2604.16845), student {PAPER['student']}. Ours: student `{student}`. "
        "Percentages; our values carry 95% bootstrap intervals where the table has them. "
        "The paper's accuracy is compared with ours under DART's own parse rule (strict); our "
        "tolerant parse follows as a second reading.",
        "",
        "### Accuracy (binary task)",
        "",
        f"| metric | paper ({PAPER['student']}) | ours (`{student}`), strict: DART's rule "
        f"| ours (`{student}`), tolerant parse |",
        "|---|---|---|---|",
    ]
    lines += [f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} |" for row in _accuracy_rows(main_df)]
    lines += ["", f"- {STRICT_RULE_NOTE}", f"- {TOLERANT_RULE_NOTE}", ""]
    lines += [
        "### Drift and open-domain behaviour",
        "",
        f"| metric | paper ({PAPER['student']}) | ours (`{student}`) |",
        "|---|---|---|",
    ]
    lines += [f"| {metric} | {paper} | {ours} |" for metric, paper, ours in _other_rows(main_df)]
    lines += _policy_rows(main_df)
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
