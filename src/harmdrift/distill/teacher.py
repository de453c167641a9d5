"""The teacher loop shared by Stage I and Stage III: ask, check, fix, and (optionally) ask again.

Both stages hand the teacher a batch of items, check each reply with Stage I's rationale checks,
send the failures back with what was wrong (format-fix rounds), and keep or drop each item with
its reason. Stage III adds one step after the checks: a reply that passes is re-scored on the
toxicity screen and may be sent back once more (``after_checks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harmdrift.core.decoding import GenParams
from harmdrift.core.parsing import CONFLICTING, FALLBACK_FORMAT, STRICT, conclusion_written, parse_binary
from harmdrift.core.prompts import display_question
from harmdrift.distill.checks import RationaleConfig, check_rationale


@dataclass(frozen=True)
class TeacherFiles:
    """What a teacher stage reads and writes: three prompt files in, three record files out.

    ``teacher_prompt`` is the first turn, ``fix_prompt`` the follow-up of a format-fix round
    ({problems}, {conclusion}), and ``student_prompt`` the student's own prompt: kept rows carry
    the training conversation (student prompt + rationale), so training sees exactly what
    evaluation asks. ``rationales`` (kept, JSONL), ``dropped`` (with reasons, JSONL) and
    ``summary`` (counts, JSON) are the outputs.
    """

    teacher_prompt: str | Path
    fix_prompt: str | Path
    student_prompt: str | Path
    rationales: str | Path
    dropped: str | Path
    summary: str | Path


def teacher_messages(item: dict, template: str, label: str | None) -> list[dict]:
    """The teacher's first turn for one item."""
    fields = {"question": display_question(item["question"])}
    if label is not None:
        fields["label"] = label
    return [{"role": "user", "content": template.format(**fields).strip()}]


def fix_messages(history: list[dict], reply: str, problems: list[str], template: str, label: str | None):
    """The conversation for a format-fix round: the bad reply and what was wrong with it."""
    conclusion = f'"Conclusion: {label}"' if label else '"Conclusion: YES" or "Conclusion: NO"'
    ask = template.format(problems="; ".join(problems), conclusion=conclusion)
    return [*history, {"role": "assistant", "content": reply}, {"role": "user", "content": ask.strip()}]


@dataclass
class TeacherCase:
    """One item on its way through teacher asks, fix rounds and (Stage III) re-scores."""

    item: dict
    label: str | None  # None only for an item the teacher gave no label for (predicted mode)
    history: list[dict]
    fix_rounds: int = 0
    rescore_rounds: int = 0
    reply: str = ""
    error: str | None = None
    problems: list[list[str]] = field(default_factory=list)  # the checks' findings, one list per reply
    appended: bool = False
    drop_reason: str | None = None
    drop_kinds: list[str] = field(default_factory=list)

    def drop(self, reason: str, kinds: list[str]) -> None:
        """Close the case with a reason (and its kinds, for the summary's counts)."""
        self.drop_reason = reason
        self.drop_kinds = kinds


RequestKey = Callable[[TeacherCase], str]


def ask_round(backend, cases: list[TeacherCase], params: GenParams, key: RequestKey) -> None:
    """One round of requests for every case still open; each request gets its own key."""
    keys = [key(case) for case in cases]
    replies = backend.complete([c.history for c in cases], params, keys=keys, stop=conclusion_written)
    for case, reply in zip(cases, replies, strict=True):
        case.reply = reply.text
        case.error = reply.error


def append_conclusion(case: TeacherCase) -> None:
    """Add the case's conclusion line to a reply that states no conclusion at all."""
    if case.label is None or not case.reply.strip():
        return
    if parse_binary(case.reply).status in (STRICT, FALLBACK_FORMAT, CONFLICTING):
        return
    case.reply = f"{case.reply.rstrip()}\nConclusion: {case.label}"
    case.appended = True


def run_teacher_loop(
    cases: list[TeacherCase],
    backend,
    params: GenParams,
    cfg: RationaleConfig,
    fix_template: str,
    *,
    key: RequestKey,
    after_checks: Callable[[list[TeacherCase]], list[TeacherCase]] | None = None,
) -> None:
    """Ask, check and fix until every case has passed, run out of fix rounds, or failed.

    A request error ends a case at once (errors are not cached, so a re-run asks again). A reply
    that fails the checks is sent back with its problems while fix rounds remain. The replies
    that pass go to ``after_checks``, which returns the cases to ask again.
    """
    open_cases = cases
    while open_cases:
        ask_round(backend, open_cases, params, key)
        retry, passed = [], []
        for case in open_cases:
            if case.error:
                continue
            if cfg.append_missing_conclusion:
                append_conclusion(case)
            question = display_question(case.item["question"])
            problems = check_rationale(case.reply, question, case.label, cfg)
            case.problems.append(problems)
            if not problems:
                passed.append(case)
            elif case.fix_rounds < cfg.max_fix_rounds:
                case.history = fix_messages(case.history, case.reply, problems, fix_template, case.label)
                case.fix_rounds += 1
                retry.append(case)
        if after_checks is not None:
            retry += after_checks(passed)
        open_cases = retry
