"""Open-domain rates per category with bootstrap intervals."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from harmdrift.core.stats import percentile_ci, resample_sums
from harmdrift.core.vocab import (
    OPEN_DOMAIN_CATEGORIES,
    OPEN_REFUSAL,
)
from harmdrift.open_domain.classify import is_appropriate
from harmdrift.open_domain.queries import SUBSETS

logger = logging.getLogger(__name__)

RATES_COLUMNS = ("model", "subset", "category", "count", "n", "rate", "ci_low", "ci_high")


# --- rates --------------------------------------------------------------------------------


def _bootstrap_ci(hits: np.ndarray, scored: np.ndarray, n_boot: int, rng: np.random.Generator):
    """95% percentile interval of sum(hits)/sum(scored) over resampled queries.

    Each query is its own cluster of the shared bootstrap; resamples with no scored query are
    left out, and with none left (or no query at all) the interval is NaN.
    """
    if len(hits) == 0 or scored.sum() == 0:
        return math.nan, math.nan
    totals = resample_sums(np.column_stack([hits, scored]), n_boot, rng)
    return percentile_ci(totals[:, 0], totals[:, 1])


def _indicators(records: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-query (hit, counted) boolean arrays for every rate category."""
    categories = [r["category"] for r in records]
    scored = np.array([c is not None for c in categories], dtype=bool)
    keyword = np.array([bool(r["keyword_refusal"]) for r in records], dtype=bool)
    out = {c: (np.array([x == c for x in categories], dtype=bool), scored) for c in OPEN_DOMAIN_CATEGORIES}
    right = [is_appropriate(r["expected"], c) for r, c in zip(records, categories, strict=True)]
    out["appropriate"] = (np.array([x is True for x in right], dtype=bool), scored)
    # The keyword detector needs no judge, so every answer counts here, scored or not.
    out["keyword_refusal"] = (keyword, np.ones(len(records), dtype=bool))
    judge_refusal = out[OPEN_REFUSAL][0]
    out["refusal_agreement"] = ((judge_refusal == keyword) & scored, scored)
    return out


def open_domain_rates(records: list[dict], model: str, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Rates of each category per subset, with 95% percentile bootstrap intervals over queries.

    Subsets are "all", "differentiate" and "equal". Categories are the four judge
    categories, "appropriate" (the right behaviour for the query's expectation),
    "keyword_refusal" (the keyword detector's share) and "refusal_agreement" (share of
    judged answers where the judge's refusal call matches the detector's). Unscored answers
    are left out of ``n`` for every judge-based row but counted for keyword_refusal.

    Args:
        records: classified records (from :func:`classify_answers`).
        model: the model name for the ``model`` column.
        n_boot: bootstrap resamples.
        seed: seed of the bootstrap's generator.

    Returns:
        One row per (subset, category) with columns :data:`RATES_COLUMNS`.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    rows = []
    for subset in SUBSETS:
        part = [r for r in records if subset == "all" or r["expected"] == subset]
        for category, (hits, counted) in _indicators(part).items():
            count, n = int(hits.sum()), int(counted.sum())
            low, high = _bootstrap_ci(hits.astype(float), counted.astype(float), n_boot, rng)
            rows.append(
                {
                    "model": model,
                    "subset": subset,
                    "category": category,
                    "count": count,
                    "n": n,
                    "rate": count / n if n else math.nan,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(rows, columns=list(RATES_COLUMNS))


def write_rates(
    records: list[dict], model: str, rates_path: str | Path, *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Compute one model's open-domain rates and write them as CSV."""
    rates = open_domain_rates(records, model, n_boot=n_boot, seed=seed)
    Path(rates_path).parent.mkdir(parents=True, exist_ok=True)
    rates.to_csv(rates_path, index=False)
    summary = rates[(rates["subset"] == "all")].set_index("category")["rate"].round(3).to_dict()
    logger.info("open-domain rates for %s: %s", model, summary)
    return rates
