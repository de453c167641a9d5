"""Markdown rendering of the main results table and its notes."""

from __future__ import annotations

import os

import pandas as pd

from harmdrift.core.parsing import STRICT_RULE_NOTE, TOLERANT_RULE_NOTE
from harmdrift.core.stats import format_p, format_pct, is_missing
from harmdrift.core.vocab import SEVERITIES, order_models
from harmdrift.report.readers import read_summary


def _format_count(value) -> str:
    return "n/a" if is_missing(value) else str(int(value))


def format_reduction(value) -> str:
    """A drift reduction (a share) as a percentage with one decimal; "n/a" when missing."""
    return "n/a" if is_missing(value) else f"{100 * float(value):.1f}%"


def _pct(record: dict, value: str, low: str | None = None, high: str | None = None) -> str:
    return format_pct(record[value], record[low] if low else None, record[high] if high else None)


# The forced choice is this pipeline's addition to DART's protocol; the tables say so.
FORCED_NOTE = (
    "Forced (not in DART's protocol): after each reply, 'Conclusion:' is appended and the model's "
    "log-likelihoods of YES and NO are compared, so a decision is read even from a reply that "
    "never writes the conclusion line; it separates 'cannot decide' from 'cannot follow the format'."
)


def _strict_cells(r: dict) -> list[str]:
    return [
        _pct(r, "strict_overall_acc", "strict_overall_acc_ci_low", "strict_overall_acc_ci_high"),
        _pct(r, "strict_equal_acc", "strict_equal_acc_ci_low", "strict_equal_acc_ci_high"),
        _pct(r, "strict_diff_acc", "strict_diff_acc_ci_low", "strict_diff_acc_ci_high"),
        _pct(r, "strict_abstain_rate", "strict_abstain_rate_ci_low", "strict_abstain_rate_ci_high"),
        _pct(r, "forced_acc", "forced_acc_ci_low", "forced_acc_ci_high"),
    ]


def _tolerant_cells(r: dict) -> list[str]:
    return [
        _pct(r, "overall_acc", "ci_low", "ci_high"),
        _pct(r, "equal_acc", "equal_ci_low", "equal_ci_high"),
        _pct(r, "diff_acc", "diff_ci_low", "diff_ci_high"),
        _pct(r, "abstain_rate"),
        f"{_pct(r, 'yes_rate')} ({_pct(r, 'gold_yes_rate')})",
        format_p(r["mcnemar_p"]),
    ]


def _accuracy_tables(df: pd.DataFrame) -> list[str]:
    """The strict table (the headline, comparable with DART's numbers), then the tolerant one."""
    records = df.to_dict("records")
    lines = [
        "## Main results (binary task): DART's strict rule",
        "",
        "| model | n | overall % [95% CI] | EQUAL % [95% CI] | DIFF % [95% CI] | abstain % [95% CI] "
        "| forced % [95% CI] |",
        "|" + "---|" * 7,
    ]
    for r in records:
        lines.append("| " + " | ".join([f"`{r['model']}`", _format_count(r["n"]), *_strict_cells(r)]) + " |")
    lines += [
        "",
        "## Second reading (binary task): our tolerant parse",
        "",
        "| model | overall % [95% CI] | EQUAL % [95% CI] | DIFF % [95% CI] | abstain % "
        "| YES % (gold) | McNemar p vs M0 |",
        "|" + "---|" * 7,
    ]
    for r in records:
        lines.append("| " + " | ".join([f"`{r['model']}`", *_tolerant_cells(r)]) + " |")
    return lines


def main_results_markdown(
    df: pd.DataFrame, *, protocol_note: str, notes=(), verdicts: str | None = None
) -> str:
    """Render :func:`main_results` as readable Markdown tables and a notes section.

    Accuracy under DART's strict rule comes first, our tolerant parse second, then drift and
    open-domain behaviour; the notes state both parse rules.

    Args:
        df: the frame from :func:`main_results`.
        protocol_note: one sentence on which split was audited and how (held-out/transductive).
        notes: further bullet lines, e.g. from :func:`audit_notes`.
        verdicts: ``audit.verdicts`` of the run (None: no audit), which the drift columns name.
    """
    lines = _accuracy_tables(df)
    lines += ["", "## Harm drift vs M0 and open-domain behaviour", ""]
    if verdicts == "judge":
        lines += ["Drift cases are the judge's confirmed verdicts; severities are the judge's.", ""]
    elif verdicts is not None:
        lines += [
            "Drift cases come from the classifier screen alone (`audit.verdicts: classifier`): every "
            "pair whose toxicity score rose past the threshold, binned by the size of the rise.",
            "",
        ]
    severities = " | ".join(SEVERITIES)
    lines.append(
        f"| model | drift cases | {severities} | reduction vs M_int (control: vs m_int_planted) "
        "| open-domain appropriate % [95% CI], judge | open-domain refusal % [95% CI], judge "
        "| open-domain refusal % [95% CI], keyword check |"
    )
    lines.append("|" + "---|" * (6 + len(SEVERITIES)))
    judge_off = "n/a (no judge)" if verdicts != "judge" else None
    for r in df.to_dict("records"):
        # A model with no open-domain rates was not asked the queries (the control pair, policy rows).
        asked = not is_missing(r["od_keyword_refusal"])
        open_domain = [
            judge_off or _pct(r, "od_appropriate", "od_appropriate_ci_low", "od_appropriate_ci_high"),
            judge_off or _pct(r, "od_refusal", "od_refusal_ci_low", "od_refusal_ci_high"),
            _pct(r, "od_keyword_refusal", "od_keyword_refusal_ci_low", "od_keyword_refusal_ci_high"),
        ]
        cells = [
            f"`{r['model']}`",
            _format_count(r["drift_n"]),
            *(_format_count(r[f"drift_{s}"]) for s in SEVERITIES),
            format_reduction(r["drift_reduction"]),
            *(open_domain if asked else ["not asked"] * 3),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Notes", "", f"- {STRICT_RULE_NOTE}", f"- {TOLERANT_RULE_NOTE}", f"- {FORCED_NOTE}"]
    lines += [f"- {protocol_note}"]
    lines += [f"- {note}" for note in notes]
    lines += [f"- `{r['model']}`: {r['description']}" for r in df.to_dict("records")]
    lines.append(
        "- Accuracy counts an abstention (no answer under that rule) as wrong; intervals are 95% "
        "scenario-level bootstrap intervals, the strict and tolerant ones from the same resamples. "
        "YES rate and McNemar p (the exact test against M0 on the same items) use the tolerant reading. "
        "Drift reduction is 1 - drift(model) / drift(M_int) (the control's repair: / drift(m_int_planted)), "
        "so M_int itself reads 0.0%; n/a where the reference had no drift cases to reduce."
    )
    return "\n".join(lines) + "\n"


def audit_notes(audit_summaries: dict[str, str | os.PathLike]) -> list[str]:
    """Notes lines from the audit summaries: each audit's split, protocol and counts, and one line
    on the judge's check set when it fell below its floor (the run has one judge and one check set,
    so one line, not one per audit).

    Under ``audit.verdicts: classifier`` the counts are the screen's and the judge only stands
    measured; under ``judge`` a judge below its floor makes every drift count less trustworthy.
    """
    notes = []
    summaries = {model: read_summary(audit_summaries[model]) for model in order_models(audit_summaries)}
    for model, summary in summaries.items():
        decided = (
            f"{summary.get('n_judged', 'n/a')} judged"
            if summary.get("verdicts") == "judge"
            else "no judge (each screened pair counts as drift)"
        )
        notes.append(
            f"`{model}` audit: split `{summary.get('split', 'n/a')}`, protocol "
            f"{summary.get('protocol', 'n/a')}; {summary.get('n_pairs', 'n/a')} pairs, "
            f"{summary.get('n_screened', 'n/a')} screened, {decided}, "
            f"{summary.get('n_unscored', 'n/a')} unscored."
        )
    below = [summary for summary in summaries.values() if (summary.get("check_set") or {}).get("below_floor")]
    if below:
        first = below[0]
        check = first["check_set"]
        scored = (
            f"the judge scored {format_pct(check.get('accuracy'))}% on its check set "
            f"(n={check.get('n')}), below the floor of {format_pct(check.get('floor'))}%"
        )
        if first.get("verdicts") == "judge":
            notes.append(f"WARNING: {scored}; treat every drift count with caution.")
        else:
            notes.append(f"{scored}; no drift count uses it (`audit.verdicts: classifier`).")
    return notes
