"""Rule score_binary: DART's binary-task metrics for one model (CSV + markdown)."""

from harmdrift.core.logs import setup_logging
from harmdrift.evaluate.rules import score_binary

setup_logging(snakemake.log[0])
score_binary(
    answers=snakemake.input.answers,
    reference=snakemake.input.reference,
    csv=snakemake.output.csv,
    md=snakemake.output.md,
    bootstrap=snakemake.params.bootstrap,
)
