"""Stage I data: teacher-written, harm-aware rationales for the training split.

The teacher sees each training question and (by default) its gold label, and writes a
short analysis that supports the label, ending with the exact conclusion line. Every
reply is checked (right conclusion, sentence count, no long verbatim quote of the
question); a failing reply gets up to ``max_fix_rounds`` follow-up turns that name the
problems, and is then dropped with its reasons recorded.

With ``label_source="predicted"`` (DART's predicted-label ablation) the teacher is first
asked for its own answer without being told the label; that predicted label then takes
the gold label's place in the rationale prompt and becomes the training target. Items the
teacher gives no answer for are dropped.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from harmdrift.generation import GenParams
from harmdrift.io import DataError, read_jsonl, write_json, write_jsonl
from harmdrift.parsing import CONFLICTING, FALLBACK_FORMAT, STRICT, conclusion_written, parse_binary
from harmdrift.prompts import build_messages, display_question, load_template

logger = logging.getLogger(__name__)

LABEL_SOURCES = ("gold", "predicted")
_CONCLUSION_LINE = re.compile(r"^[^\n]*\bconclusion\b[^\n]*$", re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|(?<=[.!?])[\"')\]]*$")


@dataclass(frozen=True)
class RationaleConfig:
    """Checks and retries for teacher rationales (the ``distill`` config section)."""

    min_sentences: int = 2
    max_sentences: int = 4
    max_quote_chars: int = 40
    max_fix_rounds: int = 2
    label_source: str = "gold"
    # A reply with no conclusion line at all gets the target label's line appended before
    # the checks, instead of a fix round. Small local teachers often explain well
    # enough but forget the line; DART's own code asked the teacher again.
    append_missing_conclusion: bool = False

    def __post_init__(self) -> None:
        if self.label_source not in LABEL_SOURCES:
            raise ValueError(f"label_source must be one of {LABEL_SOURCES}, got {self.label_source!r}")
        if not 1 <= self.min_sentences <= self.max_sentences:
            raise ValueError(
                "config keys distill.min_sentences / distill.max_sentences: need 1 <= min <= max, "
                f"got {self.min_sentences} and {self.max_sentences}"
            )
        if self.max_quote_chars < 1:
            raise ValueError(f"config key distill.max_quote_chars must be >= 1, got {self.max_quote_chars}")
        if self.max_fix_rounds < 0:
            raise ValueError(f"config key distill.max_fix_rounds must be >= 0, got {self.max_fix_rounds}")


def split_analysis(text: str) -> str:
    """The analysis part of a reply: every line naming a conclusion removed."""
    return _CONCLUSION_LINE.sub("", text).strip()


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


def canonical_rationale(text: str, label: str) -> str:
    """The training target: the analysis, then exactly one conclusion line."""
    return f"{split_analysis(text)}\nConclusion: {label}"


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
    predict_template: str | Path | None = None,
) -> dict:
    """Ask the teacher for a rationale per training item and keep the ones that pass the checks.

    Args:
        items_path: the training split.
        teacher_template: the teacher's rationale prompt ({question}, {label}).
        fix_template: the follow-up prompt of a format-fix round ({problems}, {conclusion}).
        student_template: the student's prompt; kept rows carry the training conversation
            (student prompt + rationale), so training sees exactly what evaluation asks.
        out_path: kept rationales (JSONL).
        dropped_path: dropped items with their problems (JSONL).
        summary_path: counts (JSON).
        backend: a chat back-end (``harmdrift.backends``).
        params: the teacher's decoding settings.
        cfg: checks and retries.
        predict_template: predicted-label mode only: the prompt asking the teacher for its
            own answer ({question}).

    Returns:
        The summary written to ``summary_path``.
    """
    items = read_jsonl(items_path)
    if not items:
        raise DataError(f"{items_path}: the training split has no items")
    first = load_template(teacher_template, ("question", "label"))
    fix = load_template(fix_template, ("problems", "conclusion"))
    student = load_template(student_template)
    if cfg.label_source == "gold":
        labels = [item["gold_label"] for item in items]
    else:
        if predict_template is None:
            raise ValueError("label_source 'predicted' needs the teacher's prediction prompt")
        labels = _predict_labels(backend, items, load_template(predict_template), params)
    attempts = [
        _Attempt(item, label, teacher_messages(item, first, label))
        for item, label in zip(items, labels, strict=True)
        if label is not None
    ]
    unlabelled = [item for item, label in zip(items, labels, strict=True) if label is None]
    open_attempts = attempts
    while open_attempts:
        _ask(backend, open_attempts, params, cfg.label_source)
        retry = []
        for attempt in open_attempts:
            if attempt.error:
                continue  # recorded below; not cached, so a re-run asks again
            if cfg.append_missing_conclusion:
                _append_conclusion(attempt)
            problems = _judge(attempt, cfg)
            if problems and attempt.rounds < cfg.max_fix_rounds:
                attempt.history = fix_messages(attempt.history, attempt.reply, problems, fix, attempt.label)
                attempt.rounds += 1
                retry.append(attempt)
        open_attempts = retry
    attempts += [_Attempt(item, None, [], error="teacher gave no YES/NO answer") for item in unlabelled]
    provenance = backend.describe()
    kept, dropped = [], []
    for attempt in attempts:
        record = {
            "id": attempt.item["id"],
            "benchmark": attempt.item["benchmark"],
            "condition": attempt.item["condition"],
            "gold_label": attempt.item["gold_label"],
            "label_source": cfg.label_source,
            "fix_rounds": attempt.rounds,
            "conclusion_appended": attempt.appended,
            "problems": attempt.problems or [],
            "raw_reply": attempt.reply,
            "teacher": provenance,
        }
        final_problems = (attempt.problems or [["not answered"]])[-1]
        if attempt.error or final_problems:
            dropped.append({**record, "reason": attempt.error or "; ".join(final_problems)})
            continue
        rationale = canonical_rationale(attempt.reply, attempt.label)
        kept.append(
            {
                **record,
                "label": attempt.label,
                "label_matches_gold": attempt.label == attempt.item["gold_label"],
                "rationale": rationale,
                "messages": [
                    *build_messages(attempt.item, student),
                    {"role": "assistant", "content": rationale},
                ],
                "weight": 1.0,
            }
        )
    write_jsonl(out_path, kept)
    write_jsonl(dropped_path, dropped)
    summary = _summary(kept, dropped, cfg, params, provenance)
    write_json(summary_path, summary)
    logger.info("rationales: %s", json.dumps({k: summary[k] for k in ("items", "kept", "fixed", "dropped")}))
    if not kept:
        # Not raised here: the rule's outputs (the dropped file above all) must survive for
        # diagnosis; training refuses an empty set with a message that points back here.
        logger.error(
            "no rationale passed the checks (%d dropped; see %s); a stronger teacher or looser "
            "distill.* bounds are needed",
            len(dropped),
            dropped_path,
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


def run_rationales(
    *,
    items_path: str,
    teacher_template: str,
    predict_template: str | None = None,
    fix_template: str,
    student_template: str,
    outputs: dict[str, str],
    teacher: dict,
    distill: dict,
    label_source: str,
    cache_dir: str,
    threads: int | None = None,
) -> dict:
    """The write_rationales rule's body: build the teacher from config and write the rationales.

    Args:
        outputs: paths keyed rationales, dropped, summary, usage.
        teacher: the ``teacher`` config section.
        distill: the ``distill`` config section.
        label_source: "gold" or "predicted".
        cache_dir: where replies are cached.
        threads: CPU threads for a local teacher.
    """
    from harmdrift.backends import write_usage
    from harmdrift.config import chat_backend, rationale_config, section_params
    from harmdrift.generation import set_threads

    set_threads(threads)
    cfg = rationale_config(distill, label_source)
    params = section_params(teacher)
    backend = chat_backend(teacher, cache_dir)
    logger.info("teacher: %s; decoding %s; checks %s", backend.describe(), params, cfg)
    try:
        return write_rationales(
            items_path,
            teacher_template,
            fix_template,
            student_template,
            outputs["rationales"],
            outputs["dropped"],
            outputs["summary"],
            backend=backend,
            params=params,
            cfg=cfg,
            predict_template=predict_template,
        )
    finally:
        # Written even when the run fails part-way: tokens already spent are still spent.
        write_usage(outputs["usage"], backend)
