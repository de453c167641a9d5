"""Prompt sets as this run asks them, answers from an API model, and the chat-format repair set."""

from __future__ import annotations

import json
import logging

from harmdrift.backends.base import BackendError
from harmdrift.core.io import DataError, read_jsonl, write_json, write_jsonl
from harmdrift.data.prompt_sets import load_prompt_set, sample_items
from harmdrift.repair.train_set import weight_copies

logger = logging.getLogger(__name__)

# What a benchmark or open-domain item keeps when it becomes a prompt-set item.
_SPLIT_FIELDS = ("id", "question", "benchmark", "category", "condition", "scenario_id", "gold_label", "split")


def prompt_set_items(source: str, entry: dict, *, name: str) -> list[dict]:
    """The items of prompt set ``name`` (``entry`` its config), in the shape every fine-tune
    job reads: the audit split or the open-domain sample of this run for ``benchmark`` and
    ``open`` (grouped by benchmark, by domain), else the user's file at ``source``."""
    key = f"prompt_sets.{name}"
    fmt = entry["format"]
    if fmt not in ("benchmark", "open"):
        return load_prompt_set(fmt, source, name=name, n=entry["n"], seed=entry["seed"], key=key)
    items = []
    for row in read_jsonl(source):
        item = {k: row.get(k) for k in _SPLIT_FIELDS}
        group = row["benchmark"] if fmt == "benchmark" else row["domain"]
        items.append({**item, "messages": None, "group": group, "prompt_set": name})
    if not items:
        raise DataError(f"{source}: no items for prompt set {name!r}")
    return sample_items(items, entry["n"], entry["seed"], key=key)


def write_prompt_set(source: str, out: str, entry: dict, *, name: str) -> dict:
    """Write prompt set ``name`` as JSONL; returns its counts by group."""
    items = prompt_set_items(source, entry, name=name)
    write_jsonl(out, items)
    groups: dict[str, int] = {}
    for item in items:
        groups[item["group"]] = groups.get(item["group"], 0) + 1
    logger.info("prompt set %s: %d prompts, by group %s", name, len(items), groups)
    return {"items": len(items), "by_group": groups}


class APIAnswerer:
    """An API model in the place of the local back-end that ``generate.answers`` drives.

    The same decoding settings reach both sides of an API pair (seed, temperature, top_p);
    servers draw no per-item streams, so the pairing rests on those and on the provider's
    ``system_fingerprint``, which each record keeps where the server sends one. A request that
    fails after the client's retries stops the job, naming it; the replies that did arrive are
    in the response cache, so a re-run sends only the failed ones again.
    """

    def __init__(self, backend) -> None:
        self.backend = backend

    def render(self, conversation: list[dict]) -> str:
        """The request's messages as sent (no chat template is applied on this side)."""
        return json.dumps(conversation, ensure_ascii=False, sort_keys=True)

    def decoding_settings(self) -> dict:
        return {"backend": "openai"}

    def complete(self, conversations, params, *, keys, stop=None, forced=None, desc=None):
        if forced is not None:
            raise ValueError("an API model gives no forced-choice scores; ask it without them")
        logger.info("%s: %d requests", desc or "answers", len(keys))
        results = self.backend.complete(conversations, params, keys=keys, stop=stop)
        failed = [(key, c.error) for key, c in zip(keys, results, strict=True) if not c.ok]
        if failed:
            key, error = failed[0]
            raise BackendError(
                f"{len(failed)} of {len(keys)} requests failed (first: {key}: {error}); the others are "
                "cached, so re-running the job sends only the failed ones"
            )
        return results


def export_chat_set(examples: str, out: str, summary: str) -> dict:
    """The repair set of an API fine-tune in the chat format providers' fine-tuning endpoints
    take: one ``{"messages": [...]}`` line per example, repeated by its weight as Stage III's
    oversample mode repeats it (half rounds up, at least once; replay examples weigh 1)."""
    lines, weights = [], []
    for example in read_jsonl(examples):
        copies = weight_copies(float(example["weight"]))
        weights.append(copies)
        lines += [{"messages": example["messages"]} for _ in range(copies)]
    write_jsonl(out, lines)
    counts = {"examples": len(weights), "lines": len(lines), "max_copies": max(weights, default=0)}
    write_json(summary, counts)
    logger.info("chat repair set: %s", counts)
    return counts
