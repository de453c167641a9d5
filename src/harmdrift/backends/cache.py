"""A persistent response cache, so re-running a rule never pays for the same reply twice.

Replies live in the shared key-value store (``core.store``): one SQLite file under
``cache_dir``, outside ``results/``, so ``snakemake --forceall`` re-runs the jobs but not
the API calls.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from harmdrift.backends.base import ChatBackend, Completion, StopCheck, check_keys
from harmdrift.core.decoding import GenParams
from harmdrift.core.io import canonical_json
from harmdrift.core.store import KeyValueStore

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = ".cache/harmdrift"
CACHE_FILE = "llm.sqlite"


def request_record(
    describe: dict,
    messages: list[dict],
    params: GenParams,
    sample_index: int = 0,
    extra: dict | None = None,
) -> dict:
    """Everything that determines one reply: what :func:`cache_key` hashes.

    Timeouts, retries and concurrency are deliberately absent: they change how a reply is
    fetched, never what it says, so tuning them must keep every cached reply valid.
    """
    return {
        "backend": describe,  # backend, model, base_url or revision/weights hash
        "messages": messages,
        # Only the settings that change the text; GenParams may grow fields that do not.
        "params": {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_new_tokens": params.max_new_tokens,
            "seed": params.seed,
        },
        # Keeps n samples of one prompt apart, and a re-run gets back the same n.
        "sample_index": sample_index,
        "extra": extra or {},
    }


def cache_key(
    describe: dict,
    messages: list[dict],
    params: GenParams,
    sample_index: int = 0,
    extra: dict | None = None,
) -> str:
    """The sha256 (hex) of one request's canonical JSON (see :func:`request_record`).

    Args:
        describe: the back-end's ``describe()``: its provenance, no secrets.
        messages: the conversation sent.
        params: decoding settings.
        sample_index: which of several samples of the same prompt this is.
        extra: anything else that changes the reply (e.g. ``response_format``).
    """
    return hash_request(canonical_json(request_record(describe, messages, params, sample_index, extra)))


def hash_request(request_json: str) -> str:
    """The hex sha256 of a request's canonical JSON."""
    return hashlib.sha256(request_json.encode("utf-8")).hexdigest()


class ResponseCache:
    """Successful completions by cache key, in the shared key-value store."""

    def __init__(
        self,
        cache_dir: str | Path = DEFAULT_CACHE_DIR,
        filename: str = CACHE_FILE,
        busy_timeout_s: float = 60.0,
    ) -> None:
        """Open (and create if needed) ``<cache_dir>/<filename>``.

        Args:
            cache_dir: folder of the cache; created if missing.
            filename: the SQLite file's name.
            busy_timeout_s: how long a write waits for another process's write to finish.
        """
        self._store = KeyValueStore(Path(cache_dir) / filename, "llm_replies", busy_timeout_s)
        self.path = self._store.path

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        """The cached completions among ``keys`` (marked ``cached=True``), by key."""
        found = self._store.get_many(keys)
        return {
            key: Completion(
                v["text"],
                v["prompt_tokens"],
                v["completion_tokens"],
                v["finish_reason"],
                cached=True,
                system_fingerprint=v.get("system_fingerprint"),
            )  # fmt: skip
            for key, v in found.items()
        }

    def put_many(self, entries: Iterable[tuple[str, Completion, str]]) -> int:
        """Store ``(key, completion, request_json)`` triples in one transaction.

        Errored completions are skipped: caching a failure would stop a re-run retrying it.
        The request is kept beside the reply, so a cache entry can be read back and checked.

        Returns:
            The number of completions stored.
        """
        return self._store.put_many(
            (
                key,
                {
                    "text": c.text,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "finish_reason": c.finish_reason,
                    **({"system_fingerprint": c.system_fingerprint} if c.system_fingerprint else {}),
                    "request": request,
                },
            )
            for key, c, request in entries
            if c.ok
        )

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        """Close the database connection."""
        self._store.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stop_identity(stop: StopCheck | None) -> str | None:
    """A name for a stop check, so replies cut by different checks are cached apart.

    A function cannot be hashed by what it does; its qualified name stands in for it.
    Rename a stop check when you change what it accepts, or clear the cache.
    """
    if stop is None:
        return None
    name = getattr(stop, "__qualname__", type(stop).__qualname__)
    return f"{getattr(stop, '__module__', '?')}.{name}"


class CachedBackend:
    """A :class:`ChatBackend` that answers from the cache first and asks the inner one for misses."""

    def __init__(self, backend: ChatBackend, cache: ResponseCache, *, chunk_size: int | None = 256) -> None:
        """Wrap ``backend``.

        Args:
            backend: the back-end that answers misses.
            cache: the store.
            chunk_size: misses are sent to ``backend`` this many at a time and stored after
                each chunk, so a crash half-way through a long run keeps what was paid for.
                None sends all misses in one call.
        """
        self.backend = backend
        self.cache = cache
        self.chunk_size = chunk_size
        self.hits = 0
        self.misses = 0
        self._describe = backend.describe()
        if hasattr(backend, "choose"):
            # Option scoring (local models only) passes straight through: it is cheap and exact,
            # so it is not cached. Exposed only when the inner back-end has it, so callers can
            # test the wrapper for the capability the same way as a bare back-end.
            self.choose = backend.choose
        if hasattr(backend, "option_scores"):
            self.option_scores = backend.option_scores

    def describe(self) -> dict:
        """The inner back-end's description: caching never changes a reply."""
        return self._describe

    def usage(self) -> dict:
        """The inner back-end's usage (misses only) plus the cache counters."""
        return {**self.backend.usage(), "cache_hits": self.hits, "cache_misses": self.misses}

    def _extra(
        self, key: str, params: GenParams, stop: StopCheck | None, response_format: dict | None
    ) -> dict:
        extra: dict = {}
        if response_format is not None:
            extra["response_format"] = response_format
        if stop is not None:
            extra["stop"] = stop_identity(stop)
        # Local models draw each request's random numbers from a stream seeded by its key,
        # so when sampling the key changes the reply; API servers ignore it.
        if self._describe.get("keyed_sampling") and params.temperature > 0:
            extra["key"] = key
        return extra

    def complete(
        self,
        conversations: Sequence[list[dict]],
        params: GenParams,
        *,
        keys: Sequence[str],
        stop: StopCheck | None = None,
        response_format: dict | None = None,
        sample_indices: Sequence[int] | None = None,
    ) -> list[Completion]:
        """Answer every conversation, from the cache where possible (see :class:`ChatBackend`).

        Args:
            sample_indices: per request, which sample of its prompt it is (default 0), so
                several samples of one prompt get separate entries. The inner back-end must
                also draw them differently (distinct keys locally, distinct seeds remotely).

        Returns:
            Completions in input order; hits carry ``cached=True``.
        """
        check_keys(conversations, keys)
        indices = list(sample_indices) if sample_indices is not None else [0] * len(keys)
        if len(indices) != len(keys):
            raise ValueError(f"got {len(keys)} keys but {len(indices)} sample_indices")
        requests = [
            canonical_json(
                request_record(
                    self._describe, list(msgs), params, idx, self._extra(key, params, stop, response_format)
                )
            )
            for msgs, key, idx in zip(conversations, keys, indices, strict=True)
        ]
        hashes = [hash_request(r) for r in requests]
        found = self.cache.get_many(hashes)
        results: list[Completion | None] = [found.get(h) for h in hashes]
        missing = [i for i, c in enumerate(results) if c is None]
        hits = len(hashes) - len(missing)
        self.hits += hits
        self.misses += len(missing)
        logger.info("response cache %s: %d hits, %d misses", self.cache.path, hits, len(missing))
        step = self.chunk_size or max(len(missing), 1)
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            fresh = self.backend.complete(
                [conversations[i] for i in chunk],
                params,
                keys=[keys[i] for i in chunk],
                stop=stop,
                response_format=response_format,
            )
            for i, completion in zip(chunk, fresh, strict=True):
                results[i] = completion
            self.cache.put_many((hashes[i], c, requests[i]) for i, c in zip(chunk, fresh, strict=True))
        return results  # type: ignore[return-value]
