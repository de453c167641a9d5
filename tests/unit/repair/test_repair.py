"""Stage III data: severity weights, repair rationales with re-scoring, replay mix, joint weights."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from conftest import rationale_checks, validated_default_config
from harmdrift.backends import Completion
from harmdrift.backends.scripted import ScriptedBackend
from harmdrift.core.decoding import GenParams
from harmdrift.core.io import DataError, read_jsonl, write_jsonl
from harmdrift.core.stats import drift_reduction
from harmdrift.distill.teacher import TeacherFiles
from harmdrift.repair.cases import read_drift_cases
from harmdrift.repair.config import RepairConfig, severity_weight
from harmdrift.repair.joint import joint_penalty_weights
from harmdrift.repair.rationales import write_repair_rationales
from harmdrift.repair.train_set import build_repair_set, replay_count
from harmdrift.train.examples import load_examples

ROOT = Path(__file__).resolve().parents[3]
PROMPTS = ROOT / "config" / "prompts"
PARAMS = GenParams(max_new_tokens=64, temperature=0.0)
CFG = rationale_checks(max_fix_rounds=1)


def repair_section() -> dict:
    """The repair section as the repair jobs get it: the default profile's (config/config.yaml
    with the schema's defaults filled), without the workflow's ``rounds`` (rules/repair.smk)."""
    return {k: v for k, v in validated_default_config()["repair"].items() if k != "rounds"}


def repair_cfg(**overrides) -> RepairConfig:
    """The default profile's repair settings with ``overrides``: RepairConfig has no defaults."""
    return replace(RepairConfig.from_dict(repair_section()), **overrides)


# The fake screen reads these words as toxic; everything else scores low.
HARSH = "Some people claim that group is lazy and dangerous. That claim is wrong.\nConclusion: NO"
HARSH_2 = "People say members are lazy, which is unfair. Both should be treated the same.\nConclusion: NO"
CLEAN = (
    "Nothing relevant separates the two groups in this situation. Equal treatment applies, and the earlier "
    "explanation wrongly leaned on a generalisation.\nConclusion: NO"
)
CLEAN_YES = (
    "The relevant statute sets a different rule for each group. That legal fact decides it.\nConclusion: YES"
)
SHORT = "Treat them the same.\nConclusion: NO"


class FakeScorer:
    """Toxicity from words: "lazy" 0.6, "dangerous" 0.3 more, else 0.01."""

    labels = ("toxic", "insult")

    def describe(self):
        return {"scorer": "fake"}

    def score(self, texts):
        out = []
        for text in texts:
            lower = text.lower()
            tox = 0.01 + 0.6 * ("lazy" in lower) + 0.3 * ("dangerous" in lower)
            out.append({"toxic": tox, "insult": tox / 2})
        return out


def item(item_id, condition="equal"):
    return {
        "id": item_id,
        "benchmark": "N2",
        "condition": condition,
        "gold_label": "NO" if condition == "equal" else "YES",
        "question": f"Case {item_id}: two applicants from different groups.\n(a) first (b) second (c) same",
    }


AUDIT_FIELDS = ["id", "benchmark", "condition", "score_base", "score_tuned", "drift", "category", "severity"]


def write_audit(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*AUDIT_FIELDS, "reason"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"benchmark": "N2", "condition": "equal", "score_tuned": 0.5, **row})


def case_row(item_id, severity="severe", drift="True", base=0.05, reason="repeats a stereotype"):
    return {
        "id": item_id,
        "drift": drift,
        "severity": severity,
        "category": "repeats_harm" if drift == "True" else "",
        "reason": reason,
        "score_base": base,
    }


@pytest.fixture
def stage3(tmp_path):
    """Writes items/pairs/audit for the given audit rows and runs write_repair_rationales."""

    def run(audit_rows, script, *, repair=None, items=None):
        items = items or [item(r["id"]) for r in audit_rows] + [item("unrelated")]
        write_jsonl(tmp_path / "items.jsonl", items)
        pairs = [
            {"id": i["id"], "tuned": {"analysis": "drifted text"}, "base": {"analysis": "x"}} for i in items
        ]
        write_jsonl(tmp_path / "pairs.jsonl", pairs)
        write_audit(tmp_path / "audit.csv", audit_rows)
        backend = ScriptedBackend(script)
        summary = write_repair_rationales(
            tmp_path / "audit.csv",
            tmp_path / "pairs.jsonl",
            tmp_path / "items.jsonl",
            TeacherFiles(
                PROMPTS / "teacher_repair.txt",
                PROMPTS / "teacher_fix.txt",
                PROMPTS / "binary.txt",
                tmp_path / "repair.jsonl",
                tmp_path / "repair.dropped.jsonl",
                tmp_path / "repair.summary.json",
            ),
            backend=backend,
            params=PARAMS,
            cfg=CFG,
            repair=repair or repair_cfg(max_rescore_rounds=1),
            scorer=FakeScorer(),
            screen_label="toxic",
            max_chars=512,
        )
        kept = read_jsonl(tmp_path / "repair.jsonl")
        dropped = read_jsonl(tmp_path / "repair.dropped.jsonl")
        return summary, kept, dropped, backend

    return run


# --- config and weights ------------------------------------------------------------------------


def test_severity_weights_default_to_darts_copies():
    cfg = repair_cfg()  # the schema's default weights
    assert [severity_weight(s, cfg) for s in ("minor", "moderate", "severe", "extreme")] == [1, 2, 3, 4]


def test_unknown_severity_is_named():
    with pytest.raises(ValueError, match="'catastrophic'"):
        severity_weight("catastrophic", repair_cfg())


def test_from_dict_reads_the_section():
    weights = {"minor": 1, "moderate": 1.5, "severe": 2, "extreme": 5}
    section = {**repair_section(), "severity_weights": weights, "mode": "oversample", "replay_share": 0.25}
    cfg = RepairConfig.from_dict({**section, "seed": 3, "rounds": 2})
    assert cfg.mode == "oversample" and cfg.replay_share == 0.25 and cfg.seed == 3
    assert "rounds" not in asdict(cfg)  # the workflow's business, never recorded as if it were read
    assert severity_weight("extreme", cfg) == 5.0
    del section["max_rescore_rounds"]
    with pytest.raises(KeyError, match="max_rescore_rounds"):  # no default of its own to fall back on
        RepairConfig.from_dict(section)


def test_drift_reduction():
    assert drift_reduction(10, 3) == pytest.approx(0.7)
    assert drift_reduction(0, 0) is None
    assert drift_reduction(0, 4) is None
    assert drift_reduction(4, 6) == pytest.approx(-0.5)
    assert drift_reduction(5, 0) == 1.0


# --- repair rationales -------------------------------------------------------------------------


def test_clean_repair_is_kept_with_its_record(stage3):
    summary, kept, dropped, backend = stage3(
        [case_row("a"), case_row("b", drift="False")], {"a#repair#s0#r0": CLEAN}
    )
    assert [r["id"] for r in kept] == ["a"] and dropped == []
    row = kept[0]
    assert row["rationale"].endswith("\nConclusion: NO")
    assert row["messages"][-1] == {"role": "assistant", "content": row["rationale"]}
    assert "Case a" in row["messages"][0]["content"]
    assert row["severity"] == "severe" and row["category"] == "repeats_harm"
    assert row["judge_reason"] == "repeats a stereotype" and row["base_score"] == 0.05
    assert row["repair_score"] == pytest.approx(0.01) and row["rescore_rounds"] == 0
    assert row["drifted_analysis"] == "drifted text"
    # The teacher saw the judge's reason and the gold label, in the repair prompt.
    assert backend.calls == [["a#repair#s0#r0"]]
    assert summary["cases"] == 1 and summary["kept_by_severity"]["severe"] == 1


def test_teacher_prompt_shows_reason_and_label(stage3):
    seen = {}

    def script(key, messages):
        seen[key] = messages
        return CLEAN

    stage3([case_row("a", reason="it repeated the slur")], script)
    prompt = seen["a#repair#s0#r0"][0]["content"]
    assert "it repeated the slur" in prompt and "The correct answer is NO." in prompt
    assert prompt.rstrip().endswith('"Conclusion: NO".')


def test_higher_scoring_repair_is_reasked_then_kept(stage3):
    script = {"a#repair#s0#r0": HARSH, "a#repair#s1#r0": CLEAN}
    summary, kept, dropped, backend = stage3([case_row("a")], script)
    assert [r["id"] for r in kept] == ["a"] and dropped == []
    assert kept[0]["rescore_rounds"] == 1
    assert kept[0]["scores"] == pytest.approx([0.91, 0.01])
    assert kept[0]["rationale"].startswith("Nothing relevant")
    assert summary["rescored"] == 1 and summary["rescored_kept"] == 1
    assert backend.calls == [["a#repair#s0#r0"], ["a#repair#s1#r0"]]


def test_reask_carries_the_harsh_reply_and_a_note(stage3):
    seen = {}

    def script(key, messages):
        seen[key] = messages
        return HARSH if key.endswith("s0#r0") else CLEAN

    stage3([case_row("a")], script)
    second = seen["a#repair#s1#r0"]
    assert second[0] == seen["a#repair#s0#r0"][0]
    assert second[1] == {"role": "assistant", "content": HARSH}
    assert "more neutral" in second[2]["content"] and '"Conclusion: NO"' in second[2]["content"]


def test_repair_that_stays_higher_is_dropped(stage3):
    script = {"a#repair#s0#r0": HARSH, "a#repair#s1#r0": HARSH_2}
    summary, kept, dropped, _ = stage3([case_row("a", base=0.2)], script)
    assert kept == []
    assert dropped[0]["reason"] == "scores higher than M0 (0.6100 > 0.2000)"
    assert dropped[0]["rescore_rounds"] == 1
    assert summary["dropped_by_reason"] == {"scores higher than M0": 1}


def test_no_rescore_rounds_drops_at_once(stage3):
    summary, kept, dropped, backend = stage3(
        [case_row("a")], {"a#repair#s0#r0": HARSH}, repair=repair_cfg(max_rescore_rounds=0)
    )
    assert kept == [] and len(backend.calls) == 1
    assert dropped[0]["reason"].startswith("scores higher than M0 (0.9100 > 0.0500)")


def test_score_equal_to_base_is_kept(stage3):
    _, kept, _, _ = stage3([case_row("a", base=0.01)], {"a#repair#s0#r0": CLEAN})
    assert len(kept) == 1


def test_format_problems_get_a_fix_round_then_drop(stage3):
    script = {
        "a#repair#s0#r0": SHORT,
        "a#repair#s0#r1": CLEAN,
        "b#repair#s0#r0": SHORT,
        "b#repair#s0#r1": SHORT,
    }
    summary, kept, dropped, _ = stage3([case_row("a"), case_row("b")], script)
    assert [r["id"] for r in kept] == ["a"] and kept[0]["fix_rounds"] == 1
    assert dropped[0]["id"] == "b" and dropped[0]["reason"].startswith("too few sentences")
    assert summary["dropped_by_reason"] == {"too few sentences": 1}


def test_teacher_error_is_recorded_as_drop(stage3):
    _, kept, dropped, _ = stage3(
        [case_row("a")], {"a#repair#s0#r0": Completion.failed("timeout after 3 tries")}
    )
    assert kept == [] and dropped[0]["reason"] == "timeout after 3 tries"


def test_zero_drift_cases_write_empty_outputs(stage3, tmp_path):
    summary, kept, dropped, backend = stage3([case_row("a", drift="False")], {}, items=[item("a")])
    assert kept == [] and dropped == [] and backend.calls == []
    assert summary["cases"] == 0 and "no drift" in summary["note"]
    assert json.loads((tmp_path / "repair.summary.json").read_text())["cases"] == 0


def test_drift_case_missing_from_items_is_an_error(stage3):
    with pytest.raises(DataError, match="items.jsonl: no item for drift case"):
        stage3([case_row("a")], {"a#repair#s0#r0": CLEAN}, items=[item("other")])


def test_audit_table_errors_name_the_line(tmp_path):
    write_audit(tmp_path / "audit.csv", [case_row("a"), case_row("b", severity="huge")])
    with pytest.raises(DataError, match=r"audit.csv:3: .*'huge'"):
        read_drift_cases(tmp_path / "audit.csv")
    write_audit(tmp_path / "audit.csv", [case_row("a", drift="maybe")])
    with pytest.raises(DataError, match="audit.csv:2: column drift"):
        read_drift_cases(tmp_path / "audit.csv")


def test_drift_may_be_a_real_boolean_or_text(tmp_path):
    write_audit(tmp_path / "audit.csv", [case_row("a", drift="true"), case_row("b", drift=""), case_row("c")])
    assert [c["id"] for c in read_drift_cases(tmp_path / "audit.csv")] == ["a", "c"]


# --- training set -------------------------------------------------------------------------------


def repair_row(item_id, severity):
    messages = [{"role": "user", "content": f"q {item_id}"}, {"role": "assistant", "content": CLEAN}]
    return {"id": item_id, "severity": severity, "messages": messages, "weight": 1.0}


def stage1_row(item_id):
    messages = [{"role": "user", "content": f"q {item_id}"}, {"role": "assistant", "content": CLEAN_YES}]
    return {"id": item_id, "rationale": CLEAN_YES, "messages": messages, "weight": 1.0}


def build(tmp_path, repaired, stage1, cfg):
    write_jsonl(tmp_path / "repair.jsonl", repaired)
    write_jsonl(tmp_path / "distill.jsonl", stage1)
    out = tmp_path / "set.jsonl"
    summary = build_repair_set(
        tmp_path / "repair.jsonl", tmp_path / "distill.jsonl", out, tmp_path / "s.json", cfg=cfg
    )
    return summary, read_jsonl(out)


SIX = [
    repair_row(f"r{i}", s)
    for i, s in enumerate(["minor", "moderate", "severe", "extreme", "minor", "severe"])
]
STAGE1 = [stage1_row(f"s{i:02d}") for i in range(20)] + [stage1_row("r0"), stage1_row("r3")]


def test_weight_mode_sets_severity_weights_and_replay_share(tmp_path):
    summary, rows = build(tmp_path, SIX, STAGE1, repair_cfg(replay_share=0.5, seed=1))
    repair = [r for r in rows if r["source"] == "repair"]
    replay = [r for r in rows if r["source"] == "replay"]
    assert [r["weight"] for r in repair] == [1, 2, 3, 4, 1, 3]
    assert len(replay) == 6 and all(r["weight"] == 1.0 for r in replay)
    assert not {r["id"] for r in replay} & {r["id"] for r in repair}
    assert summary["replay_share_actual"] == 0.5 and summary["weight_by_severity"]["severe"] == 6
    assert summary["total_weight"] == 14 + 6


def test_oversample_mode_repeats_rows(tmp_path):
    summary, rows = build(tmp_path, SIX, STAGE1, repair_cfg(mode="oversample", replay_share=0.0))
    ids = [r["id"] for r in rows]
    assert [ids.count(f"r{i}") for i in range(6)] == [1, 2, 3, 4, 1, 3]
    assert all(r["weight"] == 1.0 and r["source"] == "repair" for r in rows)
    assert summary["replay_rows"] == 0 and summary["repair_rows"] == 14


def test_oversample_rounds_half_up(tmp_path):
    weights = {"minor": 1.4, "moderate": 2.5, "severe": 3, "extreme": 4}
    cfg = repair_cfg(severity_weights=weights, mode="oversample", replay_share=0.0)
    _, rows = build(tmp_path, [repair_row("a", "minor"), repair_row("b", "moderate")], [], cfg)
    assert [r["id"] for r in rows] == ["a", "b", "b", "b"]


def test_replay_arithmetic_and_cap():
    assert replay_count(6, 0.5, 100) == 6
    assert replay_count(6, 0.0, 100) == 0
    assert replay_count(6, 0.75, 100) == 18
    assert replay_count(6, 0.75, 4) == 4


def test_replay_is_capped_by_small_stage1(tmp_path):
    summary, rows = build(tmp_path, SIX, [stage1_row("s1"), stage1_row("r0"), stage1_row("s2")], repair_cfg())
    assert sorted(r["id"] for r in rows if r["source"] == "replay") == ["s1", "s2"]
    assert summary["replay_capped"] is True and summary["replay_available"] == 2


def test_replay_sample_is_seeded(tmp_path):
    def replay_ids(seed, stage1):
        _, rows = build(tmp_path, SIX[:3], stage1, repair_cfg(replay_share=0.5, seed=seed))
        return [r["id"] for r in rows if r["source"] == "replay"]

    first = replay_ids(5, STAGE1)
    assert replay_ids(5, list(reversed(STAGE1))) == first
    assert any(replay_ids(seed, STAGE1) != first for seed in range(6, 12))


def test_empty_repair_set_means_no_drift_left(tmp_path):
    summary, rows = build(tmp_path, [], STAGE1, repair_cfg())
    assert rows == [] and summary["rows"] == 0 and "no drift left" in summary["note"]


def test_repair_set_loads_for_training(tmp_path):
    _, rows = build(tmp_path, SIX, STAGE1, repair_cfg(replay_share=0.5))
    examples = load_examples(tmp_path / "set.jsonl")
    assert len(examples) == len(rows) == 12
    assert sorted(e["weight"] for e in examples) == sorted([1, 2, 3, 4, 1, 3] + [1] * 6)


def test_end_to_end_repair_rationales_feed_the_training_set(stage3, tmp_path):
    stage3([case_row("a", severity="extreme")], {"a#repair#s0#r0": CLEAN})
    write_jsonl(tmp_path / "distill.jsonl", STAGE1)
    build_repair_set(
        tmp_path / "repair.jsonl",
        tmp_path / "distill.jsonl",
        tmp_path / "set.jsonl",
        tmp_path / "s.json",
        cfg=repair_cfg(mode="oversample", replay_share=0.2),
    )
    examples = load_examples(tmp_path / "set.jsonl")
    assert [e["id"] for e in examples[:4]] == ["a"] * 4 and len(examples) == 5


# --- joint-training weights ---------------------------------------------------------------------


def joint(tmp_path, rationales, **kwargs):
    rows = [{**stage1_row(f"s{i}"), "rationale": text} for i, text in enumerate(rationales)]
    write_jsonl(tmp_path / "distill.jsonl", rows)
    summary = joint_penalty_weights(
        tmp_path / "distill.jsonl",
        tmp_path / "joint.jsonl",
        tmp_path / "joint.json",
        scorer=FakeScorer(),
        screen_label=kwargs.pop("label", "toxic"),
        max_chars=512,
        **kwargs,
    )
    return summary, read_jsonl(tmp_path / "joint.jsonl")


def test_joint_weight_formula(tmp_path):
    # "insult" is half the toxic score: "lazy" -> 0.61 / 2 = 0.305; clean -> 0.005.
    summary, rows = joint(tmp_path, [HARSH_2, CLEAN_YES], strength=1.0, label="insult")
    assert [r["weight"] for r in rows] == pytest.approx([1 - 0.305, 1 - 0.005])
    assert rows[0]["tox_score"] == pytest.approx(0.305)
    assert summary["penalised"] == 2 and summary["min_weight"] == pytest.approx(0.695)


def test_joint_weight_half(tmp_path):
    class Half(FakeScorer):
        def score(self, texts):
            return [{"toxic": 0.5} for _ in texts]

    write_jsonl(tmp_path / "d.jsonl", [stage1_row("s1")])
    joint_penalty_weights(
        tmp_path / "d.jsonl",
        tmp_path / "j.jsonl",
        tmp_path / "j.json",
        scorer=Half(),
        screen_label="toxic",
        max_chars=512,
        strength=1.0,
    )
    assert read_jsonl(tmp_path / "j.jsonl")[0]["weight"] == pytest.approx(0.5)


def test_joint_floor_and_zero_strength(tmp_path):
    _, rows = joint(tmp_path, [HARSH, CLEAN_YES], strength=5.0, floor=0.1)
    assert rows[0]["weight"] == 0.1 and rows[1]["weight"] == pytest.approx(0.95)
    summary, rows = joint(tmp_path, [HARSH, CLEAN_YES], strength=0.0)
    assert [r["weight"] for r in rows] == [1.0, 1.0] and summary["penalised"] == 0
    assert load_examples(tmp_path / "joint.jsonl")[0]["weight"] == 1.0


def test_joint_checks(tmp_path):
    with pytest.raises(ValueError, match="config key joint.strength"):
        joint(tmp_path, [CLEAN_YES], strength=-0.5)
    with pytest.raises(ValueError, match="config key audit.scorer.label"):
        joint(tmp_path, [CLEAN_YES], strength=1.0, label="hate")


def test_unknown_screen_label_fails_before_the_teacher_is_asked(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", [item("a")])
    write_jsonl(tmp_path / "pairs.jsonl", [{"id": "a"}])
    write_audit(tmp_path / "audit.csv", [case_row("a")])
    backend = ScriptedBackend({"a#repair#s0#r0": CLEAN})
    with pytest.raises(ValueError, match="config key audit.scorer.label: 'hate'"):
        write_repair_rationales(
            tmp_path / "audit.csv",
            tmp_path / "pairs.jsonl",
            tmp_path / "items.jsonl",
            TeacherFiles(
                PROMPTS / "teacher_repair.txt",
                PROMPTS / "teacher_fix.txt",
                PROMPTS / "binary.txt",
                tmp_path / "r.jsonl",
                tmp_path / "d.jsonl",
                tmp_path / "s.json",
            ),
            backend=backend,
            params=PARAMS,
            cfg=CFG,
            repair=repair_cfg(),
            scorer=FakeScorer(),
            screen_label="hate",
            max_chars=512,
        )
    assert backend.calls == []


def test_repair_rationales_take_their_fix_rounds_from_the_repair_section(monkeypatch):
    """distill.max_fix_rounds sets Stage I's rounds only; repair.max_fix_rounds sets Stage III's."""
    from harmdrift.repair import rules

    seen = {}
    monkeypatch.setattr(rules, "chat_backend", lambda section, cache_dir, models_root=None: object())
    monkeypatch.setattr(rules, "audit_scorer", lambda scorer, cache_dir: (FakeScorer(), "toxic"))
    monkeypatch.setattr(rules, "write_usage", lambda path, backend: None)
    monkeypatch.setattr(rules, "write_repairs", lambda *a, **kw: seen.update(kw) or {})
    teacher = {"max_new_tokens": 64, "temperature": 0.0, "top_p": 1.0, "seed": 0}
    # The rule passes distill without its max_fix_rounds (config_slice in rules/repair.smk).
    distill = {
        "min_sentences": 1,
        "max_sentences": 4,
        "max_quote_chars": 40,
        "append_missing_conclusion": True,
    }
    rules.write_repair_rationales(
        audit="a", pairs="p", split_items="s", teacher_prompt="t", fix_prompt="f",
        student_prompt="b", rationales="r", dropped="d", summary="m", usage="u",
        teacher=teacher, distill=distill, repair={**repair_section(), "max_fix_rounds": 3},
        screen={"scorer": {}, "max_chars": 512}, cache_dir=None, tag="repair",
    )  # fmt: skip
    assert seen["cfg"].max_fix_rounds == 3
    assert seen["repair"].max_fix_rounds == 3
    assert seen["cfg"].min_sentences == 1
