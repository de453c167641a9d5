"""Stage I: teacher rationales for the training split, kept or dropped with their reasons."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from harmdrift.core.decoding import GenParams
from harmdrift.core.io import DataError, read_jsonl, write_json, write_jsonl
from harmdrift.core.parsing import parse_binary
from harmdrift.core.prompts import build_messages, load_template
from harmdrift.distill.checks import RationaleConfig, canonical_rationale, problem_kind
from harmdrift.distill.teacher import TeacherCase, TeacherFiles, run_teacher_loop, teacher_messages

logger = logging.getLogger(__name__)

_ANSWER_WORD = re.compile(r"\b(?:yes|no)\b(?=\W)", re.IGNORECASE)


def _answer_word_written(text: str) -> bool:
    """True once a whole YES/NO word is on the page (the prediction prompt wants one word)."""
    return _ANSWER_WORD.search(text) is not None


def _predict_labels(backend, items: list[dict], template: str, params: GenParams) -> list[str | None]:
    """The teacher's own YES/NO answer per item (None when it gives none).

    A local teacher is asked by log-likelihood (which of " YES" / " NO" it finds more likely
    as its reply), so even a small model always answers; an API teacher answers in text,
    which is parsed.
    """
    conversations = [teacher_messages(item, template, None) for item in items]
    if hasattr(backend, "choose"):
        return backend.choose(conversations, ["YES", "NO"])
    keys = [f"{item['id']}#predict#r0" for item in items]
    replies = backend.complete(conversations, params, keys=keys, stop=_answer_word_written)
    labels = []
    for reply in replies:
        parsed = parse_binary(reply.text) if not reply.error else None
        labels.append(parsed.prediction if parsed and parsed.prediction in ("YES", "NO") else None)
    return labels


def write_rationales(
    items_path: str | Path,
    files: TeacherFiles,
    *,
    backend,
    params: GenParams,
    cfg: RationaleConfig,
    predict_template: str | Path | None = None,
) -> dict:
    """Ask the teacher for a rationale per training item and keep the ones that pass the checks.

    Args:
        items_path: the training split.
        files: the prompts ({question}, {label} in the teacher's) and the output files.
        backend: a chat back-end (``harmdrift.backends``).
        params: the teacher's decoding settings.
        cfg: checks and retries.
        predict_template: predicted-label mode only: the prompt asking the teacher for its
            own answer ({question}).

    Returns:
        The summary written to ``files.summary``.
    """
    items = read_jsonl(items_path)
    if not items:
        raise DataError(f"{items_path}: the training split has no items")
    first = load_template(files.teacher_prompt, ("question", "label"))
    fix = load_template(files.fix_prompt, ("problems", "conclusion"))
    student = load_template(files.student_prompt)
    if cfg.label_source == "gold":
        labels = [item["gold_label"] for item in items]
    else:
        if predict_template is None:
            raise ValueError("label_source 'predicted' needs the teacher's prediction prompt")
        labels = _predict_labels(backend, items, load_template(predict_template), params)
    cases = [
        TeacherCase(item, label, teacher_messages(item, first, label))
        for item, label in zip(items, labels, strict=True)
        if label is not None
    ]
    tag = cfg.label_source
    run_teacher_loop(cases, backend, params, cfg, fix, key=lambda c: f"{c.item['id']}#{tag}#r{c.fix_rounds}")
    unlabelled = [item for item, label in zip(items, labels, strict=True) if label is None]
    cases += [TeacherCase(item, None, [], error="teacher gave no YES/NO answer") for item in unlabelled]
    provenance = backend.describe()
    kept, dropped = [], []
    for case in cases:
        record = {
            "id": case.item["id"],
            "benchmark": case.item["benchmark"],
            "condition": case.item["condition"],
            "gold_label": case.item["gold_label"],
            "label_source": cfg.label_source,
            "fix_rounds": case.fix_rounds,
            "conclusion_appended": case.appended,
            "problems": case.problems,
            "raw_reply": case.reply,
            "teacher": provenance,
        }
        final_problems = (case.problems or [["not answered"]])[-1]
        if case.error or final_problems:
            dropped.append({**record, "reason": case.error or "; ".join(final_problems)})
            continue
        rationale = canonical_rationale(case.reply, case.label)
        kept.append(
            {
                **record,
                "label": case.label,
                "label_matches_gold": case.label == case.item["gold_label"],
                "rationale": rationale,
                "messages": [
                    *build_messages(case.item, student),
                    {"role": "assistant", "content": rationale},
                ],
                "weight": 1.0,
            }
        )
    write_jsonl(files.rationales, kept)
    write_jsonl(files.dropped, dropped)
    summary = _summary(kept, dropped, cfg, params, provenance)
    write_json(files.summary, summary)
    logger.info("rationales: %s", json.dumps({k: summary[k] for k in ("items", "kept", "fixed", "dropped")}))
    if not kept:
        # Not raised here: the rule's outputs (the dropped file above all) must survive for
        # diagnosis; training refuses an empty set with a message that points back here.
        logger.error(
            "no rationale passed the checks (%d dropped; see %s); a stronger teacher or looser "
            "distill.* bounds are needed",
            len(dropped),
            files.dropped,
        )
    return summary


def _summary(kept: list[dict], dropped: list[dict], cfg: RationaleConfig, params: GenParams, teacher: dict):
    reasons = Counter()
    for row in dropped:
        if row["reason"] and not row["problems"]:
            reasons[row["reason"].split(":")[0]] += 1
        for problem in (row["problems"] or [[]])[-1]:
            reasons[problem_kind(problem)] += 1
    return {
        "items": len(kept) + len(dropped),
        "kept": len(kept),
        "fixed": sum(r["fix_rounds"] > 0 for r in kept),
        "conclusion_appended": sum(r["conclusion_appended"] for r in kept),
        "dropped": len(dropped),
        "dropped_by_reason": dict(reasons),
        "kept_by_benchmark": dict(Counter(r["benchmark"] for r in kept)),
        "label_matches_gold": sum(r["label_matches_gold"] for r in kept),
        "config": asdict(cfg),
        "decoding": params.as_dict(),
        "teacher": teacher,
    }
