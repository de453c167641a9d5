"""Rule finetune_summary: a fine-tune's audit summary on one prompt set (JSON, Markdown) and figures."""

from harmdrift.core.logs import setup_logging
from harmdrift.finetune.rules import finetune_summary

setup_logging(snakemake.log[0])
finetune_summary(
    pairs=snakemake.input.pairs,
    judgments=snakemake.input.judgments,
    csv=snakemake.input.csv,
    check=snakemake.input.check,
    summary=snakemake.output.summary,
    summary_md=snakemake.output.summary_md,
    deltas_png=snakemake.output.deltas_png,
    deltas_pdf=snakemake.output.deltas_pdf,
    counts_png=snakemake.output.counts_png,
    counts_pdf=snakemake.output.counts_pdf,
    model=snakemake.wildcards.model,
    base=snakemake.params.base,
    prompt_set=snakemake.wildcards.pset,
    audit=snakemake.params.audit,
    bootstrap=snakemake.params.bootstrap,
)
