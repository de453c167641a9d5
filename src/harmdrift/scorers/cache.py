"""A scorer wrapper that keeps every score in the shared SQLite store, so re-runs score only new texts."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from harmdrift.core.io import canonical_json
from harmdrift.scorers.base import ToxicityScorer, _batches

logger = logging.getLogger(__name__)

CACHE_FILE = "toxicity.sqlite"


_SCHEMA = "CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, scores TEXT NOT NULL)"
_SQL_BATCH = 500  # stays under SQLite's limit on bound variables per statement


def score_key(describe: dict, text: str) -> str:
    """The hex sha256 of the scorer's provenance and the text, as canonical JSON."""

    return hashlib.sha256(canonical_json([describe, text]).encode("utf-8")).hexdigest()


class CachedScorer:
    """A scorer whose results persist in ``<cache_dir>/toxicity.sqlite``; only misses are scored.

    Each batch of new scores is committed as soon as it is computed, so an interrupted job
    keeps what it finished. Keys include the scorer's ``describe()``, so a different model,
    checkpoint or truncation never reuses another's scores.
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
        self.path = Path(cache_dir) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Several jobs may share the file: WAL lets readers work beside a writer and the
        # busy timeout queues writers (see backends/cache.py for the same choice).
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)

    def describe(self) -> dict:
        return self._describe

    def _lookup(self, keys: list[str]) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        for chunk in _batches(keys, _SQL_BATCH):
            rows = self._conn.execute(
                f"SELECT key, scores FROM scores WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update((key, json.loads(scores)) for key, scores in rows)
        return found

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Scores for ``texts`` in order: cached ones read back, the rest scored and stored."""
        keys = [score_key(self._describe, text) for text in texts]
        found = self._lookup(list(dict.fromkeys(keys)))
        # A text repeated in one call is scored once.
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        self.hits += len(texts) - sum(1 for key in keys if key in missing)
        self.misses += len(missing)
        pending = list(missing.items())
        for chunk in _batches(pending, self.batch_size):
            scored = self.scorer.score([text for _, text in chunk])
            rows = [(key, json.dumps(s, sort_keys=True)) for (key, _), s in zip(chunk, scored, strict=True)]
            self._store(rows)
            found.update((key, s) for (key, _), s in zip(chunk, scored, strict=True))
        if texts:
            logger.info("toxicity cache: %d hits, %d misses so far", self.hits, self.misses)
        return [found[key] for key in keys]

    def _store(self, rows: list[tuple[str, str]]) -> None:
        """Commit one batch now, so an interrupted job keeps every batch it finished."""
        # IMMEDIATE takes the write lock up front: a busy writer is waited for, not failed on.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT OR REPLACE INTO scores (key, scores) VALUES (?, ?)", rows)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()
