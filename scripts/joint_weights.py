"""Rule joint_weights: the joint-training ablation's data (Stage I examples down-weighted by toxicity)."""

from harmdrift.core.logs import setup_logging
from harmdrift.repair.rules import joint_weights

setup_logging(snakemake.log[0])
joint_weights(
    stage1=snakemake.input.stage1,
    examples=snakemake.output.examples,
    summary=snakemake.output.summary,
    joint=snakemake.params.joint,
    screen=snakemake.params.screen,
    cache_dir=snakemake.params.cache_dir,
)
