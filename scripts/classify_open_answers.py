"""Rule classify_open_answers: the judge sorts one model's open-domain answers; rates with CIs."""

from harmdrift.logs import setup_logging
from harmdrift.open_domain import run_open_domain

setup_logging(snakemake.log[0])
run_open_domain(
    answers_path=snakemake.input.answers,
    queries_path=snakemake.input.queries,
    judge_template=snakemake.input.template,
    outputs=dict(snakemake.output.items()),
    model=snakemake.wildcards.model,
    judge=snakemake.params.judge,
    cache_dir=snakemake.params.cache_dir,
    max_reasks=snakemake.params.judge["max_reasks"],
    n_boot=snakemake.params.bootstrap["n_resamples"],
    seed=snakemake.params.bootstrap["seed"],
    threads=snakemake.threads,
)
