"""Back-end checks that need a second Python process: what a fresh interpreter imports, and
two processes writing one reply cache (the rest of the back-ends: tests/unit/backends)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from harmdrift.backends import ResponseCache


def test_importing_the_backend_interface_loads_no_backend_or_heavy_library():
    # The registry is lazy: the interface and the cache must import without openai, tqdm,
    # torch or any back-end module, so light rule environments stay light.
    code = (
        "import sys; import harmdrift.backends.base, harmdrift.backends; "
        "heavy = [m for m in ('openai', 'tqdm', 'torch', 'transformers', "
        "'harmdrift.backends.openai_backend', "
        "'harmdrift.backends.hf_backend') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


WRITER = textwrap.dedent(
    """
    import sys
    from harmdrift.backends.base import Completion
    from harmdrift.backends.cache import ResponseCache

    cache = ResponseCache(sys.argv[1], busy_timeout_s=30)
    for i in range(60):
        cache.put_many([(f"{sys.argv[2]}-{i}", Completion(str(i), 1, 1, "stop"), "{}")])
    """
)


def test_two_processes_can_write_the_same_cache_file(tmp_path):
    ResponseCache(tmp_path).close()  # create the file and switch it to WAL first
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name], stderr=subprocess.PIPE)
        for name in ("p1", "p2")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    cache = ResponseCache(tmp_path)
    assert len(cache) == 120
    assert cache._store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
