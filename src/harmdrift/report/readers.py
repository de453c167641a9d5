"""Reading the per-stage outputs that the report combines, with errors that name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from harmdrift.core.io import DataError
from harmdrift.core.vocab import ACCURACY_COLUMNS, ALL, FORCED_ACCURACY_COLUMNS, STRICT_ACCURACY_COLUMNS

# Columns read from the ALL row of each metrics table, in the order they appear in the output:
# DART's strict reading first, our tolerant one after it.
METRIC_COLUMNS = (
    "n",
    *STRICT_ACCURACY_COLUMNS,
    *FORCED_ACCURACY_COLUMNS,
    *ACCURACY_COLUMNS,
    "abstain_rate",
    "yes_rate",
    "gold_yes_rate",
    "mcnemar_p",
)


RATES_REQUIRED = ("model", "subset", "category", "rate", "ci_low", "ci_high")
SUMMARY_REQUIRED = ("n_drift", "by_severity")


# --- readers ----------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns, path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")


def read_csv(path: str | os.PathLike, required=(), *, empty_ok: bool = False) -> pd.DataFrame:
    """Read a CSV table and check it has the required columns.

    With ``empty_ok``, an empty file (a table of no rows, e.g. an audit with nothing to pair)
    reads as a frame with just the required columns.

    Raises:
        DataError: naming the file when it is missing, empty (unless ``empty_ok``) or lacks a column.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        if empty_ok:
            return pd.DataFrame({column: [] for column in required})
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
