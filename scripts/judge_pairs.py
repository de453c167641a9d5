"""Rule judge_pairs: ask the LLM judge about each screened M0/tuned explanation pair, in both orders."""

from harmdrift.audit.rules import judge_pairs
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
judge_pairs(
    pairs=snakemake.input.pairs,
    template=snakemake.input.template,
    judgments=snakemake.output.judgments,
    usage=snakemake.output.usage,
    judge=snakemake.params.judge,
    verdicts=snakemake.params.verdicts,
    delta=snakemake.params.delta,
    cache_dir=snakemake.params.cache_dir,
    models_root=snakemake.params.models_root,
    threads=snakemake.threads,
)
