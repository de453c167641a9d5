"""Rule write_splits: the train/val/test item files and a count summary."""

from harmdrift.core.logs import setup_logging
from harmdrift.data.rules import write_splits

setup_logging(snakemake.log[0])
write_splits(
    splits=list(snakemake.output.splits),
    summary=snakemake.output.summary,
    data=snakemake.params.data,
)
