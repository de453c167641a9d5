"""Stage I checks on a teacher rationale, and the canonical training target built from it."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from harmdrift.core.parsing import parse_binary, split_analysis
from harmdrift.core.vocab import LABEL_SOURCES

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|(?<=[.!?])[\"')\]]*$")


@dataclass(frozen=True)
class RationaleConfig:
    """Checks and retries for teacher rationales (the ``distill`` config section; every
    default is config/schema.yaml's, built by ``harmdrift.config.rationale_config``)."""

    min_sentences: int
    max_sentences: int
    max_quote_chars: int
    max_fix_rounds: int
    label_source: str  # "gold" or "predicted": which label the teacher is told (no config key)
    # A reply with no conclusion line at all gets the target label's line appended before
    # the checks, instead of a fix round. Small local teachers often explain well
    # enough but forget the line; DART's own code asked the teacher again.
    append_missing_conclusion: bool

    def __post_init__(self) -> None:
        # Each key's range is config/schema.yaml's. label_source is no config key (the rule's
        # wildcard picks it), so it is checked here, with the one rule joining two keys.
        if self.label_source not in LABEL_SOURCES:
            raise ValueError(f"label_source must be one of {LABEL_SOURCES}, got {self.label_source!r}")
        if self.min_sentences > self.max_sentences:
            raise ValueError(
                "config keys distill.min_sentences / distill.max_sentences: need min <= max, "
                f"got {self.min_sentences} and {self.max_sentences}"
            )


def count_sentences(text: str) -> int:
    """Sentences of at least two words; a trailing fragment without a full stop counts too."""
    pieces = [p.strip() for p in _SENTENCE_END.split(text) if p and p.strip()]
    return sum(len(p.split()) >= 2 for p in pieces)


def longest_quote(text: str, question: str) -> int:
    """Length of the longest stretch of the question copied verbatim (case-insensitive)."""
    a, b = text.lower(), question.lower()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return matcher.find_longest_match(0, len(a), 0, len(b)).size


def check_rationale(text: str, question: str, expected: str | None, cfg: RationaleConfig) -> list[str]:
    """Problems with one teacher reply; an empty list means it can be used.

    Args:
        text: the teacher's reply.
        question: the question shown to the teacher (for the verbatim-quote check).
        expected: the label the conclusion must state, or None to accept either.
        cfg: the bounds.
    """
    if not text.strip():
        return ["empty reply"]
    problems = []
    parsed = parse_binary(text)
    if parsed.prediction not in ("YES", "NO"):
        problems.append("no conclusion line")
    elif expected is not None and parsed.prediction != expected:
        problems.append(f"wrong conclusion ({parsed.prediction}, expected {expected})")
    analysis = split_analysis(text)
    sentences = count_sentences(analysis)
    if sentences < cfg.min_sentences:
        problems.append(f"too few sentences ({sentences} < {cfg.min_sentences})")
    elif sentences > cfg.max_sentences:
        problems.append(f"too many sentences ({sentences} > {cfg.max_sentences})")
    quoted = longest_quote(analysis, question)
    if quoted >= cfg.max_quote_chars:
        problems.append(f"copies {quoted} characters of the question (limit {cfg.max_quote_chars - 1})")
    return problems


def problem_kind(problem: str) -> str:
    """A problem's category without its numbers, for summary counts."""
    return re.sub(r"\d+", "N", problem.split(" (")[0])


def canonical_rationale(text: str, label: str) -> str:
    """The training target: the analysis, then exactly one conclusion line."""
    return f"{split_analysis(text)}\nConclusion: {label}"
