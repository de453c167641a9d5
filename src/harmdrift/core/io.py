"""Atomic file writes, JSONL/JSON reading with line-numbered errors, and hashing."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def canonical_json(obj: object) -> str:
    """JSON with sorted keys and no whitespace: equal objects give byte-equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class DataError(ValueError):
    """Bad input data; the message names the file and, where known, the line."""


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-blank line of a JSONL file.

    Raises:
        DataError: naming the file and line when a line is not a JSON object.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a whole JSONL file into a list of dicts (see :func:`iter_jsonl`)."""
    return [record for _, record in iter_jsonl(path)]


# O_EXCL: never open a file someone else made; O_NOFOLLOW: nor write through a planted link.
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create a new, empty temp file beside ``path``: ``(descriptor, temp path)``.

    Mode 0o666 is asked for and the kernel takes the umask (or the folder's default ACL) off,
    exactly as for a plain ``open()``; ``tempfile.mkstemp`` would make it 0o600, private.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temp file name for {path.name}")


@contextmanager
def atomic_write(path: str | os.PathLike, newline: str | None = None) -> Iterator[TextIO]:
    """A UTF-8 text handle whose file appears at ``path`` whole, or not at all.

    Writes go to a temp file in the same folder that replaces ``path`` once closed, so a crash
    or an error never leaves a half-written file under the final name; on error the temp file
    is removed and ``path`` keeps what it had. The file gets the permissions a plain ``open()``
    would give it, so colleagues can read results as usual.

    Args:
        path: the final file; its folder is created if missing.
        newline: as for ``open()`` ("" for CSV writers, which write their own line ends).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def share_like_open(folder: str | os.PathLike) -> None:
    """Give every file in ``folder`` the mode a plain ``open()`` would: 0o666 less the umask.

    For files a library wrote itself: safetensors writes its weights 0600, so adapters and
    converted models were private on a shared cluster. The umask is read by setting it and
    setting it back, which a job does once, before or after its work, not while other
    threads create files.
    """
    umask = os.umask(0o022)
    os.umask(umask)
    for path in Path(folder).iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~umask)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically (see :func:`atomic_write`), one JSON object a line.

    Returns:
        The number of records written.
    """
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write one JSON document atomically, pretty-printed for people to read."""
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False, sort_keys=True)
        handle.write("\n")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (streamed, so large weights do not fill memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def files_sha256(paths: Iterable[Path]) -> str:
    """One hex sha256 over each file's name and content hash, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def json_sha256(obj: object) -> str:
    """Hex sha256 of ``obj`` as canonical JSON: a cache key that any equal value reproduces."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def parse_bool(value: object, where: str) -> bool:
    """A boolean table cell (True/False, 1/0, yes/no; empty is False), read the way pandas wrote it.

    Raises:
        DataError: naming ``where`` (file, line and column) for anything else.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"{where} must be True or False, got {value!r}")
