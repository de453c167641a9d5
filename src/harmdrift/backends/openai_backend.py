"""Chat completions from any OpenAI-compatible server: a hosted API, vLLM, or ``transformers serve``.

Requests run concurrently (bounded by ``concurrency``), each attempt under ``timeout_s``.
Rate limits (429), server errors (5xx), timeouts and dropped connections are retried a
bounded number of times with exponential back-off; a request that still fails comes back
as an errored :class:`~harmdrift.backends.base.Completion`, so the others are kept. A
request the server rejects outright (400, 401, 403, 404, 422) raises :class:`BackendError`
at once: retrying cannot fix it and every other request would fail the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Sequence

from tqdm import tqdm

from harmdrift.backends.base import (
    BackendConfig,
    BackendError,
    Completion,
    StopCheck,
    UsageTotals,
    check_keys,
    truncate_at_stop,
)
from harmdrift.core.decoding import GenParams

logger = logging.getLogger(__name__)

# 4xx statuses that are worth another try (the same ones the openai client itself retries):
# request timeout, lock conflict, rate limit. Every 5xx is retried too.
RETRYABLE_4XX = frozenset({408, 409, 429})
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0  # a longer Retry-After is ignored in favour of the usual back-off


class OpenAIChatBackend:
    """Chat completions from an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``model`` is sent as the request's ``model`` field, and ``base_url`` is the URL up to
    and including ``/v1``. With a local ``transformers serve`` server:

    - ``transformers serve /models/llama3 --host 127.0.0.1 --port 8000`` pins the server to
      that one model (loaded at start-up). Requests must then name exactly the same string,
      ``model: /models/llama3``; any other name is answered with http 400 ("Server is pinned
      to ..."), which raises here.
    - ``transformers serve --host 127.0.0.1 --port 8000`` (no model argument) loads whatever
      a request names, a hub id or a local folder, on first use; ``name@revision`` pins a
      hub revision.

    That server accepts ``seed`` (it seeds torch before generating) and ignores
    ``response_format`` with a warning; hosted APIs differ in both, which is harmless.

    The API key is read from the environment variable named ``api_key_env`` whenever
    requests are sent; it is never stored on the object, logged or described.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key_env: str,
        concurrency: int = 16,
        max_retries: int = 3,
        timeout_s: float = 60.0,
        price_prompt_per_mtok: float | None = None,
        price_completion_per_mtok: float | None = None,
        backoff_s: float = 1.0,
        progress: bool = True,
    ) -> None:
        """Check the settings and that the API key is present.

        Args:
            model: the server's name for the model.
            base_url: e.g. ``http://127.0.0.1:8000/v1``.
            api_key_env: name of the environment variable holding the API key.
            concurrency: requests in flight at once.
            max_retries: retries after the first attempt of each request.
            timeout_s: limit on each attempt (connect, and each wait for data).
            price_prompt_per_mtok: USD per million prompt tokens (None: no cost total).
            price_completion_per_mtok: USD per million completion tokens.
            backoff_s: the first retry's pause; it doubles with each retry.
            progress: show a progress bar on stderr.

        Raises:
            BackendError: when the variable ``api_key_env`` is unset or empty.
        """
        self.model = model
        self.base_url = base_url.rstrip("/")  # "…/v1/" and "…/v1" are the same server (and cache)
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.prices = (price_prompt_per_mtok, price_completion_per_mtok)
        self.backoff_s = backoff_s
        self.progress = progress
        self._totals = UsageTotals()
        self._api_key()  # fail at construction, before any work is queued

    @classmethod
    def from_config(cls, cfg: BackendConfig, *, progress: bool = True) -> OpenAIChatBackend:
        """Build from a validated :class:`BackendConfig` (backend ``openai``)."""
        return cls(
            model=cfg.model,
            base_url=cfg.base_url or "",
            api_key_env=cfg.api_key_env or "",
            concurrency=cfg.concurrency,
            max_retries=cfg.max_retries,
            timeout_s=cfg.timeout_s,
            price_prompt_per_mtok=cfg.price_prompt_per_mtok,
            price_completion_per_mtok=cfg.price_completion_per_mtok,
            progress=progress,
        )

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise BackendError(
                f"the API key for {self.base_url} is missing: set the environment variable "
                f"{self.api_key_env} (named by the config key api_key_env). A local server that "
                "checks no key accepts any value, e.g. export "
                f"{self.api_key_env}=local"
            )
        return key

    def describe(self) -> dict:
        """Backend, model and base URL: what determines the replies (never the key)."""
        return {"backend": "openai", "model": self.model, "base_url": self.base_url}

    def usage(self) -> dict:
        """Requests, HTTP attempts, tokens, cost (None without prices) and errors so far."""
        return self._totals.as_dict(*self.prices)

    def complete(
        self,
        conversations: Sequence[list[dict]],
        params: GenParams,
        *,
        keys: Sequence[str],
        stop: StopCheck | None = None,
        response_format: dict | None = None,
    ) -> list[Completion]:
        """Answer every conversation (see :class:`~harmdrift.backends.base.ChatBackend`).

        Runs its own event loop; from async code, ``await acomplete(...)`` instead.

        Raises:
            BackendError: when the server rejects a request (4xx other than 408/409/429).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(
                self.acomplete(conversations, params, keys=keys, stop=stop, response_format=response_format)
            )
        raise BackendError("complete() was called inside a running event loop; await acomplete() there")

    async def acomplete(
        self,
        conversations: Sequence[list[dict]],
        params: GenParams,
        *,
        keys: Sequence[str],
        stop: StopCheck | None = None,
        response_format: dict | None = None,
    ) -> list[Completion]:
        """The asynchronous form of :meth:`complete`."""
        import openai

        check_keys(conversations, keys)
        started = time.perf_counter()
        errors_before = self._totals.errors
        semaphore = asyncio.Semaphore(self.concurrency)
        # Retries are ours (below): the client's own would hide attempts and failure reasons.
        client = openai.AsyncOpenAI(
            api_key=self._api_key(), base_url=self.base_url, timeout=self.timeout_s, max_retries=0
        )
        bar = tqdm(total=len(keys), desc=f"openai {self.model}", unit="req", disable=not self.progress)
        try:
            async with client, asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(
                        self._answer(client, semaphore, msgs, params, key, stop, response_format, bar)
                    )
                    for msgs, key in zip(conversations, keys, strict=True)
                ]
        except BaseExceptionGroup as grouped:
            # The TaskGroup has cancelled the other requests; surface the reason, not the group.
            first = grouped.exceptions[0]
            raise first if isinstance(first, BackendError) else grouped from None
        finally:
            bar.close()
        results = [task.result() for task in tasks]
        logger.info(
            "openai %s at %s: %d requests, %d failed, in %.1fs",
            self.model,
            self.base_url,
            len(results),
            self._totals.errors - errors_before,
            time.perf_counter() - started,
        )
        return results

    def _request_body(self, messages: list[dict], params: GenParams, response_format: dict | None) -> dict:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": params.seed,  # servers without seeded sampling ignore it
        }
        if response_format is not None:
            body["response_format"] = response_format
        return body

    async def _answer(
        self, client, semaphore, messages, params, key, stop, response_format, bar
    ) -> Completion:
        """One request with bounded retries; counted in the usage totals."""
        body = self._request_body(messages, params, response_format)
        completion = await self._send_with_retries(client, semaphore, body, key)
        if completion.ok:
            text, cut = truncate_at_stop(completion.text, stop)
            if cut:
                completion = Completion(text, completion.prompt_tokens, completion.completion_tokens, "stop")
        else:
            logger.warning("request %s failed: %s", key, completion.error)
        self._totals.add(completion)
        bar.update(1)
        return completion

    async def _send_with_retries(self, client, semaphore, body: dict, key: str) -> Completion:
        import openai

        attempts = self.max_retries + 1
        reason, retry_after = "", None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._pause(attempt, retry_after))
            async with semaphore:  # held per attempt, so a request sleeping off a 429 frees its slot
                self._totals.attempts += 1
                try:
                    response = await client.chat.completions.create(**body)
                except openai.APITimeoutError:
                    reason, retry_after = "timeout", None
                except openai.APIConnectionError:
                    reason, retry_after = "connection error", None
                except openai.APIStatusError as err:
                    if not retryable(err.status_code):
                        raise self._rejected(err, key) from None
                    reason, retry_after = f"http {err.status_code}", parse_retry_after(err.response)
                except openai.APIResponseValidationError as err:
                    return Completion.failed(f"malformed response: {err.message}")
                else:
                    return parse_response(response)
            logger.debug("request %s: %s on attempt %d of %d", key, reason, attempt + 1, attempts)
        return Completion.failed(f"{reason} after {attempts} attempts")

    def _pause(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        delay = min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
        # Jitter spreads out the retries of requests that failed together.
        return delay * random.uniform(0.75, 1.0)

    def _rejected(self, err, key: str) -> BackendError:
        hint = ""
        if err.status_code in (401, 403):
            hint = f" (check the API key in ${self.api_key_env})"
        elif err.status_code in (400, 404):
            hint = f" (check the model name {self.model!r} and the request settings)"
        # The server's own explanation is in the body; the client's message may only say "Error code".
        detail = err.body if err.body is not None else err.response.text
        return BackendError(
            f"{self.base_url} rejected request {key!r} with http {err.status_code}{hint}: {str(detail)[:500]}"
        )


def retryable(status: int) -> bool:
    """Whether an HTTP error status is worth another attempt."""
    return status >= 500 or status in RETRYABLE_4XX


def parse_retry_after(response) -> float | None:
    """The server's ``Retry-After`` pause in seconds, when it gives a usable number."""
    try:
        value = float(response.headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= MAX_RETRY_AFTER_S else None


def parse_response(response) -> Completion:
    """A Completion from a chat.completion object (errored when it holds no reply)."""
    try:
        choice = response.choices[0]
        text = choice.message.content
        usage = response.usage
    except (AttributeError, IndexError, TypeError):
        # Some servers answer 200 with an error document or an empty choice list.
        return Completion.failed(f"malformed response: {str(response)[:200]}")
    if text is None:
        return Completion.failed(f"the response held no text (finish_reason={choice.finish_reason})")
    return Completion(
        text=text,
        prompt_tokens=usage.prompt_tokens if usage is not None else None,
        completion_tokens=usage.completion_tokens if usage is not None else None,
        finish_reason=choice.finish_reason or "stop",
    )


def make_openai_backend(cfg: BackendConfig) -> OpenAIChatBackend:
    """Factory for the ``openai`` entry of the back-end registry."""
    return OpenAIChatBackend.from_config(cfg)
