"""Rule score_mc: the original benchmark's 3-way metrics for one model (CSV + markdown)."""

from harmdrift.evaluate import score_mc
from harmdrift.logs import setup_logging

setup_logging(snakemake.log[0])
score_mc(
    snakemake.input.answers,
    snakemake.output.csv,
    snakemake.output.md,
    n_boot=snakemake.params.bootstrap["n_resamples"],
    seed=snakemake.params.bootstrap["seed"],
)
