"""Rule train_adapter: LoRA fine-tuning of the student on a rationale set (adapter, config, loss curve)."""

from pathlib import Path

from harmdrift.logs import setup_logging
from harmdrift.training import run_training

setup_logging(snakemake.log[0])
run_training(
    examples_path=snakemake.input.examples,
    out_dir=Path(snakemake.output.adapter).parent,
    training=snakemake.params.training,
    student=snakemake.params.student,
    load_path=snakemake.params.load_path,
    init_adapter=snakemake.params.init_adapter,
    threads=snakemake.threads,
)
