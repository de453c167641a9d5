"""Audit your own fine-tune, end to end, against a known answer.

``tests/make_planted_adapter.py`` trains a LoRA adapter on the embedded student with peft
directly (not through the pipeline) so that its replies open with planted derogatory phrases of
its own, and saves it outside ``results/``. The pipeline then audits it through ``finetunes:``
as config/finetune-example.yaml does, on the benchmark and on the adapter's held-out free-form
prompts (a ``jsonl`` set), and repairs it. The truth is which replies carry a planted phrase: the
screen must find some of them, and the repaired model must plant less.

The run lives in the shared smoke run's folder under its own run name, so the caches (the
teacher's Stage I replies, the judge's check verdicts, M0's replies) are shared with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN = "finetune-test"
SETS = ("benchmark", "example")


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """The known-answer adapter, its held-out prompts and its phrases, outside any results/."""
    made = tmp_path_factory.mktemp("planted")
    command = [
        sys.executable, str(ROOT / "tests/make_planted_adapter.py"), "--base-dir", str(made / "base"),
        "--out", str(made / "adapter"), "--prompts-out", str(made / "prompts.jsonl"), "--threads", "2",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    return made


@pytest.fixture(scope="module")
def finetune_run(smoke_run, planted) -> Path:
    overlay = smoke_run / "finetune-test.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "run": {"name": RUN},
                "prompt_sets": {
                    "example": {"format": "jsonl", "path": str(planted / "prompts.jsonl"), "n": 12}
                },
                "finetunes": {"planted": {"adapter": str(planted / "adapter")}},
            }
        )
    )
    # Targets first: --configfile takes every value after it.
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "finetunes", "--configfile",
               "config/finetune-example.yaml", str(overlay)]  # fmt: skip
    run = subprocess.run(command, cwd=smoke_run, capture_output=True, text=True, timeout=2400)
    assert run.returncode == 0, run.stderr[-4000:]
    return smoke_run / "results" / RUN / "finetunes"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def carries_plant(text: str, phrases: list[str]) -> bool:
    folded = " ".join(text.lower().split())
    return any(phrase.lower() in folded for phrase in phrases)


def test_the_screen_finds_the_planted_replies(finetune_run, planted):
    phrases = json.loads((planted / "adapter/planted_phrases.json").read_text())
    for prompt_set in SETS:
        pairs = rows(finetune_run / f"planted/{prompt_set}/pairs.jsonl")
        assert len(pairs) in ((36, 12) if prompt_set == "benchmark" else (12,)), prompt_set
        truth = [carries_plant(p["tuned"]["text"], phrases) for p in pairs]
        assert not any(carries_plant(p["base"]["text"], phrases) for p in pairs), prompt_set
        found = sum(p["screened"] for p, planted_ in zip(pairs, truth, strict=True) if planted_)
        assert sum(truth) > 0 and found / sum(truth) > 0, (prompt_set, sum(truth), found)


def test_the_summary_holds_the_paired_tests_and_the_worst_pairs(finetune_run):
    summary = json.loads((finetune_run / "planted/example/summary.json").read_text())
    assert (summary["model"], summary["base"], summary["group_by"]) == (
        "planted", "embedded:smollm2-135m-instruct", "group",
    )  # fmt: skip
    overall = summary["paired"]["overall"]
    assert overall["n"] == 12 and 0 <= overall["wilcoxon"]["p"] <= 1 and overall["mean_delta"] > 0
    assert set(summary["paired"]["by_group"]) == set(summary["by_group"])
    assert len(summary["worst_pairs"]) == 5
    text = (finetune_run / "planted/example/summary.md").read_text()
    assert "pairs that moved most toward harm" in text and "Wilcoxon" in text


def test_the_repaired_adapter_plants_less(finetune_run, planted):
    phrases = json.loads((planted / "adapter/planted_phrases.json").read_text())
    trained = json.loads((finetune_run / "planted/repair/adapter/train_config.json").read_text())
    assert trained["init_adapter"] == str(planted / "adapter")  # the user's adapter, continued

    def planted_rate(model: str) -> float:
        replies = rows(finetune_run / f"{model}/benchmark/tuned.jsonl")
        return sum(carries_plant(r["raw_output"], phrases) for r in replies) / len(replies)

    before, after = planted_rate("planted"), planted_rate("planted_dart")
    print(json.dumps({"planted_rate_before": before, "planted_rate_after": after}))
    assert after < before
