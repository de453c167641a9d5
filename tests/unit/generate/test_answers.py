"""Answer files: record layout, parsing, checkpoint/resume, and errors, with a scripted model."""

from __future__ import annotations

import json

import pytest

from harmdrift.backends.base import Completion
from harmdrift.core.decoding import GenParams
from harmdrift.core.io import DataError, read_jsonl, write_jsonl
from harmdrift.generate.answers import AnswerConfig, generate_answers
from harmdrift.lm.forced import ForcedChoice


class ScriptedBackend:
    """Test double of the local back-end: replies from a table, can crash after a number of
    complete calls (chunks)."""

    batch_size = 2

    def __init__(self, replies: dict[str, str], crash_after: int | None = None, forced_works=True) -> None:
        self.replies = replies
        self.crash_after = crash_after
        self.forced_works = forced_works
        self.asked: list[str] = []
        self.forced_asked: list = []
        self.calls = 0

    def render(self, conversation):
        return conversation[-1]["content"]

    def decoding_settings(self) -> dict:
        return {"dtype": "float32", "device": "cpu", "batch_size": self.batch_size, "sort_by_length": False}

    def complete(self, conversations, params, *, keys, stop=None, forced=None, desc=None):
        self.forced_asked.append(forced)
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise KeyboardInterrupt("simulated crash")
        self.calls += 1
        self.asked += list(keys)
        return [
            Completion(self.replies[key], None, 5, "stop", forced_scores=self._forced(forced, key))
            for key in keys
        ]

    def _forced(self, forced, key: str):
        # The forced choice prefers NO on even items, YES on odd ones (like the scripted replies).
        if forced is None or not self.forced_works:
            return None
        odd = int(key.rsplit("-", 1)[1]) % 2
        return {"YES": -0.5 if odd else -2.0, "NO": -2.0 if odd else -0.5}


ITEMS = [
    {
        "id": f"D1-diff-{i}",
        "benchmark": "D1",
        "category": "descriptive",
        "condition": "diff",
        "scenario_id": str(i),
        "gold_label": "YES",
        "correct_option": "a",
        "split": "test",
        "reconstructed": False,
        "question": f"Question {i}? (a) x (b) y (c) same",
        "options": {"a": "x", "b": "y", "c": "same"},
    }
    for i in range(5)
]
REPLIES = {item["id"]: f"Reason {n}.\nConclusion: {'YES' if n % 2 else 'NO'}" for n, item in enumerate(ITEMS)}
# Chunks of 2 items: a crash after the first generate call leaves 2 checkpointed records.
CFG = AnswerConfig(framing="binary", model_name="m0", params=GenParams(max_new_tokens=8), checkpoint_every=2)
FORCED = AnswerConfig(
    framing="binary",
    model_name="m0",
    params=GenParams(max_new_tokens=8),
    forced=ForcedChoice(),
    checkpoint_every=2,
)
PROV = {"kind": "local", "model": "scripted"}


def crash_after_first_chunk(items, template, out, cfg: AnswerConfig, **kwargs) -> None:
    """Run the job with a back-end that is killed after its first chunk (a crash mid-job)."""
    with pytest.raises(KeyboardInterrupt):
        generate_answers(
            items,
            template,
            out,
            cfg=cfg,
            backend=ScriptedBackend(REPLIES, crash_after=1),
            provenance=PROV,
            **kwargs,
        )


@pytest.fixture
def paths(tmp_path):
    items = tmp_path / "test.jsonl"
    write_jsonl(items, ITEMS)
    template = tmp_path / "t.txt"
    template.write_text("{question}\nAnswer.")
    return items, template, tmp_path / "out" / "test.binary.jsonl"


def test_records_in_item_order_with_parsed_predictions(paths):
    items, template, out = paths
    summary = generate_answers(
        items, template, out, cfg=CFG, backend=ScriptedBackend(REPLIES), provenance=PROV
    )
    records = read_jsonl(out)
    assert [r["id"] for r in records] == [i["id"] for i in ITEMS]
    assert [r["prediction"] for r in records] == ["NO", "YES", "NO", "YES", "NO"]
    assert {r["parse_status"] for r in records} == {"strict"}
    assert records[0]["provenance"] == PROV
    assert records[0]["decoding"]["max_new_tokens"] == 8
    assert records[0]["prompt"][-1]["content"].startswith("Question 0?")
    assert summary["items"] == 5 and summary["reused_from_checkpoint"] == 0
    assert not out.with_name(out.name + ".partial").exists()


def test_interrupted_run_resumes_without_redoing_work(paths):
    items, template, out = paths
    crash_after_first_chunk(items, template, out, CFG)
    assert not out.exists()
    checkpoint = out.with_name(out.name + ".partial")
    assert len(checkpoint.read_text().splitlines()) == 2  # the first batch survived
    second = ScriptedBackend(REPLIES)
    summary = generate_answers(items, template, out, cfg=CFG, backend=second, provenance=PROV)
    assert second.asked == [i["id"] for i in ITEMS[2:]]
    assert summary["reused_from_checkpoint"] == 2
    assert len(read_jsonl(out)) == 5
    assert not checkpoint.exists()


def test_changed_settings_invalidate_the_checkpoint(paths):
    items, template, out = paths
    crash_after_first_chunk(items, template, out, CFG)
    changed = AnswerConfig(
        framing="binary", model_name="m0", params=GenParams(max_new_tokens=9), checkpoint_every=2
    )
    again = ScriptedBackend(REPLIES)
    generate_answers(items, template, out, cfg=changed, backend=again, provenance=PROV)
    assert len(again.asked) == 5


def test_damaged_checkpoint_line_is_tolerated(paths):
    items, template, out = paths
    crash_after_first_chunk(items, template, out, CFG)
    checkpoint = out.with_name(out.name + ".partial")
    with checkpoint.open("a") as handle:
        handle.write('{"id": "D1-diff-2", "raw_out')  # a crash mid-write
    again = ScriptedBackend(REPLIES)
    generate_answers(items, template, out, cfg=CFG, backend=again, provenance=PROV)
    assert again.asked == [i["id"] for i in ITEMS[2:]]


def test_empty_split_is_a_clear_error(paths, tmp_path):
    _, template, out = paths
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no items"):
        generate_answers(empty, template, out, cfg=CFG, backend=ScriptedBackend({}), provenance=PROV)


def test_unknown_framing_is_rejected():
    with pytest.raises(ValueError, match="framing"):
        AnswerConfig(framing="essay", model_name="m0", params=GenParams())


def test_records_are_json_serialisable(paths):
    items, template, out = paths
    generate_answers(items, template, out, cfg=CFG, backend=ScriptedBackend(REPLIES), provenance=PROV)
    json.dumps(read_jsonl(out))


def test_forced_choice_fields_in_binary_records(paths):
    items, template, out = paths
    backend = ScriptedBackend(REPLIES)
    summary = generate_answers(items, template, out, cfg=FORCED, backend=backend, provenance=PROV)
    records = read_jsonl(out)
    assert backend.forced_asked == [ForcedChoice()] * 3  # one call per chunk of 2 items
    assert [r["forced_prediction"] for r in records] == ["NO", "YES", "NO", "YES", "NO"]
    assert records[1]["forced_scores"] == {"YES": -0.5, "NO": -2.0}
    assert records[0]["decoding"]["forced_choice"] == {
        "prefix": "\nConclusion:",
        "options": ["YES", "NO"],
        "separator": " ",
    }
    assert summary["forced_prediction"] == {"NO": 3, "YES": 2}


def test_forced_choice_off_adds_nothing(paths):
    items, template, out = paths
    backend = ScriptedBackend(REPLIES)
    generate_answers(items, template, out, cfg=CFG, backend=backend, provenance=PROV)
    records = read_jsonl(out)
    assert backend.forced_asked == [None] * 3
    assert all("forced_scores" not in r and "forced_prediction" not in r for r in records)
    assert all("forced_choice" not in r["decoding"] for r in records)


def test_records_without_forced_fields_are_not_resumed(paths):
    """A checkpoint from before the forced choice (or without it) is regenerated, not reused."""
    items, template, out = paths
    crash_after_first_chunk(items, template, out, CFG)
    again = ScriptedBackend(REPLIES)
    summary = generate_answers(items, template, out, cfg=FORCED, backend=again, provenance=PROV)
    assert again.asked == [i["id"] for i in ITEMS]
    assert summary["reused_from_checkpoint"] == 0
    assert all(r["forced_prediction"] in {"YES", "NO"} for r in read_jsonl(out))


def test_matching_fingerprint_without_forced_scores_is_not_reused(paths):
    items, template, out = paths
    crash_after_first_chunk(items, template, out, FORCED)
    checkpoint = out.with_name(out.name + ".partial")
    rows = [json.loads(line) for line in checkpoint.read_text().splitlines()]
    rows[0].pop("forced_scores")
    rows[0].pop("forced_prediction")
    checkpoint.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = ScriptedBackend(REPLIES)
    generate_answers(items, template, out, cfg=FORCED, backend=again, provenance=PROV)
    assert again.asked == [i["id"] for i in ITEMS]  # the first chunk, half unusable, is decoded again whole


def test_forced_choice_needs_the_binary_framing_and_a_scoring_backend(paths):
    with pytest.raises(ValueError, match="binary"):
        AnswerConfig(framing="mc", model_name="m0", params=GenParams(), forced=ForcedChoice())
    items, template, out = paths
    with pytest.raises(RuntimeError, match="forced-choice"):
        generate_answers(
            items,
            template,
            out,
            cfg=FORCED,
            backend=ScriptedBackend(REPLIES, forced_works=False),
            provenance=PROV,
        )


def test_forced_choice_with_a_real_model(paths, tiny_model):
    from harmdrift.backends.hf_backend import HFChatBackend
    from harmdrift.lm.engine import HFModelConfig

    items, template, out = paths
    model = HFModelConfig(model=tiny_model, dtype="float32", device="cpu", batch_size=2)
    backend = HFChatBackend(model, name="tiny", weights=lambda: PROV, progress=False)
    generate_answers(items, template, out, cfg=FORCED, backend=backend, provenance=PROV)
    for record in read_jsonl(out):
        scores = record["forced_scores"]
        assert set(scores) == {"YES", "NO"} and all(v < 0 for v in scores.values())
        assert record["forced_prediction"] == max(scores, key=scores.get)


# ---------------------------------------------------------------- replies of an identical job


def _reuse(tmp_path, adapter_hash="a" * 64):
    from harmdrift.core.store import KeyValueStore
    from harmdrift.generate.answers import ReplyReuse

    store = KeyValueStore(tmp_path / "cache" / "replies.sqlite", "replies")
    return ReplyReuse(store, {"base": PROV, "adapter_sha256": adapter_hash})


def test_an_identical_job_reads_the_earlier_replies_and_writes_its_own_records(paths, tmp_path):
    items, template, out = paths
    first = ScriptedBackend(REPLIES)
    generate_answers(items, template, out, cfg=FORCED, backend=first, provenance=PROV, reuse=_reuse(tmp_path))
    copy_out = out.with_name("copy.binary.jsonl")
    copy_cfg = AnswerConfig(
        framing="binary", model_name="m_dart", params=FORCED.params, forced=ForcedChoice(), checkpoint_every=2
    )
    copy_prov = {**PROV, "adapter": "results/adapters/m_dart"}
    second = ScriptedBackend({})  # would fail on any item it is asked
    summary = generate_answers(
        items,
        template,
        copy_out,
        cfg=copy_cfg,
        backend=second,
        provenance=copy_prov,
        reuse=_reuse(tmp_path),
    )
    assert second.asked == [] and summary["reused_from_identical_job"] == 5
    original, copied = read_jsonl(out), read_jsonl(copy_out)
    assert {r["model"] for r in copied} == {"m_dart"} and copied[0]["provenance"] == copy_prov
    for a, b in zip(original, copied, strict=True):
        for field in ("raw_output", "prediction", "n_new_tokens", "finish_reason", "forced_scores"):
            assert a[field] == b[field], field
        # In the options' order, as decoded, though the store keeps JSON with sorted keys.
        assert list(b["forced_scores"]) == list(a["forced_scores"]) == ["YES", "NO"]


def test_an_identical_job_never_loads_the_weights(paths, tmp_path, tiny_model):
    """The reused job renders its prompts with the tokenizer alone; the weights stay on disk."""
    from harmdrift.backends.hf_backend import HFChatBackend
    from harmdrift.lm.engine import HFModelConfig

    items, template, out = paths
    model_cfg = HFModelConfig(model=tiny_model, dtype="float32", device="cpu", batch_size=2)
    first = HFChatBackend(model_cfg, name="tiny", weights=lambda: PROV, progress=False)
    generate_answers(items, template, out, cfg=FORCED, backend=first, provenance=PROV,
                     reuse=_reuse(tmp_path))  # fmt: skip
    assert "model" in vars(first.engine)  # decoded, so loaded
    second = HFChatBackend(model_cfg, name="tiny", weights=lambda: PROV, progress=False)
    copy_out = out.with_name("copy.binary.jsonl")
    summary = generate_answers(items, template, copy_out, cfg=FORCED, backend=second, provenance=PROV,
                               reuse=_reuse(tmp_path))  # fmt: skip
    assert summary["reused_from_identical_job"] == 5 and "model" not in vars(second.engine)
    assert [r["raw_output"] for r in read_jsonl(copy_out)] == [r["raw_output"] for r in read_jsonl(out)]


def test_other_weights_or_prompts_decode_again(paths, tmp_path):
    items, template, out = paths
    generate_answers(items, template, out, cfg=CFG, backend=ScriptedBackend(REPLIES), provenance=PROV,
                     reuse=_reuse(tmp_path))  # fmt: skip
    other_adapter = ScriptedBackend(REPLIES)
    generate_answers(items, template, out.with_name("b.jsonl"), cfg=CFG, backend=other_adapter,
                     provenance=PROV, reuse=_reuse(tmp_path, adapter_hash="b" * 64))  # fmt: skip
    assert len(other_adapter.asked) == 5
    template.write_text("{question}\nAnswer briefly.")
    other_prompt = ScriptedBackend(REPLIES)
    generate_answers(items, template, out.with_name("c.jsonl"), cfg=CFG, backend=other_prompt,
                     provenance=PROV, reuse=_reuse(tmp_path))  # fmt: skip
    assert len(other_prompt.asked) == 5


def test_a_resumed_job_is_not_kept_for_reuse(paths, tmp_path):
    items, template, out = paths
    crash_after_first_chunk(items, template, out, CFG, reuse=_reuse(tmp_path))
    generate_answers(items, template, out, cfg=CFG, backend=ScriptedBackend(REPLIES), provenance=PROV,
                     reuse=_reuse(tmp_path))  # fmt: skip
    again = ScriptedBackend(REPLIES)
    generate_answers(items, template, out.with_name("d.jsonl"), cfg=CFG, backend=again, provenance=PROV,
                     reuse=_reuse(tmp_path))  # fmt: skip
    assert len(again.asked) == 5


def test_weights_are_named_by_content_and_a_moving_hub_branch_is_never_reused(tmp_path):
    from harmdrift.generate.rules import reply_reuse, weights_identity

    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"same weights")
        (folder / "adapter_config.json").write_text("{}")
    (b / "loss.csv").write_text("step,loss\n1,0.5\n")  # logs of the copy do not matter
    local = {"kind": "local", "model": "m", "weights_sha256": "0" * 64}
    assert weights_identity({**local, "adapter": str(a)}, str(a)) == weights_identity(local, str(b))
    (b / "adapter_model.safetensors").write_bytes(b"other weights")
    assert weights_identity(local, str(a)) != weights_identity(local, str(b))
    assert weights_identity({"kind": "hub", "model": "x/y", "revision": "main"}, None) is None
    assert weights_identity({"kind": "hub", "model": "x/y", "revision": "f" * 40}, None) is not None
    assert reply_reuse({"cache": False}, str(tmp_path), local, None) is None
    assert reply_reuse({"cache": True}, None, local, None) is None
    assert reply_reuse({"cache": True}, str(tmp_path), local, None) is not None


class CrashingBackend:
    """A real back-end that raises on its ``crash_at``-th complete call (a kill mid-job)."""

    def __init__(self, inner, crash_at: int) -> None:
        self.inner, self.crash_at, self.calls = inner, crash_at, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def complete(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        return self.inner.complete(*args, **kwargs)


def test_a_resumed_job_writes_the_bytes_of_an_uninterrupted_one(tiny_model, tmp_path):
    """With the real engine, sampled and scored: chunks are decoded alike whether or not the job
    was resumed, so the resumed file is byte-identical (rows decoded beside other companions
    would shift float32 scores)."""
    from harmdrift.backends.hf_backend import HFChatBackend
    from harmdrift.lm.engine import HFModelConfig

    items = tmp_path / "items.jsonl"
    write_jsonl(items, [{**ITEMS[i % 5], "id": f"D1-diff-{i}", "question": f"is the law {'a fact ' * i}?"}
                        for i in range(7)])  # fmt: skip
    template = tmp_path / "t.txt"
    template.write_text("{question}")
    cfg = AnswerConfig(framing="binary", model_name="m0", params=GenParams(max_new_tokens=6, temperature=0.7),
                       forced=ForcedChoice(), checkpoint_every=3)  # fmt: skip

    def backend():
        model = HFModelConfig(model=tiny_model, dtype="float32", device="cpu", batch_size=2)
        return HFChatBackend(model, name="tiny", weights=lambda: PROV, progress=False)

    whole = tmp_path / "whole.binary.jsonl"
    generate_answers(items, template, whole, cfg=cfg, backend=backend(), provenance=PROV)
    resumed = tmp_path / "resumed.binary.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_answers(items, template, resumed, cfg=cfg, backend=CrashingBackend(backend(), 2),
                         provenance=PROV)  # fmt: skip
    assert len(resumed.with_name(resumed.name + ".partial").read_text().splitlines()) == 3
    summary = generate_answers(items, template, resumed, cfg=cfg, backend=backend(), provenance=PROV)
    assert summary["reused_from_checkpoint"] == 3
    assert resumed.read_bytes() == whole.read_bytes()


def test_policy_rows_get_the_system_prompt_and_a_trimmed_recorded_analysis(paths):
    from dataclasses import replace

    items, template, out = paths
    long_reply = "One two. Three four. Five six. Seven eight. Nine ten.\nConclusion: YES"
    replies = {**REPLIES, "D1-diff-1": long_reply}

    class SeesSystem(ScriptedBackend):
        def complete(self, conversations, params, **kwargs):
            assert all(c[0] == {"role": "system", "content": "Be brief."} for c in conversations)
            return super().complete(conversations, params, **kwargs)

    cfg = replace(CFG, policy="Be brief.")
    generate_answers(items, template, out, cfg=cfg, backend=SeesSystem(replies), provenance=PROV)
    records = {r["id"]: r for r in read_jsonl(out)}
    trimmed = records["D1-diff-1"]
    assert trimmed["raw_output"] == "One two. Three four. Five six. Seven eight.\nConclusion: YES"
    assert trimmed["policy_trim"] == {"trimmed": True, "sentences": 5, "chars": 53, "untrimmed": long_reply}
    assert trimmed["prediction"] == "YES" and trimmed["prompt"][0]["role"] == "system"
    assert records["D1-diff-0"]["policy_trim"] == {"trimmed": False, "sentences": 1, "chars": 9}
    policy = trimmed["decoding"]["policy"]
    assert (policy["max_sentences"], policy["max_chars"], len(policy["prompt_sha256"])) == (4, 700, 64)
    # Without the policy nothing of it is recorded, so plain rows are as before.
    generate_answers(items, template, out, cfg=CFG, backend=ScriptedBackend(replies), provenance=PROV)
    plain = {r["id"]: r for r in read_jsonl(out)}["D1-diff-1"]
    assert (
        "policy_trim" not in plain and "policy" not in plain["decoding"] and plain["raw_output"] == long_reply
    )
