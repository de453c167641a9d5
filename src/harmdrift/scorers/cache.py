"""A scorer wrapper that keeps every score in the shared SQLite store, so re-runs score only new texts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from harmdrift.core.io import json_sha256
from harmdrift.core.store import KeyValueStore
from harmdrift.scorers.base import ToxicityScorer, batched

logger = logging.getLogger(__name__)

CACHE_FILE = "toxicity.sqlite"


def score_key(describe: dict, text: str) -> str:
    """The hex sha256 of the scorer's provenance and the text, as canonical JSON."""

    return json_sha256([describe, text])


class CachedScorer:
    """A scorer whose results persist in ``<cache_dir>/toxicity.sqlite``; only misses are scored.

    Each batch of new scores is committed as soon as it is computed, so an interrupted job
    keeps what it finished. Keys include the scorer's ``describe()``, so a different model,
    checkpoint or truncation never reuses another's scores.

    What it saves is small on the default profile (embedded scorer, about 0.9 ms a text on the
    2-core AMD EPYC, 2026-12-06): a fresh run reads 360 of its 506 scorings from here (M0's
    explanations in every audit's pairs job and in Stage III), about 0.3 s of 2186 s of job
    time. It is kept because it also gives every job the same number for the same text (M0's
    explanation is screened against each tuned model with one score, whatever threads a job
    ran with), and because the Detoxify and Hugging Face scorers cost far more a text (not
    measured here: their weights are not on this machine).
    """

    def __init__(
        self,
        scorer: ToxicityScorer,
        cache_dir: str | Path,
        batch_size: int = 64,
        busy_timeout_s: float = 60.0,
    ) -> None:
        self.scorer = scorer
        self.labels = scorer.labels
        self.batch_size = batch_size
        self.hits = 0
        self.misses = 0
        # describe() may hash weight files: do it once.
        self._describe = scorer.describe()
        self._store = KeyValueStore(Path(cache_dir) / CACHE_FILE, "toxicity_scores", busy_timeout_s)
        self.path = self._store.path

    def describe(self) -> dict:
        return self._describe

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Scores for ``texts`` in order: cached ones read back, the rest scored and stored."""
        keys = [score_key(self._describe, text) for text in texts]
        found = self._store.get_many(keys)
        # A text repeated in one call is scored once.
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        self.hits += len(texts) - sum(1 for key in keys if key in missing)
        self.misses += len(missing)
        pending = list(missing.items())
        for chunk in batched(pending, self.batch_size):
            scored = self.scorer.score([text for _, text in chunk])
            # Committed per batch, so an interrupted job keeps every batch it finished.
            self._store.put_many((key, s) for (key, _), s in zip(chunk, scored, strict=True))
            found.update((key, s) for (key, _), s in zip(chunk, scored, strict=True))
        if texts:
            logger.info("toxicity cache: %d hits, %d misses so far", self.hits, self.misses)
        return [self._in_label_order(found[key]) for key in keys]

    def _in_label_order(self, scores: dict[str, float]) -> dict[str, float]:
        """One order for every score dict, the scorer's labels', whether it was just computed
        or read back from the store (which sorts keys): records written from a warm cache are
        then byte-identical to those written from a cold one."""
        ordered = {label: scores[label] for label in self.labels if label in scores}
        return ordered | {k: v for k, v in sorted(scores.items()) if k not in ordered}

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        """Close the database connection."""
        self._store.close()
