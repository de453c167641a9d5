"""The train/val/test splits: DART's recorded split, or a seeded stratified subsample of it."""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from harmdrift.core.io import DataError, atomic_write, file_sha256, write_json, write_jsonl
from harmdrift.core.vocab import SPLITS
from harmdrift.data.load import RECONSTRUCTION_NOTE, benchmark_path, load_benchmarks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitConfig:
    """How to cut the items into train/val/test (config section ``data.split``).

    Attributes:
        mode: "paper" keeps DART's split as recorded in ``dart_split_seed42``; "subsample" draws
            ``n_per_group[split]`` items per (benchmark, condition) from each paper split.
        seed: seed of the subsample draw; unused in paper mode.
        n_per_group: items per (benchmark, condition) for each of train, val and test. Required in
            subsample mode; unused in paper mode (the schema still checks it, so a profile can
            switch mode alone).
    """

    mode: str = "paper"
    seed: int = 42
    n_per_group: dict[str, int] | None = None

    def __post_init__(self) -> None:
        # Types, choices and counts are config/schema.yaml's; only the rule joining mode and
        # n_per_group is left here.
        if self.n_per_group is None:
            if self.mode == "subsample":
                raise ValueError(
                    "config key data.split.n_per_group is required when data.split.mode is subsample"
                )
            return
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
    with atomic_write(path, newline="") as handle:
        table.to_csv(handle, index=False)


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
