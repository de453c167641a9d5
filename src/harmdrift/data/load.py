"""Reading and validating the benchmark files (one JSONL per benchmark)."""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from harmdrift.core.io import DataError, iter_jsonl
from harmdrift.core.parsing import MC_OPTIONS
from harmdrift.core.vocab import BENCHMARKS, CATEGORY, CONDITIONS, GOLD_LABEL, SPLITS

REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "benchmark": str,
    "category": str,
    "condition": str,
    "question": str,
    "correct_option": str,
    # Upstream scenario ids are strings, but a bare number is an obvious id too; items store str.
    "scenario_id": (str, int),
    "gold_label": str,
    "dart_split_seed42": str,
}


logger = logging.getLogger(__name__)

# The last "(a) .. (b) .. (c) .." run in the question. The greedy prefix makes it the last one.
# "(1)" is accepted for "(a)" because about half of upstream N3 numbers its first option that way.
_OPTIONS = re.compile(r"^(?P<stem>.*)\((?:a|1)\)(?P<a>.*?)\(b\)(?P<b>.*?)\(c\)(?P<c>.*)$", re.DOTALL)

RECONSTRUCTION_NOTE = (
    "is a seeded reconstruction (N1 rebuilt from BBQ with the upstream recipe), not the original "
    "benchmark items; its items carry reconstructed=true and its numbers are not comparable item "
    "for item with published ones"
)


class RowError(Exception):
    """A bad field in one row; the loader (:func:`load_benchmark`, the prompt-set loaders) adds
    the file and line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")


def show_value(value: object, limit: int = 80) -> str:
    """A value's repr, shortened so one bad question does not flood the log."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_benchmark_name(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")


def _check_types(row: dict) -> None:
    for key in REQUIRED_FIELDS:
        if key not in row:
            raise RowError(key, "required key is missing")
    for key, wanted in REQUIRED_FIELDS.items():
        value = row[key]
        # bool is an int subclass, but True is never a sensible id.
        if isinstance(value, bool) or not isinstance(value, wanted):
            names = " or ".join(t.__name__ for t in (wanted if isinstance(wanted, tuple) else (wanted,)))
            raise RowError(key, f"expected {names}, got {type(value).__name__} {show_value(value)}")
    if "reconstructed" in row and not isinstance(row["reconstructed"], bool):
        raise RowError("reconstructed", f"expected bool, got {show_value(row['reconstructed'])}")


def _check_values(row: dict, benchmark: str) -> None:
    if row["benchmark"] != benchmark:
        raise RowError(
            "benchmark", f"expected {benchmark!r} for this file, got {show_value(row['benchmark'])}"
        )
    if row["category"] != CATEGORY[benchmark[0]]:
        raise RowError("category", f"expected {CATEGORY[benchmark[0]]!r}, got {show_value(row['category'])}")
    condition = row["condition"]
    if condition not in CONDITIONS:
        raise RowError("condition", f"must be one of {', '.join(CONDITIONS)}, got {show_value(condition)}")
    if row["gold_label"] != GOLD_LABEL[condition]:
        raise RowError(
            "gold_label",
            f"{condition} items need {GOLD_LABEL[condition]!r}, got {show_value(row['gold_label'])}",
        )
    option = row["correct_option"]
    if option not in MC_OPTIONS:
        raise RowError("correct_option", f"must be a, b or c, got {show_value(option)}")
    if (condition == "equal") != (option == "c"):
        need = "c" if condition == "equal" else "a or b"
        raise RowError("correct_option", f"{condition} items need {need}, got {show_value(option)}")
    if row["dart_split_seed42"] not in SPLITS:
        raise RowError(
            "dart_split_seed42",
            f"must be one of {', '.join(SPLITS)}, got {show_value(row['dart_split_seed42'])}",
        )


def split_question(question: str) -> tuple[str, dict[str, str]] | None:
    """The stem and the answer options of the last "(a) .. (b) .. (c) .." block of a question.

    Returns:
        ``(stem, {"a": ..., "b": ..., "c": ...})`` with each text stripped, or None when the
        question has no such block or an option is empty. A first marker written "(1)" (as
        upstream N3 sometimes does) counts as "(a)".
    """
    match = _OPTIONS.match(question)
    if match is None:
        return None
    options = {letter: match.group(letter).strip() for letter in MC_OPTIONS}
    return (match.group("stem").strip(), options) if all(options.values()) else None


def parse_options(question: str) -> dict[str, str] | None:
    """The answer options of a question (see :func:`split_question`), or None."""
    parts = split_question(question)
    return None if parts is None else parts[1]


def _to_item(row: dict) -> dict:
    """Validate one raw row and keep the fields later stages use."""
    options = parse_options(row["question"])
    if options is None:
        raise RowError(
            "question", f"no '(a) .. (b) .. (c) ..' options found in {show_value(row['question'])}"
        )
    return {
        "id": row["id"],
        "benchmark": row["benchmark"],
        "category": row["category"],
        "condition": row["condition"],
        "gold_label": row["gold_label"],
        "correct_option": row["correct_option"],
        "question": row["question"],
        "options": options,
        "scenario_id": str(row["scenario_id"]),
        "paper_split": row["dart_split_seed42"],
        "reconstructed": row.get("reconstructed", False),
    }


def load_benchmark(path: str | os.PathLike, benchmark: str) -> list[dict]:
    """Read one benchmark file, checking every row.

    Args:
        path: the benchmark's JSONL file.
        benchmark: the name the rows must carry (one of :data:`BENCHMARKS`).

    Returns:
        Items in file order, each with exactly the keys id, benchmark, category, condition,
        gold_label, correct_option, question, options, scenario_id, paper_split, reconstructed.

    Raises:
        ValueError: for an unknown benchmark name.
        DataError: naming the file, the line and the key, for a missing file, bad JSON, a missing
            key, a wrong type or value, labels that disagree with the condition, a duplicate id, or
            a question whose options cannot be read.
    """
    _check_benchmark_name(benchmark)
    items: list[dict] = []
    first_line: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        try:
            _check_types(row)
            _check_values(row, benchmark)
            item = _to_item(row)
        except RowError as err:
            raise DataError(f"{path}:{lineno}: {err}") from None
        if item["id"] in first_line:
            raise DataError(
                f"{path}:{lineno}: id: duplicate id {item['id']!r}, also on line {first_line[item['id']]}"
            )
        first_line[item["id"]] = lineno
        items.append(item)
    logger.info("loaded %d items of %s from %s", len(items), benchmark, path)
    return items


def benchmark_path(data_dir: str | os.PathLike, benchmark: str) -> Path:
    """Where a benchmark's file lives: ``<data_dir>/<benchmark>.jsonl``."""
    return Path(data_dir) / f"{benchmark}.jsonl"


def load_benchmarks(data_dir: str | os.PathLike, benchmarks: Sequence[str]) -> list[dict]:
    """Read several benchmarks from one folder (see :func:`load_benchmark`).

    Args:
        data_dir: folder holding ``<benchmark>.jsonl`` files.
        benchmarks: names from :data:`BENCHMARKS`, each at most once.

    Returns:
        All items, benchmark after benchmark in the order given.

    Raises:
        ValueError: for an unknown or repeated benchmark name (checked before any file is read).
        DataError: for a missing file (naming its path), any bad row, or an id found in two files.
    """
    for name in benchmarks:
        _check_benchmark_name(name)
    repeated = sorted(name for name, n in Counter(benchmarks).items() if n > 1)
    if repeated:
        raise ValueError(f"benchmark(s) listed more than once: {', '.join(repeated)}")
    items: list[dict] = []
    source: dict[str, Path] = {}
    for name in benchmarks:
        path = benchmark_path(data_dir, name)
        if not path.is_file():
            raise DataError(f"{path}: benchmark file for {name} not found")
        for item in load_benchmark(path, name):
            if item["id"] in source:
                raise DataError(f"{path}: id {item['id']!r} also appears in {source[item['id']]}")
            source[item["id"]] = path
            items.append(item)
    return items
