"""Shared figure helpers: colours, saving PNG and PDF, placeholder figures, axes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from harmdrift.core.vocab import MODEL_COLOURS, repair_round

PathLike = str | os.PathLike


logger = logging.getLogger(__name__)

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
    if model in MODEL_COLOURS:
        return MODEL_COLOURS[model]
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
