"""Atomic writes: whole files only, the permissions of a plain open(), nothing left on failure."""

from __future__ import annotations

import json
import os
import stat

import pytest

from harmdrift.core import io
from harmdrift.core.io import atomic_write, read_jsonl, share_like_open, write_json, write_jsonl

RECORDS = [{"id": "a", "text": "café"}, {"id": "b", "n": 2}]


def write_with_atomic_write(path, obj) -> None:
    with atomic_write(path) as handle:
        handle.write(json.dumps(obj))


WRITERS = {"write_jsonl": write_jsonl, "write_json": write_json, "atomic_write": write_with_atomic_write}


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_written_files_get_the_mode_of_a_plain_open(tmp_path, umask, writer):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    writer(tmp_path / "out" / "file", RECORDS)
    assert mode(tmp_path / "out" / "file") == 0o666 & ~umask == mode(plain)


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_private_file_written_again_becomes_readable(tmp_path, umask, writer):
    path = tmp_path / "file"
    path.write_text("old")
    path.chmod(0o600)  # as the old mkstemp-based writers left it
    writer(path, RECORDS)
    assert mode(path) == 0o666 & ~umask


def test_the_bytes_written_are_unchanged(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", RECORDS)
    assert (
        tmp_path / "a.jsonl"
    ).read_bytes() == '{"id": "a", "text": "café"}\n{"id": "b", "n": 2}\n'.encode()
    write_json(tmp_path / "a.json", {"b": 1, "a": "é"})
    assert (tmp_path / "a.json").read_bytes() == '{\n  "a": "é",\n  "b": 1\n}\n'.encode()
    with atomic_write(tmp_path / "a.csv", newline="") as handle:
        handle.write("x,y\r\n1,2\n")
    assert (tmp_path / "a.csv").read_bytes() == b"x,y\r\n1,2\n"


def failing_records():
    yield RECORDS[0]
    raise RuntimeError("the source broke half-way")


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, RECORDS[1:])
    with pytest.raises(RuntimeError, match="half-way"):
        write_jsonl(path, failing_records())
    assert read_jsonl(path) == RECORDS[1:]  # never the half-written one
    with pytest.raises(TypeError):
        write_json(tmp_path / "b.json", {"not json": object()})
    assert not (tmp_path / "b.json").exists()
    with pytest.raises(KeyError), atomic_write(tmp_path / "c.txt") as handle:
        handle.write("half")
        raise KeyError("stop")
    assert not (tmp_path / "c.txt").exists()
    assert leftovers(tmp_path) == []


def test_a_failed_replace_removes_the_temp_file(tmp_path, monkeypatch):
    def fail(src, dst):
        raise PermissionError(f"cannot replace {dst}")

    monkeypatch.setattr(io.os, "replace", fail)
    with pytest.raises(PermissionError):
        write_jsonl(tmp_path / "a.jsonl", RECORDS)
    assert list(tmp_path.iterdir()) == []


def test_a_stray_file_with_the_temp_name_is_neither_used_nor_overwritten(tmp_path, monkeypatch):
    names = iter(["0000aaaa", "0000aaaa", "1111bbbb"])
    monkeypatch.setattr(io.secrets, "token_hex", lambda n: next(names))
    stray = tmp_path / ".a.jsonl.0000aaaa.tmp"
    stray.write_text("someone else's")
    write_jsonl(tmp_path / "a.jsonl", RECORDS)
    assert stray.read_text() == "someone else's"
    assert read_jsonl(tmp_path / "a.jsonl") == RECORDS
    assert leftovers(tmp_path) == [stray.name]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_a_library_wrote_private_get_the_mode_open_gives(tmp_path, umask):
    """safetensors writes weights 0600; share_like_open gives them 0o666 less the umask."""
    private = tmp_path / "adapter_model.safetensors"
    private.write_bytes(b"weights")
    os.chmod(private, 0o600)
    old = os.umask(umask)
    try:
        share_like_open(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o666 & ~umask
