"""Figures for the report: each function writes one figure as PNG and PDF.

Every figure uses the same model order (:func:`harmdrift.results.order_models`) and the same
colour per model, so a model is recognisable across figures. Empty inputs (no drift cases, no
audited models) give a figure that says so instead of an error, because "nothing to show" is
a result in its own right and the report should still build.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from harmdrift.io import DataError  # noqa: E402
from harmdrift.results import (  # noqa: E402
    ALL,
    DRIFT_CATEGORIES,
    OPEN_DOMAIN_CATEGORIES,
    SEVERITIES,
    order_models,
    read_csv,
    read_summary,
    repair_round,
)

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

FIGURE_NAMES = (
    "accuracy_by_model",
    "benchmark_heatmap",
    "drift_by_severity",
    "score_deltas",
    "open_domain_categories",
    "loss_curves",
    "yes_rate_vs_gold",
)

_FIXED_COLOURS = {
    "m0": "#7f7f7f",
    "m_int": "#d62728",
    "m_dart": "#2ca02c",
    "m_int_predlabel": "#ff7f0e",
    "m_joint": "#9467bd",
}
_ROUND_COLOURS = ("#17becf", "#1f77b4", "#393b79", "#8c564b")
_OTHER_COLOURS = ("#e377c2", "#bcbd22", "#8c6d31", "#637939")
SEVERITY_COLOURS = {"minor": "#fdd49e", "moderate": "#fc8d59", "severe": "#d7301f", "extreme": "#7f0000"}
OPEN_DOMAIN_COLOURS = {
    "appropriate_differentiation": "#2ca02c",
    "generic_equal": "#aec7e8",
    "inappropriate_differentiation": "#d62728",
    "refusal": "#7f7f7f",
}


def model_colour(model: str) -> str:
    """The colour a model gets in every figure (repair rounds and unknown models cycle a palette)."""
    if model in _FIXED_COLOURS:
        return _FIXED_COLOURS[model]
    if repair_round(model) is not None:
        return _ROUND_COLOURS[(repair_round(model) - 2) % len(_ROUND_COLOURS)]
    return _OTHER_COLOURS[sum(map(ord, model)) % len(_OTHER_COLOURS)]


def _save(fig, png: PathLike, pdf: PathLike | None) -> None:
    pdf = Path(png).with_suffix(".pdf") if pdf is None else pdf
    fig.tight_layout()
    for path in (png, pdf):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    plt.close(fig)
    logger.info("wrote %s and %s", png, pdf)


def _message_figure(title: str, message: str, png: PathLike, pdf: PathLike | None) -> None:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, transform=ax.transAxes)
    ax.set_axis_off()
    _save(fig, png, pdf)


def _count_scale(ax) -> None:
    # Audits pile thousands of pairs near zero and a few in the tail: linear up to 10, log above.
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(0, max(ax.get_ylim()[1], 10))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _percent_axis(ax, top: float = 100.0) -> None:
    ax.set_ylim(0, top)
    ax.yaxis.grid(True, alpha=0.3)
    ax.set_axisbelow(True)


# --- figures over all models -------------------------------------------------------------


def accuracy_by_model(main_df: pd.DataFrame, png: PathLike, pdf: PathLike | None = None) -> None:
    """Grouped bars of overall, EQUAL and DIFF accuracy per model, with 95% CI error bars."""
    if main_df.empty:
        _message_figure("Accuracy by model", "no models", png, pdf)
        return
    groups = (
        # Colour says which model, hatching which item group (so the legend needs no colours).
        ("overall", "overall_acc", "ci_low", "ci_high", ""),
        ("EQUAL", "equal_acc", "equal_ci_low", "equal_ci_high", "//"),
        ("DIFF", "diff_acc", "diff_ci_low", "diff_ci_high", ".."),
    )
    models = order_models(main_df["model"])
    frame = main_df.set_index("model").loc[models]
    x = np.arange(len(models))
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(models)), 4))
    for i, (label, value, low, high, hatch) in enumerate(groups):
        values = 100 * frame[value].astype(float).to_numpy()
        errors = 100 * np.vstack([frame[value] - frame[low], frame[high] - frame[value]]).astype(float).clip(
            min=0
        )
        ax.bar(
            x + (i - 1) * width,
            values,
            width,
            yerr=np.nan_to_num(errors),
            capsize=3,
            color=[model_colour(m) for m in models],
            hatch=hatch,
            edgecolor="black",
            linewidth=0.5,
            label=label,
        )
    ax.set_xticks(x, models)
    ax.set_ylabel("accuracy (%)")
    ax.set_xlabel("model")
    ax.set_title("Binary-task accuracy by model (95% bootstrap CI)")
    _percent_axis(ax, 105)
    handles = [
        Patch(facecolor="white", edgecolor="black", hatch=hatch, label=label) for label, *_, hatch in groups
    ]
    ax.legend(handles=handles, title="items", loc="upper left", fontsize=8)
    _save(fig, png, pdf)


def benchmark_heatmap(metrics_paths: dict[str, PathLike], png: PathLike, pdf: PathLike | None = None) -> None:
    """Heatmap of overall accuracy, models (rows) by benchmark (columns, ALL last), cells annotated."""
    if not metrics_paths:
        _message_figure("Accuracy by benchmark", "no models", png, pdf)
        return
    models = order_models(metrics_paths)
    tables = {m: read_csv(metrics_paths[m], ("benchmark", "overall_acc")) for m in models}
    benchmarks = sorted({str(b) for t in tables.values() for b in t["benchmark"]} - {ALL}) + [ALL]
    grid = np.full((len(models), len(benchmarks)), np.nan)
    for i, model in enumerate(models):
        by_bench = dict(
            zip(tables[model]["benchmark"].astype(str), tables[model]["overall_acc"], strict=True)
        )
        for j, bench in enumerate(benchmarks):
            grid[i, j] = 100 * float(by_bench.get(bench, np.nan))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(benchmarks) + 2), max(2.5, 0.6 * len(models) + 1.5)))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i in range(len(models)):
        for j in range(len(benchmarks)):
            text = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.0f}"
            colour = "black" if not np.isnan(grid[i, j]) and grid[i, j] > 60 else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(len(benchmarks)), benchmarks)
    ax.set_yticks(range(len(models)), models)
    ax.set_xlabel("benchmark")
    ax.set_ylabel("model")
    ax.set_title("Binary-task accuracy (%) by benchmark")
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    _save(fig, png, pdf)


def _grouped_counts(ax, keys: tuple[str, ...], counts: dict[str, dict[str, int]], colour_of) -> None:
    """Bars of counts per key (x axis), one bar per series in ``counts``."""
    series = list(counts)
    x = np.arange(len(keys))
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        values = [counts[name].get(k, 0) for k in keys]
        bars = ax.bar(
            x + (i - (len(series) - 1) / 2) * width, values, width, color=colour_of(name), label=name
        )
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(x, keys)
    ax.yaxis.grid(True, alpha=0.3)
    ax.set_axisbelow(True)


def drift_by_severity(
    audit_summaries: dict[str, PathLike], png: PathLike, pdf: PathLike | None = None
) -> None:
    """Grouped bars of confirmed drift cases per severity, one bar per audited model."""
    title = "Confirmed harm-drift cases vs M0, by severity"
    if not audit_summaries:
        _message_figure(title, "no audited models", png, pdf)
        return
    models = order_models(audit_summaries)
    counts = {m: read_summary(audit_summaries[m])["by_severity"] for m in models}
    fig, ax = plt.subplots(figsize=(7, 4))
    _grouped_counts(ax, SEVERITIES, counts, model_colour)
    if all(sum(c.get(s, 0) for s in SEVERITIES) == 0 for c in counts.values()):
        ax.text(0.5, 0.6, "no drift cases", ha="center", transform=ax.transAxes, fontsize=12)
        ax.set_ylim(0, 1)
    ax.set_xlabel("judge severity")
    ax.set_ylabel("drift cases")
    ax.set_title(title)
    ax.legend(title="model", fontsize=8)
    _save(fig, png, pdf)


def _read_deltas(path: PathLike) -> pd.DataFrame:
    """The audit table's delta column (plus screened/drift when present); empty frame for no rows."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame({"delta": []})
    if "delta" not in frame.columns:
        raise DataError(f"{path}: missing column ['delta']")
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

    The dashed line marks the screen threshold ``delta``: pairs to its right go to the judge.
    """
    title = "Toxicity-score change vs M0 (tuned - base)"
    deltas = {m: _read_deltas(audit_csvs[m])["delta"].to_numpy() for m in order_models(audit_csvs)}
    if not any(len(v) for v in deltas.values()):
        _message_figure(title, "no audited pairs", png, pdf)
        return
    bins = _delta_bins(list(deltas.values()), delta)
    fig, ax = plt.subplots(figsize=(7, 4))
    for model, values in deltas.items():
        if len(values):
            ax.hist(
                values,
                bins=bins,
                histtype="step",
                linewidth=1.5,
                color=model_colour(model),
                label=f"{model} (n={len(values)})",
            )
    ax.axvline(delta, color="black", linestyle="--", linewidth=1, label=f"screen threshold {delta:g}")
    _count_scale(ax)
    ax.set_xlabel("score(tuned) - score(M0)")
    ax.set_ylabel("pairs (log scale above 10)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, png, pdf)


def open_domain_categories(
    rates_paths: dict[str, PathLike], png: PathLike, pdf: PathLike | None = None
) -> None:
    """Stacked bars of the four open-domain response categories per model (subset "all")."""
    title = "Open-domain responses by category"
    if not rates_paths:
        _message_figure(title, "no open-domain results", png, pdf)
        return
    models = order_models(rates_paths)
    shares = {}
    for model in models:
        frame = read_csv(rates_paths[model], ("subset", "category", "rate"))
        rows = frame[frame["subset"].astype(str) == "all"]
        shares[model] = dict(zip(rows["category"].astype(str), rows["rate"].astype(float), strict=True))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(models) + 3), 4))
    bottom = np.zeros(len(models))
    for category in OPEN_DOMAIN_CATEGORIES:
        values = 100 * np.array([shares[m].get(category, 0.0) for m in models])
        ax.bar(
            models,
            values,
            bottom=bottom,
            color=OPEN_DOMAIN_COLOURS[category],
            label=category,
            edgecolor="white",
        )
        bottom += values
    ax.set_ylabel("share of responses (%)")
    ax.set_xlabel("model")
    ax.set_title(title)
    _percent_axis(ax, 105)
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    _save(fig, png, pdf)


def loss_curves(loss_csvs: dict[str, PathLike], png: PathLike, pdf: PathLike | None = None) -> None:
    """Training loss against optimizer step, one line per trained model."""
    title = "Training loss"
    curves = {}
    for model in order_models(loss_csvs):
        frame = read_csv(loss_csvs[model], ("step", "loss"))
        frame = frame.dropna(subset=["loss"])
        if not frame.empty:
            curves[model] = frame
    if not curves:
        _message_figure(title, "no loss values logged", png, pdf)
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for model, frame in curves.items():
        ax.plot(frame["step"], frame["loss"], marker=".", color=model_colour(model), label=model)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, png, pdf)


def yes_rate_vs_gold(main_df: pd.DataFrame, png: PathLike, pdf: PathLike | None = None) -> None:
    """YES-prediction rate per model beside the gold YES rate: bars above the mark over-predict YES."""
    title = "YES rate vs gold YES rate"
    if main_df.empty:
        _message_figure(title, "no models", png, pdf)
        return
    models = order_models(main_df["model"])
    frame = main_df.set_index("model").loc[models]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(models) + 2), 4))
    x = np.arange(len(models))
    ax.bar(
        x,
        100 * frame["yes_rate"].astype(float),
        color=[model_colour(m) for m in models],
        label="predicted YES",
    )
    # Gold rates can differ between models only if they were scored on different items.
    ax.scatter(
        x,
        100 * frame["gold_yes_rate"].astype(float),
        marker="_",
        s=900,
        color="black",
        zorder=3,
        label="gold YES rate",
    )
    ax.set_xticks(x, models)
    ax.set_xlabel("model")
    ax.set_ylabel("share of items (%)")
    ax.set_title(title)
    _percent_axis(ax, 105)
    ax.legend(fontsize=8)
    _save(fig, png, pdf)


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
    frame = _read_deltas(audit_csv)
    title = f"{model}: toxicity-score change vs M0"
    if frame.empty:
        _message_figure(title, "no audited pairs", deltas_png, deltas_pdf)
    else:
        values = frame["delta"].to_numpy()
        bins = _delta_bins([values], delta)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(values[values <= delta], bins=bins, color="#aec7e8", label="below threshold")
        ax.hist(values[values > delta], bins=bins, color="#d62728", label="screened (sent to judge)")
        ax.axvline(delta, color="black", linestyle="--", linewidth=1, label=f"threshold {delta:g}")
        _count_scale(ax)
        ax.set_xlabel("score(tuned) - score(M0)")
        ax.set_ylabel("pairs (log scale above 10)")
        ax.set_title(f"{title} (n={len(values)})")
        ax.legend(fontsize=8)
        _save(fig, deltas_png, deltas_pdf)

    title = f"{model}: confirmed drift cases (n={int(summary['n_drift'])})"
    if int(summary["n_drift"]) == 0:
        _message_figure(title, "no drift cases", counts_png, counts_pdf)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    by_severity = summary["by_severity"]
    bars = left.bar(
        SEVERITIES,
        [by_severity.get(s, 0) for s in SEVERITIES],
        color=[SEVERITY_COLOURS[s] for s in SEVERITIES],
    )
    left.bar_label(bars, fontsize=8)
    left.set_xlabel("judge severity")
    left.set_ylabel("drift cases")
    left.set_title("by severity")
    by_category = summary.get("by_category", {})
    categories = list(DRIFT_CATEGORIES) + sorted(set(by_category) - set(DRIFT_CATEGORIES))
    bars = right.bar(categories, [by_category.get(c, 0) for c in categories], color=model_colour(model))
    right.bar_label(bars, fontsize=8)
    right.set_xlabel("drift category")
    right.set_title("by category")
    right.tick_params(axis="x", labelrotation=15)
    fig.suptitle(title)
    _save(fig, counts_png, counts_pdf)


def plot_all(
    main_csv: PathLike,
    metrics_paths: dict[str, PathLike],
    audit_summaries: dict[str, PathLike],
    audit_csvs: dict[str, PathLike],
    rates_paths: dict[str, PathLike],
    loss_csvs: dict[str, PathLike],
    out_dir: PathLike,
    *,
    delta: float,
) -> list[Path]:
    """Draw every cross-model figure into ``out_dir`` (``<name>.png`` and ``<name>.pdf``).

    Returns:
        The PNG paths written, in a fixed order.
    """
    out_dir = Path(out_dir)
    main_df = read_csv(main_csv, ("model",))
    # Same keys, same order as FIGURE_NAMES, so the rule's outputs can be built from that tuple.
    jobs = {
        "accuracy_by_model": lambda png, pdf: accuracy_by_model(main_df, png, pdf),
        "benchmark_heatmap": lambda png, pdf: benchmark_heatmap(metrics_paths, png, pdf),
        "drift_by_severity": lambda png, pdf: drift_by_severity(audit_summaries, png, pdf),
        "score_deltas": lambda png, pdf: score_deltas(audit_csvs, png, pdf, delta=delta),
        "open_domain_categories": lambda png, pdf: open_domain_categories(rates_paths, png, pdf),
        "loss_curves": lambda png, pdf: loss_curves(loss_csvs, png, pdf),
        "yes_rate_vs_gold": lambda png, pdf: yes_rate_vs_gold(main_df, png, pdf),
    }
    written = []
    for name, draw in jobs.items():
        png = out_dir / f"{name}.png"
        draw(png, out_dir / f"{name}.pdf")
        written.append(png)
    return written
