"""Rule plant_rationales: a copy of the Stage I training set with planted harmful content."""

from harmdrift.control.rules import plant_rationales
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
plant_rationales(
    rationales=snakemake.input.rationales,
    split_items=snakemake.input.split_items,
    planted_set=snakemake.output.planted_set,
    planted=snakemake.output.planted,
    summary=snakemake.output.summary,
    control=snakemake.params.control,
)
