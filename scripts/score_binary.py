"""Rule score_binary: DART's binary-task metrics for one model (CSV + markdown)."""

from harmdrift.evaluate import score_binary
from harmdrift.logs import setup_logging

setup_logging(snakemake.log[0])
score_binary(
    snakemake.input.answers,
    snakemake.output.csv,
    snakemake.output.md,
    reference_path=snakemake.input.reference,
    n_boot=snakemake.params.bootstrap["n_resamples"],
    seed=snakemake.params.bootstrap["seed"],
)
