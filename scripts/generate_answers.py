"""Rule generate_answers: one model answers one split in one framing (JSONL, one record per item)."""

from harmdrift.core.logs import setup_logging
from harmdrift.generate.rules import generate_answers

setup_logging(snakemake.log[0])
generate_answers(
    split_items=snakemake.input.split_items,
    template=snakemake.input.template,
    answers=snakemake.output.answers,
    model=snakemake.wildcards.model,
    framing=snakemake.wildcards.framing,
    student=snakemake.params.student,
    generation=snakemake.params.generation,
    load_path=snakemake.params.load_path,
    adapter=snakemake.params.adapter,
    threads=snakemake.threads,
    cache_dir=snakemake.params.cache_dir,
    policy=snakemake.params.policy,
)
