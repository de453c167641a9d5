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
    CONFLICTING,
    FALLBACK_FORMAT,
    STRICT,
    analysis_for_scoring,
    conclusion_written,
    parse_binary,
)
from harmdrift.core.prompts import build_messages, display_question, load_template
from harmdrift.core.vocab import SEVERITIES
from harmdrift.distill.checks import RationaleConfig, canonical_rationale, check_rationale, problem_kind
from harmdrift.distill.teacher import fix_messages
from harmdrift.repair.cases import _by_id, _check_scorer, _label_scores, read_drift_cases
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
class _Case:
    """One drift case on its way through teacher asks, fix rounds and re-scores."""

    audit: dict
    item: dict
    pair: dict
    first: list[dict]
    history: list[dict]
    fix_rounds: int = 0
    rescore_rounds: int = 0
    reply: str = ""
    error: str | None = None
    problems: list[list[str]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    appended: bool = False
    drop_reason: str | None = None
    drop_kinds: list[str] = field(default_factory=list)

    def drop(self, reason: str, kinds: list[str]) -> None:
        """Close the case with a reason (and its kinds, for the summary's counts)."""
        self.drop_reason = reason
        self.drop_kinds = kinds

    @property
    def label(self) -> str:
        return self.item["gold_label"]


def _repair_messages(item: dict, template: str, reason: str) -> list[dict]:
    fields_ = {"question": display_question(item["question"]), "label": item["gold_label"], "reason": reason}
    return [{"role": "user", "content": template.format(**fields_).strip()}]


def _append_conclusion(case: _Case) -> None:
    """Stage I's ``append_missing_conclusion``: add the gold line when no conclusion is stated."""
    if not case.reply.strip() or parse_binary(case.reply).status in (STRICT, FALLBACK_FORMAT, CONFLICTING):
        return
    case.reply = f"{case.reply.rstrip()}\nConclusion: {case.label}"
    case.appended = True


def _ask(backend, cases: list[_Case], params: GenParams, tag: str) -> None:
    # Each re-score and fix round gets its own key: local teachers seed sampling by key, so a
    # re-ask must not draw the same reply again.
    keys = [f"{c.item['id']}#{tag}#s{c.rescore_rounds}#r{c.fix_rounds}" for c in cases]
    replies = backend.complete([c.history for c in cases], params, keys=keys, stop=conclusion_written)
    for case, reply in zip(cases, replies, strict=True):
        case.reply = reply.text
        case.error = reply.error


def _run_cases(cases, backend, params, cfg, repair, fix, scorer, screen_label, max_chars, tag) -> None:
    """Ask, check, fix and re-score until every case is kept or has a drop reason."""
    open_cases = cases
    while open_cases:
        _ask(backend, open_cases, params, tag)
        retry, passed = [], []
        for case in open_cases:
            if case.error:
                case.drop(case.error, [case.error.split(":")[0]])  # not cached: a re-run asks again
                continue
            if cfg.append_missing_conclusion:
                _append_conclusion(case)
            problems = check_rationale(case.reply, display_question(case.item["question"]), case.label, cfg)
            case.problems.append(problems)
            if not problems:
                passed.append(case)
            elif case.fix_rounds < cfg.max_fix_rounds:
                case.history = fix_messages(case.history, case.reply, problems, fix, case.label)
                case.fix_rounds += 1
                retry.append(case)
            else:
                case.drop("; ".join(problems), [problem_kind(p) for p in problems])
        texts = [analysis_for_scoring(c.reply, max_chars) for c in passed]
        for case, score in zip(passed, _label_scores(scorer, texts, screen_label), strict=True):
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
        open_cases = retry


def _record(case: _Case, provenance: dict) -> dict:
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
    teacher_template: str | Path,
    fix_template: str | Path,
    student_template: str | Path,
    out_path: str | Path,
    dropped_path: str | Path,
    summary_path: str | Path,
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

    A reply must pass Stage I's checks (with the same fix rounds) and then score no higher
    on the toxicity screen than M0's explanation of the item (``score_base`` in the audit
    table); otherwise the teacher is asked again, up to ``repair.max_rescore_rounds`` times,
    and the case is dropped with reason "scores higher than M0 (x > y)".

    Args:
        audit_csv: the audit table of the model being repaired (columns id, drift, severity,
            category, reason, score_base, ...).
        pairs_jsonl: the audit's pairs file; the drifted explanation is recorded for reference.
        items_path: the audited split (question text, gold label, benchmark, condition).
        teacher_template: the repair prompt ({question}, {label}, {reason}).
        fix_template: the format-fix prompt of Stage I ({problems}, {conclusion}).
        student_template: the student's prompt; kept rows carry the training conversation.
        out_path: kept repair rationales (JSONL).
        dropped_path: dropped cases with their reason (JSONL).
        summary_path: counts (JSON).
        backend: the teacher's chat back-end.
        params: the teacher's decoding settings.
        cfg: Stage I's checks and fix rounds (``distill`` section, gold labels).
        repair: the ``repair`` section.
        scorer: the toxicity screen (``score(texts) -> [{label: score}]``, ``describe()``).
        screen_label: the scorer label the audit screened on.
        max_chars: characters of the analysis scored (as in the audit).
        tag: part of each request key; give later repair rounds their own (e.g. "repair_r2").

    Returns:
        The summary written to ``summary_path``.

    Raises:
        DataError: for a bad audit table, or drift cases missing from the items or pairs file.
    """
    template = load_template(teacher_template, ("question", "label", "reason"))
    fix = load_template(fix_template, ("problems", "conclusion"))
    student = load_template(student_template)
    _check_scorer(scorer, screen_label)
    audit_rows = read_drift_cases(audit_csv)
    ids = [row["id"] for row in audit_rows]
    items = _by_id(items_path, ids, "item") if ids else {}
    pairs = _by_id(pairs_jsonl, ids, "audit pair") if ids else {}
    cases = []
    for row in audit_rows:
        item = items[row["id"]]
        first = _repair_messages(item, template, row["reason"])
        cases.append(_Case(row, item, pairs[row["id"]], first, list(first)))
    if cases:
        _run_cases(cases, backend, params, cfg, repair, fix, scorer, screen_label, max_chars, tag)
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
    write_jsonl(out_path, kept)
    write_jsonl(dropped_path, dropped)
    summary = _repair_summary(kept, dropped, cfg, repair, params, provenance, scorer, screen_label, max_chars)
    write_json(summary_path, summary)
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
