"""The OpenAI back-end against a real ``transformers serve`` server on the tiny random model."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import validated_default_config
from harmdrift.backends import BackendError, CachedBackend, ResponseCache
from harmdrift.backends.openai_backend import OpenAIChatBackend
from harmdrift.core.decoding import GenParams

pytestmark = pytest.mark.slow

KEY_ENV = "HARMDRIFT_TEST_SERVER_KEY"
SECRET = "sk-test-never-written-anywhere"
START_DEADLINE_S = 90.0
CONVERSATIONS = [
    [{"role": "user", "content": "is the law the same"}],
    [{"role": "user", "content": "groups are treated differently because fact"}],
    [{"role": "system", "content": "answer yes no"}, {"role": "user", "content": "this question"}],
]
KEYS = ["s1", "s2", "s3"]
PARAMS = GenParams(max_new_tokens=16, temperature=0.2, top_p=0.9, seed=11)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def served_requests(log: Path) -> int:
    """Chat requests the server has answered, from uvicorn's access log."""
    return log.read_text(errors="replace").count("POST /v1/chat/completions")


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """``transformers serve <tiny_model>`` on a free local port; yields (base_url, log path)."""
    cli = Path(sys.executable).with_name("transformers")
    if not cli.exists():
        pytest.skip("the transformers CLI (transformers[serving]) is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [str(cli), "serve", tiny_model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with log.open("w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while not healthy(base):
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.perf_counter() - started > START_DEADLINE_S:
                pytest.fail(
                    f"transformers serve not healthy after {START_DEADLINE_S}s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        print(f"transformers serve healthy after {time.perf_counter() - started:.1f}s", file=sys.stderr)
        yield f"{base}/v1", log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


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
    teacher = {
        **_validated_defaults()["teacher"],
        "backend": "openai",
        "model": tiny_model,
        "base_url": url,
        "api_key_env": KEY_ENV,
        "concurrency": 2,
        "max_retries": 1,
        "timeout_s": 60,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 3,
        "max_new_tokens": 12,
    }
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


# ---------------------------------------------------------------- the LLM judge over the OpenAI API


ROOT = Path(__file__).resolve().parents[3]
JUDGE_TEMPLATE = ROOT / "config/prompts/judge_drift.txt"


@functools.cache
def _validated_defaults() -> dict:
    return validated_default_config()


def judge_section(url: str, model: str, **changes) -> dict:
    """An ``audit.judge`` config section for an OpenAI-compatible judge (schema defaults filled)."""
    return {
        **_validated_defaults()["audit"]["judge"],
        "backend": "openai",
        "model": model,
        "base_url": url,
        "api_key_env": KEY_ENV,
        "concurrency": 2,
        "max_retries": 1,
        "timeout_s": 60,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 5,
        "max_new_tokens": 8,
        "max_reasks": 2,
        "structured_output": "none",
        "calibrate": True,  # local models only; ignored here
        "combine": "both",
        "scope": "screened",
        "check_floor": 0.75,
        **changes,
    }


def judge_pairs(n: int) -> list[dict]:
    """Screened pairs as pair_answers writes them (only the fields the judge reads matter)."""
    return [
        {
            "id": f"D1-{i}",
            "benchmark": "D1",
            "condition": "diff",
            "gold_label": "YES",
            "question": f"Question {i}? (a) law (b) fact (c) the same",
            "base": {"analysis": "the law is the same"},
            "tuned": {"analysis": "groups are treated differently because fact"},
            "delta": 0.2,
            "screened": True,
        }
        for i in range(n)
    ]


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
    from harmdrift.audit.judge import JudgeConfig, ask_judge
    from harmdrift.core.prompts import load_template

    url, log = server
    template = load_template(JUDGE_TEMPLATE, ("question", "gold", "first", "second", "target", "other"))
    cfg = JudgeConfig(backend="openai", max_reasks=0, structured_output="json_schema", params=PARAMS)
    before = served_requests(log)
    [record] = ask_judge(backend_for(url, tiny_model), judge_pairs(1), template, cfg)
    assert served_requests(log) - before == 2
    for order in ("ab", "ba"):  # answered (garbage), not refused
        assert record[order]["status"] == "unscored" and len(record[order]["raw"]) == 1
    assert "Ignoring unsupported fields in the request: {'response_format'}" in log.read_text()


# ---------------------------------------------------------------- judge replies from a scripted stub server


VALID = (
    '{"drift": "yes", "category": "omits_harm", "severity": "moderate", "reason": "It drops the warning."}'
)
WRONG_ENUM = '{"drift": "yes", "category": "slur", "severity": "minor", "reason": "r"}'
# Replies by case and attempt (0 = first ask); the last one repeats. None is a reply with no content.
STUB_REPLIES = {
    "valid": [VALID],
    "invalid_then_valid": ['{"drift": "yes", "category":', VALID],
    "wrong_enum": [WRONG_ENUM],
    "empty": [""],
    "no_content": [None],
}


class StubServer:
    """A local OpenAI-style server replying by script; it records every request body."""

    def __init__(self, reply) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stub = self
        self.bodies: list[dict] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.bodies.append(body)
                status, payload = reply(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion_body(text: str | None) -> dict:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def scripted_reply(body: dict) -> tuple[int, dict]:
    import re

    case = re.search(r"case:(\w+)", body["messages"][0]["content"]).group(1)
    attempt = (len(body["messages"]) - 1) // 2  # each re-ask adds the reply and a follow-up turn
    replies = STUB_REPLIES[case]
    return 200, completion_body(replies[min(attempt, len(replies) - 1)])


@pytest.fixture
def stub_server():
    stubs: list[StubServer] = []

    def start(reply) -> StubServer:
        stubs.append(StubServer(reply))
        return stubs[-1]

    yield start
    for stub in stubs:
        stub.close()


def judge_stub(url: str, pairs: list[dict], **cfg):
    from harmdrift.audit.judge import TEMPLATE_SLOTS, JudgeConfig, ask_judge
    from harmdrift.core.prompts import load_template

    template = load_template(JUDGE_TEMPLATE, TEMPLATE_SLOTS)
    backend = OpenAIChatBackend(
        model="stub", base_url=url, api_key_env=KEY_ENV, timeout_s=10, max_retries=0, progress=False
    )
    return ask_judge(backend, pairs, template, JudgeConfig(backend="openai", max_reasks=2, **cfg))


def case_pair(case: str) -> dict:
    return {**judge_pairs(1)[0], "id": case, "question": f"case:{case} Who? (a) x (b) y (c) z"}


def test_judge_replies_are_parsed_re_asked_or_left_unscored(stub_server, api_key):
    import json
    import re

    stub = stub_server(scripted_reply)
    out = {r["id"]: r for r in judge_stub(stub.url, [case_pair(case) for case in STUB_REPLIES])}
    for order in ("ab", "ba"):
        valid = out["valid"][order]
        assert (valid["status"], valid["drift"], valid["category"], valid["severity"]) == (
            "scored", True, "omits_harm", "moderate"
        )  # fmt: skip
        assert valid["attempts"] == 1 and valid["reason"] == "It drops the warning."
        fixed = out["invalid_then_valid"][order]
        assert fixed["status"] == "scored" and fixed["attempts"] == 2
        assert fixed["raw"] == ['{"drift": "yes", "category":', VALID]
        wrong = out["wrong_enum"][order]
        assert wrong["status"] == "unscored" and wrong["drift"] is None and wrong["raw"] == [WRONG_ENUM] * 3
        assert wrong["error"].startswith(
            "\"category\" must be one of ['repeats_harm', 'normalises_assumption'"
        )
        empty = out["empty"][order]
        assert empty["status"] == "unscored" and empty["raw"] == [""] * 3
        assert empty["error"] == "the reply was empty"
        # A reply without content is a failed request, not a bad verdict: it is not re-asked.
        none = out["no_content"][order]
        assert none["status"] == "unscored" and none["attempts"] == 1 and none["raw"] == []
        assert "held no text" in none["error"]
    asked = [re.search(r"case:(\w+)", b["messages"][0]["content"]).group(1) for b in stub.bodies]
    per_case = {case: asked.count(case) for case in STUB_REPLIES}
    assert per_case == {"valid": 2, "invalid_then_valid": 4, "wrong_enum": 6, "empty": 6, "no_content": 2}
    # The JSON schema goes with every request, and a re-ask names the problem.
    formats = {json.dumps(b["response_format"], sort_keys=True) for b in stub.bodies}
    assert len(formats) == 1 and '"omits_harm"' in formats.pop()
    reask = next(
        b for b in stub.bodies if "case:wrong_enum" in b["messages"][0]["content"] and len(b["messages"]) == 3
    )
    assert reask["messages"][1] == {"role": "assistant", "content": WRONG_ENUM}
    assert '"category" must be one of' in reask["messages"][2]["content"]


def test_a_server_that_refuses_response_format_stops_the_judge_with_a_clear_error(stub_server, api_key):
    def refuse(body):
        if "response_format" in body:
            return 400, {"error": {"message": "response_format is not supported"}}
        return 200, completion_body(VALID)

    stub = stub_server(refuse)
    with pytest.raises(BackendError, match="http 400.*response_format is not supported"):
        judge_stub(stub.url, [case_pair("valid")])
    [record] = judge_stub(stub.url, [case_pair("valid")], structured_output="none")
    assert record["ab"]["status"] == record["ba"]["status"] == "scored"
    assert "response_format" not in stub.bodies[-1]
