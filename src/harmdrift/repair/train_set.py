"""The repair training set: severity-weighted repair examples plus a Stage I replay share."""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from harmdrift.core.io import read_jsonl, write_json, write_jsonl
from harmdrift.core.vocab import SEVERITIES
from harmdrift.repair.config import RepairConfig, severity_weight

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Training sets


def weight_copies(weight: float) -> int:
    # Half rounds up (Python's round() would send 2.5 to 2), and every case appears at least once.
    return max(1, math.floor(weight + 0.5))


def replay_count(n_repair: int, share: float, available: int) -> int:
    """Stage I rows to add so they make up ``share`` of the final set, capped at what exists."""
    if not 0 <= share < 1:
        raise ValueError(f"config key repair.replay_share must be in [0, 1), got {share}")
    return min(available, round(n_repair * share / (1 - share)))


def build_repair_set(
    repair_rationales: str | Path,
    stage1_rationales: str | Path,
    out_path: str | Path,
    summary_path: str | Path,
    *,
    cfg: RepairConfig,
) -> dict:
    """The Stage III training set: repaired cases weighted by severity, plus Stage I replay.

    In mode "weight" each case is one row whose weight is its severity weight; in mode
    "oversample" (DART's code) it is round(weight) copies of weight 1. Stage I rows (weight 1)
    are then added so that they make up ``replay_share`` of the rows:
    ``n_replay = round(n_repair_rows * share / (1 - share))``, capped at the Stage I rows whose
    ids are not among the repaired cases, drawn with ``cfg.seed``. Each row carries ``source``
    ("repair" or "replay").

    With no repaired case the output is empty (there is no drift left to repair) and the
    summary says so; the training rule must then skip the round.

    Returns:
        The summary written to ``summary_path``.
    """
    repaired = read_jsonl(repair_rationales)
    rows, weight_by_severity = [], defaultdict(float)
    for row in repaired:
        weight = severity_weight(row["severity"], cfg)
        if cfg.mode == "weight":
            rows.append({**row, "weight": weight, "source": "repair"})
            weight_by_severity[row["severity"]] += weight
        else:
            n = weight_copies(weight)
            rows += [{**row, "weight": 1.0, "copy": i, "source": "repair"} for i in range(n)]
            weight_by_severity[row["severity"]] += n
    repaired_ids = {row["id"] for row in repaired}
    stage1 = [r for r in read_jsonl(stage1_rationales) if r["id"] not in repaired_ids]
    pool = sorted(stage1, key=lambda r: r["id"])  # file order must not change the sample
    n_replay = replay_count(len(rows), cfg.replay_share, len(pool)) if rows else 0
    replay = random.Random(cfg.seed).sample(pool, n_replay)
    rows += [{**r, "weight": 1.0, "source": "replay"} for r in replay]
    write_jsonl(out_path, rows)
    wanted = round((len(rows) - n_replay) * cfg.replay_share / (1 - cfg.replay_share))
    summary = {
        "repair_cases": len(repaired),
        "repair_rows": len(rows) - n_replay,
        "replay_rows": n_replay,
        "replay_available": len(pool),
        "replay_capped": n_replay < wanted,
        "rows": len(rows),
        "replay_share_actual": n_replay / len(rows) if rows else None,
        "cases_by_severity": {s: sum(r["severity"] == s for r in repaired) for s in SEVERITIES},
        "weight_by_severity": {s: weight_by_severity[s] for s in SEVERITIES},
        "total_weight": sum(r["weight"] for r in rows),
        "config": asdict(cfg),
    }
    if not repaired:
        summary["note"] = "no repaired drift cases: no drift left to repair, nothing to train"
    write_json(summary_path, summary)
    logger.info("repair set: %d repair rows, %d replay rows", summary["repair_rows"], n_replay)
    return summary
