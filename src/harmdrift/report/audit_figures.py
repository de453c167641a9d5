"""Figures of the audit: score deltas and drift counts."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harmdrift.core.vocab import (
    BASE_MODEL,
    DRIFT_CATEGORIES,
    POLICY_SUFFIX,
    SEVERITIES,
    order_models,
    policy_model,
)
from harmdrift.report.plotting import (
    SEVERITY_COLOURS,
    PathLike,
    count_scale,
    grouped_counts,
    message_figure,
    model_colour,
    save_figure,
)
from harmdrift.report.readers import read_csv, read_summary


def drift_by_severity(
    audit_summaries: dict[str, PathLike], png: PathLike, pdf: PathLike | None = None
) -> None:
    """Grouped bars of drift cases per severity, one bar per audited model: the judge's verdicts,
    or the classifier screen's (``audit.verdicts: classifier``), as the summaries say."""
    if not audit_summaries:
        message_figure("Harm-drift cases vs M0, by severity", "no audited models", png, pdf)
        return
    models = order_models(audit_summaries)
    summaries = {m: read_summary(audit_summaries[m]) for m in models}
    by_judge = all(summary.get("verdicts") == "judge" for summary in summaries.values())
    source = "confirmed by the judge" if by_judge else "from the classifier screen (no judge)"
    title = f"Harm-drift cases vs M0 {source}, by severity"
    counts = {m: summaries[m]["by_severity"] for m in models}
    fig, ax = plt.subplots(figsize=(7, 4))
    grouped_counts(ax, SEVERITIES, counts, model_colour)
    if all(sum(c.get(s, 0) for s in SEVERITIES) == 0 for c in counts.values()):
        ax.text(0.5, 0.6, "no drift cases", ha="center", transform=ax.transAxes, fontsize=12)
        ax.set_ylim(0, 1)
    ax.set_xlabel("judge severity" if by_judge else "severity (bins of the score increase)")
    ax.set_ylabel("drift cases")
    ax.set_title(title, fontsize=10)
    ax.legend(title="model", fontsize=8)
    save_figure(fig, png, pdf)


def _read_deltas(path: PathLike) -> pd.DataFrame:
    """The audit table with a numeric delta column (rows without one dropped); no rows is fine."""
    frame = read_csv(path, ["delta"], empty_ok=True)
    frame["delta"] = pd.to_numeric(frame["delta"], errors="coerce")
    return frame.dropna(subset=["delta"])


def _delta_bins(values: list[np.ndarray], delta: float) -> np.ndarray:
    pooled = np.concatenate([v for v in values if len(v)] or [np.array([0.0])])
    low, high = min(pooled.min(), -delta), max(pooled.max(), delta)
    if high - low < 1e-9:
        high = low + 1.0
    return np.linspace(low, high, 41)


def score_deltas(
    audit_csvs: dict[str, PathLike], png: PathLike, pdf: PathLike | None = None, *, delta: float
) -> None:
    """Histograms of the toxicity-score change (tuned minus M0) per audited model.

    One panel per model; the dashed line marks the screen threshold ``delta``: pairs to its
    right pass the screen.
    """
    title = "Toxicity-score change vs M0 (tuned - base)"
    deltas = {m: _read_deltas(audit_csvs[m])["delta"].to_numpy() for m in order_models(audit_csvs)}
    if not any(len(v) for v in deltas.values()):
        message_figure(title, "no audited pairs", png, pdf)
        return
    bins = _delta_bins(list(deltas.values()), delta)
    # One panel per model on a shared x axis: outlines drawn over each other hid identical ones.
    fig, axes = plt.subplots(len(deltas), 1, figsize=(7, 1.2 + 1.6 * len(deltas)), sharex=True, squeeze=False)
    for ax, (model, values) in zip(axes[:, 0], deltas.items(), strict=True):
        if len(values):
            ax.hist(values, bins=bins, color=model_colour(model))
        else:
            ax.text(0.5, 0.5, "no audited pairs", ha="center", va="center", transform=ax.transAxes)
        ax.axvline(delta, color="black", linestyle="--", linewidth=1)
        count_scale(ax)
        against = f", against {policy_model(BASE_MODEL)}" if model.endswith(POLICY_SUFFIX) else ""
        ax.set_title(f"{model} (n={len(values)}{against})", fontsize=9, loc="left")
        ax.set_ylabel("pairs")
    axes[-1, 0].set_xlabel(f"score(tuned) - score(M0); dashed: screen threshold {delta:g}")
    fig.suptitle(f"{title}; pair counts, log scale above 10")
    save_figure(fig, png, pdf)


# --- one model's audit -------------------------------------------------------------------


def audit_figures(
    audit_csv: PathLike,
    summary_json: PathLike,
    deltas_png: PathLike,
    deltas_pdf: PathLike,
    counts_png: PathLike,
    counts_pdf: PathLike,
) -> None:
    """Figures for one model's audit: the score-change distribution, and drift counts.

    The first splits pairs into screened and not screened around the summary's threshold; the
    second has two panels, confirmed drift by severity and by category.
    """
    summary = read_summary(summary_json)
    model = summary.get("model", Path(summary_json).parent.name)
    delta = float(summary.get("delta", 0.01))
    # Without a judge the screen decides: every screened pair is a drift case, binned by its rise.
    by_judge = summary.get("verdicts") == "judge"
    base = summary.get("base", "m0")
    base = "M0" if base == "m0" else base  # a fine-tune's own base otherwise
    frame = _read_deltas(audit_csv)
    title = f"{model}: toxicity-score change vs {base}"
    if frame.empty:
        message_figure(title, "no audited pairs", deltas_png, deltas_pdf)
    else:
        values = frame["delta"].to_numpy()
        bins = _delta_bins([values], delta)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(values[values <= delta], bins=bins, color="#aec7e8", label="below threshold")
        screened = "screened (sent to the judge)" if by_judge else "screened (counted as drift)"
        ax.hist(values[values > delta], bins=bins, color="#d62728", label=screened)
        ax.axvline(delta, color="black", linestyle="--", linewidth=1, label=f"threshold {delta:g}")
        count_scale(ax)
        ax.set_xlabel(f"score(tuned) - score({base})")
        ax.set_ylabel("pairs (log scale above 10)")
        ax.set_title(f"{title} (n={len(values)})")
        ax.legend(fontsize=8)
        save_figure(fig, deltas_png, deltas_pdf)

    source = "confirmed by the judge" if by_judge else "from the classifier screen, no judge"
    title = f"{model}: drift cases {source} (n={int(summary['n_drift'])})"
    if int(summary["n_drift"]) == 0:
        message_figure(title, "no drift cases", counts_png, counts_pdf)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    by_severity = summary["by_severity"]
    bars = left.bar(
        SEVERITIES,
        [by_severity.get(s, 0) for s in SEVERITIES],
        color=[SEVERITY_COLOURS[s] for s in SEVERITIES],
    )
    left.bar_label(bars, fontsize=8)
    left.set_xlabel("judge severity" if by_judge else "severity (bins of the score increase)")
    left.set_ylabel("drift cases")
    left.set_title("by severity")
    right.set_title("by category")
    if by_judge:
        by_category = summary.get("by_category", {})
        categories = list(DRIFT_CATEGORIES) + sorted(set(by_category) - set(DRIFT_CATEGORIES))
        bars = right.bar(categories, [by_category.get(c, 0) for c in categories], color=model_colour(model))
        right.bar_label(bars, fontsize=8)
        right.set_xlabel("drift category")
        right.tick_params(axis="x", labelrotation=15)
    else:
        note = "no categories: only the judge assigns them\n(audit.verdicts: classifier)"
        right.text(0.5, 0.5, note, ha="center", va="center", transform=right.transAxes, fontsize=10)
        right.set_xticks([])
        right.set_yticks([])
    fig.suptitle(title)
    save_figure(fig, counts_png, counts_pdf)
