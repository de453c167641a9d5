"""Rule score_mc: the original benchmark's 3-way metrics for one model (CSV + markdown)."""

from harmdrift.core.logs import setup_logging
from harmdrift.evaluate.rules import score_mc

setup_logging(snakemake.log[0])
score_mc(
    answers=snakemake.input.answers,
    csv=snakemake.output.csv,
    md=snakemake.output.md,
    bootstrap=snakemake.params.bootstrap,
)
