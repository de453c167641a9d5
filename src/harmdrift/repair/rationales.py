"""Stage III: safer teacher rationales for the drift cases, re-scored against M0's explanation."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harmdrift.core.decoding import GenParams
from harmdrift.core.io import write_json, write_jsonl
from harmdrift.core.parsing import (
    analysis_for_scoring,
)
from harmdrift.core.prompts import build_messages, display_question, load_template
from harmdrift.core.vocab import SEVERITIES
from harmdrift.distill.checks import RationaleConfig, canonical_rationale, problem_kind
from harmdrift.distill.teacher import TeacherCase, TeacherFiles, run_teacher_loop
from harmdrift.repair.cases import check_scorer, read_drift_cases, records_by_id, screen_scores
from harmdrift.repair.config import RepairConfig

logger = logging.getLogger(__name__)

# Shown when a repair passes the format checks but still scores above M0's explanation.
# A fixed text, not a template: it changes nothing the lead would tune, and the cache key
# already covers it through the messages.
RESCORE_NOTE = (
    "This explanation still reads as harmful to a toxicity screen: it scores higher than the "
    "earlier model's explanation of the same question. Rewrite it to be more neutral: describe "
    "groups only in abstract, respectful terms, do not mention any stereotype or harmful claim, "
    "keep 2 to 4 sentences, and end with the line {conclusion}."
)
_TOO_TOXIC = "scores higher than M0"


# ---------------------------------------------------------------------------------------------
# Repair rationales


@dataclass
class _RepairCase(TeacherCase):
    """A drift case: the teacher loop's state plus the audit row, the pair and the re-scores."""

    audit: dict = field(default_factory=dict)
    pair: dict = field(default_factory=dict)
    first: list[dict] = field(default_factory=list)  # the repair prompt, the start of every re-ask
    scores: list[float] = field(default_factory=list)


def _repair_messages(item: dict, template: str, reason: str) -> list[dict]:
    fields_ = {"question": display_question(item["question"]), "label": item["gold_label"], "reason": reason}
    return [{"role": "user", "content": template.format(**fields_).strip()}]


def _rescorer(scorer, screen_label: str, max_chars: int, repair: RepairConfig):
    """The Stage III step after the checks: a reply scoring above M0's explanation is asked again."""

    def rescore(passed: list[_RepairCase]) -> list[_RepairCase]:
        retry = []
        texts = [analysis_for_scoring(c.reply, max_chars) for c in passed]
        for case, score in zip(passed, screen_scores(scorer, texts, screen_label), strict=True):
            case.scores.append(score)
            base = case.audit["score_base"]
            if score <= base:
                continue
            if case.rescore_rounds < repair.max_rescore_rounds:
                # A fresh ask: the repair prompt, the reply that still reads as harmful, and a note
                # saying so. Fix rounds start again for the new reply.
                note = RESCORE_NOTE.format(conclusion=f'"Conclusion: {case.label}"')
                case.history = [
                    *case.first,
                    {"role": "assistant", "content": case.reply},
                    {"role": "user", "content": note},
                ]
                case.rescore_rounds += 1
                case.fix_rounds = 0
                retry.append(case)
            else:
                case.drop(f"{_TOO_TOXIC} ({score:.4f} > {base:.4f})", [_TOO_TOXIC])
        return retry

    return rescore


def _close(case: _RepairCase) -> None:
    """Give a case that ended in a request error or failed checks its drop reason."""
    if case.drop_reason:
        return
    if case.error:
        case.drop(case.error, [case.error.split(":")[0]])  # not cached: a re-run asks again
    elif case.problems and case.problems[-1]:
        problems = case.problems[-1]
        case.drop("; ".join(problems), [problem_kind(p) for p in problems])


def _record(case: _RepairCase, provenance: dict) -> dict:
    audit = case.audit
    return {
        "id": case.item["id"],
        "benchmark": case.item["benchmark"],
        "condition": case.item["condition"],
        "gold_label": case.label,
        "label_source": "gold",
        "severity": audit["severity"],
        "category": audit["category"],
        "judge_reason": audit["reason"],
        "base_score": audit["score_base"],
        "score_base": audit["score_base"],
        "drifted_analysis": (case.pair.get("tuned") or {}).get("analysis"),
        "fix_rounds": case.fix_rounds,
        "rescore_rounds": case.rescore_rounds,
        "scores": case.scores,
        "conclusion_appended": case.appended,
        "problems": case.problems,
        "raw_reply": case.reply,
        "teacher": provenance,
    }


def write_repair_rationales(
    audit_csv: str | Path,
    pairs_jsonl: str | Path,
    items_path: str | Path,
    files: TeacherFiles,
    *,
    backend,
    params: GenParams,
    cfg: RationaleConfig,
    repair: RepairConfig,
    scorer,
    screen_label: str,
    max_chars: int,
    tag: str = "repair",
) -> dict:
    """Ask the teacher for a safer rationale per drift case and keep those that pass.

    A reply must pass Stage I's checks (``repair.max_fix_rounds`` fix rounds) and then score no higher
    on the toxicity screen than M0's explanation of the item (``score_base`` in the audit
    table); otherwise the teacher is asked again, up to ``repair.max_rescore_rounds`` times,
    and the case is dropped with reason "scores higher than M0 (x > y)".

    Args:
        audit_csv: the audit table of the model being repaired (columns id, drift, severity,
            category, reason, score_base, ...).
        pairs_jsonl: the audit's pairs file; the drifted explanation is recorded for reference.
        items_path: the audited split (question text, gold label, benchmark, condition).
        files: the prompts (the repair prompt takes {question}, {label}, {reason}) and the outputs.
        backend: the teacher's chat back-end.
        params: the teacher's decoding settings.
        cfg: Stage I's checks (``distill`` section, gold labels) with the repair's fix rounds.
        repair: the ``repair`` section.
        scorer: the toxicity screen (``score(texts) -> [{label: score}]``, ``describe()``).
        screen_label: the scorer label the audit screened on.
        max_chars: characters of the analysis scored (as in the audit).
        tag: part of each request key; give later repair rounds their own (e.g. "repair_r2").

    Returns:
        The summary written to ``files.summary``.

    Raises:
        DataError: for a bad audit table, or drift cases missing from the items or pairs file.
    """
    template = load_template(files.teacher_prompt, ("question", "label", "reason"))
    fix = load_template(files.fix_prompt, ("problems", "conclusion"))
    student = load_template(files.student_prompt)
    check_scorer(scorer, screen_label)
    audit_rows = read_drift_cases(audit_csv)
    ids = [row["id"] for row in audit_rows]
    items = records_by_id(items_path, ids, "item") if ids else {}
    pairs = records_by_id(pairs_jsonl, ids, "audit pair") if ids else {}
    cases = []
    for row in audit_rows:
        item = items[row["id"]]
        first = _repair_messages(item, template, row["reason"])
        case = _RepairCase(
            item, item["gold_label"], list(first), audit=row, pair=pairs[row["id"]], first=first
        )
        cases.append(case)
    if cases:
        run_teacher_loop(
            cases,
            backend,
            params,
            cfg,
            fix,
            # Each re-score and fix round gets its own key: local teachers seed sampling by key,
            # so a re-ask must not draw the same reply again.
            key=lambda c: f"{c.item['id']}#{tag}#s{c.rescore_rounds}#r{c.fix_rounds}",
            after_checks=_rescorer(scorer, screen_label, max_chars, repair),
        )
        for case in cases:
            _close(case)
    provenance = backend.describe()
    kept, dropped = [], []
    for case in cases:
        record = _record(case, provenance)
        if case.drop_reason:
            dropped.append({**record, "reason": case.drop_reason, "reason_kinds": case.drop_kinds})
            continue
        rationale = canonical_rationale(case.reply, case.label)
        kept.append(
            {
                **record,
                "label": case.label,
                "rationale": rationale,
                "repair_score": case.scores[-1],
                "messages": [
                    *build_messages(case.item, student),
                    {"role": "assistant", "content": rationale},
                ],
                # Severity weights are applied by build_repair_set, where the mode is chosen.
                "weight": 1.0,
            }
        )
    write_jsonl(files.rationales, kept)
    write_jsonl(files.dropped, dropped)
    summary = _repair_summary(kept, dropped, cfg, repair, params, provenance, scorer, screen_label, max_chars)
    write_json(files.summary, summary)
    logger.info("repair rationales: %s", json.dumps({k: summary[k] for k in ("cases", "kept", "dropped")}))
    return summary


def _repair_summary(kept, dropped, cfg, repair, params, teacher, scorer, screen_label, max_chars) -> dict:
    reasons = Counter(kind for row in dropped for kind in row["reason_kinds"])
    summary = {
        "cases": len(kept) + len(dropped),
        "kept": len(kept),
        "dropped": len(dropped),
        "dropped_by_reason": dict(reasons),
        "kept_by_severity": {s: sum(r["severity"] == s for r in kept) for s in SEVERITIES},
        "rescored": sum(r["rescore_rounds"] > 0 for r in [*kept, *dropped]),
        "rescored_kept": sum(r["rescore_rounds"] > 0 for r in kept),
        "fixed": sum(r["fix_rounds"] > 0 for r in kept),
        "config": asdict(cfg),
        "repair": asdict(repair),
        "decoding": params.as_dict(),
        "teacher": teacher,
        "scorer": scorer.describe(),
        "screen_label": screen_label,
        "max_chars": max_chars,
    }
    if not summary["cases"]:
        summary["note"] = "no drift cases in the audit: nothing to repair"
    return summary
