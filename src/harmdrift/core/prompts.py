"""Prompt templates from config/prompts/ and the chat messages built from them."""

from __future__ import annotations

import re
import string
from pathlib import Path


def load_template(path: str | Path, slots: tuple[str, ...] = ("question",)) -> str:
    """Read a prompt template and check it has exactly the ``{slot}`` placeholders it needs.

    Raises:
        ValueError: naming the file when a slot is missing, an unknown one is present, or
            the braces are malformed.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        found = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as err:
        raise ValueError(
            f"{path}: malformed braces in prompt template ({err}); write literal ones as {{{{ }}}}"
        ) from None
    unknown = sorted(found - set(slots))
    if unknown:
        raise ValueError(
            f"{path}: prompt template has unknown placeholder(s) {unknown}; allowed: {list(slots)} "
            "(write literal braces as {{ and }})"
        )
    missing = [s for s in slots if s not in found]
    if missing:
        raise ValueError(f"{path}: prompt template has no {{{missing[0]}}} placeholder")
    return text


# Upstream N3 numbers the first option "(1)" in about half of its questions; the others
# use "(a)". Models are shown "(a)" so that every question reads the same way and a reply
# of "(a)" means the same thing everywhere. Only the last option block is touched.
_FIRST_OPTION_TYPO = re.compile(r"\(1\)(?=[^()]*\(b\)[^()]*\(c\)[^()]*$)")


def display_question(question: str) -> str:
    """The question as models see it: upstream's "(1)" option marker shown as "(a)"."""
    return _FIRST_OPTION_TYPO.sub("(a)", question, count=1)


def build_messages(item: dict, template: str) -> list[dict[str, str]]:
    """Render one benchmark item into a single-turn chat conversation.

    The instruction sits in the user turn, after the question, so that small
    instruction-tuned models (which follow the last thing they read) see it,
    and no system prompt is forced on models whose chat template brings its own.
    """
    if item.get("messages"):
        # A prompt set's own conversation (jsonl ``messages``) is sent as written.
        return [{"role": m["role"], "content": m["content"]} for m in item["messages"]]
    return [{"role": "user", "content": template.format(question=display_question(item["question"])).strip()}]
