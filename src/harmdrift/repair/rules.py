"""Rule functions of Stage III (one per Snakemake rule, named after it)."""

from __future__ import annotations

from harmdrift.backends import write_usage
from harmdrift.config import audit_scorer, chat_backend, rationale_config, section_params
from harmdrift.core.runtime import set_threads
from harmdrift.distill.teacher import TeacherFiles
from harmdrift.repair.config import RepairConfig
from harmdrift.repair.joint import joint_penalty_weights
from harmdrift.repair.rationales import write_repair_rationales as write_repairs
from harmdrift.repair.train_set import build_repair_set as build_set


def write_repair_rationales(
    *, audit: str, pairs: str, split_items: str, teacher_prompt: str, fix_prompt: str, student_prompt: str,
    rationales: str, dropped: str, summary: str, usage: str, teacher: dict, distill: dict, repair: dict,
    screen: dict, cache_dir: str, tag: str, models_root: str | None = None, threads: int | None = None,
) -> dict:  # fmt: skip
    """Rule write_repair_rationales: safer rationales for the drift cases of the parent's audit.

    Args:
        audit, pairs: the parent model's audit table and pairs.
        split_items: the audited split.
        teacher_prompt, fix_prompt, student_prompt: prompt files.
        rationales, dropped, summary, usage: the rule's outputs.
        teacher, distill, repair: config sections.
        screen: the audit's scorer keys (``scorer``, ``max_chars``), to re-score the repairs.
        cache_dir: where replies and scores are cached.
        models_root: the run's converted embedded models (a local teacher).
        tag: part of every request key, one per repair round.
        threads: CPU threads for a local teacher.
    """
    set_threads(threads)
    backend, params = chat_backend(teacher, cache_dir, models_root), section_params(teacher)
    scorer, label = audit_scorer(screen["scorer"], cache_dir)
    repair_cfg = RepairConfig.from_dict(repair)
    checks = rationale_config({**distill, "max_fix_rounds": repair_cfg.max_fix_rounds}, "gold")
    try:
        return write_repairs(
            audit, pairs, split_items,
            TeacherFiles(teacher_prompt, fix_prompt, student_prompt, rationales, dropped, summary),
            backend=backend, params=params, cfg=checks, repair=repair_cfg, scorer=scorer, screen_label=label,
            max_chars=screen["max_chars"], tag=tag,
        )  # fmt: skip
    finally:
        write_usage(usage, backend)


def build_repair_set(
    *, repair_rationales: str, stage1: str, examples: str, summary: str, repair: dict
) -> dict:
    """Rule build_repair_set: severity-weighted repair examples mixed with a Stage I replay share."""
    return build_set(repair_rationales, stage1, examples, summary, cfg=RepairConfig.from_dict(repair))


def joint_weights(
    *, stage1: str, examples: str, summary: str, joint: dict, screen: dict, cache_dir: str
) -> dict:
    """Rule joint_weights: the joint ablation's data, Stage I examples down-weighted by toxicity."""
    scorer, label = audit_scorer(screen["scorer"], cache_dir)
    return joint_penalty_weights(
        stage1, examples, summary, scorer=scorer, screen_label=label,
        max_chars=screen["max_chars"], strength=joint["strength"], floor=joint["floor"],
    )  # fmt: skip
