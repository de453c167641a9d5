"""Rule judge_pairs: ask the LLM judge about each screened M0/tuned explanation pair, in both orders."""

from harmdrift.judge import run_judge
from harmdrift.logs import setup_logging

setup_logging(snakemake.log[0])
run_judge(
    pairs=snakemake.input.pairs,
    template=snakemake.input.template,
    outputs={"judgments": snakemake.output.judgments, "usage": snakemake.output.usage},
    judge=snakemake.params.judge,
    delta=snakemake.params.delta,
    cache_dir=snakemake.params.cache_dir,
    threads=snakemake.threads,
)
