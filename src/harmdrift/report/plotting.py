"""Shared figure helpers: colours, saving PNG and PDF, placeholder figures, axes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from harmdrift.core.vocab import (
    APPROPRIATE,
    GENERIC_EQUAL,
    INAPPROPRIATE,
    MODEL_COLOURS,
    OPEN_REFUSAL,
    POLICY_SUFFIX,
    SEVERITIES,
    repair_round,
    without_policy,
)

PathLike = str | os.PathLike


logger = logging.getLogger(__name__)

_ROUND_COLOURS = ("#17becf", "#1f77b4", "#393b79", "#8c564b")
_OTHER_COLOURS = ("#e377c2", "#bcbd22", "#8c6d31", "#637939")
# One colour per judge severity, mildest to harshest: the names are vocab.SEVERITIES'.
SEVERITY_COLOURS = dict(zip(SEVERITIES, ("#fdd49e", "#fc8d59", "#d7301f", "#7f0000"), strict=True))
OPEN_DOMAIN_COLOURS = {
    APPROPRIATE: "#2ca02c",
    GENERIC_EQUAL: "#aec7e8",
    INAPPROPRIATE: "#d62728",
    OPEN_REFUSAL: "#7f7f7f",
}


def model_colour(model: str) -> str:
    """The colour a model gets in every figure (repair rounds and unknown models cycle a palette)."""
    if model in MODEL_COLOURS:
        return MODEL_COLOURS[model]
    if model.endswith(POLICY_SUFFIX):  # its plain row's colour, lightened halfway to white
        red, green, blue = to_rgb(model_colour(without_policy(model)))
        return to_hex(((1 + red) / 2, (1 + green) / 2, (1 + blue) / 2))
    if repair_round(model) is not None:
        return _ROUND_COLOURS[(repair_round(model) - 2) % len(_ROUND_COLOURS)]
    return _OTHER_COLOURS[sum(map(ord, model)) % len(_OTHER_COLOURS)]


def save_figure(fig, png: PathLike, pdf: PathLike | None) -> None:
    """Lay out ``fig``, write it as ``png`` and as ``pdf`` (default: the PNG's path with .pdf),
    creating their folders, and close it."""
    pdf = Path(png).with_suffix(".pdf") if pdf is None else pdf
    fig.tight_layout()
    for path in (png, pdf):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # No creation date in the PDF, so a re-run writes the same bytes (the PNG has none).
        metadata = {"CreationDate": None} if str(path).endswith(".pdf") else None
        fig.savefig(path, dpi=150, metadata=metadata)
    plt.close(fig)
    logger.info("wrote %s and %s", png, pdf)


def message_figure(title: str, message: str, png: PathLike, pdf: PathLike | None) -> None:
    """A placeholder figure: ``title`` over one line of text (a figure with nothing to plot
    still writes its files, so the workflow's outputs exist)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, transform=ax.transAxes)
    ax.set_axis_off()
    save_figure(fig, png, pdf)


def count_scale(ax) -> None:
    """A count axis linear up to 10 and logarithmic above, labelled in plain numbers."""
    # Audits pile thousands of pairs near zero and a few in the tail: linear up to 10, log above.
    ax.set_yscale("symlog", linthresh=10)
    top = max(ax.get_ylim()[1], 10)
    ax.set_ylim(0, top)
    # Ticks every 2 on the linear part and at each power of ten above (symlog's own put only 0, 10).
    powers = [10**k for k in range(2, int(np.log10(top)) + 1)]
    ax.set_yticks([0, 2, 4, 6, 8, 10, *powers])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def percent_axis(ax, top: float = 100.0) -> None:
    """A percentage y axis from 0 to ``top`` with light horizontal grid lines behind the bars."""
    ax.set_ylim(0, top)
    ax.yaxis.grid(True, alpha=0.3)
    ax.set_axisbelow(True)


def grouped_counts(ax, keys: tuple[str, ...], counts: dict[str, dict[str, int]], colour_of) -> None:
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
