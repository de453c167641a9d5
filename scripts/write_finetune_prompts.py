"""Rule write_finetune_prompts: one prompt set of the fine-tune audit, as its jobs read it."""

from harmdrift.core.logs import setup_logging
from harmdrift.finetune.rules import write_finetune_prompts

setup_logging(snakemake.log[0])
write_finetune_prompts(
    source=snakemake.params.source,
    prompts=snakemake.output.prompts,
    entry=snakemake.params.entry,
    name=snakemake.wildcards.pset,
)
