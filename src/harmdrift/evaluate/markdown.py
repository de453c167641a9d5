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


def _format_ci(low: object, high: object) -> str:
    if _is_missing(low) or _is_missing(high):
        return _MISSING
    return f"[{100 * float(low):.1f}, {100 * float(high):.1f}]"


def _markdown_columns(columns: list[str]) -> list[tuple[str, str, str | None]]:
    """(header, column, partner) triples: each *ci_low/*ci_high pair becomes one CI column."""
    layout = []
    for column in columns:
        if column.endswith("ci_high") and column.replace("ci_high", "ci_low") in columns:
            continue
        partner = column.replace("ci_low", "ci_high") if column.endswith("ci_low") else None
        if partner is not None and partner in columns:
            stem = column[: -len("ci_low")].rstrip("_") or "overall"
            layout.append((f"{stem} {CI_LEVEL:.0%} CI", column, partner))
        else:
            layout.append((column, column, None))
    return layout


def metrics_markdown(table: pd.DataFrame, title: str) -> str:
    """Render a metrics table as a markdown section.

    Shares are percentages with one decimal, each ``*ci_low``/``*ci_high`` pair becomes one
    "[lo, hi]" column (in percent), counts are integers, macro-F1 has three decimals, p-values
    are in scientific notation and missing values read "n/a".

    Args:
        table: a frame returned by :func:`binary_metrics` or :func:`mc_metrics`.
        title: the section heading.

    Returns:
        The heading, a blank line and the table, ending in a newline.
    """
    layout = _markdown_columns(list(table.columns))
    lines = [f"## {title}", "", "| " + " | ".join(header for header, _, _ in layout) + " |"]
    lines.append("|" + "|".join("---" for _ in layout) + "|")
    for record in table.to_dict("records"):
        cells = [
            _format_ci(record[column], record[partner]) if partner else _format_cell(column, record[column])
            for _, column, partner in layout
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
