"""Rule build_repair_set: severity-weighted repair examples mixed with Stage I replay."""

from harmdrift.logs import setup_logging
from harmdrift.repair import RepairConfig, build_repair_set

setup_logging(snakemake.log[0])
build_repair_set(
    snakemake.input.repair,
    snakemake.input.stage1,
    snakemake.output.examples,
    snakemake.output.summary,
    cfg=RepairConfig.from_dict(snakemake.params.repair),
)
