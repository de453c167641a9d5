"""Chat back-ends: config rules, the response cache, and the OpenAI back-end against local fake servers."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harmdrift.backends import (
    BACKENDS,
    BackendConfig,
    BackendError,
    CachedBackend,
    ChatBackend,
    Completion,
    ResponseCache,
    cache_key,
    get_backend,
    write_usage,
)
from harmdrift.backends.base import truncate_at_stop
from harmdrift.backends.hf_backend import make_hf_backend
from harmdrift.backends.openai_backend import OpenAIChatBackend
from harmdrift.backends.scripted import ScriptedBackend
from harmdrift.core.decoding import GenParams

PARAMS = GenParams(max_new_tokens=32, temperature=0.2, top_p=0.9, seed=7)
KEY_ENV = "HARMDRIFT_TEST_API_KEY"
SECRET = "sk-test-not-a-real-key-4f2a"


def convo(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"backend": "openai", "model": "m", "api_key_env": "K"}, "base_url"),
        ({"backend": "openai", "model": "m", "base_url": "http://h/v1"}, "api_key_env"),
        ({"backend": "hf", "model": "m", "price_prompt_per_mtok": 1.0}, "price_prompt_per_mtok"),
    ],
)
def test_backend_config_rules_name_the_key(fields, key):
    # Only the rules joining two keys live here; single-key ranges are the schema's
    # (tests/unit/test_config.py).
    with pytest.raises(ValueError, match=key):
        BackendConfig(**fields)


def test_4bit_is_left_to_the_machine_that_loads_the_model():
    # Only that machine can tell what auto resolves to and whether bitsandbytes has kernels for
    # it; config validation and the engine ask it (tests/unit/test_config_checks.py).
    for device in ("auto", "cpu", "cuda"):
        assert BackendConfig(backend="hf", model="m", quantization="4bit", device=device).device == device


def test_get_backend_rejects_unknown_names_listing_known_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'vllm'.*'hf', 'openai', 'scripted'"):
        get_backend(BackendConfig(backend="vllm", model="m"), cache_dir=None)
    assert set(BACKENDS) == {"hf", "openai", "scripted"}


def test_get_backend_wraps_in_the_cache_only_when_asked(tmp_path):
    script = tmp_path / "replies.json"
    script.write_text(json.dumps({"a": "one", "*": "fallback"}))
    cfg = BackendConfig(backend="scripted", model=str(script))
    cached = get_backend(cfg, cache_dir=tmp_path / "cache")
    assert isinstance(cached, CachedBackend) and isinstance(cached, ChatBackend)
    assert (tmp_path / "cache" / "llm.sqlite").exists()
    assert isinstance(get_backend(cfg, cache_dir=None), ScriptedBackend)
    uncached = get_backend(BackendConfig(backend="scripted", model=str(script), cache=False), tmp_path)
    assert isinstance(uncached, ScriptedBackend)
    replies = uncached.complete([convo("x"), convo("y")], PARAMS, keys=["a", "b"])
    assert [c.text for c in replies] == ["one", "fallback"]


def test_scripted_factory_needs_a_json_file(tmp_path):
    with pytest.raises(ValueError, match="JSON file"):
        get_backend(BackendConfig(backend="scripted", model=str(tmp_path / "none.json")), None)


def test_write_usage_records_counts_cache_and_provenance(tmp_path):
    backend = CachedBackend(ScriptedBackend({"a": "one two"}), ResponseCache(tmp_path))
    backend.complete([convo("x")], PARAMS, keys=["a"])
    backend.complete([convo("x")], PARAMS, keys=["a"])
    record = write_usage(tmp_path / "usage.json", backend)
    assert json.loads((tmp_path / "usage.json").read_text()) == record
    assert record["requests"] == 1 and record["completion_tokens"] == 2
    assert (record["cache_hits"], record["cache_misses"]) == (1, 1)
    assert record["backend"] == {"backend": "scripted", "model": "scripted"}
    assert record["cost_usd"] is None and record["cache_file"].endswith("llm.sqlite")


def test_truncate_at_stop_cuts_after_the_answer_line():
    def done(text: str) -> bool:
        return text.rstrip().endswith(("Conclusion: YES", "Conclusion: NO"))

    assert truncate_at_stop("why\nConclusion: NO\nmore talk", done) == ("why\nConclusion: NO", True)
    assert truncate_at_stop("why\nConclusion: NO\n", done) == ("why\nConclusion: NO", False)
    assert truncate_at_stop("no answer yet\n", done) == ("no answer yet\n", False)
    assert truncate_at_stop("anything", None) == ("anything", False)


# ---------------------------------------------------------------- cache keys


def test_cache_key_is_stable_and_ignores_dict_order():
    describe = {"backend": "openai", "model": "m", "base_url": "http://h/v1"}
    messages = [{"role": "user", "content": "hi"}]
    assert cache_key(describe, messages, PARAMS) == cache_key(
        dict(reversed(describe.items())), messages, PARAMS
    )
    assert cache_key(describe, [{"content": "hi", "role": "user"}], PARAMS) == cache_key(
        describe, messages, PARAMS
    )
    assert len(cache_key(describe, messages, PARAMS)) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"params": GenParams(max_new_tokens=33, temperature=0.2, top_p=0.9, seed=7)},
        {"params": GenParams(max_new_tokens=32, temperature=0.3, top_p=0.9, seed=7)},
        {"params": GenParams(max_new_tokens=32, temperature=0.2, top_p=0.8, seed=7)},
        {"params": GenParams(max_new_tokens=32, temperature=0.2, top_p=0.9, seed=8)},
        {"sample_index": 1},
        {"describe": {"backend": "openai", "model": "m2", "base_url": "http://h/v1"}},
        {"describe": {"backend": "openai", "model": "m", "base_url": "http://other/v1"}},
        {"extra": {"response_format": {"type": "json_object"}}},
    ],
)
def test_cache_key_changes_with_what_changes_the_reply(change):
    base = {
        "describe": {"backend": "openai", "model": "m", "base_url": "http://h/v1"},
        "messages": [{"role": "user", "content": "hi"}],
        "params": PARAMS,
        "sample_index": 0,
        "extra": None,
    }
    assert cache_key(**base) != cache_key(**{**base, **change})


def test_cache_key_ignores_timeouts_retries_and_concurrency(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    common = {"model": "m", "base_url": "http://h/v1/", "api_key_env": KEY_ENV, "progress": False}
    fast = OpenAIChatBackend(**common, timeout_s=1.0, concurrency=1, max_retries=0)
    slow = OpenAIChatBackend(
        **{**common, "base_url": "http://h/v1"}, timeout_s=300, concurrency=64, max_retries=9
    )
    messages = [{"role": "user", "content": "hi"}]
    assert cache_key(fast.describe(), messages, PARAMS) == cache_key(slow.describe(), messages, PARAMS)


# ---------------------------------------------------------------- cached backend


def test_cached_backend_counts_hits_and_misses_and_marks_hits(tmp_path):
    inner = ScriptedBackend(lambda key, messages: f"reply to {key}")
    backend = CachedBackend(inner, ResponseCache(tmp_path))
    first = backend.complete([convo("x"), convo("y")], PARAMS, keys=["a", "b"])
    second = backend.complete([convo("x"), convo("y")], PARAMS, keys=["a", "b"])
    assert [c.text for c in second] == [c.text for c in first] == ["reply to a", "reply to b"]
    assert [c.cached for c in first] == [False, False] and [c.cached for c in second] == [True, True]
    assert (backend.hits, backend.misses) == (2, 2)
    assert inner.calls == [["a", "b"]]
    assert backend.usage()["requests"] == 2  # the inner back-end was asked twice, not four times


def test_mixed_hits_and_misses_keep_input_order(tmp_path):
    inner = ScriptedBackend(lambda key, messages: messages[-1]["content"].upper())
    backend = CachedBackend(inner, ResponseCache(tmp_path))
    backend.complete([convo("b"), convo("d")], PARAMS, keys=["kb", "kd"])
    texts = ["a", "b", "c", "d", "e"]
    out = backend.complete([convo(t) for t in texts], PARAMS, keys=[f"k{t}" for t in texts])
    assert [c.text for c in out] == ["A", "B", "C", "D", "E"]
    assert [c.cached for c in out] == [False, True, False, True, False]
    assert inner.calls[-1] == ["ka", "kc", "ke"]


def test_errored_completions_are_not_cached_so_a_rerun_retries_them(tmp_path):
    script = {"good": "fine", "bad": Completion.failed("http 500 after 4 attempts")}
    inner = ScriptedBackend(script)
    backend = CachedBackend(inner, ResponseCache(tmp_path))
    out = backend.complete([convo("1"), convo("2")], PARAMS, keys=["good", "bad"])
    assert out[1].error == "http 500 after 4 attempts" and out[1].text == ""
    assert len(backend.cache) == 1
    backend.complete([convo("1"), convo("2")], PARAMS, keys=["good", "bad"])
    assert inner.calls == [["good", "bad"], ["bad"]]


def test_cache_persists_across_instances_on_the_same_file(tmp_path):
    first = CachedBackend(ScriptedBackend({"a": "A", "b": "B"}), ResponseCache(tmp_path))
    first.complete([convo("x"), convo("y")], PARAMS, keys=["a", "b"])
    first.cache.close()
    inner = ScriptedBackend({})  # would raise KeyError if asked anything
    second = CachedBackend(inner, ResponseCache(tmp_path))
    out = second.complete([convo("x"), convo("y")], PARAMS, keys=["a", "b"])
    assert [c.text for c in out] == ["A", "B"] and all(c.cached for c in out)
    assert (second.hits, second.misses, inner.calls) == (2, 0, [])


def test_cache_entries_use_cache_key_and_keep_the_request(tmp_path):
    inner = ScriptedBackend({"a": "A"})
    backend = CachedBackend(inner, ResponseCache(tmp_path))
    backend.complete([convo("x")], PARAMS, keys=["a"])
    key = cache_key(inner.describe(), convo("x"), PARAMS)
    assert backend.cache.get_many([key])[key].text == "A"
    stored = backend.cache._store._conn.execute("SELECT value FROM llm_replies").fetchone()[0]
    assert json.loads(json.loads(stored)["request"])["messages"] == convo("x")


def test_sample_index_response_format_and_stop_get_their_own_entries(tmp_path):
    inner = ScriptedBackend(lambda key, messages: "why\nConclusion: YES\nextra")
    backend = CachedBackend(inner, ResponseCache(tmp_path))

    def done(text: str) -> bool:
        return text.endswith("Conclusion: YES")

    calls = [
        {},
        {"sample_indices": [1]},
        {"response_format": {"type": "json_object"}},
        {"stop": done},
    ]
    outs = [backend.complete([convo("x")], PARAMS, keys=["a"], **kw)[0] for kw in calls]
    assert backend.misses == 4 and backend.hits == 0
    assert outs[3].text == "why\nConclusion: YES" and outs[0].text.endswith("extra")
    assert backend.complete([convo("x")], PARAMS, keys=["a"], stop=done)[0].cached


def test_keyed_sampling_backends_cache_per_key_only_when_sampling(tmp_path):
    class Keyed(ScriptedBackend):
        def describe(self) -> dict:
            return {**super().describe(), "keyed_sampling": True}

    backend = CachedBackend(Keyed(lambda key, messages: key), ResponseCache(tmp_path))
    assert [c.text for c in backend.complete([convo("x")] * 2, PARAMS, keys=["a", "b"])] == ["a", "b"]
    greedy = GenParams(max_new_tokens=32, temperature=0.0, top_p=0.9, seed=7)
    backend.complete([convo("x")], greedy, keys=["a"])
    assert backend.complete([convo("x")], greedy, keys=["b"])[0].cached  # greedy: the key is irrelevant


def test_misses_are_stored_chunk_by_chunk(tmp_path):
    def reply(key: str, messages: list[dict]) -> str:
        if key == "k3":
            raise RuntimeError("back-end crashed")
        return key

    backend = CachedBackend(ScriptedBackend(reply), ResponseCache(tmp_path), chunk_size=2)
    with pytest.raises(RuntimeError, match="crashed"):
        backend.complete([convo(str(i)) for i in range(5)], PARAMS, keys=[f"k{i}" for i in range(5)])
    assert len(backend.cache) == 2  # the first chunk was paid for and kept


# ---------------------------------------------------------------- hf backend (tiny random model)


def test_hf_backend_answers_and_loads_the_model_only_on_a_miss(tiny_model, tmp_path):
    cfg = BackendConfig(backend="hf", model=tiny_model, dtype="float32", device="cpu", batch_size=4)
    inner = make_hf_backend(cfg, progress=False)
    described = inner.describe()
    assert described["backend"] == "hf" and described["weights"]["weights_sha256"]
    assert inner._engine is None  # describing does not load the model
    backend = CachedBackend(inner, ResponseCache(tmp_path))
    params = GenParams(max_new_tokens=6, temperature=1.0, top_p=1.0, seed=3)
    out = backend.complete([convo("the law"), convo("the law")], params, keys=["q1", "q2"])
    assert all(c.ok and c.completion_tokens and 1 <= c.completion_tokens <= 6 for c in out)
    assert all(c.prompt_tokens for c in out)
    assert backend.misses == 2  # same prompt, different keys: sampled separately
    again = make_hf_backend(cfg, progress=False)
    rerun = CachedBackend(again, ResponseCache(tmp_path)).complete(
        [convo("the law"), convo("the law")], params, keys=["q1", "q2"]
    )
    assert [c.text for c in rerun] == [c.text for c in out] and all(c.cached for c in rerun)
    assert again._engine is None


# ---------------------------------------------------------------- openai backend vs fake servers


def chat_completion(text: str, prompt_tokens: int = 10, completion_tokens: int = 5) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class FakeServer:
    """A local OpenAI-style server whose replies come from ``behave(server, attempt_number, body)``.

    ``behave`` returns (status, json_body, delay_s[, headers]). The server records every
    request body and its headers, and the largest number of requests it was handling at once.
    """

    def __init__(self, behave) -> None:
        self.behave = behave
        self.bodies: list[dict] = []
        self.auth: list[str] = []  # Authorization headers received
        self.headers: list[dict[str, str]] = []  # every request's headers, names lower-cased
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # set at shutdown, so sleeping handlers end at once
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        # A short poll interval makes shutdown (and so each test's teardown) quick.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    server.auth.append(self.headers.get("Authorization", ""))
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    attempt = len(server.bodies)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload, delay, *headers = server.behave(server, attempt, body)
                    if delay and server.release.wait(delay):
                        return
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers[0] if headers else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected in the timeout tests
                finally:
                    with server.lock:
                        server.in_flight -= 1

        return Handler

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server():
    servers: list[FakeServer] = []

    def start(behave) -> FakeServer:
        servers.append(FakeServer(behave))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


@pytest.fixture(autouse=True)
def quick_client_backoff(monkeypatch):
    """The openai client's own back-off between retries, 0.5 s doubling, cut to 10 ms: the
    retries are counted, not waited for (a server's Retry-After is still honoured in full)."""
    import openai._base_client

    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.01)


def make_backend(server: FakeServer, **kwargs) -> OpenAIChatBackend:
    settings = {"max_retries": 3, "timeout_s": 5.0, "progress": False, **kwargs}
    return OpenAIChatBackend(model="fake-model", base_url=server.url, api_key_env=KEY_ENV, **settings)


def test_server_errors_are_retried_until_success(fake_server, api_key):
    server = fake_server(
        lambda s, n, body: (
            (500, {"error": {"message": "boom"}}, 0) if n <= 2 else (200, chat_completion("ok"), 0)
        )
    )
    backend = make_backend(server)
    [reply] = backend.complete([convo("x")], PARAMS, keys=["a"])
    assert reply.ok and reply.text == "ok" and reply.finish_reason == "stop"
    assert len(server.bodies) == 3
    assert backend.usage()["attempts"] == 3 and backend.usage()["errors"] == 0
    # The retries are the openai client's own: it numbers the attempts of one request (three
    # separate first attempts, as a retry loop of ours would send, would each say 0).
    assert [h["x-stainless-retry-count"] for h in server.headers] == ["0", "1", "2"]


def test_rate_limits_are_retried_after_the_servers_pause(fake_server, api_key):
    server = fake_server(
        lambda s, n, body: (
            (429, {"error": {"message": "slow down"}}, 0, {"Retry-After": "1"})
            if n == 1
            else (200, chat_completion("ok"), 0)
        )
    )
    started = time.perf_counter()
    [reply] = make_backend(server).complete([convo("x")], PARAMS, keys=["a"])
    assert reply.text == "ok" and len(server.bodies) == 2
    assert time.perf_counter() - started >= 0.9  # the server's pause; the first back-off is at most 0.5s


def test_the_configured_retries_and_timeout_reach_the_client(fake_server, api_key):
    def behave(server, n, body):
        if body["messages"][-1]["content"] == "slow":
            return 200, chat_completion("late"), 30
        return 503, {"error": {"message": "overloaded"}}, 0

    server = fake_server(behave)
    cfg = BackendConfig(
        backend="openai", model="m", base_url=server.url, api_key_env=KEY_ENV, max_retries=1, timeout_s=0.5
    )
    backend = OpenAIChatBackend.from_config(cfg, progress=False)
    started = time.perf_counter()
    out = backend.complete([convo("slow"), convo("x")], PARAMS, keys=["a", "b"])
    assert [c.error for c in out] == ["timeout after 2 attempts", "http 503 after 2 attempts"]
    assert time.perf_counter() - started < 5 and len(server.bodies) == 4
    assert backend.usage() == {
        "requests": 2, "attempts": 4, "prompt_tokens": None, "completion_tokens": 0, "cost_usd": None,
        "errors": 2,
    }  # fmt: skip
    without_retries = OpenAIChatBackend.from_config(dataclasses.replace(cfg, max_retries=0), progress=False)
    [reply] = without_retries.complete([convo("x")], PARAMS, keys=["c"])
    assert reply.error == "http 503 after 1 attempt" and len(server.bodies) == 5


def test_a_server_that_never_answers_becomes_a_recorded_error(fake_server, api_key):
    server = fake_server(lambda s, n, body: (200, chat_completion("late"), 30))
    backend = make_backend(server, timeout_s=0.5, max_retries=1)
    started = time.perf_counter()
    out = backend.complete([convo("x"), convo("y")], PARAMS, keys=["a", "b"])
    elapsed = time.perf_counter() - started
    assert [c.error for c in out] == ["timeout after 2 attempts"] * 2
    assert all(c.text == "" and c.finish_reason == "error" for c in out)
    assert len(server.bodies) == 4 and elapsed < 5
    assert backend.usage()["errors"] == 2


def test_one_failing_request_does_not_lose_the_others(fake_server, api_key):
    def behave(server, n, body):
        if body["messages"][-1]["content"] == "bad":
            return 503, {"error": {"message": "overloaded"}}, 0
        return 200, chat_completion("fine"), 0

    backend = make_backend(fake_server(behave), max_retries=2)
    out = backend.complete([convo("good"), convo("bad"), convo("good")], PARAMS, keys=["a", "b", "c"])
    assert [c.text for c in out] == ["fine", "", "fine"]
    assert out[1].error == "http 503 after 3 attempts"


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_a_rejected_request_raises_at_once(fake_server, api_key, status):
    server = fake_server(lambda s, n, body: (status, {"error": {"message": "no such thing"}}, 0))
    with pytest.raises(BackendError, match=rf"rejected request 'a' with http {status}.*no such thing"):
        make_backend(server).complete([convo("x")], PARAMS, keys=["a"])
    assert len(server.bodies) == 1


def test_a_missing_api_key_is_a_clear_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(BackendError, match=KEY_ENV):
        OpenAIChatBackend(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV)
    cfg = BackendConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV)
    with pytest.raises(BackendError, match=KEY_ENV):
        get_backend(cfg, cache_dir=None)


def test_the_api_key_is_sent_but_never_described_or_stored(fake_server, api_key, tmp_path):
    server = fake_server(lambda s, n, body: (200, chat_completion("ok"), 0))
    backend = make_backend(server)
    cached = CachedBackend(backend, ResponseCache(tmp_path))
    cached.complete([convo("x")], PARAMS, keys=["a"])
    record = write_usage(tmp_path / "usage.json", cached)
    assert SECRET not in json.dumps(record) and SECRET not in repr(vars(backend))
    assert SECRET.encode() not in (tmp_path / "llm.sqlite").read_bytes()
    assert server.auth == [f"Bearer {SECRET}"]


def test_concurrency_limit_is_respected(fake_server, api_key):
    server = fake_server(lambda s, n, body: (200, chat_completion("ok"), 0.15))
    backend = make_backend(server, concurrency=3)
    out = backend.complete([convo(str(i)) for i in range(10)], PARAMS, keys=[f"k{i}" for i in range(10)])
    assert all(c.ok for c in out)
    assert 2 <= server.max_in_flight <= 3


def test_request_fields_usage_and_cost(fake_server, api_key):
    server = fake_server(lambda s, n, body: (200, chat_completion("ok", 100, 20), 0))
    priced = make_backend(server, price_prompt_per_mtok=0.5, price_completion_per_mtok=2.0)
    schema = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": {"type": "object"}}}
    priced.complete(
        [convo("x"), convo("y"), convo("z")], PARAMS, keys=["a", "b", "c"], response_format=schema
    )
    # Requests run concurrently, so the server may see them in any order.
    body = next(b for b in server.bodies if b["messages"] == convo("x"))
    assert body["model"] == "fake-model"
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.2, 0.9, 32, 7)
    assert body["response_format"] == schema
    usage = priced.usage()
    assert usage == {
        "requests": 3,
        "attempts": 3,
        "prompt_tokens": 300,
        "completion_tokens": 60,
        "cost_usd": pytest.approx((300 * 0.5 + 60 * 2.0) / 1e6),
        "errors": 0,
    }
    unpriced = make_backend(server)
    unpriced.complete([convo("x")], PARAMS, keys=["a"])
    assert unpriced.usage()["cost_usd"] is None
    assert "response_format" not in server.bodies[-1]


def test_stop_cuts_the_reply_and_malformed_replies_are_errors(fake_server, api_key):
    def behave(server, n, body):
        if body["messages"][-1]["content"] == "odd":
            return 200, {"error": "not a completion"}, 0
        return 200, chat_completion("why\nConclusion: NO\nAnd more."), 0

    backend = make_backend(fake_server(behave))
    out = backend.complete(
        [convo("x"), convo("odd")], PARAMS, keys=["a", "b"], stop=lambda t: t.endswith("Conclusion: NO")
    )
    assert (out[0].text, out[0].finish_reason) == ("why\nConclusion: NO", "stop")
    assert out[1].error and out[1].error.startswith("malformed response")


def test_a_rejection_cancels_the_requests_still_running(fake_server, api_key):
    def behave(server, n, body):
        if body["messages"][-1]["content"] == "bad":
            return 400, {"error": {"message": "bad request"}}, 0.1
        return 200, chat_completion("late"), 30

    backend = make_backend(fake_server(behave))
    started = time.perf_counter()
    with pytest.raises(BackendError, match="http 400"):
        backend.complete([convo("slow"), convo("bad"), convo("slow")], PARAMS, keys=["a", "b", "c"])
    assert time.perf_counter() - started < 5


def test_an_unreachable_server_becomes_a_recorded_error(api_key):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIChatBackend(
        model="m",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key_env=KEY_ENV,
        max_retries=1,
        progress=False,
    )
    [reply] = backend.complete([convo("x")], PARAMS, keys=["a"])
    assert reply.error == "connection error after 2 attempts"


def test_hf_backend_chooses_an_allowed_option(tiny_model):
    from harmdrift.backends import BackendConfig
    from harmdrift.backends.hf_backend import make_hf_backend

    backend = make_hf_backend(BackendConfig(backend="hf", model=tiny_model, dtype="float32"), progress=False)
    picks = backend.choose([[{"role": "user", "content": "is it the same"}]] * 2, ["yes", "no"])
    assert len(picks) == 2 and set(picks) <= {"yes", "no"}


def test_the_key_value_store_round_trips_json_and_survives_reopening(tmp_path):
    from harmdrift.core.store import KeyValueStore

    with KeyValueStore(tmp_path / "s.sqlite", "things") as store:
        assert store.put_many([("a", {"x": 1.5}), ("b", [1, "two"])]) == 2
        assert store.put_many([]) == 0
    with KeyValueStore(tmp_path / "s.sqlite", "things") as store:
        assert store.get_many(["a", "b", "missing", "a"]) == {"a": {"x": 1.5}, "b": [1, "two"]}
        assert len(store) == 2
    with pytest.raises(ValueError, match="not a table name"):
        KeyValueStore(tmp_path / "s.sqlite", "bad name; DROP")
