"""The OpenAI back-end against a real ``transformers serve`` server on the tiny random model
(a server process; the judge against a scripted stub server: tests/unit/backends)."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import validated_default_config
from harmdrift.backends import BackendError, CachedBackend, ResponseCache
from harmdrift.backends.openai_backend import OpenAIChatBackend
from harmdrift.core.decoding import GenParams
from judge_rows import judge_pairs
from served import KEY_ENV, served_requests, transformers_serve

pytestmark = pytest.mark.slow

SECRET = "sk-test-never-written-anywhere"
ROOT = Path(__file__).resolve().parents[3]
JUDGE_TEMPLATE = ROOT / "config/prompts/judge_drift.txt"
CONVERSATIONS = [
    [{"role": "user", "content": "is the law the same"}],
    [{"role": "user", "content": "groups are treated differently because fact"}],
    [{"role": "system", "content": "answer yes no"}, {"role": "user", "content": "this question"}],
]
KEYS = ["s1", "s2", "s3"]
PARAMS = GenParams(max_new_tokens=16, temperature=0.2, top_p=0.9, seed=11)


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """``transformers serve <tiny_model>`` on a free local port; yields (base_url, log path)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with transformers_serve(log, tiny_model) as url:
        yield url, log


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)  # transformers serve checks no key, but one must be set


def backend_for(url: str, model: str) -> OpenAIChatBackend:
    return OpenAIChatBackend(
        model=model, base_url=url, api_key_env=KEY_ENV, timeout_s=60, max_retries=1, progress=False
    )


def test_replies_then_a_rerun_served_entirely_from_the_cache(server, tiny_model, api_key, tmp_path):
    url, log = server
    first = CachedBackend(backend_for(url, tiny_model), ResponseCache(tmp_path))
    out = first.complete(CONVERSATIONS, PARAMS, keys=KEYS)
    assert all(c.ok and c.text.strip() for c in out), out
    assert all(c.prompt_tokens and 1 <= c.completion_tokens <= 16 for c in out), out
    usage = first.usage()
    assert (usage["requests"], usage["errors"], first.misses) == (3, 0, 3)
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    answered = served_requests(log)
    assert answered >= 3

    inner = backend_for(url, tiny_model)
    second = CachedBackend(inner, ResponseCache(tmp_path))
    again = second.complete(CONVERSATIONS, PARAMS, keys=KEYS)
    assert (second.hits, second.misses) == (3, 0)
    assert [c.text for c in again] == [c.text for c in out] and all(c.cached for c in again)
    assert inner.usage()["requests"] == 0 and served_requests(log) == answered


def test_a_pinned_server_rejects_another_model_name(server, api_key):
    url, _ = server
    with pytest.raises(BackendError, match="http 400.*pinned"):
        backend_for(url, "some-other-model").complete(CONVERSATIONS[:1], PARAMS, keys=["x"])


def test_rationales_rule_through_the_server_then_from_the_cache(server, tiny_model, api_key, tmp_path):
    """The write_rationales rule's body, with an openai teacher, twice: the re-run pays nothing."""
    import json

    from harmdrift.core.io import read_jsonl, write_jsonl
    from harmdrift.distill.rules import write_rationales

    url, log = server
    root = Path(__file__).resolve().parents[3]
    items = [
        {
            "id": f"D1-diff-{i}",
            "benchmark": "D1",
            "condition": "diff",
            "gold_label": "YES",
            "question": f"Question {i}? (a) law (b) fact (c) the same",
        }
        for i in range(3)
    ]
    write_jsonl(tmp_path / "train.jsonl", items)
    teacher = served_section(_validated_defaults()["teacher"], url, tiny_model, seed=3, max_new_tokens=12)
    distill = {
        "min_sentences": 1,
        "max_sentences": 4,
        "max_quote_chars": 40,
        "max_fix_rounds": 1,
        "append_missing_conclusion": True,
    }

    def run(tag: str) -> dict:
        outputs = {
            name: str(tmp_path / f"{tag}.{name}.json")
            for name in ("rationales", "dropped", "summary", "usage")
        }
        write_rationales(
            split_items=str(tmp_path / "train.jsonl"),
            teacher_prompt=str(root / "config/prompts/teacher_gold.txt"),
            predict_prompt=None,
            fix_prompt=str(root / "config/prompts/teacher_fix.txt"),
            student_prompt=str(root / "config/prompts/binary.txt"),
            **outputs,
            teacher=teacher,
            distill=distill,
            label_source="gold",
            cache_dir=str(tmp_path / "cache"),
        )
        return outputs

    first = run("first")
    summary = json.loads(Path(first["summary"]).read_text())
    assert summary["items"] == 3 and summary["kept"] + summary["dropped"] == 3
    assert summary["teacher"]["backend"] == "openai"
    for path in first.values():
        assert SECRET not in Path(path).read_text()
    used = json.loads(Path(first["usage"]).read_text())
    assert used["cache_misses"] >= 3 and used["errors"] == 0
    answered = served_requests(log)

    second = run("second")
    reused = json.loads(Path(second["usage"]).read_text())
    assert reused["cache_misses"] == 0 and reused["cache_hits"] == used["cache_misses"]
    assert served_requests(log) == answered  # the server saw nothing new
    assert read_jsonl(second["rationales"]) == read_jsonl(first["rationales"])


@functools.cache
def _validated_defaults() -> dict:
    return validated_default_config()


def served_section(defaults: dict, url: str, model: str, **changes) -> dict:
    """A chat back-end config section (``defaults``: the schema-filled section) that asks the
    test server."""
    return {
        **defaults,
        "backend": "openai",
        "model": model,
        "base_url": url,
        "api_key_env": KEY_ENV,
        "concurrency": 2,
        "max_retries": 1,
        "timeout_s": 60,
        "temperature": 0.2,
        "top_p": 0.9,
        **changes,
    }


def judge_section(url: str, model: str, **changes) -> dict:
    """An ``audit.judge`` config section for an OpenAI-compatible judge (schema defaults filled)."""
    judge = {
        "seed": 5,
        "max_new_tokens": 8,
        "max_reasks": 2,
        "structured_output": "none",
        "calibrate": True,  # local models only; ignored here
        "combine": "both",
        "scope": "screened",
        "check_floor": 0.75,
    }
    return served_section(_validated_defaults()["audit"]["judge"], url, model, **{**judge, **changes})


def test_the_judge_through_the_server_re_asks_then_records_garbage_as_unscored(
    server, tiny_model, api_key, tmp_path
):
    """The random model never writes JSON: every verdict is re-asked max_reasks times, then unscored."""
    import json

    from harmdrift.audit.rules import judge_pairs as judge_pairs_rule
    from harmdrift.core.io import read_jsonl, write_jsonl

    url, log = server
    write_jsonl(tmp_path / "pairs.jsonl", judge_pairs(2))
    outputs = {"judgments": str(tmp_path / "judgments.jsonl"), "usage": str(tmp_path / "usage.json")}
    before = served_requests(log)
    judge_pairs_rule(
        pairs=str(tmp_path / "pairs.jsonl"), template=str(JUDGE_TEMPLATE), **outputs,
        judge=judge_section(url, tiny_model), verdicts="judge", delta=0.01, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    conversations, per_conversation = 2 * 2, 1 + 2  # two pairs, both orders; max_reasks 2
    assert served_requests(log) - before == conversations * per_conversation
    records = read_jsonl(outputs["judgments"])
    assert [r["id"] for r in records] == ["D1-0", "D1-1"]
    for record in records:
        for order in ("ab", "ba"):
            verdict = record[order]
            assert verdict["status"] == "unscored" and verdict["drift"] is None
            assert verdict["attempts"] == per_conversation and len(verdict["raw"]) == per_conversation
            assert verdict["error"] and "reply" in verdict["error"]  # a parsing problem, not a transport one
        assert record["combined"]["status"] == "unscored" and record["combined"]["drift"] is False
    usage = json.loads(Path(outputs["usage"]).read_text())
    assert usage["requests"] == conversations * per_conversation and usage["errors"] == 0


def test_the_server_ignores_a_json_schema_response_format_with_a_warning(server, tiny_model, api_key):
    """transformers serve does not enforce ``response_format``: it is logged and the request answered."""
    from harmdrift.audit.judge import ask_judge
    from harmdrift.config import judge_config
    from harmdrift.core.prompts import load_template

    url, log = server
    template = load_template(JUDGE_TEMPLATE, ("question", "gold", "first", "second", "target", "other"))
    default = judge_config(validated_default_config()["audit"]["judge"])  # JudgeConfig has no defaults
    cfg = replace(default, backend="openai", max_reasks=0, structured_output="json_schema", params=PARAMS)
    before = served_requests(log)
    [record] = ask_judge(backend_for(url, tiny_model), judge_pairs(1), template, cfg)
    assert served_requests(log) - before == 2
    for order in ("ab", "ba"):  # answered (garbage), not refused
        assert record[order]["status"] == "unscored" and len(record[order]["raw"]) == 1
    assert "Ignoring unsupported fields in the request: {'response_format'}" in log.read_text()
