"""Rule figures: every cross-model figure (PNG and PDF) under results/figures/."""

from harmdrift.core.logs import setup_logging
from harmdrift.report.rules import figures

setup_logging(snakemake.log[0])
figures(
    main=snakemake.input.main,
    metrics=list(snakemake.input.metrics),
    audits=list(snakemake.input.audits),
    audit_tables=list(snakemake.input.audit_tables),
    open_domain=list(snakemake.input.open_domain),
    losses=list(snakemake.input.losses),
    figure_paths=list(snakemake.output),
    models=snakemake.params.models,
    audited=snakemake.params.audited,
    trained=snakemake.params.trained,
    open_domain_models=snakemake.params.open_domain_models,
    delta=snakemake.params.delta,
)
