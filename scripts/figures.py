"""Rule figures: every cross-model figure (PNG and PDF) under results/figures/."""

from pathlib import Path

from harmdrift.logs import setup_logging
from harmdrift.plots import plot_all

setup_logging(snakemake.log[0])
models, audited = snakemake.params.models, snakemake.params.audited
plot_all(
    snakemake.input.main,
    dict(zip(models, snakemake.input.metrics, strict=True)),
    dict(zip(audited, snakemake.input.audits, strict=True)),
    dict(zip(audited, snakemake.input.audit_tables, strict=True)),
    dict(zip(models, snakemake.input.open_domain, strict=True)) if snakemake.input.open_domain else {},
    dict(zip(audited, snakemake.input.losses, strict=True)),
    Path(snakemake.output[0]).parent,
    delta=snakemake.params.delta,
)
