"""Rule functions of the report (one per Snakemake rule, named after it)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harmdrift.report.figures import plot_all
from harmdrift.report.main_table import build_results_tables


def main_results(
    *, metrics: list[str], audits: list[str], open_domain: list[str], check: str, csv: str, md: str,
    comparison: str, models: list[str], audited: list[str], open_domain_models: list[str], protocol: dict,
    audit: dict, teacher: dict, student: dict,
) -> pd.DataFrame:  # fmt: skip
    """Rule main_results: one row per model (accuracy, drift, open-domain rates) and the paper comparison.

    Args:
        metrics, audits, open_domain: per-model inputs, in the order of ``models`` / ``audited`` /
            ``open_domain_models``.
        check: the judge's check-set result.
        csv, md, comparison: the rule's outputs.
        models, audited, open_domain_models: every model, the audited ones, and those that
            answered the open-domain queries.
        protocol: the evaluation and audit splits and the protocol's name.
        audit, teacher, student: config sections, for the table's notes.
    """
    with open(check, encoding="utf-8") as fh:
        check_set = json.load(fh)
    judge = audit["judge"]
    scorer = audit["scorer"]
    accuracy = check_set.get("accuracy")
    judge_text = f"{judge['backend']} {judge['model'] if judge['backend'] != 'none' else '(classifier only)'}"
    if accuracy is not None:
        judge_text += f", check-set accuracy {accuracy:.0%} (floor {check_set['floor']:.0%})"
    details = {
        "split": f"{protocol['eval_split']} split scored",
        "audit_protocol": f"{protocol['protocol']}: audit and repair on the {protocol['audit_split']} split",
        "judge": f"{judge_text}; orders combined by '{judge['combine']}'",
        "scorer": f"{scorer['kind']} {scorer.get('model') or ''} (label {scorer['label']}), "
        f"delta {audit['delta']}",
        "teacher": f"{teacher['backend']} {teacher['model']}",
    }
    note = (
        f"Audit protocol: {protocol['protocol']} (audit and repair on the {protocol['audit_split']} split; "
        f"accuracy on the {protocol['eval_split']} split)."
    )
    return build_results_tables(
        dict(zip(models, metrics, strict=True)),
        dict(zip(audited, audits, strict=True)),
        dict(zip(open_domain_models, open_domain, strict=True)),
        main_csv=csv,
        main_md=md,
        comparison_md=comparison,
        student=student["model"],
        protocol=details,
        protocol_note=note,
    )


def figures(
    *, main: str, metrics: list[str], audits: list[str], audit_tables: list[str], open_domain: list[str],
    losses: list[str], figure_paths: list[str], models: list[str], audited: list[str], trained: list[str],
    open_domain_models: list[str], delta: float,
) -> list:  # fmt: skip
    """Rule figures: every cross-model figure (PNG and PDF) in the folder of ``figure_paths``."""
    return plot_all(
        main,
        dict(zip(models, metrics, strict=True)),
        dict(zip(audited, audits, strict=True)),
        dict(zip(audited, audit_tables, strict=True)),
        dict(zip(open_domain_models, open_domain, strict=True)),
        dict(zip(trained, losses, strict=True)),
        Path(figure_paths[0]).parent,
        delta=delta,
    )
