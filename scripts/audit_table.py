"""Rule audit_table: the audit table for one model, one row per pair."""

from harmdrift.audit.rules import audit_table
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
audit_table(
    pairs=snakemake.input.pairs,
    judgments=snakemake.input.judgments,
    csv=snakemake.output.csv,
)
