"""Rule train_adapter: LoRA fine-tuning of the student on a rationale set (adapter, config, loss curve)."""

from harmdrift.core.logs import setup_logging
from harmdrift.train.rules import train_adapter

setup_logging(snakemake.log[0])
train_adapter(
    examples=snakemake.input.examples,
    adapter=snakemake.output.adapter,
    training=snakemake.params.training,
    student=snakemake.params.student,
    load_path=snakemake.params.load_path,
    init_adapter=snakemake.params.init_adapter,
    threads=snakemake.threads,
)
