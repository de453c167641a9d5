"""Rule pair_answers: pair M0's and a tuned model's answers on the audit split, score and screen them."""

from harmdrift.audit.rules import pair_answers
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
pair_answers(
    base=snakemake.input.base,
    tuned=snakemake.input.tuned,
    split_items=snakemake.input.split_items,
    pairs=snakemake.output.pairs,
    scorer=snakemake.params.scorer,
    delta=snakemake.params.delta,
    max_chars=snakemake.params.max_chars,
    cache_dir=snakemake.params.cache_dir,
)
