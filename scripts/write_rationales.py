"""Rule write_rationales: teacher rationales for the training split (kept, dropped, summary, usage)."""

from harmdrift.core.logs import setup_logging
from harmdrift.distill.rules import write_rationales

setup_logging(snakemake.log[0])
write_rationales(
    split_items=snakemake.input.split_items,
    teacher_prompt=snakemake.input.teacher_prompt,
    predict_prompt=snakemake.input.get("predict_prompt") or None,
    fix_prompt=snakemake.input.fix_prompt,
    student_prompt=snakemake.input.student_prompt,
    rationales=snakemake.output.rationales,
    dropped=snakemake.output.dropped,
    summary=snakemake.output.summary,
    usage=snakemake.output.usage,
    teacher=snakemake.params.teacher,
    distill=snakemake.params.distill,
    label_source=snakemake.params.label_source,
    cache_dir=snakemake.params.cache_dir,
    models_root=snakemake.params.models_root,
    threads=snakemake.threads,
)
