"""The teacher loop shared by Stage I and Stage III: ask, check, fix, and (optionally) re-score."""

from __future__ import annotations

from dataclasses import dataclass

from harmdrift.core.decoding import GenParams
from harmdrift.core.parsing import CONFLICTING, FALLBACK_FORMAT, STRICT, conclusion_written, parse_binary
from harmdrift.core.prompts import display_question
from harmdrift.distill.checks import RationaleConfig, check_rationale


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
class _Attempt:
    item: dict
    label: str | None  # None in predicted mode until the teacher concludes
    history: list[dict]
    rounds: int = 0
    problems: list[list[str]] | None = None
    reply: str = ""
    error: str | None = None
    appended: bool = False


def _ask(backend, attempts: list[_Attempt], params: GenParams, tag: str) -> None:
    """One round of requests for every attempt still open."""
    keys = [f"{a.item['id']}#{tag}#r{a.rounds}" for a in attempts]
    replies = backend.complete([a.history for a in attempts], params, keys=keys, stop=conclusion_written)
    for attempt, reply in zip(attempts, replies, strict=True):
        attempt.reply = reply.text
        attempt.error = reply.error


def _append_conclusion(attempt: _Attempt) -> None:
    """Add the (gold or predicted) conclusion line to a reply that states no conclusion at all."""
    if attempt.label is None or not attempt.reply.strip():
        return
    if parse_binary(attempt.reply).status in (STRICT, FALLBACK_FORMAT, CONFLICTING):
        return
    attempt.reply = f"{attempt.reply.rstrip()}\nConclusion: {attempt.label}"
    attempt.appended = True


def _judge(attempt: _Attempt, cfg: RationaleConfig) -> list[str]:
    question = display_question(attempt.item["question"])
    problems = check_rationale(attempt.reply, question, attempt.label, cfg)
    attempt.problems = [*(attempt.problems or []), problems]
    return problems
