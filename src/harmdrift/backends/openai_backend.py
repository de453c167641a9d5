"""Chat completions from any OpenAI-compatible server: a hosted API, vLLM, or ``transformers serve``.

Requests run concurrently (bounded by ``concurrency``), each attempt under ``timeout_s``.
Retries are the openai client's own (``max_retries``): it retries rate limits (429), 408,
409, server errors (5xx), timeouts and dropped connections with exponential back-off
(0.5 s doubling to 8 s, jittered; a server's ``Retry-After`` of up to two minutes is
honoured). A request that still fails comes back as an errored
:class:`~harmdrift.backends.base.Completion` saying why and after how many attempts, so the
others are kept. A request the server rejects outright (400, 401, 403, 404, 422) raises
:class:`BackendError` at once: retrying cannot fix it and every other request would fail
the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from contextvars import ContextVar

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

# 4xx statuses the openai client retries (request timeout, lock conflict, rate limit), as it
# does every 5xx: still failing after its retries, they are recorded errors, not rejections.
RETRYABLE_4XX = frozenset({408, 409, 429})
# HTTP attempts of the request being sent: each request runs in its own task, so its own context.
_ATTEMPTS: ContextVar[list[int]] = ContextVar("harmdrift_openai_attempts")


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
        progress: bool = True,
    ) -> None:
        """Check the settings and that the API key is present.

        Args:
            model: the server's name for the model.
            base_url: e.g. ``http://127.0.0.1:8000/v1``.
            api_key_env: name of the environment variable holding the API key.
            concurrency: requests in flight at once.
            max_retries: retries after the first attempt of each request (the openai client's).
            timeout_s: limit on each attempt (connect, and each wait for data).
            price_prompt_per_mtok: USD per million prompt tokens (None: no cost total).
            price_completion_per_mtok: USD per million completion tokens.
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
        client = openai.AsyncOpenAI(
            api_key=self._api_key(),
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=self.max_retries,
            # The hook sees every HTTP attempt the client makes, its retries included.
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [self._count_attempt]}),
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
        """One request, retried by the client; counted in the usage totals."""
        body = self._request_body(messages, params, response_format)
        completion = await self._send(client, semaphore, body, key)
        if completion.ok:
            text, cut = truncate_at_stop(completion.text, stop)
            if cut:
                completion = Completion(text, completion.prompt_tokens, completion.completion_tokens, "stop")
        else:
            logger.warning(
                "openai %s at %s: request %s failed: %s", self.model, self.base_url, key, completion.error
            )
        self._totals.add(completion)
        bar.update(1)
        return completion

    async def _count_attempt(self, request) -> None:
        """httpx request hook: one more HTTP attempt, for the totals and for the request's own count."""
        self._totals.attempts += 1
        counter = _ATTEMPTS.get(None)
        if counter is not None:
            counter[0] += 1

    async def _send(self, client, semaphore, body: dict, key: str) -> Completion:
        """One request; the client retries it. A slot of ``concurrency`` is held until it is done."""
        import openai

        attempts = [0]
        _ATTEMPTS.set(attempts)
        async with semaphore:
            try:
                response = await client.chat.completions.create(**body)
            except openai.APITimeoutError:  # a subclass of APIConnectionError: caught first
                reason = "timeout"
            except openai.APIConnectionError:
                reason = "connection error"
            except openai.APIStatusError as err:
                if not retryable(err.status_code):
                    raise self._rejected(err, key) from None
                reason = f"http {err.status_code}"
            except openai.APIResponseValidationError as err:
                return Completion.failed(f"malformed response: {err.message}")
            else:
                return parse_response(response)
        tries = attempts[0]
        return Completion.failed(f"{reason} after {tries} attempt{'' if tries == 1 else 's'}")

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
        system_fingerprint=getattr(response, "system_fingerprint", None) or None,
    )


def make_openai_backend(cfg: BackendConfig) -> OpenAIChatBackend:
    """Factory for the ``openai`` entry of the back-end registry."""
    return OpenAIChatBackend.from_config(cfg)
