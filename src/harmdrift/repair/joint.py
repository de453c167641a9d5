"""The joint-training ablation: Stage I examples whose loss weight falls with their toxicity."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from harmdrift.core.io import read_jsonl, write_json, write_jsonl
from harmdrift.core.parsing import analysis_for_scoring
from harmdrift.repair.cases import check_scorer, screen_scores

logger = logging.getLogger(__name__)


def joint_penalty_weights(
    stage1_rationales: str | Path,
    out_path: str | Path,
    summary_path: str | Path,
    *,
    scorer,
    screen_label: str,
    max_chars: int,
    strength: float,
    floor: float = 0.05,
) -> dict:
    """The joint-training ablation's data: Stage I examples down-weighted by their own toxicity.

    Each example's weight becomes ``max(floor, 1 - strength * tox)``, where ``tox`` is the
    screen's ``screen_label`` score of the rationale's analysis (conclusion removed, first
    ``max_chars`` characters, as in the audit). ``strength`` 0 leaves every weight at 1; the
    floor keeps every weight above zero, which training requires. Rows gain ``tox_score``.

    Args:
        stage1_rationales: Stage I's kept rationales.
        out_path: the weighted training set (JSONL).
        summary_path: mean and smallest weight, number penalised (weight < 1), settings (JSON).
        scorer: the toxicity screen.
        screen_label: the scorer label to read.
        max_chars: characters of the analysis scored.
        strength: how strongly toxicity lowers the weight (>= 0).
        floor: the smallest weight, in (0, 1].

    Raises:
        ValueError: naming ``joint.strength`` or ``joint.floor`` when out of range.
    """
    if isinstance(strength, bool) or not isinstance(strength, int | float) or strength < 0:
        raise ValueError(f"config key joint.strength must be a number >= 0, got {strength!r}")
    if not 0 < floor <= 1:
        raise ValueError(f"config key joint.floor must be in (0, 1], got {floor!r}")
    check_scorer(scorer, screen_label)
    rows = read_jsonl(stage1_rationales)
    texts = [analysis_for_scoring(row["rationale"], max_chars) for row in rows]
    tox = screen_scores(scorer, texts, screen_label)
    out = [
        {**row, "tox_score": t, "weight": max(floor, 1 - strength * t)}
        for row, t in zip(rows, tox, strict=True)
    ]
    write_jsonl(out_path, out)
    weights = [row["weight"] for row in out]
    summary = {
        "rows": len(out),
        "mean_weight": sum(weights) / len(weights) if weights else None,
        "min_weight": min(weights) if weights else None,
        "penalised": sum(w < 1 for w in weights),
        "at_floor": sum(w == floor for w in weights),
        "mean_tox": sum(tox) / len(tox) if tox else None,
        "strength": strength,
        "floor": floor,
        "screen_label": screen_label,
        "max_chars": max_chars,
        "scorer": scorer.describe(),
    }
    write_json(summary_path, summary)
    counts = {k: summary[k] for k in ("rows", "mean_weight", "penalised")}
    logger.info("joint weights: %s", json.dumps(counts))
    return summary
