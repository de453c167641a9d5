"""Rule write_rationales: teacher rationales for the training split (kept, dropped, summary, usage)."""

from harmdrift.logs import setup_logging
from harmdrift.rationales import run_rationales

setup_logging(snakemake.log[0])
run_rationales(
    items_path=snakemake.input.split_items,
    teacher_template=snakemake.input.teacher_prompt,
    predict_template=snakemake.input.get("predict_prompt") or None,
    fix_template=snakemake.input.fix_prompt,
    student_template=snakemake.input.student_prompt,
    outputs=dict(snakemake.output.items()),
    teacher=snakemake.params.teacher,
    distill=snakemake.params.distill,
    label_source=snakemake.params.label_source,
    cache_dir=snakemake.params.cache_dir,
    threads=snakemake.threads,
)
