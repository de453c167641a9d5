"""Rule control_table: the audit's precision and recall on planted drift, the repair's effect, a figure."""

from harmdrift.control.rules import control_table
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
control_table(
    audit=snakemake.input.audit,
    pairs_before=snakemake.input.pairs_before,
    pairs_after=snakemake.input.pairs_after,
    planted=snakemake.input.planted,
    split_items=snakemake.input.split_items,
    csv=snakemake.output.csv,
    truth=snakemake.output.truth,
    figure_png=snakemake.output.figure_png,
    figure_pdf=snakemake.output.figure_pdf,
    control=snakemake.params.control,
)
