"""Rule pair_answers: pair M0's and a tuned model's answers on the audit split, score and screen them."""

from harmdrift.audit import run_pairs
from harmdrift.logs import setup_logging

setup_logging(snakemake.log[0])
run_pairs(
    base=snakemake.input.base,
    tuned=snakemake.input.tuned,
    items=snakemake.input.split_items,
    out=snakemake.output[0],
    scorer=snakemake.params.scorer,
    delta=snakemake.params.delta,
    max_chars=snakemake.params.max_chars,
    cache_dir=snakemake.params.cache_dir,
)
