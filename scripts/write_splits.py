"""Rule write_splits: write the train/val/test item files and a count summary."""

from pathlib import Path

from harmdrift.data import SplitConfig, write_splits
from harmdrift.logs import setup_logging

setup_logging(snakemake.log[0])
data = snakemake.params.data
write_splits(
    data["dir"],
    data["benchmarks"],
    SplitConfig(**data["split"]),
    out_dir=Path(snakemake.output.splits[0]).parent,
    summary_path=snakemake.output.summary,
)
