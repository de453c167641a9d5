"""Rule functions of Stage I (one per Snakemake rule, named after it)."""

from __future__ import annotations

import logging

from harmdrift.backends import write_usage
from harmdrift.config import chat_backend, rationale_config, section_params
from harmdrift.core.runtime import set_threads
from harmdrift.distill import rationales as rationale_set
from harmdrift.distill.teacher import TeacherFiles

logger = logging.getLogger(__name__)


def write_rationales(
    *,
    split_items: str,
    teacher_prompt: str,
    predict_prompt: str | None,
    fix_prompt: str,
    student_prompt: str,
    rationales: str,
    dropped: str,
    summary: str,
    usage: str,
    teacher: dict,
    distill: dict,
    label_source: str,
    cache_dir: str,
    models_root: str | None = None,
    threads: int | None = None,
) -> dict:
    """Rule write_rationales: Stage I teacher rationales for the training split.

    Args:
        split_items: the training split.
        teacher_prompt, fix_prompt, student_prompt: prompt files (see ``write_rationales``).
        predict_prompt: the teacher's own-answer prompt (predicted labels only), else None.
        rationales, dropped, summary, usage: the rule's outputs.
        teacher: the ``teacher`` config section.
        distill: the ``distill`` config section.
        label_source: "gold" or "predicted".
        cache_dir: where replies are cached.
        models_root: the run's converted embedded models (a local teacher).
        threads: CPU threads for a local teacher.
    """
    set_threads(threads)
    cfg = rationale_config(distill, label_source)
    params = section_params(teacher)
    backend = chat_backend(teacher, cache_dir, models_root)
    logger.info("teacher: %s; decoding %s; checks %s", backend.describe(), params, cfg)
    try:
        return rationale_set.write_rationales(
            split_items,
            TeacherFiles(teacher_prompt, fix_prompt, student_prompt, rationales, dropped, summary),
            backend=backend,
            params=params,
            cfg=cfg,
            predict_template=predict_prompt or None,
        )
    finally:
        # Written even when the run fails part-way: tokens already spent are still spent.
        write_usage(usage, backend)
