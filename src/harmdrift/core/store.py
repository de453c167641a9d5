"""One persistent key-value store (SQLite, standard library) for every cache of the pipeline.

The LLM response cache and the toxicity-score cache both keep JSON values under sha256 keys
in a file under ``cache_dir``, outside ``results/``, so ``snakemake --forceall`` re-runs the
jobs without paying again for replies or scores. Several jobs may share a file at once: WAL
mode lets readers work beside a writer and a busy timeout makes writers queue instead of
failing. (WAL needs a local disk: on NFS its locking is not to be trusted.)
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

_SQL_BATCH = 500  # stays under SQLite's limit on bound variables per statement


class KeyValueStore:
    """JSON values by string key in one table of one SQLite file."""

    def __init__(self, path: str | Path, table: str, busy_timeout_s: float = 60.0) -> None:
        """Open (and create if needed) ``table`` in the SQLite file at ``path``.

        Args:
            path: the database file; its folder is created if missing.
            table: the table's name (a plain identifier).
            busy_timeout_s: how long a write waits for another process's write to finish.
        """
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
        self.path = Path(path)
        self.table = table
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode; writes open their own transaction in put_many.
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes in WAL mode; a power cut may lose the
        # last entries, which only means computing them again.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created_at TEXT NOT NULL)"
        )

    def get_many(self, keys: Sequence[str]) -> dict[str, object]:
        """The stored values among ``keys``, decoded from JSON, by key."""
        found: dict[str, object] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _SQL_BATCH):
            chunk = unique[start : start + _SQL_BATCH]
            rows = self._conn.execute(
                f"SELECT key, value FROM {self.table} WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update((key, json.loads(value)) for key, value in rows)
        return found

    def put_many(self, entries: Iterable[tuple[str, object]]) -> int:
        """Store ``(key, value)`` pairs in one transaction, committed before returning.

        Returns:
            The number of entries stored.
        """
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        rows = [(key, json.dumps(value, sort_keys=True, ensure_ascii=False), now) for key, value in entries]
        if not rows:
            return 0
        # IMMEDIATE takes the write lock up front, so a busy writer is waited for (busy
        # timeout) instead of failing half-way through the transaction.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?)", rows)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return len(rows)

    def __len__(self) -> int:
        return self._conn.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> KeyValueStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
