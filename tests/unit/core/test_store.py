"""The SQLite key-value store behind the caches: damaged files set aside, never a wrong value
(several processes sharing one file: tests/workflow/core/test_store.py)."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
from pathlib import Path

import pytest

from harmdrift.core import store as store_module
from harmdrift.core.store import KeyValueStore


def value_of(key: str) -> dict:
    """The one right value for ``key``: cache keys are content hashes, so every writer agrees."""
    return {"key": key, "text": key * (1 + int(key[1:]) % 7), "tokens": int(key[1:])}


def filled_store(path: Path, n: int, pad: int = 0) -> None:
    with KeyValueStore(path, "things") as store:
        store.put_many((f"k{i}", value_of(f"k{i}") | ({"pad": "x" * pad} if pad else {})) for i in range(n))


def set_aside(path: Path) -> list[Path]:
    """The damaged database files moved aside from ``path`` (not their -wal and -shm)."""
    moved = path.parent.glob(f"{path.name}.corrupt-*")
    return sorted(p for p in moved if not p.name.endswith(("-wal", "-shm")))


def assert_fresh_and_working(store: KeyValueStore) -> None:
    assert len(store) == 0
    assert store.put_many([("k1", value_of("k1"))]) == 1
    assert store.get_many(["k1", "k2"]) == {"k1": value_of("k1")}


# --- damaged files -------------------------------------------------------------------------------


def test_a_garbled_file_is_set_aside_and_an_empty_store_started(tmp_path, caplog):
    path = tmp_path / "cache" / "llm.sqlite"
    path.parent.mkdir()
    garbage = random.Random(0).randbytes(8192)
    path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="harmdrift"), KeyValueStore(path, "things") as store:
        assert_fresh_and_working(store)
    (aside,) = set_aside(path)
    assert aside.read_bytes() == garbage  # kept as it was, for inspection
    assert aside.parent == path.parent and aside.name.startswith("llm.sqlite.corrupt-")
    assert str(path) in caplog.text and str(aside) in caplog.text


def test_a_store_cut_in_half_is_set_aside_and_an_empty_store_started(tmp_path, caplog):
    path = tmp_path / "toxicity.sqlite"
    filled_store(path, 3000)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger="harmdrift"), KeyValueStore(path, "things") as store:
        assert_fresh_and_working(store)
    (aside,) = set_aside(path)
    assert aside.read_bytes() == whole[: len(whole) // 2]
    assert str(path) in caplog.text and "damaged" in caplog.text


def test_damage_found_by_a_read_sets_the_file_aside_and_reads_as_misses(tmp_path, caplog):
    path = tmp_path / "s.sqlite"
    filled_store(path, 3000, pad=1000)  # 4 MB, past SQLite's page cache: reads go to the disk
    keys = [f"k{i}" for i in range(3000)]
    with KeyValueStore(path, "things") as store:
        size = path.stat().st_size
        with path.open("r+b") as handle:  # the middle pages overwritten in place
            handle.seek(size // 4 // 4096 * 4096)
            handle.write(b"\xff" * (size // 2 // 4096 * 4096))
        with caplog.at_level(logging.WARNING, logger="harmdrift"):
            assert store.get_many(keys) == {}
            assert_fresh_and_working(store)
    assert len(set_aside(path)) == 1
    assert str(path) in caplog.text


def test_a_value_that_is_not_json_is_a_miss_and_is_stored_again(tmp_path, caplog):
    path = tmp_path / "s.sqlite"
    filled_store(path, 3)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE things SET value = '{\"text\": \"cut sh' WHERE key = 'k1'")
    conn.close()
    with caplog.at_level(logging.WARNING, logger="harmdrift"), KeyValueStore(path, "things") as store:
        assert store.get_many(["k0", "k1", "k2"]) == {"k0": value_of("k0"), "k2": value_of("k2")}
        assert str(path) in caplog.text and "k1" in caplog.text
        store.put_many([("k1", value_of("k1"))])
        assert store.get_many(["k1"]) == {"k1": value_of("k1")}
    assert set_aside(path) == []  # the file itself is sound: only that value was lost


def test_a_value_that_is_not_utf8_is_a_miss(tmp_path, caplog):
    path = tmp_path / "s.sqlite"
    filled_store(path, 2)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE things SET value = CAST(X'7B2261223AFF7D' AS TEXT) WHERE key = 'k1'")
    conn.close()
    with caplog.at_level(logging.WARNING, logger="harmdrift"), KeyValueStore(path, "things") as store:
        assert store.get_many(["k0", "k1"]) == {"k0": value_of("k0")}
    assert str(path) in caplog.text and "k1" in caplog.text


def test_a_busy_file_is_not_taken_for_a_damaged_one(tmp_path):
    path = tmp_path / "s.sqlite"
    filled_store(path, 3)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write, never finishing
    try:
        with KeyValueStore(path, "things", busy_timeout_s=0.2) as store:
            assert store.get_many(["k0"]) == {"k0": value_of("k0")}  # WAL: reads go on
            with pytest.raises(sqlite3.OperationalError, match="locked") as err:
                store.put_many([("k9", 9)])
        assert str(path) in "".join(err.value.__notes__)
    finally:
        other.close()
    assert set_aside(path) == []


def test_a_store_follows_a_file_another_job_set_aside(tmp_path):
    path = tmp_path / "s.sqlite"
    filled_store(path, 3)
    with KeyValueStore(path, "things") as store:
        for suffix in ("", "-wal", "-shm"):  # what another job's store does to a damaged file
            if Path(f"{path}{suffix}").exists():
                os.replace(f"{path}{suffix}", f"{path}.corrupt-x{suffix}")
        filled_store(path, 1)
        assert store.get_many(["k0", "k1"]) == {"k0": value_of("k0")}
        store.put_many([("k5", value_of("k5"))])
    with KeyValueStore(path, "things") as store:
        assert len(store) == 2


def test_a_folder_that_cannot_be_locked_still_holds_a_store(tmp_path, monkeypatch):
    def refuse(fd, operation):
        raise OSError(9, "Bad file descriptor")  # what NFS answers to flock on a folder

    monkeypatch.setattr(store_module.fcntl, "flock", refuse)
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with KeyValueStore(path, "things") as store:
        assert_fresh_and_working(store)
    assert len(set_aside(path)) == 1
