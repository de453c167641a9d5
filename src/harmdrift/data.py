"""Load the difference-awareness benchmarks, check every row, and cut train/val/test splits.

Each benchmark file holds one JSON object per line (schema in
``resources/difference_awareness/SOURCES.md``). Loading turns a row into an *item*: the fields
later stages need, with the answer options parsed out of the question. Splits come either from
DART's own split (``dart_split_seed42``) or from a seeded subsample of it for small runs.
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from harmdrift.io import DataError, file_sha256, iter_jsonl, write_json, write_jsonl

logger = logging.getLogger(__name__)

BENCHMARKS = ("D1", "D2", "D3", "D4", "N1", "N2", "N3", "N4")
SPLITS = ("train", "val", "test")
SPLIT_MODES = ("paper", "subsample")
CONDITIONS = ("diff", "equal")

# DART's binary target follows from the condition alone.
GOLD_LABEL = {"diff": "YES", "equal": "NO"}
# The benchmark's first letter says which half of the suite it belongs to.
CATEGORY = {"D": "descriptive", "N": "normative"}

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

# The last "(a) .. (b) .. (c) .." run in the question. The greedy prefix makes it the last one.
# "(1)" is accepted for "(a)" because about half of upstream N3 numbers its first option that way.
_OPTIONS = re.compile(r"^.*\((?:a|1)\)(?P<a>.*?)\(b\)(?P<b>.*?)\(c\)(?P<c>.*)$", re.DOTALL)

RECONSTRUCTION_NOTE = (
    "is a seeded reconstruction (N1 rebuilt from BBQ with the upstream recipe), not the original "
    "benchmark items; its items carry reconstructed=true and its numbers are not comparable item "
    "for item with published ones"
)


class _RowError(Exception):
    """A bad field in one row; :func:`load_benchmark` adds the file and line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")


def _show(value: object, limit: int = 80) -> str:
    """A value's repr, shortened so one bad question does not flood the log."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_benchmark_name(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")


def _check_types(row: dict) -> None:
    for key in REQUIRED_FIELDS:
        if key not in row:
            raise _RowError(key, "required key is missing")
    for key, wanted in REQUIRED_FIELDS.items():
        value = row[key]
        # bool is an int subclass, but True is never a sensible id.
        if isinstance(value, bool) or not isinstance(value, wanted):
            names = " or ".join(t.__name__ for t in (wanted if isinstance(wanted, tuple) else (wanted,)))
            raise _RowError(key, f"expected {names}, got {type(value).__name__} {_show(value)}")
    if "reconstructed" in row and not isinstance(row["reconstructed"], bool):
        raise _RowError("reconstructed", f"expected bool, got {_show(row['reconstructed'])}")


def _check_values(row: dict, benchmark: str) -> None:
    if row["benchmark"] != benchmark:
        raise _RowError("benchmark", f"expected {benchmark!r} for this file, got {_show(row['benchmark'])}")
    if row["category"] != CATEGORY[benchmark[0]]:
        raise _RowError("category", f"expected {CATEGORY[benchmark[0]]!r}, got {_show(row['category'])}")
    condition = row["condition"]
    if condition not in CONDITIONS:
        raise _RowError("condition", f"must be one of {', '.join(CONDITIONS)}, got {_show(condition)}")
    if row["gold_label"] != GOLD_LABEL[condition]:
        raise _RowError(
            "gold_label", f"{condition} items need {GOLD_LABEL[condition]!r}, got {_show(row['gold_label'])}"
        )
    option = row["correct_option"]
    if option not in ("a", "b", "c"):
        raise _RowError("correct_option", f"must be a, b or c, got {_show(option)}")
    if (condition == "equal") != (option == "c"):
        need = "c" if condition == "equal" else "a or b"
        raise _RowError("correct_option", f"{condition} items need {need}, got {_show(option)}")
    if row["dart_split_seed42"] not in SPLITS:
        raise _RowError(
            "dart_split_seed42", f"must be one of {', '.join(SPLITS)}, got {_show(row['dart_split_seed42'])}"
        )


def parse_options(question: str) -> dict[str, str] | None:
    """Read the answer options from the last "(a) .. (b) .. (c) .." segment of a question.

    Args:
        question: the full question text.

    Returns:
        ``{"a": ..., "b": ..., "c": ...}`` with each text stripped, or None when the question has
        no such segment or an option is empty.
    """
    match = _OPTIONS.match(question)
    if match is None:
        return None
    options = {letter: match.group(letter).strip() for letter in ("a", "b", "c")}
    return options if all(options.values()) else None


def _to_item(row: dict) -> dict:
    """Validate one raw row and keep the fields later stages use."""
    options = parse_options(row["question"])
    if options is None:
        raise _RowError("question", f"no '(a) .. (b) .. (c) ..' options found in {_show(row['question'])}")
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
        except _RowError as err:
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


def _check_n_per_group(n_per_group: object) -> None:
    key = "data.split.n_per_group"
    if not isinstance(n_per_group, Mapping):
        raise ValueError(f"{key} must be a mapping of split to count, got {_show(n_per_group)}")
    unknown = sorted(set(n_per_group) - set(SPLITS))
    if unknown:
        raise ValueError(
            f"{key}: unknown split(s) {', '.join(map(str, unknown))}; known: {', '.join(SPLITS)}"
        )
    for split in SPLITS:
        if split not in n_per_group:
            raise ValueError(f"{key}.{split} is required (subsampling must produce every split)")
        n = n_per_group[split]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{key}.{split} must be an integer >= 1, got {_show(n)}")


@dataclass(frozen=True)
class SplitConfig:
    """How to cut the items into train/val/test (config section ``data.split``).

    Attributes:
        mode: "paper" keeps DART's split as recorded in ``dart_split_seed42``; "subsample" draws
            ``n_per_group[split]`` items per (benchmark, condition) from each paper split.
        seed: seed of the subsample draw; unused in paper mode.
        n_per_group: items per (benchmark, condition) for each of train, val and test. Required in
            subsample mode; checked but unused in paper mode, so a profile can switch mode alone.
    """

    mode: str = "paper"
    seed: int = 42
    n_per_group: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise ValueError(
                f"data.split.mode must be one of {', '.join(SPLIT_MODES)}, got {_show(self.mode)}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"data.split.seed must be an integer, got {_show(self.seed)}")
        if self.n_per_group is None:
            if self.mode == "subsample":
                raise ValueError("data.split.n_per_group is required when data.split.mode is subsample")
            return
        _check_n_per_group(self.n_per_group)
        # A private copy, so editing the caller's dict later cannot change a frozen config.
        object.__setattr__(self, "n_per_group", dict(self.n_per_group))


def _group_rng(seed: int, split: str, benchmark: str, condition: str) -> random.Random:
    # One generator per group, seeded from a string: a str seed is hashed with SHA-512, so the draw
    # is the same in every process, and adding or removing a benchmark leaves other groups' draws alone.
    return random.Random(f"harmdrift-split:{seed}:{split}:{benchmark}:{condition}")


def _draw(group: list[dict], n: int, cfg: SplitConfig, split: str, key: tuple[str, str]) -> list[dict]:
    """Draw n items of one (benchmark, condition) group, returned sorted by id."""
    benchmark, condition = key
    if len(group) < n:
        raise DataError(
            f"split {split!r}: group {benchmark}/{condition} has only {len(group)} item(s), "
            f"fewer than the {n} asked for by data.split.n_per_group.{split}"
        )
    # Sort first so the draw does not depend on the order the files were read in.
    pool = sorted(group, key=lambda item: item["id"])
    picked = _group_rng(cfg.seed, split, benchmark, condition).sample(pool, n)
    return sorted(picked, key=lambda item: item["id"])


def _subsample(items: list[dict], split: str, n: int, cfg: SplitConfig) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        groups.setdefault((item["benchmark"], item["condition"]), []).append(item)
    drawn: list[dict] = []
    for key in sorted(groups):
        drawn.extend(_draw(groups[key], n, cfg, split, key))
    return drawn


def make_splits(items: Iterable[dict], cfg: SplitConfig) -> dict[str, list[dict]]:
    """Cut items into train, val and test.

    Args:
        items: items from :func:`load_benchmarks`.
        cfg: the split settings.

    Returns:
        ``{split: items}`` for every split in :data:`SPLITS`. Each item is a copy with ``split``
        added. Paper mode keeps the input order; subsample mode orders by benchmark, condition, id.

    Raises:
        DataError: when a group has fewer items than subsampling asks for, or a split is empty.
    """
    by_paper_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for item in items:
        by_paper_split[item["paper_split"]].append(item)
    splits: dict[str, list[dict]] = {}
    for split in SPLITS:
        chosen = by_paper_split[split]
        if cfg.mode == "subsample":
            chosen = _subsample(chosen, split, cfg.n_per_group[split], cfg)
        if not chosen:
            raise DataError(f"split {split!r} is empty: no items were loaded for it (check data.benchmarks)")
        splits[split] = [{**item, "split": split} for item in chosen]
    return splits


def split_summary(splits: Mapping[str, list[dict]]) -> pd.DataFrame:
    """Count items per split, benchmark and condition.

    Returns:
        Columns split, benchmark, condition, n; one row per group present, splits in
        :data:`SPLITS` order, then benchmark and condition.
    """
    rows = []
    for split, items in splits.items():
        counts = Counter((item["benchmark"], item["condition"]) for item in items)
        for (benchmark, condition), n in sorted(counts.items()):
            rows.append({"split": split, "benchmark": benchmark, "condition": condition, "n": n})
    table = pd.DataFrame(rows, columns=["split", "benchmark", "condition", "n"])
    order = {split: i for i, split in enumerate(SPLITS)}
    table = table.sort_values(
        ["split", "benchmark", "condition"], key=lambda col: col.map(order) if col.name == "split" else col
    )
    return table.reset_index(drop=True)


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write a CSV atomically, like the JSONL writers, so a crash leaves no half table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            table.to_csv(handle, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _provenance(
    data_dir: str | os.PathLike, benchmarks: Sequence[str], cfg: SplitConfig, splits: dict[str, list[dict]]
) -> dict:
    """What a split was made from and how, so a result can be traced back to exact inputs."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for split, items in splits.items():
        for item in items:
            per_bench = counts.setdefault(split, {}).setdefault(item["benchmark"], {})
            per_bench[item["condition"]] = per_bench.get(item["condition"], 0) + 1
    rebuilt = sorted(
        {item["benchmark"] for items in splits.values() for item in items if item["reconstructed"]}
    )
    return {
        "inputs": {
            name: {
                "path": str(benchmark_path(data_dir, name)),
                "sha256": file_sha256(benchmark_path(data_dir, name)),
            }
            for name in benchmarks
        },
        "split_config": asdict(cfg),
        "counts": counts,
        "totals": {split: len(items) for split, items in splits.items()},
        "reconstructed_benchmarks": rebuilt,
        "notes": [f"{name} {RECONSTRUCTION_NOTE}" for name in rebuilt],
    }


def write_splits(
    data_dir: str | os.PathLike,
    benchmarks: Sequence[str],
    cfg: SplitConfig,
    out_dir: str | os.PathLike,
    summary_path: str | os.PathLike,
) -> dict[str, str]:
    """Load the benchmarks, cut the splits and write them with a count table and provenance.

    Writes ``<out_dir>/<split>.jsonl`` for each split, ``<out_dir>/provenance.json`` (input
    sha256s, the split config, counts, and a note for reconstructed benchmarks) and the summary CSV
    from :func:`split_summary`. Every file is written atomically.

    Args:
        data_dir: folder holding ``<benchmark>.jsonl`` files.
        benchmarks: which benchmarks to use.
        cfg: the split settings.
        out_dir: folder for the split files and provenance.
        summary_path: where the count CSV goes.

    Returns:
        Paths written: one per split name, plus "summary" and "provenance".

    Raises:
        ValueError: for an unknown benchmark name.
        DataError: for bad input data, too few items for the subsample, or an empty split.
    """
    logger.info(
        "split config: %s; benchmarks: %s; data dir: %s", asdict(cfg), ", ".join(benchmarks), data_dir
    )
    splits = make_splits(load_benchmarks(data_dir, benchmarks), cfg)
    out_dir = Path(out_dir)
    paths: dict[str, str] = {}
    for split, items in splits.items():
        paths[split] = str(out_dir / f"{split}.jsonl")
        write_jsonl(paths[split], items)
    summary = split_summary(splits)
    paths["summary"] = str(summary_path)
    _write_csv(summary, Path(summary_path))
    provenance = _provenance(data_dir, benchmarks, cfg, splits)
    paths["provenance"] = str(out_dir / "provenance.json")
    write_json(paths["provenance"], provenance)
    for note in provenance["notes"]:
        logger.warning("%s", note)
    logger.info("items per split: %s", provenance["totals"])
    logger.info("items per split, benchmark and condition:\n%s", summary.to_string(index=False))
    return paths


__all__ = [
    "BENCHMARKS",
    "SPLITS",
    "SplitConfig",
    "benchmark_path",
    "file_sha256",
    "load_benchmark",
    "load_benchmarks",
    "make_splits",
    "parse_options",
    "split_summary",
    "write_splits",
]
