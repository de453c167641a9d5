"""Rule finetune_answers: a fine-tune or its base answers one prompt set (JSONL, one record per item)."""

from harmdrift.core.logs import setup_logging
from harmdrift.finetune.rules import finetune_answers

setup_logging(snakemake.log[0])
finetune_answers(
    prompts=snakemake.input.prompts,
    template=snakemake.input.template,
    answers=snakemake.output.answers,
    model=snakemake.wildcards.model + (":base" if snakemake.wildcards.side == "base" else ""),
    side=snakemake.params.side,
    framing=snakemake.params.framing,
    generation=snakemake.params.generation,
    cache_dir=snakemake.params.cache_dir,
    threads=snakemake.threads,
)
