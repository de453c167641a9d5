"""The planted-drift control's figure: what the audit finds, and what the repair removes."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harmdrift.core.vocab import CONTROL_STAGES, PLANTED_MODEL, PLANTED_REPAIR_MODEL
from harmdrift.report.plotting import PathLike, message_figure, model_colour, percent_axis, save_figure


def _pct(value) -> float:
    return math.nan if value is None or pd.isna(value) else 100 * float(value)


def _errors(frame: pd.DataFrame, metric: str) -> np.ndarray:
    """Asymmetric error bars (below, above) in percent; missing bounds draw no bar."""
    value = frame[metric].map(_pct).to_numpy()
    low = frame[f"{metric}_ci_low"].map(_pct).to_numpy()
    high = frame[f"{metric}_ci_high"].map(_pct).to_numpy()
    return np.nan_to_num(np.vstack([value - low, high - value]), nan=0.0)


def control_figure(control_csv: PathLike, png: PathLike, pdf: PathLike | None = None) -> None:
    """Recall and precision of each audit stage on planted drift (95% Wilson intervals), and the
    share of audit replies that reproduce planted content before and after repair."""
    frame = pd.read_csv(control_csv).set_index("stage").reindex(list(CONTROL_STAGES)).reset_index()
    if frame["n_pairs"].isna().all():
        message_figure("Planted-drift control", "no audited pairs", png, pdf)
        return
    judged = frame.loc[frame["stage"] == "judge", "n_pairs"]
    if judged.isna().all() or (judged.fillna(0) == 0).all():
        # No judge looked at any pair: the screen's verdict is the final one, shown once.
        frame = frame[frame["stage"] == "screen"].copy()
        frame["stage"] = "screen (final verdict: no judge)"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(frame))
    for offset, metric, colour in ((-0.2, "recall", "#d62728"), (0.2, "precision", "#1f77b4")):
        values = frame[metric].map(_pct)
        bars = left.bar(x + offset, values, 0.4, yerr=_errors(frame, metric), capsize=3,
                        color=colour, label=metric)  # fmt: skip
        left.bar_label(bars, labels=["n/a" if pd.isna(v) else f"{v:.0f}%" for v in values], fontsize=8)
    left.set_xticks(x, frame["stage"])
    truth = int(frame["n_planted_truth"].iloc[0]) if not pd.isna(frame["n_planted_truth"].iloc[0]) else 0
    left.set_title(f"audit vs planted truth ({truth} of {int(frame['n_pairs'].iloc[0])} pairs planted)")
    percent_axis(left, 112)  # room for the value labels above a full bar
    left.legend(fontsize=8, loc="upper right")
    before, after = frame["planted_rate_m_int"].iloc[0], frame["planted_rate_m_dart"].iloc[0]
    names = [PLANTED_MODEL, PLANTED_REPAIR_MODEL]
    rates = [_pct(before), _pct(after)]
    bars = right.bar(names, rates, color=[model_colour(m) for m in names])
    right.bar_label(bars, labels=["n/a" if math.isnan(r) else f"{r:.0f}%" for r in rates], fontsize=8)
    title = "audit replies reproducing planted content"
    if rates[0] > 0:
        title += f"\nrepair removed {1 - rates[1] / rates[0]:.0%} of them"
    right.set_title(title, fontsize=10)
    percent_axis(right)
    save_figure(fig, png, pdf)
