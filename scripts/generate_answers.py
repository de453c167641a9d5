"""Rule generate_answers: one model answers one split in one framing (JSONL, one record per item)."""

from harmdrift.answers import run_generation
from harmdrift.logs import setup_logging

setup_logging(snakemake.log[0])
run_generation(
    items_path=snakemake.input.split_items,
    template_path=snakemake.input.template,
    out_path=snakemake.output[0],
    model_name=snakemake.wildcards.model,
    framing=snakemake.wildcards.framing,
    model_section=snakemake.params.student,
    generation=snakemake.params.generation,
    load_path=snakemake.params.load_path,
    adapter=snakemake.params.adapter,
    threads=snakemake.threads,
)
