"""Chat back-ends for the teacher and the judge, behind one small interface.

    backend = get_backend(BackendConfig.from_dict(config["teacher"]), cache_dir=config["cache_dir"])
    replies = backend.complete(conversations, params, keys=ids)
    write_usage("results/teacher/usage.json", backend)

Heavy dependencies (torch, transformers, openai) are imported only when a back-end of
that kind is used, so each rule's environment stays small.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from harmdrift.backends.base import BackendConfig, BackendError, ChatBackend, Completion
from harmdrift.backends.cache import DEFAULT_CACHE_DIR, CachedBackend, ResponseCache, cache_key
from harmdrift.backends.hf_backend import HFChatBackend, make_hf_backend
from harmdrift.backends.openai_backend import OpenAIChatBackend, make_openai_backend
from harmdrift.backends.scripted import ScriptedBackend, make_scripted_backend
from harmdrift.io import write_json

logger = logging.getLogger(__name__)

BACKENDS: dict[str, Callable[[BackendConfig], ChatBackend]] = {
    "hf": make_hf_backend,  # a local or hub model; torch/transformers load on first use
    "openai": make_openai_backend,  # any OpenAI-compatible server via base_url
    "scripted": make_scripted_backend,  # canned replies, for unit tests only
}

__all__ = [
    "BACKENDS",
    "DEFAULT_CACHE_DIR",
    "BackendConfig",
    "BackendError",
    "CachedBackend",
    "ChatBackend",
    "Completion",
    "HFChatBackend",
    "OpenAIChatBackend",
    "ResponseCache",
    "ScriptedBackend",
    "cache_key",
    "get_backend",
    "write_usage",
]


def get_backend(cfg: BackendConfig, cache_dir: str | os.PathLike | None = None) -> ChatBackend:
    """Build the configured back-end, behind the response cache when caching is on.

    Args:
        cfg: the back-end's config section.
        cache_dir: folder of the response cache; None turns caching off.

    Raises:
        ValueError: for a back-end name that is not registered.
    """
    if cfg.backend not in BACKENDS:
        raise ValueError(f"config key backend: unknown backend {cfg.backend!r}; known: {sorted(BACKENDS)}")
    backend = BACKENDS[cfg.backend](cfg)
    logger.info("chat backend %s: %s", cfg.backend, backend.describe())
    if cfg.cache and cache_dir is not None:
        return CachedBackend(backend, ResponseCache(cache_dir))
    return backend


def write_usage(path: str | os.PathLike, backend: ChatBackend) -> dict:
    """Write a JSON record of what a job asked of its back-end, for the rule's outputs.

    The record holds requests, tokens, cost (None without prices), errors, cache hits and
    misses (None when uncached), the cache file and the back-end's description.

    Returns:
        The record written.
    """
    record = {
        "cache_hits": None,
        "cache_misses": None,
        "cache_file": None,
        **backend.usage(),
        "backend": backend.describe(),
    }
    if isinstance(backend, CachedBackend):
        record["cache_file"] = str(backend.cache.path)
    write_json(path, record)
    logger.info(
        "usage: %d requests (%s errors), %s + %s tokens, cost %s USD, cache %s hits / %s misses",
        record["requests"],
        record["errors"],
        record["prompt_tokens"],
        record["completion_tokens"],
        record["cost_usd"],
        record["cache_hits"],
        record["cache_misses"],
    )
    return record
