"""Canned replies, for unit tests only: the pipeline's own configs never use this back-end.

It lets tests of parsing, retries of format fixes, caching and failure paths run without a
model or a server, and it records what it was asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harmdrift.backends.base import (
    BackendConfig,
    Completion,
    StopCheck,
    UsageTotals,
    check_keys,
    truncate_at_stop,
)
from harmdrift.core.decoding import GenParams

logger = logging.getLogger(__name__)

Reply = str | Completion
Script = Mapping[str, Reply] | Callable[[str, list[dict]], Reply]


def _words(text: str) -> int:
    """A stand-in token count: whitespace-separated words."""
    return len(text.split())


class ScriptedBackend:
    """Replies from a dict (request key -> reply) or a callable ``(key, messages) -> reply``.

    A reply is a string, or a ready :class:`Completion` (e.g. ``Completion.failed(...)``) to
    script an error. Every call's keys are appended to ``calls``.
    """

    def __init__(self, script: Script, *, name: str = "scripted", default: str | None = None) -> None:
        """Set up the script.

        Args:
            script: the replies, by key, or a function computing them.
            name: the model name reported by ``describe()`` (part of cache keys).
            default: the reply for keys missing from a dict script; None makes them an error.
        """
        self.script = script
        self.name = name
        self.default = default
        self.calls: list[list[str]] = []
        self._totals = UsageTotals()

    def describe(self) -> dict:
        """Backend and script name."""
        return {"backend": "scripted", "model": self.name}

    def usage(self) -> dict:
        """Requests, word counts as tokens, errors; never a cost."""
        return self._totals.as_dict(None, None)

    def _reply(self, key: str, messages: list[dict]) -> Completion:
        if callable(self.script):
            reply = self.script(key, messages)
        elif key in self.script:
            reply = self.script[key]
        elif self.default is not None:
            reply = self.default
        else:
            raise KeyError(f"scripted backend {self.name!r} has no reply for key {key!r}")
        if isinstance(reply, Completion):
            return reply
        prompt_words = sum(_words(str(m.get("content", ""))) for m in messages)
        return Completion(reply, prompt_words, _words(reply), "stop")

    def complete(
        self,
        conversations: Sequence[list[dict]],
        params: GenParams,
        *,
        keys: Sequence[str],
        stop: StopCheck | None = None,
        response_format: dict | None = None,
    ) -> list[Completion]:
        """Look up each reply; ``params`` and ``response_format`` are ignored, ``stop`` cuts the text."""
        check_keys(conversations, keys)
        self.calls.append(list(keys))
        completions = []
        for key, messages in zip(keys, conversations, strict=True):
            completion = self._reply(key, messages)
            if completion.ok:
                text, cut = truncate_at_stop(completion.text, stop)
                if cut:
                    completion = Completion(text, completion.prompt_tokens, _words(text), "stop")
            self._totals.add(completion)
            completions.append(completion)
        return completions


def make_scripted_backend(cfg: BackendConfig) -> ScriptedBackend:
    """Factory for the ``scripted`` entry: ``cfg.model`` is a JSON file of ``{key: reply}``.

    A ``"*"`` entry, if present, answers keys that have no reply of their own.

    Raises:
        ValueError: when the file is missing or is not a JSON object of strings.
    """
    path = Path(cfg.model)
    if not path.is_file():
        raise ValueError(f"config key model: the scripted backend needs a JSON file of replies, got {path}")
    raw = path.read_bytes()
    replies = json.loads(raw)
    if not isinstance(replies, dict) or not all(isinstance(v, str) for v in replies.values()):
        raise ValueError(f"{path}: expected a JSON object mapping request keys to reply strings")
    default = replies.pop("*", None)
    # The file's hash names the script, so editing the replies never hits stale cache entries.
    name = f"{path.name}@{hashlib.sha256(raw).hexdigest()[:16]}"
    logger.info("scripted backend: %d replies from %s", len(replies), path)
    return ScriptedBackend(replies, name=name, default=default)
