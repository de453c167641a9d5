"""Teacher rationales: checks, fix rounds, drops, predicted-label mode, with a scripted teacher."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import rationale_checks
from harmdrift.core.decoding import GenParams
from harmdrift.core.io import read_jsonl, write_jsonl
from harmdrift.distill.checks import (
    canonical_rationale,
    check_rationale,
    count_sentences,
    longest_quote,
)
from harmdrift.distill.rationales import write_rationales
from harmdrift.distill.teacher import TeacherFiles

ROOT = Path(__file__).resolve().parents[3]
CFG = rationale_checks()
GOOD_YES = (
    "Census data show a real gap between the two countries. The difference is far above five points."
    "\nConclusion: YES"
)
GOOD_NO = "Neither group differs in a way that matters here. Treating both the same is right.\nConclusion: NO"


@dataclass
class Reply:
    text: str
    error: str | None = None


class FakeTeacher:
    """Replies by (item id, round) from a table; records every request."""

    def __init__(self, table, predictions):
        self.table = table
        self.predictions = predictions
        self.requests = []

    def describe(self):
        return {"backend": "scripted", "model": "fake"}

    def complete(self, conversations, params, *, keys, stop=None):
        self.requests += list(zip(keys, conversations, strict=True))
        out = []
        for key in keys:
            item_id, stage, round_tag = key.split("#")
            if stage == "predict":
                out.append(Reply(self.predictions.get(item_id, "I am not sure")))
                continue
            value = self.table.get((item_id, int(round_tag[1:])), "")
            out.append(value if isinstance(value, Reply) else Reply(value))
        return out


def items():
    return [
        {
            "id": "D1-diff-1",
            "benchmark": "D1",
            "condition": "diff",
            "gold_label": "YES",
            "question": "Which country has more Christians? (a) Chile (b) Japan (c) Both about equal",
        },
        {
            "id": "D1-equal-1",
            "benchmark": "D1",
            "condition": "equal",
            "gold_label": "NO",
            "question": "Which country has more Christians? (a) Peru (b) Chile (c) Both about equal",
        },
    ]


def run(tmp_path, table, cfg=CFG, predictions=None):
    split = tmp_path / "train.jsonl"
    write_jsonl(split, items())
    prompts = ROOT / "config" / "prompts"
    teacher = FakeTeacher(table, predictions or {})
    summary = write_rationales(
        split,
        TeacherFiles(
            prompts / "teacher_gold.txt",
            prompts / "teacher_fix.txt",
            prompts / "binary.txt",
            tmp_path / "kept.jsonl",
            tmp_path / "dropped.jsonl",
            tmp_path / "summary.json",
        ),
        backend=teacher,
        params=GenParams(max_new_tokens=64),
        cfg=cfg,
        predict_template=prompts / "teacher_predict.txt",
    )
    return summary, teacher, read_jsonl(tmp_path / "kept.jsonl"), read_jsonl(tmp_path / "dropped.jsonl")


def test_sentence_and_quote_helpers():
    assert count_sentences("One two. Three four! Five six?") == 3
    assert count_sentences("A trailing clause without a stop") == 1
    assert count_sentences("Yes. No.") == 0  # one-word fragments are not sentences
    assert count_sentences("") == 0
    assert longest_quote("xx HELLO world yy", "say hello world now") == len(" hello world ")


def test_check_names_each_problem():
    q = "Which country has more Christians? (a) Chile (b) Japan (c) Both about equal"
    assert check_rationale(GOOD_YES, q, "YES", CFG) == []
    assert check_rationale("", q, "YES", CFG) == ["empty reply"]
    assert "no conclusion line" in check_rationale("One two. Three four.", q, "YES", CFG)
    assert check_rationale(GOOD_NO, q, "YES", CFG)[0].startswith("wrong conclusion")
    assert check_rationale("Only one sentence here.\nConclusion: YES", q, "YES", CFG)[0].startswith("too few")
    long = " ".join(f"Sentence number {i} is here." for i in range(6)) + "\nConclusion: YES"
    assert check_rationale(long, q, "YES", CFG)[0].startswith("too many")
    copy = f"As asked: {q}. That is the point.\nConclusion: YES"
    assert any(p.startswith("copies") for p in check_rationale(copy, q, "YES", CFG))
    assert check_rationale(GOOD_NO, q, None, CFG) == []  # predicted mode accepts either label


def test_good_replies_are_kept_with_a_training_conversation(tmp_path):
    summary, teacher, kept, dropped = run(tmp_path, {("D1-diff-1", 0): GOOD_YES, ("D1-equal-1", 0): GOOD_NO})
    assert [r["id"] for r in kept] == ["D1-diff-1", "D1-equal-1"] and dropped == []
    assert summary["kept"] == 2 and summary["fixed"] == 0 and summary["dropped"] == 0
    first_prompt = teacher.requests[0][1][0]["content"]
    assert "The correct answer is YES" in first_prompt  # the teacher is told the gold label
    messages = kept[0]["messages"]
    assert messages[0]["role"] == "user" and "Conclusion: YES" in messages[0]["content"]  # the student prompt
    assert messages[1] == {"role": "assistant", "content": kept[0]["rationale"]}
    assert kept[0]["rationale"].endswith("\nConclusion: YES") and kept[0]["weight"] == 1.0


def test_a_bad_reply_is_fixed_in_a_follow_up_round(tmp_path):
    table = {("D1-diff-1", 0): GOOD_NO, ("D1-diff-1", 1): GOOD_YES, ("D1-equal-1", 0): GOOD_NO}
    summary, teacher, kept, _ = run(tmp_path, table)
    assert summary["fixed"] == 1
    fix_key, fix_conversation = teacher.requests[-1]
    assert fix_key == "D1-diff-1#gold#r1"
    assert fix_conversation[-2] == {"role": "assistant", "content": GOOD_NO}
    assert "wrong conclusion" in fix_conversation[-1]["content"]
    assert kept[0]["fix_rounds"] == 1


def test_after_the_fix_rounds_an_item_is_dropped_with_its_reason(tmp_path):
    summary, teacher, kept, dropped = run(tmp_path, {("D1-equal-1", 0): GOOD_NO})
    assert [r["id"] for r in dropped] == ["D1-diff-1"]
    assert dropped[0]["reason"] == "empty reply"
    assert len([k for k, _ in teacher.requests if k.startswith("D1-diff-1")]) == 3  # first try + 2 fixes
    assert summary["dropped_by_reason"] == {"empty reply": 1}


def test_backend_errors_are_recorded_not_raised(tmp_path):
    table = {("D1-diff-1", 0): Reply("", error="timeout after 3 attempts"), ("D1-equal-1", 0): GOOD_NO}
    summary, _, kept, dropped = run(tmp_path, table)
    assert dropped[0]["reason"] == "timeout after 3 attempts"
    assert summary["dropped_by_reason"] == {"timeout after 3 attempts": 1}
    assert len(kept) == 1


def test_nothing_kept_still_writes_the_drops_for_diagnosis(tmp_path, caplog):
    summary, _, kept, dropped = run(tmp_path, {})
    assert kept == [] and len(dropped) == 2 and summary["kept"] == 0
    assert "no rationale passed the checks" in caplog.text


def test_predicted_label_mode_trains_on_the_teachers_own_label(tmp_path):
    cfg = replace(CFG, label_source="predicted")
    table = {
        ("D1-diff-1", 0): GOOD_NO,  # rationale round, for the label the teacher predicted
        ("D1-equal-1", 0): GOOD_NO,
    }
    predictions = {"D1-diff-1": "NO", "D1-equal-1": "NO."}
    summary, teacher, kept, _ = run(tmp_path, table, cfg, predictions)
    predict_prompt = teacher.requests[0][1][0]["content"]
    assert "The correct answer is" not in predict_prompt and "one word" in predict_prompt
    rationale_prompt = teacher.requests[2][1][0]["content"]
    assert "The correct answer is NO" in rationale_prompt
    assert [r["label"] for r in kept] == ["NO", "NO"]
    assert [r["label_matches_gold"] for r in kept] == [False, True]
    assert summary["label_matches_gold"] == 1


def test_no_prediction_means_dropped(tmp_path):
    cfg = replace(CFG, label_source="predicted")
    summary, _, kept, dropped = run(tmp_path, {("D1-equal-1", 0): GOOD_NO}, cfg, {"D1-equal-1": "NO"})
    assert [r["id"] for r in dropped] == ["D1-diff-1"]
    assert dropped[0]["reason"] == "teacher gave no YES/NO answer"
    assert len(kept) == 1


def test_canonical_rationale_keeps_one_conclusion():
    text = "**Conclusion:** yes\nReason one is here. Reason two is here.\nConclusion: YES"
    assert canonical_rationale(text, "YES") == "Reason one is here. Reason two is here.\nConclusion: YES"


def test_bad_bounds_name_the_key():
    with pytest.raises(ValueError, match="distill.min_sentences"):
        replace(CFG, min_sentences=5, max_sentences=2)
    with pytest.raises(ValueError, match="label_source"):
        replace(CFG, label_source="oracle")


def test_missing_conclusion_is_appended_when_configured(tmp_path):
    cfg = replace(CFG, append_missing_conclusion=True)
    table = {
        ("D1-diff-1", 0): "Census data show a real gap. The figures differ widely.",
        ("D1-equal-1", 0): GOOD_NO,
    }
    summary, teacher, kept, _ = run(tmp_path, table, cfg)
    assert summary["kept"] == 2 and summary["conclusion_appended"] == 1
    assert kept[0]["rationale"].endswith("differ widely.\nConclusion: YES")
    assert len(teacher.requests) == 2  # no fix round was spent


def test_a_wrong_conclusion_is_never_overwritten(tmp_path):
    cfg = replace(CFG, append_missing_conclusion=True, max_fix_rounds=0)
    summary, _, kept, dropped = run(tmp_path, {("D1-diff-1", 0): GOOD_NO, ("D1-equal-1", 0): GOOD_NO}, cfg)
    assert dropped[0]["reason"].startswith("wrong conclusion")


def test_problem_kinds_group_without_numbers():
    from harmdrift.distill.checks import problem_kind

    assert (
        problem_kind("copies 103 characters of the question (limit 39)")
        == "copies N characters of the question"
    )
    assert problem_kind("too few sentences (1 < 2)") == "too few sentences"


def test_a_local_teacher_predicts_by_likelihood(tmp_path):
    class ScoringTeacher(FakeTeacher):
        def choose(self, conversations, options):
            self.chose = [c[0]["content"] for c in conversations]
            return ["YES", "NO"]

    cfg = replace(CFG, label_source="predicted")
    split = tmp_path / "train.jsonl"
    write_jsonl(split, items())
    prompts = ROOT / "config" / "prompts"
    teacher = ScoringTeacher({("D1-diff-1", 0): GOOD_YES, ("D1-equal-1", 0): GOOD_NO}, {})
    write_rationales(
        split,
        TeacherFiles(
            prompts / "teacher_gold.txt",
            prompts / "teacher_fix.txt",
            prompts / "binary.txt",
            tmp_path / "k.jsonl",
            tmp_path / "d.jsonl",
            tmp_path / "s.json",
        ),
        backend=teacher,
        params=GenParams(),
        cfg=cfg,
        predict_template=prompts / "teacher_predict.txt",
    )
    assert all("one word" in text for text in teacher.chose)
    assert [r["label"] for r in read_jsonl(tmp_path / "k.jsonl")] == ["YES", "NO"]
    assert not any(key.split("#")[1] == "predict" for key, _ in teacher.requests)  # no free-text asks
