"""Chat back-ends for the teacher and the judge, behind one small interface; the local one
(``hf_backend``) also runs the student's answers.

    from harmdrift.config import chat_backend, section_params

    backend = chat_backend(config["teacher"], config["cache_dir"], models_root="results/default/models")
    replies = backend.complete(conversations, section_params(config["teacher"]), keys=ids)
    write_usage("results/default/rationales/usage.json", backend)

The registry names each back-end's factory as "module:function" and imports it only when
that back-end is asked for, so importing this package (or ``backends.base``) pulls in
neither torch/transformers nor openai/tqdm, and each rule's environment stays small.
A new back-end is one module here plus one line in ``BACKENDS``.
"""

from __future__ import annotations

import logging
import os
from importlib import import_module

from harmdrift.backends.base import BackendConfig, BackendError, ChatBackend, Completion
from harmdrift.backends.cache import DEFAULT_CACHE_DIR, CachedBackend, ResponseCache, cache_key
from harmdrift.core.io import write_json

logger = logging.getLogger(__name__)

BACKENDS: dict[str, str] = {
    "hf": "harmdrift.backends.hf_backend:make_hf_backend",  # a local, hub or embedded model
    "openai": "harmdrift.backends.openai_backend:make_openai_backend",  # any OpenAI-compatible server
    "scripted": "harmdrift.backends.scripted:make_scripted_backend",  # canned replies, unit tests only
}


def backend_factory(name: str):
    """The factory registered for back-end ``name``, imported on first use."""
    if name not in BACKENDS:
        raise ValueError(f"config key backend: unknown backend {name!r}; known: {sorted(BACKENDS)}")
    module, function = BACKENDS[name].split(":")
    return getattr(import_module(module), function)


__all__ = [
    "BACKENDS",
    "DEFAULT_CACHE_DIR",
    "BackendConfig",
    "BackendError",
    "CachedBackend",
    "ChatBackend",
    "Completion",
    "ResponseCache",
    "backend_factory",
    "cache_key",
    "get_backend",
    "write_usage",
]


def get_backend(
    cfg: BackendConfig, cache_dir: str | os.PathLike | None = None, *, models_root: str | None = None
) -> ChatBackend:
    """Build the configured back-end, behind the response cache when caching is on.

    Args:
        cfg: the back-end's config section.
        cache_dir: folder of the response cache; None turns caching off.
        models_root: the run's converted embedded models (local back-ends only).

    Raises:
        ValueError: for a back-end name that is not registered.
    """
    factory = backend_factory(cfg.backend)
    backend = factory(cfg, models_root=models_root) if cfg.backend == "hf" else factory(cfg)
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
