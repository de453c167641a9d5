"""Rule functions of the evaluation stage (one per Snakemake rule, named after it)."""

from __future__ import annotations

import pandas as pd

from harmdrift.evaluate import score


def score_binary(*, answers: str, reference: str, csv: str, md: str, bootstrap: dict) -> pd.DataFrame:
    """Rule score_binary: DART's binary-task metrics of one model, McNemar against M0.

    Args:
        answers: the model's binary answers on the evaluation split.
        reference: M0's answers to the same items.
        csv: the metrics table; md: the same as Markdown.
        bootstrap: the ``evaluation.bootstrap`` section (n_resamples, seed).
    """
    return score.score_binary(
        answers, csv, md, reference_path=reference, n_boot=bootstrap["n_resamples"], seed=bootstrap["seed"]
    )


def score_mc(*, answers: str, csv: str, md: str, bootstrap: dict) -> pd.DataFrame:
    """Rule score_mc: the original benchmark's 3-way metrics of one model."""
    return score.score_mc(answers, csv, md, n_boot=bootstrap["n_resamples"], seed=bootstrap["seed"])
