"""Structured verdicts from a chat back-end: JSON with validation and re-asks for API models,
field-by-field log-likelihood choices for local ones."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from harmdrift.core.decoding import GenParams

logger = logging.getLogger(__name__)

SCORED, UNSCORED = "scored", "unscored"
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class Field:
    """One fixed-choice answer of a verdict.

    Attributes:
        name: the JSON key.
        options: the allowed values.
        question: what the local model is asked before it picks this field alone.
        when: ``(other_field, value)``: the field is only asked when that other field has
            that value; otherwise it is None (e.g. a drift's severity only when there is one).
    """

    name: str
    options: tuple[str, ...]
    question: str
    when: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if len(self.options) < 2 or len(set(self.options)) != len(self.options):
            raise ValueError(f"field {self.name!r} needs two or more distinct options, got {self.options}")

    def applies(self, values: dict) -> bool:
        return self.when is None or values.get(self.when[0]) == self.when[1]


@dataclass
class StructuredReply:
    """A verdict as answered: the field values (None when unscored) and how it was obtained."""

    values: dict[str, str | None] | None
    reason: str | None
    status: str
    raw: list[str] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None


def _check_fields(fields: Sequence[Field]) -> None:
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ValueError(f"field names must be unique, got {names}")
    for i, f in enumerate(fields):
        if f.when is not None and f.when[0] not in names[:i]:
            raise ValueError(f"field {f.name!r} depends on {f.when[0]!r}, which must come before it")


def json_schema(fields: Sequence[Field], want_reason: bool) -> dict:
    """The JSON schema of a verdict; conditional fields may be null."""
    properties: dict[str, dict] = {}
    for f in fields:
        if f.when is None:
            properties[f.name] = {"type": "string", "enum": list(f.options)}
        else:
            properties[f.name] = {"type": ["string", "null"], "enum": [*f.options, None]}
    if want_reason:
        properties["reason"] = {"type": "string"}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


STRUCTURED_OUTPUT = ("json_schema", "json_object", "none")


def response_format(fields: Sequence[Field], want_reason: bool, kind: str = "json_schema") -> dict | None:
    """The OpenAI ``response_format`` for a verdict, by what the server supports.

    ``json_schema`` (OpenAI, vLLM, ...) constrains the reply to the schema; ``json_object``
    (e.g. DeepSeek) only to some JSON object; ``none`` sends nothing (servers such as
    ``transformers serve`` refuse the field). The reply is checked here in every case.
    """
    if kind == "none":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise ValueError(f"structured output must be one of {STRUCTURED_OUTPUT}, got {kind!r}")
    return {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": json_schema(fields, want_reason), "strict": True},
    }


def parse_verdict(
    text: str, fields: Sequence[Field], want_reason: bool
) -> tuple[dict | None, str | None, str]:
    """Read a JSON verdict out of a reply.

    Code fences and text around the object are tolerated; anything else wrong is named.

    Returns:
        ``(values, reason, problem)``: the values and reason when valid (problem ``""``),
        else ``(None, None, problem)``.
    """
    if not text or not text.strip():
        return None, None, "the reply was empty"
    match = _JSON_OBJECT.search(text)
    if match is None:
        return None, None, "the reply held no JSON object"
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError as err:
        return None, None, f"the JSON did not parse ({err.msg})"
    if not isinstance(obj, dict):
        return None, None, "the JSON was not an object"
    values: dict[str, str | None] = {}
    for f in fields:
        value = obj.get(f.name)
        if not f.applies(values):
            values[f.name] = None  # not asked in this case, whatever was written
            continue
        if value not in f.options:
            return None, None, f'"{f.name}" must be one of {list(f.options)}, got {value!r}'
        values[f.name] = value
    reason = obj.get("reason")
    if want_reason and (not isinstance(reason, str) or not reason.strip()):
        return None, None, '"reason" must be a non-empty sentence'
    return values, (reason.strip() if isinstance(reason, str) else None), ""


def _reask_message(problem: str, fields: Sequence[Field], want_reason: bool) -> dict:
    keys = [f.name for f in fields] + (["reason"] if want_reason else [])
    return {
        "role": "user",
        "content": (
            f"That reply could not be used: {problem}. Reply again with only one JSON object "
            f"with the keys {keys}, using exactly the allowed values."
        ),
    }


def _ask_json(
    backend, conversations, fields, params, keys, max_reasks, want_reason, structured_output
) -> list[StructuredReply]:
    fmt = response_format(fields, want_reason, structured_output)
    replies = [StructuredReply(None, None, UNSCORED) for _ in conversations]
    histories = [list(c) for c in conversations]
    open_rows = list(range(len(conversations)))
    for attempt in range(max_reasks + 1):
        if not open_rows:
            break
        suffix = "" if attempt == 0 else f"#reask{attempt}"
        completions = backend.complete(
            [histories[i] for i in open_rows],
            params,
            keys=[keys[i] + suffix for i in open_rows],
            response_format=fmt,
        )
        still_open = []
        for i, completion in zip(open_rows, completions, strict=True):
            reply = replies[i]
            reply.attempts += 1
            if not completion.ok:
                reply.error = completion.error  # a transport failure: asking again is the cache's job
                continue
            reply.raw.append(completion.text)
            values, reason, problem = parse_verdict(completion.text, fields, want_reason)
            if values is not None:
                reply.values, reply.reason, reply.status, reply.error = values, reason, SCORED, None
                continue
            reply.error = problem
            histories[i] += [{"role": "assistant", "content": completion.text}]
            histories[i].append(_reask_message(problem, fields, want_reason))
            still_open.append(i)
        open_rows = still_open
    return replies


_LETTERS = "ABCDEFGHIJ"


def _answer_keys(f: Field) -> list[str]:
    """What the local model is scored on: the options themselves for a yes/no-style pair,
    else one capital letter per option. Letters are single tokens, so the engine reads every
    option from one forward pass instead of one pass per option (several times faster)."""
    if len(f.options) <= 2 or len(f.options) > len(_LETTERS):
        return list(f.options)
    return list(_LETTERS[: len(f.options)])


def _field_turn(f: Field) -> dict:
    answer_keys = _answer_keys(f)
    if answer_keys == list(f.options):
        return {"role": "user", "content": f"{f.question} Answer with one of: {', '.join(f.options)}."}
    listed = "; ".join(f"{k}) {o}" for k, o in zip(answer_keys, f.options, strict=True))
    return {"role": "user", "content": f"{f.question} Options: {listed}. Answer with the letter only."}


_SENTENCE_DONE = re.compile(r"[.!?][\"')\]]*\s|\n\s*\S")


def one_sentence_written(text: str) -> bool:
    """True once a first sentence (or line) is complete: a local model's reason stops there."""
    return bool(_SENTENCE_DONE.search(text.lstrip()))


def _calibrated_picks(backend, asked, content_free, answer_keys) -> list[str]:
    """Pick by how much more likely each answer is than under a content-free prompt.

    Small models often favour one answer whatever they are shown (a 135M judge answers
    "yes" to nearly every drift question). Subtracting the answer's log-likelihood on the
    same prompt with its content blanked out ("contextual calibration", Zhao et al. 2021)
    removes that fixed preference and leaves what the content itself changes.
    """
    [prior] = backend.option_scores([content_free], answer_keys)
    picks = []
    for row in backend.option_scores(asked, answer_keys):
        shifted = [score - base for score, base in zip(row, prior, strict=True)]
        picks.append(answer_keys[max(range(len(answer_keys)), key=shifted.__getitem__)])
    return picks


def _ask_by_likelihood(
    backend, conversations, fields, params, keys, want_reason, reason_when, calibration=None
) -> list[StructuredReply]:
    values: list[dict[str, str | None]] = [{} for _ in conversations]
    histories = [list(c) for c in conversations]
    for f in fields:
        rows = [i for i in range(len(conversations)) if f.applies(values[i])]
        for i in set(range(len(conversations))) - set(rows):
            values[i][f.name] = None
        if not rows:
            continue
        answer_keys = _answer_keys(f)
        asked = [histories[i] + [_field_turn(f)] for i in rows]
        if calibration is not None and f.when is None and hasattr(backend, "option_scores"):
            picks = _calibrated_picks(backend, asked, calibration + [_field_turn(f)], answer_keys)
        else:
            picks = backend.choose(asked, answer_keys)
        for i, pick in zip(rows, picks, strict=True):
            values[i][f.name] = f.options[answer_keys.index(pick)]
            histories[i] += [_field_turn(f), {"role": "assistant", "content": pick}]
    reasons: list[str | None] = [None] * len(conversations)
    raw: list[list[str]] = [[] for _ in conversations]
    # Generating is the slow part on a CPU, so a reason is only written where it is read.
    wanted = [
        i
        for i in range(len(conversations))
        if want_reason and (reason_when is None or values[i].get(reason_when[0]) == reason_when[1])
    ]
    if wanted:
        turn = {"role": "user", "content": "In one sentence, give the reason for your answers."}
        completions = backend.complete(
            [histories[i] + [turn] for i in wanted],
            params,
            keys=[keys[i] + "#reason" for i in wanted],
            stop=one_sentence_written,
        )
        for i, completion in zip(wanted, completions, strict=True):
            if completion.ok:
                raw[i].append(completion.text)
                reasons[i] = completion.text.strip().split("\n")[0] or None
    return [
        StructuredReply(v, r, SCORED, raw=w, attempts=1) for v, r, w in zip(values, reasons, raw, strict=True)
    ]


def ask_structured(
    backend,
    conversations: Sequence[list[dict]],
    fields: Sequence[Field],
    *,
    params: GenParams,
    keys: Sequence[str],
    max_reasks: int = 2,
    want_reason: bool = True,
    reason_when: tuple[str, str] | None = None,
    structured_output: str = "json_schema",
    calibration: list[dict] | None = None,
) -> list[StructuredReply]:
    """Get one verdict per conversation.

    Args:
        backend: a chat back-end; one with ``choose`` is asked field by field by likelihood.
        conversations: the prompts; each should already describe the fields and, for JSON
            back-ends, ask for a JSON object.
        fields: the verdict's fields, in the order they are decided.
        params: decoding settings (of the JSON replies, or of the local model's reason).
        keys: one stable id per conversation (re-asks and reasons get suffixed keys).
        max_reasks: JSON back-ends only: follow-ups after an unusable reply.
        want_reason: also ask for a one-sentence reason.
        reason_when: local models only: ``(field, value)``: write the reason only for verdicts
            with that value (a JSON reply always carries one; it costs nothing extra).
        structured_output: JSON back-ends only: the ``response_format`` sent (see
            :func:`response_format`).
        calibration: local models only: the same prompt with its content blanked out; fields
            that depend on no other field are then picked by contextual calibration (see
            :func:`_calibrated_picks`).

    Returns:
        One :class:`StructuredReply` per conversation, in input order.
    """
    _check_fields(fields)
    if max_reasks < 0:
        raise ValueError(f"max_reasks must be >= 0, got {max_reasks}")
    if len(keys) != len(conversations):
        raise ValueError(f"got {len(conversations)} conversations but {len(keys)} keys")
    if hasattr(backend, "choose"):
        return _ask_by_likelihood(
            backend, conversations, fields, params, keys, want_reason, reason_when, calibration
        )
    replies = _ask_json(
        backend, conversations, fields, params, keys, max_reasks, want_reason, structured_output
    )
    unscored = sum(r.status == UNSCORED for r in replies)
    if unscored:
        logger.warning("%d of %d verdicts unscored after %d re-asks", unscored, len(replies), max_reasks)
    return replies
