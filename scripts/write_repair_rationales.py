"""Rule write_repair_rationales: safer teacher rationales for the drift cases of the parent model's audit."""

from harmdrift.core.logs import setup_logging
from harmdrift.repair.rules import write_repair_rationales

setup_logging(snakemake.log[0])
write_repair_rationales(
    audit=snakemake.input.audit,
    pairs=snakemake.input.pairs,
    split_items=snakemake.input.split_items,
    teacher_prompt=snakemake.input.teacher_prompt,
    fix_prompt=snakemake.input.fix_prompt,
    student_prompt=snakemake.input.student_prompt,
    rationales=snakemake.output.rationales,
    dropped=snakemake.output.dropped,
    summary=snakemake.output.summary,
    usage=snakemake.output.usage,
    teacher=snakemake.params.teacher,
    distill=snakemake.params.distill,
    repair=snakemake.params.repair,
    screen=snakemake.params.screen,
    cache_dir=snakemake.params.cache_dir,
    models_root=snakemake.params.models_root,
    tag=f"repair-{snakemake.wildcards.model}",
    threads=snakemake.threads,
)
