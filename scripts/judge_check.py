"""Rule judge_check: measure the configured judge on the built-in check pairs."""

from harmdrift.judge import run_check
from harmdrift.logs import setup_logging

setup_logging(snakemake.log[0])
run_check(
    check_set=snakemake.input.check_set,
    template=snakemake.input.template,
    out=snakemake.output[0],
    judge=snakemake.params.judge,
    cache_dir=snakemake.params.cache_dir,
    threads=snakemake.threads,
)
