"""Benchmark loading, row validation and train/val/test splitting."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pytest

from harmdrift.core.io import DataError, file_sha256, read_jsonl
from harmdrift.core.vocab import BENCHMARKS, SPLITS
from harmdrift.data.load import load_benchmark, load_benchmarks, parse_options
from harmdrift.data.splits import SplitConfig, make_splits, split_summary, write_splits

ROOT = Path(__file__).resolve().parents[3]
RESOURCES = ROOT / "resources" / "difference_awareness"

ITEM_KEYS = {
    "id",
    "benchmark",
    "category",
    "condition",
    "gold_label",
    "correct_option",
    "question",
    "options",
    "scenario_id",
    "paper_split",
    "reconstructed",
}

# Per split, how many items of each (benchmark, condition) group the tiny data set holds.
TINY_SIZES = {"train": 4, "val": 3, "test": 3}


def make_row(
    benchmark: str = "D1", condition: str = "diff", index: int = 0, split: str = "test", **extra
) -> dict:
    """A valid benchmark row; keyword arguments override or add fields."""
    row = {
        "id": f"{benchmark}-{condition}-{index:04d}",
        "benchmark": benchmark,
        "category": "descriptive" if benchmark.startswith("D") else "normative",
        "condition": condition,
        "index_in_source": index,
        "question": f"Which group fits case {index}?\n(a) group one (b) group two (c) neither group",
        "correct_option": "a" if condition == "diff" else "c",
        "scenario_id": str(index),
        "gold_label": "YES" if condition == "diff" else "NO",
        "dart_split_seed42": split,
    }
    row.update(extra)
    return row


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def tiny_rows(benchmark: str, **extra) -> list[dict]:
    rows = []
    for condition in ("diff", "equal"):
        index = 0
        for split, n in TINY_SIZES.items():
            for _ in range(n):
                rows.append(make_row(benchmark, condition, index, split, **extra))
                index += 1
    return rows


@pytest.fixture
def tiny_dir(tmp_path) -> Path:
    """Benchmarks D1, D2 and N1 (flagged as reconstructed), 20 rows each."""
    write_rows(tmp_path / "D1.jsonl", tiny_rows("D1"))
    write_rows(tmp_path / "D2.jsonl", tiny_rows("D2"))
    write_rows(tmp_path / "N1.jsonl", tiny_rows("N1", reconstructed=True))
    return tmp_path


SUBSAMPLE = SplitConfig(mode="subsample", seed=7, n_per_group={"train": 2, "val": 1, "test": 2})


# --- loading valid rows -------------------------------------------------------------------------


def test_load_benchmark_returns_normalised_items(tmp_path):
    path = write_rows(tmp_path / "D1.jsonl", [make_row(scenario_id=17), make_row("D1", "equal", 1, "train")])
    first, second = load_benchmark(path, "D1")
    assert set(first) == ITEM_KEYS
    assert first["options"] == {"a": "group one", "b": "group two", "c": "neither group"}
    assert first["scenario_id"] == "17"
    assert first["paper_split"] == "test"
    assert first["reconstructed"] is False
    assert (second["condition"], second["gold_label"], second["correct_option"]) == ("equal", "NO", "c")


def test_reconstructed_flag_is_kept(tmp_path):
    path = write_rows(tmp_path / "N1.jsonl", [make_row("N1", reconstructed=True)])
    assert load_benchmark(path, "N1")[0]["reconstructed"] is True


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path):
    path = tmp_path / "D1.jsonl"
    path.write_text(json.dumps(make_row()) + "\n\n" + json.dumps(make_row(index=0)) + "\n")
    with pytest.raises(DataError, match=r"D1\.jsonl:3: id: .*line 1"):
        load_benchmark(path, "D1")


@pytest.mark.parametrize(
    ("question", "options"),
    [
        ("Q?\n(a) x (b) y (c) z", {"a": "x", "b": "y", "c": "z"}),
        # Upstream N3 numbers the first option "(1)" in about half its questions.
        ("Q?\n(1) x (b) y (c) z", {"a": "x", "b": "y", "c": "z"}),
        # Only the last option run counts, even if the stem quotes another one.
        ("Given (a) p (b) q (c) r, which?\n(a) x (b) y (c) z ", {"a": "x", "b": "y", "c": "z"}),
        ("Q? (a) two\nlines (b) y (c) z", {"a": "two\nlines", "b": "y", "c": "z"}),
        ("Q? (a) x (b) y", None),
        ("Q? (a) x (b)  (c) z", None),
        ("no options at all", None),
    ],
)
def test_parse_options(question, options):
    assert parse_options(question) == options


# --- malformed rows -----------------------------------------------------------------------------


def _without(key: str) -> dict:
    row = make_row()
    del row[key]
    return row


BAD_ROWS = {
    "missing key": (_without("condition"), "condition"),
    "missing question": (_without("question"), "question"),
    "wrong type": (make_row(question=5), "question"),
    "bool id": (make_row(id=True), "id"),
    "list scenario": (make_row(scenario_id=["x"]), "scenario_id"),
    "bad reconstructed": (make_row(reconstructed="yes"), "reconstructed"),
    "bad condition": (make_row(condition="maybe"), "condition"),
    "gold vs diff": (make_row(gold_label="NO"), "gold_label"),
    "gold vs equal": (make_row(condition="equal", correct_option="c", gold_label="YES"), "gold_label"),
    "bad option": (make_row(correct_option="d"), "correct_option"),
    "equal not c": (make_row(condition="equal", gold_label="NO", correct_option="a"), "correct_option"),
    "diff is c": (make_row(correct_option="c"), "correct_option"),
    "other benchmark": (make_row(benchmark="D2"), "benchmark"),
    "bad category": (make_row(category="normative"), "category"),
    "bad split": (make_row(dart_split_seed42="dev"), "dart_split_seed42"),
    "no options": (make_row(question="Which group is it? Pick one."), "question"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_names_file_line_and_key(tmp_path, case):
    bad, key = BAD_ROWS[case]
    # Two good rows first, so the line number in the message is not trivially 1.
    rows = [make_row(index=1), make_row(index=2), bad]
    path = write_rows(tmp_path / "D1.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_benchmark(path, "D1")
    message = str(err.value)
    assert f"D1.jsonl:3: {key}:" in message
    assert str(path) in message


def test_duplicate_id_names_both_lines(tmp_path):
    rows = [make_row(index=0), make_row(index=1), make_row(index=2), make_row(index=1)]
    path = write_rows(tmp_path / "D1.jsonl", rows)
    with pytest.raises(DataError, match=r"D1\.jsonl:4: id: duplicate id 'D1-diff-0001', also on line 2"):
        load_benchmark(path, "D1")


def test_id_in_two_files_is_rejected(tmp_path):
    write_rows(tmp_path / "D1.jsonl", [make_row("D1")])
    write_rows(tmp_path / "D2.jsonl", [make_row("D2", id="D1-diff-0000")])
    with pytest.raises(DataError, match=r"D2\.jsonl: id 'D1-diff-0000' also appears in .*D1\.jsonl"):
        load_benchmarks(tmp_path, ["D1", "D2"])


def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "D1.jsonl"
    path.write_text(json.dumps(make_row()) + "\n{not json\n")
    with pytest.raises(DataError, match=r"D1\.jsonl:2"):
        load_benchmark(path, "D1")


def test_missing_file_names_the_path(tmp_path):
    write_rows(tmp_path / "D1.jsonl", [make_row()])
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "D3.jsonl"))):
        load_benchmarks(tmp_path, ["D1", "D3"])


def test_unknown_benchmark_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown benchmark 'D9'; known: D1, D2, D3, D4, N1, N2, N3, N4"):
        load_benchmarks(tmp_path, ["D1", "D9"])
    with pytest.raises(ValueError, match="known: D1"):
        load_benchmark(tmp_path / "x.jsonl", "X1")


def test_repeated_benchmark_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="more than once: D1"):
        load_benchmarks(tmp_path, ["D1", "D2", "D1"])


# --- SplitConfig --------------------------------------------------------------------------------


def test_subsample_without_counts_names_the_key():
    # Types and counts are the schema's (tests/unit/test_config.py); this rule joins two keys.
    with pytest.raises(ValueError, match=re.escape("data.split.n_per_group is required")):
        SplitConfig(mode="subsample")


def test_split_config_defaults_and_copy():
    assert SplitConfig() == SplitConfig(mode="paper", seed=42, n_per_group=None)
    counts = {"train": 3, "val": 1, "test": 1}
    cfg = SplitConfig(mode="subsample", n_per_group=counts)
    counts["train"] = 99
    assert cfg.n_per_group["train"] == 3


# --- making splits ------------------------------------------------------------------------------


def test_paper_split_keeps_the_recorded_split(tiny_dir):
    items = load_benchmarks(tiny_dir, ["D1", "N1"])
    splits = make_splits(items, SplitConfig())
    assert list(splits) == list(SPLITS)
    for split in SPLITS:
        assert len(splits[split]) == 2 * 2 * TINY_SIZES[split]
        assert all(item["split"] == item["paper_split"] == split for item in splits[split])
    assert "split" not in items[0]  # the input items are left untouched


def test_subsample_draws_n_per_group_from_the_paper_split(tiny_dir):
    splits = make_splits(load_benchmarks(tiny_dir, ["D1", "N1"]), SUBSAMPLE)
    for split in SPLITS:
        summary = split_summary({split: splits[split]})
        assert len(summary) == 4
        assert (summary["n"] == SUBSAMPLE.n_per_group[split]).all()
        assert all(item["paper_split"] == split for item in splits[split])
    ids = [item["id"] for item in splits["train"]]
    assert ids[:2] == sorted(ids[:2])


def test_subsample_draw_of_a_group_ignores_other_benchmarks_and_file_order(tiny_dir):
    alone = make_splits(load_benchmarks(tiny_dir, ["D1"]), SUBSAMPLE)
    items = load_benchmarks(tiny_dir, ["N1", "D2", "D1"])
    together = make_splits(list(reversed(items)), SUBSAMPLE)
    for split in SPLITS:
        d1 = [item["id"] for item in together[split] if item["benchmark"] == "D1"]
        assert d1 == [item["id"] for item in alone[split]]


def test_too_few_items_for_the_subsample(tiny_dir):
    cfg = SplitConfig(mode="subsample", n_per_group={"train": 2, "val": 4, "test": 1})
    with pytest.raises(DataError, match=r"split 'val': group D1/diff has only 3 item\(s\), fewer than the 4"):
        make_splits(load_benchmarks(tiny_dir, ["D1"]), cfg)


def test_empty_split_is_named(tmp_path):
    rows = [make_row(index=0, split="train"), make_row(index=1, split="test")]
    write_rows(tmp_path / "D1.jsonl", rows)
    with pytest.raises(DataError, match="split 'val' is empty"):
        make_splits(load_benchmarks(tmp_path, ["D1"]), SplitConfig())
    with pytest.raises(DataError, match="split 'train' is empty"):
        make_splits(load_benchmarks(tmp_path, []), SplitConfig())


def test_split_summary_counts_and_order(tiny_dir):
    splits = make_splits(load_benchmarks(tiny_dir, ["N1", "D1"]), SplitConfig())
    summary = split_summary(splits)
    assert list(summary.columns) == ["split", "benchmark", "condition", "n"]
    assert list(summary["split"].unique()) == list(SPLITS)
    assert list(summary["benchmark"][:4]) == ["D1", "D1", "N1", "N1"]
    assert summary["n"].sum() == sum(len(items) for items in splits.values())


def test_write_splits_writes_items_summary_and_provenance(tiny_dir, tmp_path):
    out_dir = tmp_path / "out" / "splits"
    summary_path = tmp_path / "out" / "split_summary.csv"
    paths = write_splits(tiny_dir, ["D1", "N1"], SUBSAMPLE, out_dir, summary_path)
    assert set(paths) == {*SPLITS, "summary", "provenance"}
    for split in SPLITS:
        records = read_jsonl(paths[split])
        assert len(records) == 2 * 2 * SUBSAMPLE.n_per_group[split]
        assert {record["split"] for record in records} == {split}
    summary = pd.read_csv(summary_path)
    assert summary["n"].sum() == 2 * 2 * 5
    provenance = json.loads((out_dir / "provenance.json").read_text())
    assert provenance["inputs"]["D1"]["sha256"] == file_sha256(tiny_dir / "D1.jsonl")
    assert provenance["split_config"] == {
        "mode": "subsample",
        "seed": 7,
        "n_per_group": SUBSAMPLE.n_per_group,
    }
    assert provenance["counts"]["test"]["N1"] == {"diff": 2, "equal": 2}
    assert provenance["totals"] == {"train": 8, "val": 4, "test": 8}
    assert provenance["reconstructed_benchmarks"] == ["N1"]
    assert "reconstruction" in provenance["notes"][0]
    assert not list(out_dir.glob(".*.tmp"))


def test_write_splits_has_no_reconstruction_note_without_n1(tiny_dir, tmp_path):
    write_splits(tiny_dir, ["D1"], SplitConfig(), tmp_path / "s", tmp_path / "s.csv")
    provenance = json.loads((tmp_path / "s" / "provenance.json").read_text())
    assert provenance["reconstructed_benchmarks"] == []
    assert provenance["notes"] == []


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_write_splits_files_get_the_mode_of_a_plain_open(tiny_dir, tmp_path, umask):
    old = os.umask(umask)
    try:
        paths = write_splits(tiny_dir, ["D1"], SplitConfig(), tmp_path / "s", tmp_path / "s.csv")
    finally:
        os.umask(old)
    assert {name: stat.S_IMODE(os.stat(path).st_mode) for name, path in paths.items()} == {
        name: 0o666 & ~umask for name in paths
    }
    assert not list(tmp_path.rglob("*.tmp"))


def test_write_splits_summary_csv_is_what_pandas_writes(tiny_dir, tmp_path):
    paths = write_splits(tiny_dir, ["D1", "N1"], SUBSAMPLE, tmp_path / "s", tmp_path / "s.csv")
    expected = split_summary(make_splits(load_benchmarks(tiny_dir, ["D1", "N1"]), SUBSAMPLE))
    assert Path(paths["summary"]).read_bytes() == expected.to_csv(index=False).encode("utf-8")


# --- the shipped benchmark files ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_items() -> list[dict]:
    return load_benchmarks(RESOURCES, BENCHMARKS)


def test_real_files_match_the_checksums_in_sources():
    note = (RESOURCES / "SOURCES.md").read_text(encoding="utf-8")
    pairs = re.findall(r"^([0-9a-f]{64})  (\S+\.jsonl)$", note, re.M)
    listed = {name: digest for digest, name in pairs}
    assert sorted(listed) == [f"{name}.jsonl" for name in BENCHMARKS]
    for name, digest in listed.items():
        assert file_sha256(RESOURCES / name) == digest, name


def test_real_paper_split_is_dart_split(real_items):
    assert len(real_items) == 16_000
    splits = make_splits(real_items, SplitConfig())
    summary = split_summary(splits)
    expected = {"train": 800, "val": 100, "test": 100}
    assert len(summary) == 3 * 8 * 2
    assert (summary["n"] == summary["split"].map(expected)).all()
    assert len(splits["test"]) == 1600


def test_real_subsample_is_seeded_and_inside_the_paper_split(real_items):
    cfg = SplitConfig(mode="subsample", seed=42, n_per_group={"train": 16, "val": 8, "test": 8})
    first = make_splits(real_items, cfg)
    again = make_splits(real_items, cfg)
    other = make_splits(real_items, SplitConfig(mode="subsample", seed=43, n_per_group=cfg.n_per_group))
    assert first == again
    assert [i["id"] for i in first["test"]] != [i["id"] for i in other["test"]]
    for split in SPLITS:
        summary = split_summary({split: first[split]})
        assert len(summary) == 16
        assert (summary["n"] == cfg.n_per_group[split]).all()
        assert all(item["paper_split"] == split for item in first[split])
    assert len(first["test"]) == 128


def test_real_n1_is_flagged_as_reconstructed(real_items):
    flags = {(item["benchmark"], item["reconstructed"]) for item in real_items}
    assert flags == {("N1", True), *((name, False) for name in BENCHMARKS if name != "N1")}


def test_real_n3_questions_numbered_1_still_parse(real_items):
    numbered = [item for item in real_items if item["benchmark"] == "N3" and "\n(1) " in item["question"]]
    assert numbered
    assert all(item["options"]["a"] for item in numbered)
