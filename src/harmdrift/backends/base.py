"""What every chat back-end shares: the reply type, the interface, its config and usage totals.

The teacher (Stage I and III rationales) and the LLM judge (Stage II) only ever see a
:class:`ChatBackend`: a local Hugging Face model, any OpenAI-compatible server, or canned
replies in unit tests are all just config (:class:`BackendConfig`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
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
        # The back-end name itself is checked by get_backend against the registry, so a new
        # back-end needs registering in one place only.
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"config key model: expected a model name, got {self.model!r}")
        if self.backend == "openai":
            self._check_openai()
        if self.backend == "hf" and self.quantization == "4bit" and self.device == "cpu":
            raise ValueError("config key quantization: 4bit needs a GPU, but device is cpu")
        for key in ("batch_size", "concurrency"):
            if getattr(self, key) < 1:
                raise ValueError(f"config key {key}: must be >= 1, got {getattr(self, key)}")
        if self.max_retries < 0:
            raise ValueError(f"config key max_retries: must be >= 0, got {self.max_retries}")
        if not self.timeout_s > 0:
            raise ValueError(f"config key timeout_s: must be > 0, got {self.timeout_s}")
        self._check_prices()

    def _check_openai(self) -> None:
        if not self.base_url:
            raise ValueError(
                "config key base_url: backend openai needs the server's OpenAI-compatible URL "
                "(e.g. http://127.0.0.1:8000/v1)"
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"config key base_url: expected an http(s):// URL, got {self.base_url!r}")
        if not self.api_key_env:
            raise ValueError(
                "config key api_key_env: backend openai needs the name of the environment variable "
                "holding the API key (the key itself never goes in config)"
            )

    def _check_prices(self) -> None:
        prices = (self.price_prompt_per_mtok, self.price_completion_per_mtok)
        if (prices[0] is None) != (prices[1] is None):
            raise ValueError(
                "config keys price_prompt_per_mtok / price_completion_per_mtok: set both or neither"
            )
        if any(p is not None and p < 0 for p in prices):
            raise ValueError(f"config keys price_*_per_mtok: must be >= 0, got {prices}")

    @classmethod
    def from_dict(cls, section: Mapping) -> BackendConfig:
        """Build from a config section, naming any key this dataclass does not know.

        Raises:
            ValueError: for unknown keys or values that break a rule.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown backend config key(s) {unknown}; known: {sorted(known)}")
        return cls(**section)
