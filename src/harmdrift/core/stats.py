"""Statistics shared by the stages and the report: the scenario bootstrap, percentile
intervals, drift reduction, paired tests of a fine-tune against its base, and how numbers are
printed in tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

from harmdrift.core.vocab import ALL

CI_LEVEL = 0.95


def check_n_boot(n_boot: int) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


# --- bootstrap --------------------------------------------------------------------------


def scenario_sums(scenario_ids: pd.Series, stats: np.ndarray) -> np.ndarray:
    """Sum each statistic over the items of each scenario: shape (scenarios, statistics)."""
    # Sorted codes make the draws independent of row order: the same rows in any order give
    # the same intervals.
    codes, uniques = pd.factorize(scenario_ids, sort=True)
    return np.column_stack(
        [np.bincount(codes, weights=stats[:, j], minlength=len(uniques)) for j in range(stats.shape[1])]
    )


def resample_sums(cluster_sums: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Totals of each statistic in ``n_boot`` resamples of the clusters: shape (n_boot, statistics).

    Each resample is turned into a count of how often each cluster was drawn, so the totals are
    one matrix product rather than a Python loop over resamples.
    """
    k = len(cluster_sums)
    draws = rng.integers(0, k, size=(n_boot, k))
    flat = (draws + (np.arange(n_boot) * k)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_boot * k).reshape(n_boot, k)
    return counts @ cluster_sums


def bootstrap_totals(
    benchmarks: pd.Series, scenarios: pd.Series, stats: np.ndarray, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Resampled totals per benchmark (scenarios resampled within it) and pooled under ALL."""
    rng = np.random.default_rng(seed)
    totals = {}
    # Sorted order fixes which benchmark consumes which random numbers, so results are
    # reproducible whatever order the rows arrive in.
    for bench in sorted(benchmarks.unique()):
        mask = (benchmarks == bench).to_numpy()
        totals[bench] = resample_sums(scenario_sums(scenarios[mask], stats[mask]), n_boot, rng)
    totals[ALL] = sum(totals.values())
    return totals


def ratio(numerator: np.ndarray | float, denominator: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(numerator, denominator, dtype=float)


def percentile_ci(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """Percentile interval of a ratio over resamples.

    Resamples whose denominator is zero (no item of that kind drawn) are left out.
    """
    values = ratio(numerator, denominator)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - CI_LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def drift_reduction(n_before: int, n_after: int) -> float | None:
    """Relative drop in drift cases, ``1 - after / before``; None when there were none before.

    Negative when drift grew (DART reports -72.6% drift cases of M_DART against M_int as a
    reduction of 0.726).
    """
    if n_before < 0 or n_after < 0:
        raise ValueError(f"drift counts must be >= 0, got {n_before} and {n_after}")
    if n_before == 0:
        return None
    return 1 - n_after / n_before


# --- markdown ---------------------------------------------------------------------------


def is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_pct(value, low=None, high=None) -> str:
    """A share as a percentage with one decimal, with its interval: ``"43.0 [34.6, 51.5]"``."""
    if is_missing(value):
        return "n/a"
    text = f"{100 * float(value):.1f}"
    if not (is_missing(low) or is_missing(high)):
        text += f" [{100 * float(low):.1f}, {100 * float(high):.1f}]"
    return text


def format_p(value) -> str:
    """A p-value in short scientific form (``"1.8e-15"``); "n/a" when missing."""
    if is_missing(value):
        return "n/a"
    return f"{float(value):.1e}"


def wilson_interval(
    successes: int, total: int, confidence: float = CI_LEVEL
) -> tuple[float | None, float | None]:
    """The Wilson score interval of successes/total; (None, None) when total is 0.

    Chosen over the normal (Wald) interval because check sets and audits give small counts and
    proportions near 0 or 1, where Wald's interval collapses to a point or leaves [0, 1].
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    if total < 0 or not 0 <= successes <= total:
        raise ValueError(f"need 0 <= successes <= total, got {successes} of {total}")
    if total == 0:
        return None, None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # At 0 or n successes the bound is exactly 0 or 1; floating point would leave it a hair off.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return low, high


def paired_tests(
    base: Sequence[float], tuned: Sequence[float], threshold: float, *, n_boot: int, seed: int
) -> dict:
    """Paired tests of a fine-tune's per-item scores against its base's on the same items.

    - ``wilcoxon``: the Wilcoxon signed-rank test on the per-item deltas (tuned - base), zero
      deltas dropped, two-sided;
    - ``sign``: an exact two-sided sign test on the items whose score rose past ``threshold``
      against those that fell past it (the others are ties);
    - ``mann_whitney``: the unpaired Mann-Whitney U of the two score lists, two-sided, as DART's
      code compared them: beside the paired tests, for comparison (it ignores the pairing);
    - ``mean_delta`` with a percentile bootstrap interval over items (``n_boot`` resamples,
      seeded).

    A test that has nothing to test (no non-zero delta, no item past the threshold) reports
    None for its statistic and p-value.
    """
    from scipy import stats

    check_n_boot(n_boot)
    base_arr = np.asarray(base, dtype=float)
    tuned_arr = np.asarray(tuned, dtype=float)
    if base_arr.shape != tuned_arr.shape:
        raise ValueError(
            f"paired scores need one base and one tuned score per item: {base_arr.shape} vs {tuned_arr.shape}"
        )
    n = len(base_arr)
    if n == 0:
        return {"n": 0, "mean_delta": None, "mean_delta_ci": [None, None], "wilcoxon": None, "sign": None,
                "mann_whitney": None}  # fmt: skip
    deltas = tuned_arr - base_arr
    rng = np.random.default_rng(seed)
    means = deltas[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    low, high = np.percentile(means, [100 * (1 - CI_LEVEL) / 2, 100 * (1 + CI_LEVEL) / 2])
    nonzero = int(np.count_nonzero(deltas))
    if nonzero:
        result = stats.wilcoxon(deltas, zero_method="wilcox", alternative="two-sided")
        wilcoxon = {"statistic": float(result.statistic), "p": float(result.pvalue), "n_nonzero": nonzero}
    else:
        wilcoxon = {"statistic": None, "p": None, "n_nonzero": 0}
    up = int(np.sum(deltas > threshold))
    down = int(np.sum(deltas < -threshold))
    sign_p = float(stats.binomtest(up, up + down, 0.5).pvalue) if up + down else None
    unpaired = stats.mannwhitneyu(tuned_arr, base_arr, alternative="two-sided")
    return {
        "n": n,
        "mean_delta": float(deltas.mean()),
        "mean_delta_ci": [float(low), float(high)],
        "wilcoxon": wilcoxon,
        "sign": {"threshold": threshold, "n_up": up, "n_down": down, "n_tied": n - up - down, "p": sign_p},
        "mann_whitney": {"statistic": float(unpaired.statistic), "p": float(unpaired.pvalue)},
    }
