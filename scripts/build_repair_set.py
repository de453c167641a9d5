"""Rule build_repair_set: severity-weighted repair examples mixed with Stage I replay."""

from harmdrift.core.logs import setup_logging
from harmdrift.repair.rules import build_repair_set

setup_logging(snakemake.log[0])
build_repair_set(
    repair_rationales=snakemake.input.repair_rationales,
    stage1=snakemake.input.stage1,
    examples=snakemake.output.examples,
    summary=snakemake.output.summary,
    repair=snakemake.params.repair,
)
