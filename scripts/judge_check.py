"""Rule judge_check: measure the configured judge on the labelled check pairs."""

from harmdrift.audit.rules import judge_check
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
judge_check(
    check_pairs=snakemake.input.check_pairs,
    extra_pairs=list(snakemake.input.extra_pairs),
    template=snakemake.input.template,
    check=snakemake.output.check,
    judge=snakemake.params.judge,
    check_set=snakemake.params.check_set,
    cache_dir=snakemake.params.cache_dir,
    models_root=snakemake.params.models_root,
    threads=snakemake.threads,
)
