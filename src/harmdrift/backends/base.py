"""What every chat back-end shares: the reply type, the interface, its config and usage totals.

The teacher (Stage I and III rationales) and the LLM judge (Stage II) only ever see a
:class:`ChatBackend`: a local Hugging Face model, any OpenAI-compatible server, or canned
replies in unit tests are all just config (:class:`BackendConfig`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from harmdrift.core.decoding import GenParams

StopCheck = Callable[[str], bool]


class BackendError(RuntimeError):
    """A failure no retry can fix (bad request, rejected credentials, missing API key)."""


@dataclass(frozen=True)
class Completion:
    """One reply to one conversation.

    An errored completion is a recorded outcome, not an exception: ``text`` is "" and
    ``error`` says what went wrong (e.g. "timeout after 4 attempts"), so one bad request
    does not lose the replies of the others and a re-run can retry just that one.
    """

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str  # "stop", "length", "eos" (local models), or "error"
    cached: bool = False
    error: str | None = None
    # Local back-end only, when asked for: log-probability of each forced-choice option
    # after prompt + reply + the choice's prefix (see harmdrift.lm.forced).
    forced_scores: dict[str, float] | None = None
    # API back-ends: the provider's system_fingerprint (its serving configuration), when sent.
    system_fingerprint: str | None = None

    @property
    def ok(self) -> bool:
        """True when the request produced a reply."""
        return self.error is None

    @classmethod
    def failed(cls, error: str) -> Completion:
        """An errored completion carrying its reason."""
        return cls(text="", prompt_tokens=None, completion_tokens=None, finish_reason="error", error=error)


@runtime_checkable
class ChatBackend(Protocol):
    """Anything that answers chat conversations."""

    def describe(self) -> dict:
        """Provenance that determines the output (backend, model, base URL or weights hash).

        It goes into cache keys and output records, so it holds nothing that leaves the
        replies unchanged (timeouts, concurrency) and never a secret.
        """
        ...

    def complete(
        self,
        conversations: Sequence[list[dict]],
        params: GenParams,
        *,
        keys: Sequence[str],
        stop: StopCheck | None = None,
        response_format: dict | None = None,
    ) -> list[Completion]:
        """Answer every conversation, returning one :class:`Completion` each, in input order.

        Args:
            conversations: chat messages (``{"role", "content"}`` dicts), one list per request.
            params: decoding settings.
            keys: one stable id per request (e.g. "D1-diff-0001#fix1"); local models seed
                each request's sampling with it.
            stop: called on the reply text; True means the answer is complete and the rest
                is dropped.
            response_format: an OpenAI ``response_format`` (e.g. a JSON schema) for servers
                that enforce it; other back-ends ignore it.
        """
        ...

    def usage(self) -> dict:
        """Totals so far: requests, prompt_tokens, completion_tokens, cost_usd, errors."""
        ...


def check_keys(conversations: Sequence[list[dict]], keys: Sequence[str]) -> None:
    """Raise ValueError unless there is exactly one key per conversation."""
    if len(keys) != len(conversations):
        raise ValueError(f"got {len(conversations)} conversations but {len(keys)} keys")


def truncate_at_stop(text: str, stop: StopCheck | None) -> tuple[str, bool]:
    """Cut a finished reply at the end of the first line after which ``stop`` holds.

    A local model checks ``stop`` after every token and so never writes past the answer;
    a remote server cannot run our check, so its reply is cut afterwards instead. Checking
    at line ends keeps this to a handful of calls per reply.

    Returns:
        The (possibly shortened) text and whether it was cut.
    """
    if stop is None:
        return text, False
    start = 0
    while (end := text.find("\n", start)) != -1:
        if stop(text[:end]):
            return text[:end].rstrip(), end < len(text.rstrip())
        start = end + 1
    return text, False


@dataclass
class UsageTotals:
    """Running totals of one back-end's requests (mutable on purpose: it is a counter)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    attempts: int = 0  # HTTP attempts, retries included (API back-ends only)
    prompt_tokens_known: bool = False  # stays False for back-ends that cannot count them

    def add(self, completion: Completion) -> None:
        """Count one finished request."""
        self.requests += 1
        if not completion.ok:
            self.errors += 1
        if completion.prompt_tokens is not None:
            self.prompt_tokens += completion.prompt_tokens
            self.prompt_tokens_known = True
        self.completion_tokens += completion.completion_tokens or 0

    def as_dict(self, price_prompt_per_mtok: float | None, price_completion_per_mtok: float | None) -> dict:
        """The usage record; ``cost_usd`` is None unless both prices are configured."""
        cost = None
        if price_prompt_per_mtok is not None and price_completion_per_mtok is not None:
            cost = (
                self.prompt_tokens * price_prompt_per_mtok
                + self.completion_tokens * price_completion_per_mtok
            ) / 1e6
        return {
            "requests": self.requests,
            "attempts": self.attempts,
            "prompt_tokens": self.prompt_tokens if self.prompt_tokens_known else None,
            "completion_tokens": self.completion_tokens,
            "cost_usd": cost,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class BackendConfig:
    """One chat back-end as configured (the teacher or the judge section of config.yaml)."""

    backend: str  # a name in harmdrift.backends.BACKENDS: "hf", "openai" or "scripted"
    model: str  # hf: folder, hub id or embedded:<name>; openai: the server's model name
    revision: str | None = None  # hf hub models: branch, tag or commit
    dtype: str = "auto"  # hf only
    device: str = "auto"  # hf only
    quantization: str = "none"  # hf only: none or 4bit
    batch_size: int = 16  # hf only: prompts per forward pass
    base_url: str | None = None  # openai only, e.g. http://127.0.0.1:8000/v1
    api_key_env: str | None = None  # openai only: the NAME of the variable holding the key
    concurrency: int = 16  # openai only: requests in flight at once
    max_retries: int = 3  # openai only: retries after the first attempt
    timeout_s: float = 60.0  # openai only: per attempt
    price_prompt_per_mtok: float | None = None  # USD per million prompt tokens, for cost totals
    price_completion_per_mtok: float | None = None  # USD per million completion tokens
    cache: bool = True  # keep replies in the response cache under cache_dir

    def __post_init__(self) -> None:
        # Each key's type and range is config/schema.yaml's (so is the back-end name of a config
        # section; get_backend checks it against the registry). Left here are the rules that
        # join two keys. Messages name the key within the section: the same class serves the
        # teacher and the judge, and the config check says which section it was.
        if self.backend == "openai":
            self._check_openai()
        if (self.price_prompt_per_mtok is None) != (self.price_completion_per_mtok is None):
            raise ValueError(
                "config keys price_prompt_per_mtok / price_completion_per_mtok: set both or neither"
            )

    def _check_openai(self) -> None:
        if not self.base_url:
            raise ValueError(
                "config key base_url: backend openai needs the server's OpenAI-compatible URL "
                "(e.g. http://127.0.0.1:8000/v1)"
            )
        if not self.api_key_env:
            raise ValueError(
                "config key api_key_env: backend openai needs the name of the environment variable "
                "holding the API key (the key itself never goes in config)"
            )
