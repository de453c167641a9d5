"""The open-domain query set: loading, validating and the seeded stratified sample."""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np

from harmdrift.core.io import DataError, iter_jsonl, write_jsonl
from harmdrift.core.vocab import DIFFERENTIATE, DOMAINS, OPEN_EQUAL, OPEN_EXPECTED

logger = logging.getLogger(__name__)

SUBSETS = ("all", DIFFERENTIATE, OPEN_EQUAL)
_REQUIRED = ("id", "domain", "expected", "query", "difference")


# --- the query set ------------------------------------------------------------------------


def _check_row(path: Path, lineno: int, row: dict, seen: set[str]) -> None:
    """Raise DataError naming file:line:key for the first problem with one query row."""
    where = f"{path}:{lineno}"
    for key in _REQUIRED:
        if key not in row:
            raise DataError(f"{where}: missing key {key!r}")
        if not isinstance(row[key], str) or not row[key].strip():
            raise DataError(f"{where}: key {key!r} must be a non-empty string, got {row[key]!r}")
    if row["domain"] not in DOMAINS:
        raise DataError(f"{where}: key 'domain' must be one of {list(DOMAINS)}, got {row['domain']!r}")
    if row["expected"] not in OPEN_EXPECTED:
        raise DataError(
            f"{where}: key 'expected' must be one of {list(OPEN_EXPECTED)}, got {row['expected']!r}"
        )
    if row["id"] in seen:
        raise DataError(f"{where}: key 'id' duplicates an earlier row ({row['id']!r})")


def load_queries(path: str | Path) -> list[dict]:
    """Read and check the open-domain query set.

    Args:
        path: a JSONL file with one query per line (id, domain, expected, query, difference).

    Returns:
        The rows, in file order.

    Raises:
        DataError: naming file:line and the key for a missing or empty field, an unknown
            domain or expectation, or a repeated id; also for an empty file.
    """
    path = Path(path)
    rows, seen = [], set()
    for lineno, row in iter_jsonl(path):
        _check_row(path, lineno, row, seen)
        seen.add(row["id"])
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: the query set is empty")
    return rows


def select_queries(queries: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded subsample stratified by domain x expected, in the original order.

    Each stratum gets a share of ``n`` proportional to its size (largest remainders break
    ties), so a small CPU run keeps the set's balance of domains and expectations.

    Args:
        queries: the full set (from :func:`load_queries`).
        n: how many to keep; None, or n >= len(queries), keeps all.
        seed: seed of the draw within each stratum.

    Raises:
        ValueError: when n < 1.
    """
    if n is None or n >= len(queries):
        return list(queries)
    if n < 1:
        raise ValueError(f"config key open_domain.n_queries: must be >= 1 or null, got {n}")
    strata: dict[tuple[str, str], list[int]] = {}
    for index, row in enumerate(queries):
        strata.setdefault((row["domain"], row["expected"]), []).append(index)
    keys = sorted(strata)
    exact = {k: n * len(strata[k]) / len(queries) for k in keys}
    take = {k: math.floor(exact[k]) for k in keys}
    leftover = n - sum(take.values())
    # Sorted keys and a stable sort make the tie-breaking independent of dict order.
    for k in sorted(keys, key=lambda k: take[k] - exact[k])[:leftover]:
        take[k] += 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for k in keys:
        chosen += rng.choice(strata[k], size=take[k], replace=False).tolist()
    return [queries[i] for i in sorted(chosen)]


def write_query_split(queries_path: str | Path, out_path: str | Path, *, n: int | None, seed: int) -> int:
    """Write the queries every model answers: a stratified sample (see :func:`select_queries`).

    Each row keeps its query fields and gains ``question`` (what the answer prompt's
    ``{question}`` slot shows, via ``harmdrift.prompts.build_messages``) and
    ``benchmark``/``split`` = "open_domain", so the answers flow through the same
    generation code as the benchmark items.

    Args:
        queries_path: the full query set.
        out_path: the JSONL to write.
        n: queries to keep (None = all).
        seed: seed of the sample.

    Returns:
        The number of queries written.
    """
    queries = load_queries(queries_path)
    chosen = select_queries(queries, n, seed)
    rows = ({**q, "question": q["query"], "benchmark": "open_domain", "split": "open_domain"} for q in chosen)
    count = write_jsonl(out_path, rows)
    by_stratum = Counter(f"{q['domain']}/{q['expected']}" for q in chosen)
    logger.info("open-domain queries: %d of %d kept (seed %d): %s", count, len(queries), seed, by_stratum)
    return count
