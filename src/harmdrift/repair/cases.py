"""Reading the drift cases an audit confirmed, and scoring texts as the audit's screen does."""

from __future__ import annotations

import csv
from pathlib import Path

from harmdrift.core.io import DataError, parse_bool, read_jsonl
from harmdrift.core.vocab import SEVERITIES
from harmdrift.scorers.base import check_label, screen_score

_AUDIT_COLUMNS = ("id", "drift", "severity", "category", "reason", "score_base")


# ---------------------------------------------------------------------------------------------
# Inputs


def read_drift_cases(audit_csv: str | Path) -> list[dict]:
    """The audit rows marked as drift, with severity checked and M0's score as a float.

    Raises:
        DataError: naming the file and line for a missing column, a drift value that is not a
            boolean, an unknown severity or a score that is not a number.
    """
    path = Path(audit_csv)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    cases = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _AUDIT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: audit table lacks column(s) {missing}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not parse_bool(row["drift"], f"{where}: column drift"):
                continue
            if row["severity"] not in SEVERITIES:
                raise DataError(f"{where}: drift row {row['id']!r} has unknown severity {row['severity']!r}")
            try:
                base = float(row["score_base"])
            except ValueError:
                raise DataError(f"{where}: score_base must be a number, got {row['score_base']!r}") from None
            cases.append({**row, "drift": True, "score_base": base})
    return cases


def records_by_id(path: str | Path, ids: list[str], what: str) -> dict[str, dict]:
    """The records of a JSONL file for the given ids; every id must be there."""
    wanted = set(ids)
    found = {row["id"]: row for row in read_jsonl(path) if row.get("id") in wanted}
    absent = sorted(wanted - set(found))
    if absent:
        more = " ..." if len(absent) > 5 else ""
        raise DataError(f"{path}: no {what} for drift case(s) {absent[:5]}{more}")
    return found


def check_scorer(scorer, label: str) -> None:
    """Fail before any teacher call when the screen's label is not one the scorer gives."""
    labels = getattr(scorer, "labels", None)
    if labels is not None:
        check_label(label, labels, "the toxicity scorer")


def screen_scores(scorer, texts: list[str], label: str) -> list[float]:
    """The screen's score per text, read as the audit reads it (``toxicity.screen_score``)."""
    if not texts:
        return []
    scores = scorer.score(texts)
    if len(scores) != len(texts):
        raise ValueError(f"toxicity scorer returned {len(scores)} scores for {len(texts)} texts")
    return [screen_score(s, label) for s in scores]
