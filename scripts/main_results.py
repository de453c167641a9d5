"""Rule main_results: one row per model (accuracy, drift, open-domain rates) and the paper comparison."""

from harmdrift.logs import setup_logging
from harmdrift.results import run_main_results

setup_logging(snakemake.log[0])
run_main_results(
    models=snakemake.params.models,
    audited=snakemake.params.audited,
    metrics=snakemake.input.metrics,
    audits=snakemake.input.audits,
    open_domain=snakemake.input.open_domain,
    check=snakemake.input.check,
    outputs=dict(snakemake.output.items()),
    protocol=snakemake.params.protocol,
    config=snakemake.params.config,
)
