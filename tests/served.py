"""A real ``transformers serve`` for the tests that talk to one (the OpenAI back-end in
tests/workflow/backends, the API fine-tune pair in tests/e2e): start, health check, stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The variable the tests' back-ends read their key from (the server checks none).
KEY_ENV = "HARMDRIFT_TEST_SERVER_KEY"
START_DEADLINE_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def served_requests(log: Path) -> int:
    """Chat requests the server has answered, from uvicorn's access log."""
    return log.read_text(errors="replace").count("POST /v1/chat/completions")


@contextmanager
def transformers_serve(log: Path, model: str | None = None) -> Iterator[str]:
    """``transformers serve`` on a free local port, pinned to ``model`` or (None) loading whatever
    folder a request names, offline, its output in ``log``; yields the ``.../v1`` URL. Skips the
    test when the CLI is not installed, fails it when the server does not come up."""
    cli = Path(sys.executable).with_name("transformers")
    if not cli.exists():
        pytest.skip("the transformers CLI (transformers[serving]) is not installed")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [str(cli), "serve", *([model] if model else []), "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu"]  # fmt: skip
    with log.open("w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while not healthy(base):
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.perf_counter() - started > START_DEADLINE_S:
                pytest.fail(
                    f"transformers serve not healthy after {START_DEADLINE_S}s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        print(f"transformers serve healthy after {time.perf_counter() - started:.1f}s", file=sys.stderr)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
