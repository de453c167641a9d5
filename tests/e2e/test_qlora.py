"""QLoRA end to end on the CPU: the smoke profile with a 4-bit student (config/qlora.yaml).

M_int is trained on NF4 weights, M0 and M_int answer the test and audit splits on the same
4-bit base (M_int with its adapter, not merged), the audit pairs them, and every record says
how the weights were quantised. Run it alone with ``pytest -m qlora``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import SMOKE, copy_workflow
from harmdrift.core import vocab

pytestmark = [pytest.mark.slow, pytest.mark.qlora]

RESULTS = "results/qlora"
TARGETS = [
    f"{RESULTS}/adapters/m_int/train_config.json",
    f"{RESULTS}/tables/metrics_m_int.csv",
    f"{RESULTS}/audit/m_int/summary.json",
]


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("qlora"))
    # Targets first: --configfile takes every value after it.
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *TARGETS, *SMOKE, "config/qlora.yaml"]
    run = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir / RESULTS


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_m_int_is_trained_on_nf4_weights(qlora_run):
    config = json.loads((qlora_run / "adapters/m_int/train_config.json").read_text())
    assert config["config"]["quantization"] == "4bit"
    record = config["quantization"]
    assert record["method"] == "bitsandbytes-4bit"
    assert (record["quant_type"], record["double_quant"], record["compute_dtype"]) == ("nf4", True, "float32")
    assert record["bitsandbytes"] == "0.50.2"
    assert config["steps"] == 3 and math.isfinite(config["final_loss"])


def test_every_answer_comes_from_the_same_4bit_base(qlora_run):
    record = json.loads((qlora_run / "adapters/m_int/train_config.json").read_text())["quantization"]
    files = sorted((qlora_run / "generate").glob("*/*.jsonl"))
    models = {path.parent.name for path in files}
    assert {vocab.BASE_MODEL, "m_int"} <= models
    for path in files:
        rows = read_rows(path)
        assert rows, path
        for row in rows:
            assert row["decoding"]["quantization"] == record, path
            assert row["decoding"]["dtype"] == "float32", path


def test_accuracy_and_audit_are_computed_on_the_4bit_answers(qlora_run):
    table = pd.read_csv(qlora_run / "tables/metrics_m_int.csv")
    overall = table[table["benchmark"] == "ALL"].iloc[0]
    assert overall["n"] == 18
    for column in ["strict_overall_acc", "overall_acc", "forced_acc"]:
        assert 0 <= overall[column] <= 1, column
    pairs = read_rows(qlora_run / "audit/m_int/pairs.jsonl")
    assert len(pairs) == 12  # the smoke audit split: M0 and M_int, both in 4-bit, item by item
    summary = json.loads((qlora_run / "audit/m_int/summary.json").read_text())
    assert (summary["model"], summary["n_pairs"]) == ("m_int", 12)
    assert 0 <= summary["n_drift"] <= summary["n_screened"] <= 12
