"""The test tiers keep their promises: tests/unit starts no process, trains nothing and loads no
shipped model (a stage against real tools goes to tests/workflow), and the test folders mirror
the packages they test (tests/unit/<package>/ for src/harmdrift/<package>/)."""

from __future__ import annotations

import ast
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ChildProcessInUnitTest

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("unit", "workflow")
PACKAGES = {p.name for p in (ROOT / "src" / "harmdrift").iterdir() if (p / "__init__.py").is_file()}
# Calls that train or load a shipped model: seconds to minutes each, so never in the unit tier.
HEAVY_CALLS = {
    "train_adapter": "trains a LoRA (harmdrift.train.run)",
    "build_trainer": "builds a transformers Trainer",
    "Trainer": "builds a transformers Trainer",
    "EmbeddedToxicityScorer": "loads the embedded toxicity model",
}


def test_a_unit_test_cannot_start_a_process(child_process_guard):
    where = r"test_tiers\.py::test_a_unit_test_cannot_start_a_process starts a child process"
    with pytest.raises(
        ChildProcessInUnitTest, match=rf"{where} \(subprocess: \[.*'-c', 'pass'\]\).*tests/workflow/"
    ):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    with pytest.raises(ChildProcessInUnitTest, match=r"\(multiprocessing\)"):
        multiprocessing.get_context("spawn").Process(target=print).start()
    with pytest.raises(ChildProcessInUnitTest, match=r"\(os\.system\)"):
        os.system("true")
    assert len(child_process_guard.attempts) == 3
    try:  # code that swallows the error still fails the test when the phase ends
        subprocess.check_output(["true"])
    except Exception:
        pass
    with pytest.raises(ChildProcessInUnitTest, match=r"\(subprocess: \['true'\]\)"):
        child_process_guard.check(seen=3)
    child_process_guard.attempts.clear()  # this test's attempts were on purpose


def heavy_calls(path: Path) -> list[str]:
    """``file:line name (why)`` for every call in ``path`` to a name in :data:`HEAVY_CALLS`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in HEAVY_CALLS:
                found.append(f"{path.name}:{node.lineno} {name} ({HEAVY_CALLS[name]})")
    return found


def test_no_unit_test_trains_or_loads_a_shipped_model():
    found = [hit for path in sorted((ROOT / "tests" / "unit").rglob("*.py")) for hit in heavy_calls(path)]
    assert found == [], "move these to tests/workflow/<package>/:\n" + "\n".join(found)


def test_the_heavy_call_check_finds_training_and_the_toxicity_model(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "from harmdrift.train import run\n"
        "run.train_adapter('e.jsonl', 'm', 'out', cfg)\n"
        "scorer = EmbeddedToxicityScorer()\n"
        "train_adapter_rule(examples=empty)  # the rule with nothing to train\n"
    )
    assert heavy_calls(sample) == [
        "test_sample.py:2 train_adapter (trains a LoRA (harmdrift.train.run))",
        "test_sample.py:3 EmbeddedToxicityScorer (loads the embedded toxicity model)",
    ]


@pytest.mark.parametrize("tier", TIERS)
def test_test_folders_mirror_the_packages(tier):
    folders = {p.name for p in (ROOT / "tests" / tier).iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= PACKAGES, f"tests/{tier}/ folders that name no harmdrift package: {folders - PACKAGES}"
