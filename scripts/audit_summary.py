"""Rule audit_summary: the audit's summary (JSON, Markdown) and figures for one model."""

from harmdrift.audit.rules import audit_summary
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
audit_summary(
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
    split=snakemake.params.split,
    protocol=snakemake.params.protocol,
    audit=snakemake.params.audit,
    bootstrap=snakemake.params.bootstrap,
    base=snakemake.params.base,
)
