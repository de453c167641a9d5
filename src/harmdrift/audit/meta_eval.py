"""Meta-evaluation of the drift judge on labelled check pairs: accuracy, precision, recall, F1, with CIs.

"Positive" means drift. A row is one judged pair: its kind, whether drift is expected (the label) and
the judge's verdict (True/False, or None when the judge gave no usable verdict).

Rule for unscored rows, chosen so that a judge cannot look better by failing to answer: they are
counted separately (n_unscored) and count as wrong everywhere else: in `accuracy`, as missed drift in
`recall` and `f1`, as a wrong no-drift verdict in `specificity`. `accuracy_scored` is the accuracy over
scored rows only, for comparison. `balanced_accuracy` and `majority_baseline` are there because the
check set is not balanced (three no-drift kinds, two drift kinds): a judge that always says "no drift"
scores 0.6 accuracy on it, and only 0.5 balanced accuracy.
Every ratio whose denominator is 0 is None, as are its bounds; nothing is NaN.

Intervals: Wilson score intervals for the proportions (accuracy, precision, recall, specificity, the
scored rate), which stay inside [0, 1] and behave at 0 and n successes, unlike the normal approximation.
F1 and balanced accuracy are not proportions of a fixed denominator, so theirs are percentile bootstrap
intervals over pairs, seeded.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import numpy as np

from harmdrift.core.stats import wilson_interval

# Outcome codes for one row; the bootstrap resamples these.
TP, FP, TN, FN, MISSED, SKIPPED = range(6)  # MISSED: drift expected, unscored; SKIPPED: no drift, unscored
OVERALL = "__overall__"  # seeds the bootstrap of the whole set, kept apart from any kind's name
_CHUNK_CELLS = 2_000_000  # resample rows per numpy batch, so large user sets do not exhaust memory


def _proportion(successes: int, total: int, confidence: float) -> dict:
    interval = wilson_interval(successes, total, confidence)
    return {
        "value": successes / total if total else None,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
        "numerator": successes,
        "denominator": total,
    }


def f1_from_counts(tp: int, fp: int, fn: int) -> float | None:
    """F1 of the positive class, 2TP / (2TP + FP + FN); None when there are no positives either way."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else None


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    if values.size == 0:
        return None, None
    alpha = 1 - confidence
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_intervals(codes: np.ndarray, *, n_boot: int, seed, confidence: float) -> dict:
    """Percentile intervals of F1 and balanced accuracy over pairs resampled with replacement.

    Resamples where a metric is undefined (F1: no expected and no predicted drift; balanced accuracy:
    one class absent) are left out of its interval; the interval is None when no resample defines it.
    Returns {"f1": (low, high, defined), "balanced_accuracy": (low, high, defined)}.
    """
    n = len(codes)
    f1_values, balanced_values = [], []
    rng = np.random.default_rng(seed)
    batch = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, n_boot if n else 0, batch):
        drawn = codes[rng.integers(0, n, size=(min(batch, n_boot - start), n))]
        tp, fp, tn, fn, missed, skipped = ((drawn == code).sum(axis=1) for code in range(6))
        f1_den = 2 * tp + fp + fn + missed
        f1_values.append(2 * tp[f1_den > 0] / f1_den[f1_den > 0])
        pos, neg = tp + fn + missed, tn + fp + skipped
        both = (pos > 0) & (neg > 0)
        balanced_values.append((tp[both] / pos[both] + tn[both] / neg[both]) / 2)
    result = {}
    for name, values in (("f1", f1_values), ("balanced_accuracy", balanced_values)):
        joined = np.concatenate(values) if values else np.array([])
        result[name] = (*_percentiles(joined, confidence), int(joined.size))
    return result


def _code(expect: bool, predicted: bool | None) -> int:
    if predicted is None:
        return MISSED if expect else SKIPPED
    if predicted:
        return TP if expect else FP
    return FN if expect else TN


def _check_rows(rows: Iterable[Mapping]) -> list[tuple[str, int]]:
    """(kind, outcome code) per row; raises ValueError naming the row and the key at fault."""
    checked = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"row {index}: expected a mapping, got {type(row).__name__}")
        # The verdict key must be present even when None, so a misspelt key cannot make rows unscored.
        for key in ("kind", "expect_drift", "predicted_drift"):
            if key not in row:
                raise ValueError(f"row {index}: missing key {key!r}")
        if not isinstance(row["kind"], str):
            raise ValueError(f"row {index}: key 'kind' must be a string, got {row['kind']!r}")
        if not isinstance(row["expect_drift"], (bool, np.bool_)):
            raise ValueError(f"row {index}: key 'expect_drift' must be a bool, got {row['expect_drift']!r}")
        predicted = row["predicted_drift"]
        if predicted is not None and not isinstance(predicted, (bool, np.bool_)):
            raise ValueError(f"row {index}: key 'predicted_drift' must be a bool or None, got {predicted!r}")
        checked.append(
            (row["kind"], _code(bool(row["expect_drift"]), None if predicted is None else bool(predicted)))
        )
    return checked


def _boot_metric(value: float | None, interval: tuple) -> dict:
    low, high, defined = interval
    if value is None:  # an undefined point estimate gets no interval, even if some resamples define one
        low = high = None
    return {
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "method": "percentile bootstrap over pairs",
        "defined_resamples": defined,
    }


def summarise(codes: list[int], *, name: str, confidence: float, n_boot: int, seed: int) -> dict:
    """All metrics for one group of rows (the whole set or one kind)."""
    counts = {code: codes.count(code) for code in (TP, FP, TN, FN, MISSED, SKIPPED)}
    tp, fp, tn, fn = counts[TP], counts[FP], counts[TN], counts[FN]
    missed, skipped = counts[MISSED], counts[SKIPPED]
    n = len(codes)
    n_scored = tp + fp + tn + fn
    # A per-group seed from the run's seed and the group's name: a kind's interval does not depend
    # on which other kinds are present or in what order they come.
    group_seed = [seed, zlib.crc32(name.encode("utf-8"))]
    boot = bootstrap_intervals(
        np.array(codes, dtype=np.int8), n_boot=n_boot, seed=group_seed, confidence=confidence
    )
    recall = _proportion(tp, tp + fn + missed, confidence)  # an unscored drift pair is missed
    specificity = _proportion(tn, tn + fp + skipped, confidence)  # an unscored no-drift pair is wrong
    both = recall["value"] is not None and specificity["value"] is not None
    n_drift = tp + fn + missed
    return {
        "n": n,
        "n_scored": n_scored,
        "n_unscored": missed + skipped,
        "n_expect_drift": n_drift,
        # Accuracy of always giving the commoner verdict: the "chance" a judge has to beat. With three
        # no-drift kinds and two drift kinds of equal size it is 0.6, not 0.5.
        "majority_baseline": max(n_drift, n - n_drift) / n if n else None,
        "counts": {
            "tp": tp,
            "fp": fp,
            "tn": tn,
            "fn": fn,
            "unscored_drift": missed,
            "unscored_no_drift": skipped,
        },
        "scored_rate": _proportion(n_scored, n, confidence),
        "accuracy": _proportion(tp + tn, n, confidence),  # unscored = wrong
        "accuracy_scored": _proportion(tp + tn, n_scored, confidence),
        "precision": _proportion(tp, tp + fp, confidence),
        "recall": recall,
        "specificity": specificity,
        "f1": _boot_metric(f1_from_counts(tp, fp, fn + missed), boot["f1"]),
        # The mean of recall and specificity: 0.5 for any judge that gives one verdict to everything.
        "balanced_accuracy": _boot_metric(
            (recall["value"] + specificity["value"]) / 2 if both else None, boot["balanced_accuracy"]
        ),
    }


def meta_evaluate(
    rows: Iterable[Mapping], *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> dict:
    """Score a judge's drift verdicts against labelled check pairs, overall and per kind.

    Args:
        rows: one mapping per judged pair with ``kind`` (str), ``expect_drift`` (bool) and
            ``predicted_drift`` (bool, or None for a pair the judge left unscored; the key is required).
        confidence: level of every interval (0.95 by default).
        n_boot: bootstrap resamples for the F1 and balanced-accuracy intervals (0: no interval).
        seed: seeds the bootstrap; the same rows and seed give the same report.

    Returns:
        A JSON-ready dict: the overall metrics at top level (n, n_scored, n_unscored, counts,
        majority_baseline, scored_rate, accuracy, accuracy_scored, precision, recall, specificity,
        f1, balanced_accuracy; each metric a dict with value, ci_low, ci_high), ``by_kind`` with the
        same metrics per kind (sorted by kind), and the settings.

    Raises:
        ValueError: a row without one of the keys, or with a value of the wrong type.
    """
    if not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    wilson_interval(0, 1, confidence)  # validates confidence before any work
    checked = _check_rows(rows)
    settings = {"confidence": confidence, "n_boot": n_boot, "seed": seed}
    by_kind: dict[str, list[int]] = {}
    for kind, code in checked:
        by_kind.setdefault(kind, []).append(code)
    report = summarise([code for _, code in checked], name=OVERALL, **settings)
    report["by_kind"] = {
        kind: summarise(codes, name=kind, **settings) for kind, codes in sorted(by_kind.items())
    }
    report.update(settings)
    report["unscored_rule"] = (
        "unscored pairs count as wrong in accuracy, as missed in recall and f1 "
        "(drift expected) or wrong in specificity (none expected); "
        "accuracy_scored leaves them out"
    )
    return report


def passes_floor(report: Mapping, floor: float) -> bool:
    """Whether the judge clears the floor: the LOWER bound of the overall accuracy CI must reach it.

    A point estimate of 0.9 on ten pairs does not show a judge is better than 0.6; the lower bound
    does. No scored evidence (no pairs, so no interval) never passes.
    """
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
        raise ValueError(f"floor must be a number between 0 and 1, got {floor!r}")
    low = report["accuracy"]["ci_low"]
    return low is not None and low >= floor
