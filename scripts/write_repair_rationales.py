"""Rule write_repair_rationales: safer teacher rationales for the drift cases of the parent model's audit."""

from harmdrift.logs import setup_logging
from harmdrift.repair import run_repair_rationales

setup_logging(snakemake.log[0])
run_repair_rationales(
    inputs=dict(snakemake.input.items()),
    outputs=dict(snakemake.output.items()),
    teacher=snakemake.params.teacher,
    distill=snakemake.params.distill,
    repair=snakemake.params.repair,
    audit=snakemake.params.audit,
    cache_dir=snakemake.params.cache_dir,
    tag=f"repair-{snakemake.wildcards.model}",
    threads=snakemake.threads,
)
