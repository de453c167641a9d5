"""The LLM judge through the OpenAI back-end against a scripted local stub server (the back-end
against a real ``transformers serve``: tests/workflow/backends/test_openai_server.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conftest import validated_default_config
from harmdrift.backends import BackendError
from harmdrift.backends.openai_backend import OpenAIChatBackend
from judge_rows import judge_pairs

KEY_ENV = "HARMDRIFT_TEST_SERVER_KEY"
SECRET = "sk-test-never-written-anywhere"


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)  # the stub checks no key, but one must be set


ROOT = Path(__file__).resolve().parents[3]
JUDGE_TEMPLATE = ROOT / "config/prompts/judge_drift.txt"


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
    from harmdrift.audit.judge import TEMPLATE_SLOTS, ask_judge
    from harmdrift.config import judge_config
    from harmdrift.core.prompts import load_template

    template = load_template(JUDGE_TEMPLATE, TEMPLATE_SLOTS)
    backend = OpenAIChatBackend(
        model="stub", base_url=url, api_key_env=KEY_ENV, timeout_s=10, max_retries=0, progress=False
    )
    # The default profile's judge settings (JudgeConfig takes no defaults of its own), then these.
    default = judge_config(validated_default_config()["audit"]["judge"])
    judge = replace(default, backend="openai", max_reasks=2, **cfg)
    return ask_judge(backend, pairs, template, judge)


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
