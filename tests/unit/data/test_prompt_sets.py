"""Prompt sets: each suite's loader on its fixture, stratified sampling, and bad-input errors."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from harmdrift.core.io import DataError
from harmdrift.data.prompt_sets import FORMATS, load_prompt_set

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "prompt_sets"
PATHS = {
    "jsonl": FIXTURES / "mine.jsonl",
    "bold": FIXTURES / "bold",
    "holisticbias": FIXTURES / "holisticbias" / "sentences.csv",
    "realtoxicityprompts": FIXTURES / "realtoxicityprompts" / "prompts.jsonl",
    "hatecheck": FIXTURES / "hatecheck" / "test_suite_cases.csv",
}
ITEM_KEYS = {
    "id",
    "question",
    "messages",
    "gold_label",
    "group",
    "benchmark",
    "condition",
    "hateful",
    "prompt_set",
    "source",
}
EXTRA_KEYS = {"realtoxicityprompts": {"prompt_toxicity"}, "hatecheck": {"target"}}
KEY = "prompt_sets.mine"


def load(fmt: str, path: Path | None = None, n: int | None = None, seed: int = 0) -> list[dict]:
    return load_prompt_set(fmt, PATHS[fmt] if path is None else path, name="mine", n=n, seed=seed, key=KEY)


def groups(items: list[dict]) -> Counter:
    return Counter(item["group"] for item in items)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def line_of(item: dict) -> int:
    return int(item["source"].rsplit(":", 1)[1])


# --- each loader on its fixture ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_common_item_shape(fmt):
    items = load(fmt)
    assert items
    for item in items:
        assert set(item) == ITEM_KEYS | EXTRA_KEYS.get(fmt, set())
        assert item["benchmark"] == item["prompt_set"] == "mine"
        assert isinstance(item["question"], str) and item["question"].strip()
        assert isinstance(item["group"], str) and item["group"]
        assert re.search(r":\d+$", item["source"])
    assert len({item["id"] for item in items}) == len(items)
    assert load(fmt) == items  # deterministic


def test_jsonl_fixture():
    items = load("jsonl")
    assert [item["id"] for item in items][:2] == ["hire-01", "hire-02"]
    assert groups(items) == {"workplace": 4, "family": 3, "all": 1}
    assert [item["gold_label"] for item in items] == ["NO", "NO", "C", "NO", "NO", "C", None, None]
    assert items[0]["messages"] is None
    assert items[0]["source"] == f"{PATHS['jsonl']}:1"
    chat = items[6]
    assert [turn["role"] for turn in chat["messages"]] == ["user", "assistant", "user"]
    assert chat["question"] == chat["messages"][-1]["content"]
    assert all(item["condition"] is None and item["hateful"] is None for item in items)


def test_bold_folder_reads_every_domain_file_in_name_order():
    items = load("bold")
    assert len(items) == 8
    assert groups(items) == {
        "gender/American_actors": 3,
        "gender/American_actresses": 1,
        "profession/nursing_specialties": 2,
        "profession/engineering_branches": 2,
    }
    assert items[0]["id"] == "bold-gender-American_actors-Jane_Example-0"
    assert items[1]["id"] == "bold-gender-American_actors-Jane_Example-1"
    assert items[-1]["id"] == "bold-profession-engineering_branches-Audio_sound_engineering-0"
    assert items[0]["question"] == "Jane Example is an American actress who "  # as published, trailing space
    # The fixture is indented, so each prompt has a line of its own.
    assert items[0]["source"] == f"{PATHS['bold'] / 'gender_prompt.json'}:4"
    assert [line_of(item) for item in items[:4]] == [4, 5, 8, 13]
    assert all(item["gold_label"] is None and item["messages"] is None for item in items)


def test_bold_accepts_one_domain_file():
    items = load("bold", PATHS["bold"] / "profession_prompt.json")
    assert len(items) == 4
    assert {item["group"].split("/")[0] for item in items} == {"profession"}


def test_holisticbias_fixture():
    items = load("holisticbias")
    assert len(items) == 8
    assert groups(items) == {"age": 3, "religion": 3, "ability": 2}
    assert [item["id"] for item in items][:3] == ["holisticbias-1", "holisticbias-2", "holisticbias-3"]
    assert items[0]["question"] == "Hi, I'm an elderly grandmother."  # a quoted cell with a comma
    assert items[0]["source"] == f"{PATHS['holisticbias']}:2"  # the header is line 1


def test_realtoxicityprompts_fixture():
    items = load("realtoxicityprompts")
    assert len(items) == 8
    assert groups(items) == {"challenging": 3, "not challenging": 5}
    assert items[0]["id"] == "rtp-1"
    assert items[0]["question"] == "The city council voted on Tuesday to"
    assert items[0]["prompt_toxicity"] == pytest.approx(0.04)
    assert items[3]["prompt_toxicity"] is None


def test_hatecheck_fixture():
    items = load("hatecheck")
    assert len(items) == 10
    assert groups(items) == {
        "derog_neg_emote_h": 4,
        "ident_neutral_nh": 3,
        "counter_quote_nh": 1,
        "target_obj_nh": 2,
    }
    assert Counter(item["condition"] for item in items) == {"hateful": 4, "non-hateful": 6}
    assert all(item["hateful"] == (item["condition"] == "hateful") for item in items)
    assert items[0]["id"] == "hatecheck-1" and items[0]["target"] == "Martians"
    assert items[-1]["target"] is None
    assert items[7]["question"] == 'Saying "I can\'t stand Martians" is just rude.'
    assert items[0]["source"] == f"{PATHS['hatecheck']}:2"


# --- sampling -------------------------------------------------------------------------------------


@pytest.fixture
def skewed(tmp_path) -> Path:
    """60 items of group a, 30 of b, 10 of c, interleaved."""
    pattern = "aaaaaabbbc"  # each run of ten lines
    rows = [{"id": f"q{i}", "prompt": f"Prompt {i}?", "group": pattern[i % 10]} for i in range(100)]
    return write_jsonl(tmp_path / "skewed.jsonl", rows)


def test_skewed_fixture_has_the_sizes_it_claims(skewed):
    assert groups(load("jsonl", skewed)) == {"a": 60, "b": 30, "c": 10}


def test_sample_is_proportional_in_file_order_and_deterministic(skewed):
    sample = load("jsonl", skewed, n=10, seed=3)
    assert groups(sample) == {"a": 6, "b": 3, "c": 1}
    assert [line_of(item) for item in sample] == sorted(line_of(item) for item in sample)
    assert load("jsonl", skewed, n=10, seed=3) == sample


def test_sample_rounds_by_largest_remainder(skewed):
    # quotas 4.2, 2.1, 0.7: floors 4, 2, 0; the one left goes to c (largest remainder).
    assert groups(load("jsonl", skewed, n=7)) == {"a": 4, "b": 2, "c": 1}


def test_sample_gives_every_group_one_when_n_allows(tmp_path):
    rows = [{"id": f"q{i}", "prompt": "P?", "group": "big"} for i in range(97)]
    rows += [{"id": f"r{g}", "prompt": "P?", "group": g} for g in ("x", "y", "z")]
    path = write_jsonl(tmp_path / "rare.jsonl", rows)
    assert groups(load("jsonl", path, n=4)) == {"big": 1, "x": 1, "y": 1, "z": 1}
    assert groups(load("jsonl", path, n=10)) == {"big": 7, "x": 1, "y": 1, "z": 1}


@pytest.mark.parametrize("fmt", FORMATS)
def test_sample_size_is_exact_for_every_format(fmt):
    sample = load(fmt, n=5, seed=1)
    assert len(sample) == 5
    assert len(groups(sample)) == min(5, len(groups(load(fmt))))


def test_different_seeds_draw_different_samples(skewed):
    samples = {tuple(item["id"] for item in load("jsonl", skewed, n=10, seed=seed)) for seed in range(5)}
    assert len(samples) > 1


def test_n_at_or_above_the_size_keeps_everything(caplog):
    everything = load("hatecheck")
    assert load("hatecheck", n=10) == everything
    with caplog.at_level(logging.WARNING, logger="harmdrift.data.prompt_sets"):
        assert load("hatecheck", n=500) == everything
    assert any(f"{KEY}.n" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("n", [0, -3, True, 2.5, "5"])
def test_bad_n_names_the_config_key(n):
    with pytest.raises(DataError, match=re.escape(f"config key {KEY}.n")):
        load("jsonl", n=n)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_path_names_the_config_key(fmt, tmp_path):
    with pytest.raises(
        DataError, match=re.escape(f"config key {KEY}.path: file '{tmp_path / 'nope'}' not found")
    ):
        load(fmt, tmp_path / "nope")


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown prompt set format 'csv'"):
        load_prompt_set("csv", PATHS["jsonl"], name="mine", n=None, seed=0, key=KEY)


@pytest.mark.parametrize("fmt", ["jsonl", "holisticbias", "realtoxicityprompts", "hatecheck"])
def test_empty_file_names_the_file(fmt, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: empty file")):
        load(fmt, path)


def test_jsonl_path_must_be_a_file(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"config key {KEY}.path")):
        load("jsonl", tmp_path)


GOOD = {"id": "ok", "prompt": "A fine prompt?"}


@pytest.mark.parametrize(
    ("row", "key"),
    [
        ({"prompt": "P?"}, "id"),
        ({"id": "", "prompt": "P?"}, "id"),
        ({"id": ["x"], "prompt": "P?"}, "id"),
        ({"id": "x"}, "prompt"),
        ({"id": "x", "prompt": "  "}, "prompt"),
        ({"id": "x", "prompt": 3}, "prompt"),
        ({"id": "x", "prompt": "P?", "messages": [{"role": "user", "content": "P?"}]}, "prompt"),
        ({"id": "x", "messages": "P?"}, "messages"),
        ({"id": "x", "messages": []}, "messages"),
        ({"id": "x", "messages": [{"role": "user"}]}, r"messages\[0\]"),
        ({"id": "x", "messages": [{"role": "user", "content": "P?", "name": "u"}]}, r"messages\[0\]"),
        ({"id": "x", "messages": [{"role": "human", "content": "P?"}]}, r"messages\[0\]\.role"),
        ({"id": "x", "messages": [{"role": "user", "content": 1}]}, r"messages\[0\]\.content"),
        (
            {
                "id": "x",
                "messages": [{"role": "user", "content": "P?"}, {"role": "assistant", "content": "A"}],
            },
            "messages",
        ),
        ({"id": "x", "prompt": "P?", "gold": "maybe"}, "gold"),
        ({"id": "x", "prompt": "P?", "gold": "AB"}, "gold"),
        ({"id": "x", "prompt": "P?", "gold": 1}, "gold"),
        ({"id": "x", "prompt": "P?", "group": 3}, "group"),
        ({"id": "x", "prompt": "P?", "group": ""}, "group"),
        ({"id": "ok", "prompt": "P?"}, "id: duplicate id 'ok', also on line 1"),
    ],
)
def test_bad_jsonl_line_names_file_line_and_key(tmp_path, row, key):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, row])
    with pytest.raises(DataError, match=re.escape(f"{path}:2: ") + key):
        load("jsonl", path)


def test_unknown_jsonl_key_names_it_and_the_allowed_ones(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, {"id": "x", "prompt": "P?", "label": "YES"}])
    with pytest.raises(
        DataError, match=re.escape(f"{path}:2: label: unknown key; allowed: id, prompt, messages")
    ):
        load("jsonl", path)


def test_invalid_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n{not json\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: not valid JSON")):
        load("jsonl", path)


@pytest.mark.parametrize(
    ("gold", "normalized"), [("yes", "YES"), (" No ", "NO"), ("b", "B"), ("Z", "Z"), (None, None)]
)
def test_gold_is_normalized(tmp_path, gold, normalized):
    path = write_jsonl(tmp_path / "gold.jsonl", [{**GOOD, "gold": gold}])
    assert load("jsonl", path)[0]["gold_label"] == normalized


def test_integer_ids_become_strings(tmp_path):
    path = write_jsonl(tmp_path / "ids.jsonl", [{"id": 7, "prompt": "P?"}])
    assert load("jsonl", path)[0]["id"] == "7"


@pytest.mark.parametrize(
    ("row", "key"),
    [
        ({"challenging": False}, "prompt"),
        ({"challenging": False, "prompt": {"toxicity": 0.1}}, r"prompt\.text"),
        ({"prompt": {"text": "Some words"}}, "challenging"),
        ({"challenging": "yes", "prompt": {"text": "Some words"}}, "challenging"),
        ({"challenging": True, "prompt": {"text": "Some words", "toxicity": "high"}}, r"prompt\.toxicity"),
    ],
)
def test_bad_realtoxicityprompts_line(tmp_path, row, key):
    good = {"challenging": True, "prompt": {"text": "Fine words", "toxicity": None}}
    path = write_jsonl(tmp_path / "prompts.jsonl", [good, row])
    with pytest.raises(DataError, match=re.escape(f"{path}:2: ") + key):
        load("realtoxicityprompts", path)


HATECHECK_HEADER = ",functionality,case_id,test_case,label_gold,target_ident,direction\n"


@pytest.mark.parametrize(
    ("rows", "line", "key"),
    [
        ("0,f_h,1,Text one.,hateful,X,general\n1,f_nh,2,Text two.,neutral,X,general\n", 3, "label_gold"),
        (
            "0,f_h,1,Text one.,hateful,X,general\n1,f_nh,1,Text two.,non-hateful,X,general\n",
            3,
            "case_id: duplicate",
        ),
        ("0,f_h,1,,hateful,X,general\n", 2, "test_case"),
        ("0,,1,Text one.,hateful,X,general\n", 2, "functionality"),
        ("0,f_h,,Text one.,hateful,X,general\n", 2, "case_id"),
        ('0,f_h,1,"Two\nlines.",hateful,X,general\n1,f_h,2,Text,hateful,X\n', 4, "expected 7 fields, got 6"),
    ],
)
def test_bad_hatecheck_row(tmp_path, rows, line, key):
    path = tmp_path / "test_suite_cases.csv"
    path.write_text(HATECHECK_HEADER + rows)
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: {key}")):
        load("hatecheck", path)


def test_csv_missing_column_is_named(tmp_path):
    path = tmp_path / "sentences.csv"
    path.write_text("text,bucket\nHi there.,x\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:1: missing column(s) axis")):
        load("holisticbias", path)


def test_holisticbias_empty_cell(tmp_path):
    path = tmp_path / "sentences.csv"
    path.write_text("text,axis\nHi there.,age\nHello.,\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: axis")):
        load("holisticbias", path)


def test_header_only_csv_is_empty(tmp_path):
    path = tmp_path / "sentences.csv"
    path.write_text("text,axis\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: empty file")):
        load("holisticbias", path)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (["a prompt"], "$: expected"),
        ({"cat": ["a prompt"]}, "$.cat: expected"),
        ({"cat": {"Some_Name": "a prompt"}}, "$.cat.Some_Name: expected a list"),
        ({"cat": {"Some_Name": ["ok ", 5]}}, "$.cat.Some_Name[1]: expected a non-empty string"),
    ],
)
def test_bad_bold_structure_names_the_json_path(tmp_path, data, where):
    path = tmp_path / "race_prompt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=re.escape(f"{path}: {where}")):
        load("bold", path)


def test_bold_invalid_json_gives_the_line(tmp_path):
    path = tmp_path / "race_prompt.json"
    path.write_text('{\n  "cat": {\n    "A": ["x",]\n  }\n}\n')
    with pytest.raises(DataError, match=re.escape(f"{path}:3: not valid JSON")):
        load("bold", path)


def test_bold_folder_without_prompt_files(tmp_path):
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(DataError, match=re.escape(f"config key {KEY}.path: folder '{tmp_path}'")):
        load("bold", tmp_path)


def test_bold_ids_that_collide_after_sanitizing(tmp_path):
    path = tmp_path / "race_prompt.json"
    path.write_text(json.dumps({"cat": {"A B": ["one "], "A_B": ["two "]}}))
    with pytest.raises(DataError, match=re.escape(f"{path}: $.cat.A_B[0]: id 'bold-race-cat-A_B-0'")):
        load("bold", path)
