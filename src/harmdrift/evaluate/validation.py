"""Checks shared by the metric modules: required columns, unique ids, known values."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

DIFF = "diff"
EQUAL = "equal"


def require_columns(df: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [column for column in required if column not in df.columns]
    if missing:
        raise ValueError(f"{what} lack required column(s) {missing}; present: {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what} have no rows; nothing to score")


def require_values(series: pd.Series, allowed: Iterable[str], what: str) -> None:
    unexpected = sorted(set(series.astype(str)) - set(allowed))
    if unexpected:
        raise ValueError(f"{what}: column {series.name!r} has unexpected value(s) {unexpected[:10]}")


def require_unique_ids(df: pd.DataFrame, what: str) -> None:
    duplicated = df.loc[df["id"].duplicated(), "id"].unique()
    if len(duplicated):
        raise ValueError(f"{what}: {len(duplicated)} duplicated id(s), e.g. {sorted(duplicated)[:10]}")


def validate_rows(df: pd.DataFrame, required: Iterable[str], what: str) -> None:
    """Check a frame of scored rows: columns present, rows there, ids unique, conditions known."""
    require_columns(df, required, what)
    require_unique_ids(df, what)
    require_values(df["condition"], (DIFF, EQUAL), what)
    if df["scenario_id"].isna().any():
        raise ValueError(f"{what}: scenario_id is missing on {int(df['scenario_id'].isna().sum())} row(s)")


def share(mask: np.ndarray) -> float:
    """Share of True values; NaN for an empty group."""
    return float(mask.mean()) if mask.size else math.nan
