"""Rule classify_open_answers: the judge sorts one model's open-domain answers; rates with CIs."""

from harmdrift.core.logs import setup_logging
from harmdrift.open_domain.rules import classify_open_answers

setup_logging(snakemake.log[0])
classify_open_answers(
    answers=snakemake.input.answers,
    queries=snakemake.input.queries,
    template=snakemake.input.template,
    classified=snakemake.output.classified,
    rates=snakemake.output.rates,
    usage=snakemake.output.usage,
    model=snakemake.wildcards.model,
    judge=snakemake.params.judge,
    verdicts=snakemake.params.verdicts,
    bootstrap=snakemake.params.bootstrap,
    cache_dir=snakemake.params.cache_dir,
    models_root=snakemake.params.models_root,
    threads=snakemake.threads,
)
