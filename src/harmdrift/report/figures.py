"""The run's cross-model figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from harmdrift.core.vocab import ALL, OPEN_DOMAIN_CATEGORIES, order_models
from harmdrift.report.audit_figures import drift_by_severity, score_deltas
from harmdrift.report.plotting import (
    OPEN_DOMAIN_COLOURS,
    PathLike,
    message_figure,
    model_colour,
    percent_axis,
    save_figure,
)
from harmdrift.report.readers import read_csv

# --- figures over all models -------------------------------------------------------------


# (panel title, ((item group, value, CI low, CI high, hatch), ...)): DART's strict rule first.
# Colour says which model, hatching which item group, so the legend needs no colours.
_ACCURACY_PANELS = (
    (
        "strict: DART's rule",
        (
            ("overall", "strict_overall_acc", "strict_overall_acc_ci_low", "strict_overall_acc_ci_high", ""),
            ("EQUAL", "strict_equal_acc", "strict_equal_acc_ci_low", "strict_equal_acc_ci_high", "//"),
            ("DIFF", "strict_diff_acc", "strict_diff_acc_ci_low", "strict_diff_acc_ci_high", ".."),
        ),
    ),
    (
        "tolerant: our fallback parse",
        (
            ("overall", "overall_acc", "ci_low", "ci_high", ""),
            ("EQUAL", "equal_acc", "equal_ci_low", "equal_ci_high", "//"),
            ("DIFF", "diff_acc", "diff_ci_low", "diff_ci_high", ".."),
        ),
    ),
)


def _accuracy_bars(ax, frame: pd.DataFrame, models: list[str], groups) -> None:
    x = np.arange(len(models))
    width = 0.8 / len(groups)
    for i, (label, value, low, high, hatch) in enumerate(groups):
        values = 100 * frame[value].astype(float).to_numpy()
        errors = 100 * np.vstack([frame[value] - frame[low], frame[high] - frame[value]]).astype(float).clip(
            min=0
        )
        bars = ax.bar(
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
        # Every bar carries its value, so a zero bar reads as 0 and a missing one as n/a.
        ax.bar_label(
            bars, labels=["n/a" if np.isnan(v) else f"{v:.0f}" for v in values], fontsize=7, padding=2
        )
    ax.set_xticks(x, models)
    ax.set_xlabel("model")
    percent_axis(ax, 105)


def accuracy_by_model(main_df: pd.DataFrame, png: PathLike, pdf: PathLike | None = None) -> None:
    """Grouped bars of overall, EQUAL and DIFF accuracy per model, with 95% CI error bars.

    The left panel reads the replies with DART's strict rule (the headline), the right one
    with our tolerant parse.
    """
    if main_df.empty:
        message_figure("Accuracy by model", "no models", png, pdf)
        return
    models = order_models(main_df["model"])
    frame = main_df.set_index("model").loc[models]
    fig, axes = plt.subplots(
        1, len(_ACCURACY_PANELS), figsize=(max(10, 3 * len(models)), 4), sharey=True, squeeze=False
    )
    for ax, (title, groups) in zip(axes[0], _ACCURACY_PANELS, strict=True):
        _accuracy_bars(ax, frame, models, groups)
        ax.set_title(title)
    axes[0, 0].set_ylabel("accuracy (%)")
    fig.suptitle("Binary-task accuracy by model (95% bootstrap CI)")
    groups = _ACCURACY_PANELS[0][1]
    handles = [
        Patch(facecolor="white", edgecolor="black", hatch=hatch, label=label) for label, *_, hatch in groups
    ]
    axes[0, 0].legend(handles=handles, title="items", loc="upper left", fontsize=8)
    save_figure(fig, png, pdf)


def benchmark_heatmap(metrics_paths: dict[str, PathLike], png: PathLike, pdf: PathLike | None = None) -> None:
    """Heatmap of overall accuracy, models (rows) by benchmark (columns, ALL last), cells annotated."""
    if not metrics_paths:
        message_figure("Accuracy by benchmark", "no models", png, pdf)
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
    save_figure(fig, png, pdf)


def open_domain_categories(
    rates_paths: dict[str, PathLike], png: PathLike, pdf: PathLike | None = None
) -> None:
    """Stacked bars of the four open-domain response categories per model (subset "all")."""
    title = "Open-domain responses by category"
    if not rates_paths:
        message_figure(title, "no open-domain results", png, pdf)
        return
    models = order_models(rates_paths)
    shares = {}
    for model in models:
        frame = read_csv(rates_paths[model], ("subset", "category", "rate"))
        rows = frame[frame["subset"].astype(str) == "all"]
        shares[model] = dict(zip(rows["category"].astype(str), rows["rate"].astype(float), strict=True))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(models) + 3), 4))
    sorted_any = any(not np.isnan(shares[m].get(c, np.nan)) for m in models for c in OPEN_DOMAIN_CATEGORIES)
    if not sorted_any:
        # No judge sorted the answers (audit.verdicts: classifier): the keyword check is all there is.
        values = [100 * shares[m].get("keyword_refusal", np.nan) for m in models]
        bars = ax.bar(models, np.nan_to_num(values), color=[model_colour(m) for m in models])
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.0f}%" for v in values], fontsize=8)
        ax.set_ylabel("refusals, keyword check (%)")
        ax.set_xlabel("model")
        ax.set_title(f"{title}: no judge ran, so no categories;\nkeyword refusal rate shown", fontsize=10)
        percent_axis(ax, 105)
        save_figure(fig, png, pdf)
        return
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
    percent_axis(ax, 105)
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    save_figure(fig, png, pdf)


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
        message_figure(title, "no loss values logged", png, pdf)
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for model, frame in curves.items():
        ax.plot(frame["step"], frame["loss"], marker=".", color=model_colour(model), label=model)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, png, pdf)


def yes_rate_vs_gold(main_df: pd.DataFrame, png: PathLike, pdf: PathLike | None = None) -> None:
    """YES-prediction rate per model beside the gold YES rate: bars above the mark over-predict YES."""
    title = "YES rate vs gold YES rate"
    if main_df.empty:
        message_figure(title, "no models", png, pdf)
        return
    models = order_models(main_df["model"])
    frame = main_df.set_index("model").loc[models]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(models) + 2), 4))
    x = np.arange(len(models))
    values = 100 * frame["yes_rate"].astype(float).to_numpy()
    bars = ax.bar(x, np.nan_to_num(values), color=[model_colour(m) for m in models], label="predicted YES")
    ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.0f}%" for v in values], fontsize=8)
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
    percent_axis(ax, 110)
    ax.legend(fontsize=8)
    save_figure(fig, png, pdf)


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
