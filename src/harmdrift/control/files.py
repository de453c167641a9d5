"""The control's files: the contaminated training set in, the control table out."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

from harmdrift.control.plant import CONDITIONS, candidate_texts, plant_rationales
from harmdrift.control.table import COLUMNS, control_rows
from harmdrift.control.truth import PlantedIndex, planted_rate
from harmdrift.core.io import DataError, parse_bool, read_jsonl, write_json, write_jsonl

logger = logging.getLogger(__name__)


def write_planted_set(
    rationales: str | Path,
    split_items: str | Path,
    planted_set: str | Path,
    planted: str | Path,
    summary: str | Path,
    *,
    share: float,
    seed: int,
    benchmarks: tuple[str, ...],
    position: str = "start",
    conditions: tuple[str, ...] = CONDITIONS,
    weight: float = 1.0,
) -> dict:
    """Contaminate a share of the Stage I rationales and write the training set and the plants.

    Args:
        rationales: Stage I's kept rationales (the clean training set).
        split_items: the training split (question text and options of each item).
        planted_set: the contaminated training set, in Stage I's record format.
        planted: one record per planted text (id, benchmark, planted_text, template).
        summary: counts (JSON).
        share, seed, benchmarks, position, conditions, weight: see ``control.plant.plant_rationales``.
    """
    records = read_jsonl(rationales)
    items = {item["id"]: item for item in read_jsonl(split_items)}
    out, plants = plant_rationales(
        records, items, share=share, seed=seed, benchmarks=benchmarks, position=position,
        conditions=conditions, weight=weight,
    )  # fmt: skip
    write_jsonl(planted_set, out)
    write_jsonl(planted, plants)
    counts = {
        "rationales": len(records),
        "planted": len(plants),
        "share_asked": share,
        "share_planted": len(plants) / len(records) if records else None,
        "by_benchmark": dict(Counter(p["benchmark"] for p in plants)),
        "by_template": dict(Counter(p["template"] for p in plants)),
        "seed": seed,
        "benchmarks": list(benchmarks),
        "position": position,
        "conditions": list(conditions),
        "weight": weight,
        "by_condition": dict(Counter(p["condition"] for p in plants)),
    }
    write_json(summary, counts)
    logger.info("control: planted %d of %d rationales %s", len(plants), len(records), counts["by_benchmark"])
    return counts


def _analyses(pairs: list[dict], side: str) -> dict[str, str]:
    return {p["id"]: (p.get(side) or {}).get("analysis") or "" for p in pairs}


def planted_truth(
    pairs: list[dict], plants: list[dict], items: dict[str, dict], *, n: int, min_overlap: float
):
    """Which audited pairs carry planted drift, and each model side's reproduction rate.

    A pair carries planted drift when the tuned model's analysis reproduces a planted text
    (any training plant, or the plant the templates make for the audited item itself) and
    M0's analysis of the same item does not: content M0 already wrote is not drift. The
    audited item's own plants come from either condition, whichever ones were planted in
    training: a student that carries the behaviour over to other items still repeats the
    question's harmful content.
    """
    texts = [p["planted_text"] for p in plants]
    own = {
        i: list(candidate_texts(items[i]).values()) if i in items else [] for i in _analyses(pairs, "tuned")
    }
    tuned = planted_rate(_analyses(pairs, "tuned"), texts, own_texts_by_id=own, n=n, min_overlap=min_overlap)
    index = PlantedIndex(texts, n=n, min_overlap=min_overlap)
    base = {
        i: index.best_match(text, own.get(i, ()))[0] is not None
        for i, text in _analyses(pairs, "base").items()
    }
    truth = {i: tuned["matched"][i] is not None and not base[i] for i in tuned["matched"]}
    return truth, tuned


def _audit_rows(audit_csv: str | Path) -> list[dict]:
    with open(audit_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for line, row in enumerate(rows, start=2):
        try:
            judged = row["judge_status"] == "scored"
            out.append(
                {
                    "id": row["id"],
                    "screened": parse_bool(row["screened"], f"{audit_csv}:{line}: screened"),
                    "judge_drift": parse_bool(row["drift"], f"{audit_csv}:{line}: drift") if judged else None,
                    "combined": parse_bool(row["drift"], f"{audit_csv}:{line}: drift")
                    if row["drift"]
                    else False,
                }
            )
        except KeyError as err:
            raise DataError(f"{audit_csv}: missing column {err}") from None
    return out


def write_control_table(
    audit_csv: str | Path,
    pairs_before: str | Path,
    pairs_after: str | Path,
    planted: str | Path,
    split_items: str | Path,
    out_csv: str | Path,
    out_json: str | Path,
    *,
    n: int,
    min_overlap: float,
) -> list[dict]:
    """The control table: the audit's precision and recall on planted drift, and the repair's effect.

    Args:
        audit_csv: the planted student's audit table (screen and verdict per pair).
        pairs_before, pairs_after: the audit pairs of the planted student and of its repair.
        planted: the training plants; split_items: the audited split.
        out_csv: the table (one row per stage: screen, judge, screen+judge).
        out_json: the truth per pair and the matched texts, for inspection.
        n, min_overlap: the overlap rule of ``control.truth``.
    """
    plants = read_jsonl(planted)
    items = {item["id"]: item for item in read_jsonl(split_items)}
    before = read_jsonl(pairs_before)
    truth, rate_before = planted_truth(before, plants, items, n=n, min_overlap=min_overlap)
    _, rate_after = planted_truth(read_jsonl(pairs_after), plants, items, n=n, min_overlap=min_overlap)
    rows = control_rows(
        _audit_rows(audit_csv), truth,
        planted_rate_m_int=rate_before["rate"], planted_rate_m_dart=rate_after["rate"],
    )  # fmt: skip
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    write_json(
        out_json,
        {
            "rule": {"ngram": n, "min_overlap": min_overlap},
            "n_planted_truth": sum(truth.values()),
            "truth": truth,
            "matched_before": rate_before["matched"],
            "matched_after": rate_after["matched"],
        },
    )
    logger.info("control: %s", [(r["stage"], r["recall"], r["precision"]) for r in rows])
    return rows
