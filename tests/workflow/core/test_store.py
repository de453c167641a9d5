"""Several processes on one SQLite key-value store (the single-process checks: tests/unit/core)."""

from __future__ import annotations

import multiprocessing
import random
import time
import traceback
from pathlib import Path

from harmdrift.core.store import KeyValueStore


def value_of(key: str) -> dict:
    """The one right value for ``key``: cache keys are content hashes, so every writer agrees."""
    return {"key": key, "text": key * (1 + int(key[1:]) % 7), "tokens": int(key[1:])}


def set_aside(path: Path) -> list[Path]:
    """The damaged database files moved aside from ``path`` (not their -wal and -shm)."""
    moved = path.parent.glob(f"{path.name}.corrupt-*")
    return sorted(p for p in moved if not p.name.endswith(("-wal", "-shm")))


N_PROCESSES = 4
N_NEW_FILES = 20
N_KEYS = 300
ROUNDS = 25


def _share_one_file(path: str, index: int, start, results) -> None:
    """Open a damaged file together, create new files together, then write and read overlapping
    keys in one; report values that came back wrong, or the error."""
    try:
        rng = random.Random(index)
        wrong: list[str] = []
        start.wait()
        with KeyValueStore(Path(path).with_name("damaged.sqlite"), "things", busy_timeout_s=30) as store:
            store.put_many([(f"k{index}", value_of(f"k{index}"))])
        for n in range(N_NEW_FILES):
            start.wait()  # all create the same new file at once
            with KeyValueStore(Path(path).with_name(f"new{n}.sqlite"), "things", busy_timeout_s=30) as store:
                store.put_many([(f"k{index}", value_of(f"k{index}"))])
        start.wait()
        with KeyValueStore(path, "things", busy_timeout_s=30) as store:
            for _ in range(ROUNDS):
                written = [f"k{rng.randrange(N_KEYS)}" for _ in range(20)]
                store.put_many((key, value_of(key)) for key in written)
                wrong += [key for key in written if store.get_many([key]).get(key) != value_of(key)]
                probe = [f"k{rng.randrange(N_KEYS)}" for _ in range(60)]
                wrong += [key for key, value in store.get_many(probe).items() if value != value_of(key)]
        results.put((index, wrong, None))
    except BaseException:
        start.abort()  # the others stop waiting for this one
        results.put((index, [], traceback.format_exc()))


def test_several_processes_share_one_file(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    path = tmp_path / "cache" / "shared.sqlite"
    path.parent.mkdir()
    damaged = path.with_name("damaged.sqlite")
    damaged.write_bytes(random.Random(1).randbytes(8192))
    start, results = ctx.Barrier(N_PROCESSES, timeout=30), ctx.Queue()
    workers = [
        ctx.Process(target=_share_one_file, args=(str(path), i, start, results), daemon=True)
        for i in range(N_PROCESSES)
    ]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    assert [error for _, _, error in reports if error] == []
    assert [wrong for _, wrong, _ in reports if wrong] == []
    assert all(worker.exitcode == 0 for worker in workers)
    with KeyValueStore(path, "things") as store:
        found = store.get_many([f"k{i}" for i in range(N_KEYS)])
    assert found and all(value == value_of(key) for key, value in found.items())
    with KeyValueStore(path.with_name(f"new{N_NEW_FILES - 1}.sqlite"), "things") as store:
        assert len(store) == N_PROCESSES
    with KeyValueStore(damaged, "things") as store:
        assert len(store) == N_PROCESSES
    assert len(set_aside(damaged)) == 1  # by one process; the others followed it
    assert set_aside(path) == []
    assert time.monotonic() - began < 30
