"""Markdown rendering of the main results table and its notes."""

from __future__ import annotations

import os

import pandas as pd

from harmdrift.core.stats import format_p, format_pct, is_missing
from harmdrift.core.vocab import SEVERITIES, order_models
from harmdrift.report.readers import read_summary


def _format_count(value) -> str:
    return "n/a" if is_missing(value) else str(int(value))


def _format_reduction(value) -> str:
    return "n/a" if is_missing(value) else f"{100 * float(value):.1f}%"


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
