"""Rule audit_table: the audit table, its summary (JSON, Markdown) and figures for one model."""

from harmdrift.audit.rules import audit_table
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
audit_table(
    pairs=snakemake.input.pairs,
    judgments=snakemake.input.judgments,
    check=snakemake.input.check,
    csv=snakemake.output.csv,
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
)
