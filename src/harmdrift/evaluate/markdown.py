"""Markdown rendering of the metric tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harmdrift.core.stats import CI_LEVEL

# Markdown formatting: which columns are counts, p-values or plain scores (the rest are shares).
_COUNT_COLUMNS = frozenset({"n", "n_scored", "n_discordant"})
_P_VALUE_COLUMNS = frozenset({"mcnemar_p"})
_SCORE_COLUMNS = frozenset({"macro_f1"})
_MISSING = "n/a"


# --- markdown ---------------------------------------------------------------------------


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _format_cell(column: str, value: object) -> str:
    if _is_missing(value):
        return _MISSING
    if column in _COUNT_COLUMNS:
        return str(int(value))
    if column in _P_VALUE_COLUMNS:
        return f"{float(value):.2e}"
    if column in _SCORE_COLUMNS:
        return f"{float(value):.3f}"
    if isinstance(value, (float, np.floating)):
        return f"{100 * float(value):.1f}%"
    return str(value).replace("|", "\\|")


def _format_value_ci(column: str, value: object, low: object, high: object) -> str:
    if _is_missing(value):
        return _MISSING
    if _is_missing(low) or _is_missing(high):
        return _format_cell(column, value)
    return f"{_format_cell(column, value)} [{100 * float(low):.1f}, {100 * float(high):.1f}]"


def _ci_partners(columns: list[str]) -> dict[str, tuple[str, str]]:
    """Value column -> its (ci_low, ci_high) columns: ``x_ci_low`` belongs to ``x``, and the older
    unprefixed names to the accuracy they bound (``ci_low`` to ``overall_acc``, ``equal_ci_low``
    to ``equal_acc``)."""
    partners = {}
    for column in columns:
        if not column.endswith("ci_low") or column.replace("ci_low", "ci_high") not in columns:
            continue
        stem = column[: -len("ci_low")].rstrip("_")
        for value in (stem, f"{stem}_acc", "overall_acc" if not stem else None):
            if value and value in columns:
                partners[value] = (column, column.replace("ci_low", "ci_high"))
                break
    return partners


# Columns per table: a row of the full metrics is too wide to read, so it is cut into tables that
# each repeat the row's key.
_COLUMNS_PER_TABLE = 8


def metrics_markdown(table: pd.DataFrame, title: str) -> str:
    """Render a metrics table as a markdown section.

    Shares are percentages with one decimal, each followed by its 95% interval in brackets when the
    table has one (``x_ci_low``/``x_ci_high``), counts are integers, macro-F1 has three decimals,
    p-values are in scientific notation and missing values read "n/a". The columns are cut into
    tables of at most eight, each led by the row's key (the first column).

    Args:
        table: a frame returned by :func:`binary_metrics` or :func:`mc_metrics`.
        title: the section heading.

    Returns:
        The heading and the tables, separated by blank lines, ending in a newline.
    """
    columns = list(table.columns)
    partners = _ci_partners(columns)
    bounds = {c for pair in partners.values() for c in pair}
    key, *shown = [c for c in columns if c not in bounds]
    records = table.to_dict("records")
    lines = [f"## {title}"]
    for start in range(0, len(shown), _COLUMNS_PER_TABLE):
        part = shown[start : start + _COLUMNS_PER_TABLE]
        headers = [key, *(f"{c} [{CI_LEVEL:.0%} CI]" if c in partners else c for c in part)]
        lines += ["", "| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        for record in records:
            cells = [_format_cell(key, record[key])]
            for column in part:
                if column in partners:
                    low, high = partners[column]
                    cells.append(_format_value_ci(column, record[column], record[low], record[high]))
                else:
                    cells.append(_format_cell(column, record[column]))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
