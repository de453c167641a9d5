"""Rule functions of the data stage (one per Snakemake rule, named after it)."""

from __future__ import annotations

from pathlib import Path

from harmdrift.data.splits import SplitConfig
from harmdrift.data.splits import write_splits as write_split_files


def write_splits(*, splits: list[str], summary: str, data: dict) -> dict[str, str]:
    """Rule write_splits: the train/val/test item files and their count summary.

    Args:
        splits: the split files the rule declares (all in one folder).
        summary: the count summary CSV.
        data: the ``data`` config section.
    """
    return write_split_files(
        data["dir"],
        data["benchmarks"],
        SplitConfig(**data["split"]),
        out_dir=Path(splits[0]).parent,
        summary_path=summary,
    )
