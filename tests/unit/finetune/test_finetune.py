"""The fine-tune audit's config checks, prompt sets, API answers, summaries and chat repair set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import validated_default_config
from harmdrift.backends.base import BackendError, Completion
from harmdrift.config import ConfigError, apply_schema, check_api_keys, validate_config
from harmdrift.core.decoding import GenParams
from harmdrift.core.io import read_jsonl, write_jsonl
from harmdrift.core.prompts import build_messages
from harmdrift.core.vocab import MODELS
from harmdrift.finetune.answers import APIAnswerer, export_chat_set, prompt_set_items
from harmdrift.finetune.spec import (
    REPAIR_SUFFIX,
    check_finetunes,
    check_prompt_files,
    finetune_entries,
    template_for,
)
from harmdrift.finetune.summary import accuracy, extra_markdown, refusal_rates, worst_pairs
from harmdrift.generate.answers import parse_reply

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "config" / "schema.yaml"
FIXTURES = ROOT / "tests" / "data" / "prompt_sets"
STUDENT = "embedded:smollm2-135m-instruct"


def adapter_folder(tmp_path: Path, base: str = STUDENT) -> str:
    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return str(folder)


def with_finetunes(finetunes: dict, prompt_sets: dict | None = None) -> dict:
    config = validated_default_config()
    config["finetunes"] = finetunes
    if prompt_sets is not None:
        config["prompt_sets"] = prompt_sets
    return apply_schema(config, SCHEMA)


def problems_of(finetunes: dict, prompt_sets: dict | None = None) -> list[str]:
    return check_finetunes(with_finetunes(finetunes, prompt_sets), set(MODELS))


def test_an_adapter_on_the_student_model_passes_and_gets_a_repaired_twin(tmp_path):
    folder = adapter_folder(tmp_path)
    config = with_finetunes({"mine": {"adapter": folder}})
    assert check_finetunes(config, set(MODELS)) == []
    entries = finetune_entries(config, repair_dir=lambda name: f"out/{name}/repair/adapter")
    tuned, repaired = entries["mine"], entries[f"mine{REPAIR_SUFFIX}"]
    assert (tuned.load, tuned.base, tuned.adapter, tuned.repair_on) == (STUDENT, STUDENT, folder, "benchmark")
    assert tuned.prompt_sets == ("benchmark",) and tuned.repair
    assert (repaired.parent, repaired.adapter, repaired.base) == ("mine", "out/mine/repair/adapter", STUDENT)
    assert not repaired.repair


def test_the_whole_config_validates_with_a_finetune(tmp_path):
    config = validated_default_config()
    config["finetunes"] = {"mine": {"adapter": adapter_folder(tmp_path)}}
    validate_config(config, SCHEMA)  # defaults filled in the entry, no problem
    assert config["finetunes"]["mine"]["backend"] == "hf" and config["finetunes"]["mine"]["repair"] is True


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({}, "finetunes.ft: set exactly one of adapter"),
        ({"adapter": "ADAPTER", "model": "some/model"}, "finetunes.ft: set exactly one of adapter"),
        ({"adapter": "/nowhere/adapter"}, "finetunes.ft.adapter: adapter folder '/nowhere/adapter'"),
        ({"model": "./no/checkpoint"}, "finetunes.ft.model: checkpoint folder './no/checkpoint' not found"),
        ({"adapter": "ADAPTER", "prompt_sets": ["nope"]}, "finetunes.ft.prompt_sets: no prompt set 'nope'"),
        ({"adapter": "ADAPTER", "base_url": "http://x/v1"}, "finetunes.ft.base_url: only backend openai"),
        ({"backend": "openai", "model": "ft:x", "base_url": "http://x/v1"}, "finetunes.ft.base: backend"),
        ({"backend": "openai", "base": "x", "base_url": "http://x/v1"}, "finetunes.ft.model: backend"),
        ({"backend": "openai", "model": "a", "base": "b"}, "finetunes.ft.base_url: backend openai"),
        ({"backend": "openai", "model": "a", "base": "b", "base_url": "http://x/v1", "adapter": "ADAPTER"},
         "finetunes.ft.adapter: backend openai takes a model name"),
    ],
)  # fmt: skip
def test_each_bad_entry_is_named(tmp_path, entry, key):
    entry = {k: adapter_folder(tmp_path) if v == "ADAPTER" else v for k, v in entry.items()}
    problems = problems_of({"ft": entry})
    assert any(key in p for p in problems), problems


def test_an_adapter_trained_on_another_base_is_refused(tmp_path):
    folder = adapter_folder(tmp_path, base="meta-llama/Meta-Llama-3-8B")
    problems = problems_of({"ft": {"adapter": folder}})
    assert len(problems) == 1 and "finetunes.ft.base (default: student.model)" in problems[0]
    assert "meta-llama/Meta-Llama-3-8B" in problems[0]
    assert problems_of({"ft": {"adapter": folder, "base": "meta-llama/Meta-Llama-3-8B"}}) == []


def test_a_folder_base_matches_the_same_folder_by_another_path(tmp_path):
    model = tmp_path / "base-model"
    model.mkdir()
    folder = adapter_folder(tmp_path, base=str(model))
    assert problems_of({"ft": {"adapter": folder, "base": str(tmp_path / "." / "base-model")}}) == []


def test_names_may_not_clash_with_built_in_models_or_a_repair(tmp_path):
    folder = adapter_folder(tmp_path)
    problems = problems_of(
        {"m_int": {"adapter": folder}, "x": {"adapter": folder}, "x_dart": {"adapter": folder}}
    )
    assert any("finetunes.m_int: the name is a built-in model's" in p for p in problems)
    assert any("finetunes.x_dart: the name is the repair of finetunes.x" in p for p in problems)


def test_prompt_set_paths_and_repair_sets_are_checked(tmp_path):
    folder = adapter_folder(tmp_path)
    sets = {
        "benchmark": {"format": "benchmark"},
        "hc": {"format": "hatecheck"},
        "own": {"format": "benchmark", "path": "x.jsonl"},
        "gone": {"format": "jsonl", "path": str(tmp_path / "gone.jsonl")},
    }
    problems = problems_of(
        {"ft": {"adapter": folder, "repair_on": "hc", "prompt_sets": ["benchmark", "hc"]}}, sets
    )
    assert any("prompt_sets.hc.path: format hatecheck reads your copy" in p for p in problems)
    assert any("prompt_sets.own.path: format benchmark reads this run's own prompts" in p for p in problems)
    assert any("prompt_sets.gone.path:" in p and "not found" in p for p in problems)
    assert any("finetunes.ft.repair_on: the repair teacher writes YES/NO rationales" in p for p in problems)


def test_an_unset_api_key_of_an_api_finetune_is_named(monkeypatch):
    monkeypatch.delenv("FT_TEST_KEY", raising=False)
    config = with_finetunes(
        {
            "api": {
                "backend": "openai",
                "model": "a",
                "base": "b",
                "base_url": "http://x/v1",
                "api_key_env": "FT_TEST_KEY",
            }
        }
    )
    with pytest.raises(ConfigError, match="finetunes.api.api_key_env: environment variable FT_TEST_KEY"):
        check_api_keys(config)
    monkeypatch.setenv("FT_TEST_KEY", "local")
    check_api_keys(config)


def test_prompt_files_are_read_at_parse_time_and_a_repair_set_needs_yes_no_gold(tmp_path):
    folder = adapter_folder(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "hi"}\n{"id": "b"}\n')
    config = with_finetunes(
        {"ft": {"adapter": folder, "prompt_sets": ["bad", "mine"], "repair_on": "mine"}},
        {
            "bad": {"format": "jsonl", "path": str(bad)},
            "mine": {"format": "jsonl", "path": str(FIXTURES / "mine.jsonl")},
        },
    )
    problems = check_prompt_files(config)
    assert any(p.startswith("config key prompt_sets.bad:") and f"{bad}:2" in p for p in problems), problems
    assert any(
        "prompt_sets.mine: a fine-tune is repaired on this set" in p and "mine.jsonl:3" in p for p in problems
    )


def test_templates_by_format(default_config):
    prompts = default_config["prompts"]
    assert template_for({"format": "benchmark", "template": None}, prompts) == prompts["binary"]
    assert template_for({"format": "open", "template": None}, prompts) == prompts["open"]
    assert template_for({"format": "bold", "template": None}, prompts).endswith("finetune_continue.txt")
    assert template_for({"format": "jsonl", "template": "mine.txt"}, prompts) == "mine.txt"
    for fmt in ("jsonl", "bold", "holisticbias", "realtoxicityprompts", "hatecheck"):
        assert (ROOT / template_for({"format": fmt, "template": None}, prompts)).is_file()


def test_benchmark_and_open_sets_come_from_the_runs_splits(tmp_path):
    split = tmp_path / "val.jsonl"
    rows = [
        {"id": f"{b}-{i}", "question": f"q{i}", "benchmark": b, "category": "c", "condition": "diff",
         "scenario_id": None, "gold_label": "YES", "split": "val", "options": {"a": "x"}}
        for b in ("D1", "N1") for i in range(4)
    ]  # fmt: skip
    write_jsonl(split, rows)
    items = prompt_set_items(str(split), {"format": "benchmark", "n": 4, "seed": 0}, name="benchmark")
    assert len(items) == 4 and {i["group"] for i in items} == {"D1", "N1"}
    assert all(i["messages"] is None and i["prompt_set"] == "benchmark" and "options" not in i for i in items)
    open_split = tmp_path / "open.jsonl"
    write_jsonl(
        open_split, [{"id": "OD-1", "question": "q", "domain": "medical", "benchmark": "open_domain"}]
    )
    (item,) = prompt_set_items(str(open_split), {"format": "open", "n": None, "seed": 0}, name="open")
    assert item["group"] == "medical" and item["gold_label"] is None


def test_chat_messages_are_sent_as_written_and_gold_answers_are_read():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert build_messages({"question": "u", "messages": messages}, "{question} ignored") == messages
    assert parse_reply("open", "It depends.\nConclusion: NO", {"gold_label": "NO"}).prediction == "NO"
    assert parse_reply("open", "The answer is (c).", {"gold_label": "C"}).prediction == "C"
    assert parse_reply("open", "The answer is (c).", {"gold_label": None}).prediction is None


class _StubBackend:
    def __init__(self, completions):
        self.completions = completions

    def complete(self, conversations, params, *, keys, stop=None):
        return self.completions[: len(keys)]


def test_the_api_answerer_stops_on_a_failed_request_and_refuses_forced_choice():
    params = GenParams(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=1)
    ok = Completion("hi", 1, 1, "stop", system_fingerprint="fp_1")
    answerer = APIAnswerer(_StubBackend([ok, Completion.failed("timeout after 4 attempts")]))
    with pytest.raises(BackendError, match="1 of 2 requests failed .first: b: timeout after 4 attempts"):
        answerer.complete([[], []], params, keys=["a", "b"])
    assert APIAnswerer(_StubBackend([ok])).complete([[]], params, keys=["a"]) == [ok]
    with pytest.raises(ValueError, match="forced-choice"):
        answerer.complete([[]], params, keys=["a"], forced=object())
    assert json.loads(answerer.render([{"role": "user", "content": "é"}])) == [
        {"content": "é", "role": "user"}
    ]


def pair(item_id, base_text, tuned_text, delta, *, gold=None, hateful=None, pred=(None, None), group="g"):
    return {
        "id": item_id, "group": group, "question": "q", "gold_label": gold, "delta": delta,
        **({"hateful": hateful} if hateful is not None else {}),
        "base": {"text": base_text, "prediction": pred[0], "score": 0.1},
        "tuned": {"text": tuned_text, "prediction": pred[1], "score": 0.1 + delta},
    }  # fmt: skip


def test_accuracy_counts_items_with_gold_only():
    pairs = [
        pair("a", "", "", 0, gold="YES", pred=("YES", "NO")),
        pair("b", "", "", 0, gold="NO", pred=("NO", "NO")),
        pair("c", "", "", 0),
    ]
    assert accuracy(pairs) == {"n": 2, "base": 1.0, "tuned": 0.5}
    assert accuracy([pair("c", "", "", 0)]) is None


def test_hatecheck_rates():
    refusal = "I'm sorry, but I can't help with that."
    pairs = [
        pair("h1", refusal, "Sure, here it is.", 0.0, hateful=True),
        pair("h2", refusal, refusal, 0.0, hateful=True),
        pair("n1", "A kind reply.", refusal, 0.0, hateful=False),
        pair("n2", "A kind reply.", "Another.", 0.0, hateful=False),
    ]
    rates = refusal_rates(pairs)
    assert rates["refusal"] == {"base": 0.5, "tuned": 0.5}
    hc = rates["hatecheck"]
    assert (hc["n_hateful"], hc["n_non_hateful"]) == (2, 2)
    assert hc["over_refusal"] == {"base": 0.0, "tuned": 0.5}
    assert hc["harmful_compliance"] == {"base": 0.0, "tuned": 0.5}
    assert "hatecheck" not in refusal_rates([pair("x", "a", "b", 0.0)])


def test_worst_pairs_put_confirmed_drift_first_then_the_largest_increase():
    pairs = [pair("a", "x", "y", 0.5), pair("b", "x", "y|z", 0.2), pair("c", "x", "y", 0.9)]
    rows = [{"id": "a", "drift": False, "severity": None, "category": None},
            {"id": "b", "drift": True, "severity": "moderate", "category": None},
            {"id": "c", "drift": False, "severity": None, "category": None}]  # fmt: skip
    worst = worst_pairs(pairs, rows, 2)
    assert [w["id"] for w in worst] == ["b", "c"]
    summary = {"base": "base-model", "model": "ft", "accuracy": None, "verdicts": "classifier",
               "rates": refusal_rates(pairs), "worst_pairs": worst}  # fmt: skip
    text = "\n".join(extra_markdown(summary))
    assert "The 2 pairs that moved most toward harm" in text and "screen's severity bin" in text
    assert (
        "y\\|z" in text and "drift: moderate" in text and "| refusal rate (keywords) | 0.0% | 0.0% |" in text
    )


def test_the_chat_repair_set_repeats_each_example_by_its_weight(tmp_path):
    examples = tmp_path / "train.jsonl"
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    write_jsonl(examples, [{"messages": messages, "weight": 2.5}, {"messages": messages, "weight": 1.0}])
    counts = export_chat_set(str(examples), str(tmp_path / "chat.jsonl"), str(tmp_path / "chat.summary.json"))
    assert counts == {"examples": 2, "lines": 4, "max_copies": 3}
    assert read_jsonl(tmp_path / "chat.jsonl") == [{"messages": messages}] * 4
