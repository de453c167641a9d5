"""One persistent key-value store (SQLite, standard library) for every cache of the pipeline.

The LLM response cache and the toxicity-score cache both keep JSON values under sha256 keys
in a file under ``cache_dir``, outside ``results/``, so ``snakemake --forceall`` re-runs the
jobs without paying again for replies or scores. Several jobs, of one run or of several runs,
may share a file at once: WAL mode lets readers work beside a writer and a busy timeout makes
writers queue instead of failing. (WAL needs a local disk: on NFS its locking is not to be
trusted.)

A damaged file (a copy cut short, a disk that lost writes, another program writing into it)
is found when the store opens or when a read or write hits the damage. It is then moved
aside, with its ``-wal`` and ``-shm`` companions, to ``<name>.corrupt-<UTC time>`` in the same
folder for inspection, a warning naming it goes to the job's log, and the store starts empty:
a cache only costs recomputing what it held, while a wrong cached value would be a wrong result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

try:
    import fcntl
except ImportError:  # not POSIX: setting a file aside is then not serialised between processes
    fcntl = None

logger = logging.getLogger(__name__)

_SQL_BATCH = 500  # stays under SQLite's limit on bound variables per statement
_COMPANIONS = ("", "-wal", "-shm")
# Primary result codes for a file that is damaged or not SQLite at all. Busy and locked
# (contention) are not among them, nor are I/O errors (a full disk says nothing of the file).
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}

T = TypeVar("T")


class _Damaged(sqlite3.DatabaseError):
    """SQLite's own check of the file found damage."""


def _code(err: sqlite3.Error) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # extended code -> primary code


def _is_corrupt(err: sqlite3.Error) -> bool:
    return isinstance(err, _Damaged) or _code(err) in _CORRUPT_CODES


def _is_busy(err: sqlite3.Error) -> bool:
    return _code(err) in _BUSY_CODES


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file now at ``path``; None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def _folder_lock(folder: Path, exclusive: bool) -> Iterator[None]:
    """Lock ``folder``: exclusive to set a file aside, shared to open one and note which it is.

    Best effort: where the folder cannot be locked (no fcntl, or NFS, which refuses flock on a
    folder) the store goes on without, as it did before there was a lock.
    """
    fd = None
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fd = os.open(folder, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


class KeyValueStore:
    """JSON values by string key in one table of one SQLite file."""

    def __init__(self, path: str | Path, table: str, busy_timeout_s: float = 60.0) -> None:
        """Open (and create if needed) ``table`` in the SQLite file at ``path``.

        A damaged file is set aside and an empty one started (see the module's docstring).

        Args:
            path: the database file; its folder is created if missing.
            table: the table's name (a plain identifier).
            busy_timeout_s: how long a write waits for another process's write to finish.
        """
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
        self.path = Path(path)
        self.table = table
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection
        self._file: tuple[int, int] | None = None
        self._open()

    def _open(self) -> None:
        """Connect; a damaged file is set aside once and a fresh one opened in its place."""
        set_aside = False
        for _ in range(5):
            try:
                self._connect()
                return
            except sqlite3.DatabaseError as err:
                if _file_id(self.path) != self._file:
                    continue  # another job set the file aside meanwhile: open what is there now
                if set_aside or not _is_corrupt(err):
                    err.add_note(f"SQLite file: {self.path}")
                    raise
                self._set_aside(err)
                set_aside = True
        raise sqlite3.OperationalError(f"{self.path}: replaced by other jobs again and again")

    def _connect(self) -> None:
        # Under the shared lock no one sets the file aside, so the file noted is the one opened,
        # and the "-wal" and "-shm" that SQLite opens by name during set-up are its own.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _folder_lock(self.path.parent, exclusive=False):
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            self._file = _file_id(self.path)
            try:
                self._retry_busy(lambda: self._setup(conn))
            except BaseException:
                conn.close()
                raise
        self._conn = conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL and creating the table take the write lock, and two processes doing
        # it at once on a new file can get "database is locked" at once, without the busy
        # timeout being waited: _retry_busy waits instead. WAL is stored in the file, so once
        # any process set it this only reads it.
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes in WAL mode; a power cut may lose the
        # last entries, which only means computing them again.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        # quick_check reads every page once: 14 ms on a store of 50k small entries (16 MB), 58 ms
        # on 50k entries of 1.5 kB (107 MB), warm page cache, 2-core AMD EPYC; integrity_check
        # took 2-4x as long. Cheap beside any job that opens a cache, and it finds a file cut
        # short before any of it is read.
        result = conn.execute("PRAGMA quick_check(1)").fetchone()
        if result != ("ok",):
            raise _Damaged(f"quick_check: {result[0] if result else 'no answer'}")

    def _retry_busy(self, op: Callable[[], T]) -> T:
        """``op()``, tried again while SQLite says busy, until the busy timeout has passed."""
        deadline = time.monotonic() + self.busy_timeout_s
        pause = 0.005
        while True:
            try:
                return op()
            except sqlite3.OperationalError as err:
                if not _is_busy(err) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def _set_aside(self, err: sqlite3.Error) -> None:
        """Move the damaged file and its companions to ``<name>.corrupt-<UTC time>``; keep them."""
        # Closed first, so this process holds no SQLite lock while it waits for the folder's.
        # (SQLite checkpoints and deletes the "-wal" on close only when no one else has the file
        # open and it has not moved.)
        with contextlib.suppress(sqlite3.Error, AttributeError):
            self._conn.close()
        with _folder_lock(self.path.parent, exclusive=True):
            if _file_id(self.path) != self._file:
                logger.warning("cache file %s is damaged (%s); another job set it aside", self.path, err)
                return
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            n = 1
            while any(Path(f"{target}{suffix}").exists() for suffix in _COMPANIONS):
                n += 1
                target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            for suffix in _COMPANIONS:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}{suffix}", f"{target}{suffix}")
        logger.warning(
            "cache file %s is damaged (%s): moved it aside to %s (kept for inspection) and "
            "started an empty cache; its entries will be computed again",
            self.path,
            err,
            target,
        )

    def _call(self, op: Callable[[], T]) -> T:
        """``op()`` on the connection; on a damaged or replaced file, once more on a fresh store."""
        if _file_id(self.path) != self._file:
            self._follow()
        try:
            return self._retry_busy(op)
        except sqlite3.DatabaseError as err:
            if _file_id(self.path) != self._file:
                self._follow()  # e.g. writes to a file set aside fail as "readonly"
            elif _is_corrupt(err):
                self._set_aside(err)
                self._open()
            else:
                err.add_note(f"SQLite file: {self.path}")
                raise
        return self._retry_busy(op)

    def _follow(self) -> None:
        """Reopen at ``path``: another job set the file aside (or it was deleted)."""
        logger.info("cache file %s was replaced by another job; reopening it", self.path)
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        self._open()

    def get_many(self, keys: Sequence[str]) -> dict[str, object]:
        """The stored values among ``keys``, decoded from JSON, by key.

        A value that is not valid UTF-8 JSON is left out (a miss, computed and stored again)
        and logged: a damaged value is never handed on.
        """
        unique = list(dict.fromkeys(keys))

        def read() -> dict[str, object]:
            found: dict[str, object] = {}
            bad: list[str] = []
            for start in range(0, len(unique), _SQL_BATCH):
                chunk = unique[start : start + _SQL_BATCH]
                # As bytes, so a value that is not UTF-8 is one bad value, not an error for all.
                rows = self._conn.execute(
                    f"SELECT key, CAST(value AS BLOB) FROM {self.table} "
                    f"WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for key, value in rows:
                    try:
                        found[key] = json.loads(value)
                    except (ValueError, TypeError):
                        bad.append(key)
            if bad:
                logger.warning(
                    "cache file %s: %d value(s) are not valid JSON (keys %s); treated as misses",
                    self.path,
                    len(bad),
                    ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else ""),
                )
            return found

        return self._call(read)

    def put_many(self, entries: Iterable[tuple[str, object]]) -> int:
        """Store ``(key, value)`` pairs in one transaction, committed before returning.

        Returns:
            The number of entries stored.
        """
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        rows = [(key, json.dumps(value, sort_keys=True, ensure_ascii=False), now) for key, value in entries]
        if not rows:
            return 0

        def write() -> None:
            # IMMEDIATE takes the write lock up front, so a busy writer is waited for (busy
            # timeout) instead of failing half-way through the transaction.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (e.g. on damage); never hide the first error.
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise

        self._call(write)
        return len(rows)

    def __len__(self) -> int:
        return self._call(lambda: self._conn.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> KeyValueStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
