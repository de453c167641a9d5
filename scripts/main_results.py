"""Rule main_results: one row per model (accuracy, drift, open-domain rates) and the paper comparison."""

from harmdrift.core.logs import setup_logging
from harmdrift.report.rules import main_results

setup_logging(snakemake.log[0])
main_results(
    metrics=list(snakemake.input.metrics),
    audits=list(snakemake.input.audits),
    open_domain=list(snakemake.input.open_domain),
    check=snakemake.input.check,
    csv=snakemake.output.csv,
    md=snakemake.output.md,
    comparison=snakemake.output.comparison,
    models=snakemake.params.models,
    audited=snakemake.params.audited,
    open_domain_models=snakemake.params.open_domain_models,
    protocol=snakemake.params.protocol,
    audit=snakemake.params.audit,
    teacher=snakemake.params.teacher,
    student=snakemake.params.student,
)
