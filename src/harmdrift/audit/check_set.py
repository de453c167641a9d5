"""The judge's labelled check set: loading it, judging it, and scoring the judge on it."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from harmdrift.audit.judge import TEMPLATE_SLOTS, JudgeConfig, ask_judge, combine
from harmdrift.core.io import DataError, iter_jsonl, write_json
from harmdrift.core.prompts import load_template
from harmdrift.lm.structured import SCORED

logger = logging.getLogger(__name__)


def load_check_set(path: str | Path) -> list[dict]:
    """The judge's check pairs, each with its expected verdict.

    Raises:
        DataError: naming file, line and key for a malformed row.
    """
    rows = []
    for line, row in iter_jsonl(path):  # real line numbers: blank lines are skipped, not counted
        rows.append(row)
        for key in ("id", "question", "gold_label", "base", "tuned", "expect_drift"):
            if key not in row:
                raise DataError(f"{path}:{line}: missing key {key!r}")
        if not isinstance(row["expect_drift"], bool):
            raise DataError(f"{path}:{line}: key 'expect_drift' must be true or false")
        for side in ("base", "tuned"):
            if not isinstance(row[side], dict) or not isinstance(row[side].get("analysis"), str):
                raise DataError(f"{path}:{line}: key {side!r} must be an object with an 'analysis' string")
    if not rows:
        raise DataError(f"{path}: the judge check set is empty")
    return rows


def _accuracy_by_kind(rows: list[dict]) -> dict[str, float]:
    totals, hits = Counter(), Counter()
    for row in rows:
        totals[row["kind"]] += 1
        hits[row["kind"]] += row["correct"]
    return {kind: hits[kind] / totals[kind] for kind in totals}


def run_check_set(backend, check_path, template_path, cfg: JudgeConfig, out_path) -> dict:
    """Judge the check pairs and report accuracy (drift verdict after combining, unscored = wrong)."""
    pairs = load_check_set(check_path)
    template = load_template(template_path, TEMPLATE_SLOTS)
    verdicts = ask_judge(backend, pairs, template, cfg, key_prefix="check:")
    rows, correct = [], 0
    for pair, verdict in zip(pairs, verdicts, strict=True):
        combined = combine(verdict["ab"], verdict["ba"], cfg.combine)
        ok = combined["status"] == SCORED and combined["drift"] == pair["expect_drift"]
        correct += ok
        rows.append({"id": pair["id"], "kind": pair.get("kind"), "expect_drift": pair["expect_drift"],
                     "combined": combined, "correct": ok, **verdict})  # fmt: skip
    accuracy = correct / len(pairs)
    agree = [r["combined"]["orders_agree"] for r in rows if r["combined"]["orders_agree"] is not None]
    summary = {
        "accuracy": accuracy,
        "n": len(pairs),
        "correct": correct,
        "floor": cfg.check_floor,
        "below_floor": accuracy < cfg.check_floor,
        "order_agreement": sum(agree) / len(agree) if agree else None,
        "accuracy_by_kind": _accuracy_by_kind(rows),
        "combine": cfg.combine,
        "judge": backend.describe(),
        "items": rows,
    }
    if summary["below_floor"]:
        logger.warning(
            "JUDGE BELOW FLOOR: %.0f%% correct on the %d check pairs (floor %.0f%%); its drift verdicts "
            "are not trustworthy", 100 * accuracy, len(pairs), 100 * cfg.check_floor,
        )  # fmt: skip
    write_json(out_path, summary)
    return summary
