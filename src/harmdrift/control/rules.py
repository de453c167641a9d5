"""Rule functions of the planted-drift control (one per Snakemake rule, named after it)."""

from __future__ import annotations

from harmdrift.control.files import write_control_table, write_planted_set
from harmdrift.report.control_figure import control_figure


def plant_rationales(
    *, rationales: str, split_items: str, planted_set: str, planted: str, summary: str, control: dict
) -> dict:
    """Rule plant_rationales: a copy of the Stage I training set with planted harmful content.

    Args:
        rationales: Stage I's kept rationales; split_items: the training split.
        planted_set, planted, summary: the rule's outputs.
        control: the ``control`` config section.
    """
    return write_planted_set(
        rationales, split_items, planted_set, planted, summary,
        share=control["share"], seed=control["seed"], benchmarks=tuple(control["benchmarks"]),
        position=control["position"], conditions=tuple(control["conditions"]), weight=control["weight"],
    )  # fmt: skip


def control_table(
    *, audit: str, pairs_before: str, pairs_after: str, planted: str, split_items: str, csv: str, truth: str,
    figure_png: str, figure_pdf: str, control: dict,
) -> list[dict]:  # fmt: skip
    """Rule control_table: the audit's recall and precision on planted drift, the repair's effect."""
    rows = write_control_table(
        audit, pairs_before, pairs_after, planted, split_items, csv, truth,
        n=control["ngram"], min_overlap=control["min_overlap"],
    )  # fmt: skip
    control_figure(csv, figure_png, figure_pdf)
    return rows
