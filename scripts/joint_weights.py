"""Rule joint_weights: the joint-training ablation's data (Stage I examples down-weighted by toxicity)."""

from harmdrift.logs import setup_logging
from harmdrift.repair import run_joint_weights

setup_logging(snakemake.log[0])
run_joint_weights(
    stage1=snakemake.input.stage1,
    outputs=dict(snakemake.output.items()),
    joint=snakemake.params.joint,
    audit=snakemake.params.audit,
    cache_dir=snakemake.params.cache_dir,
)
