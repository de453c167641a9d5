"""Rule audit_table: the audit table, its summary (JSON, Markdown) and figures for one model."""

from harmdrift.audit import run_audit_table
from harmdrift.logs import setup_logging

setup_logging(snakemake.log[0])
run_audit_table(
    pairs=snakemake.input.pairs,
    judgments=snakemake.input.judgments,
    check=snakemake.input.check,
    outputs=dict(snakemake.output.items()),
    model=snakemake.wildcards.model,
    split=snakemake.params.split,
    protocol=snakemake.params.protocol,
    audit=snakemake.params.audit,
)
