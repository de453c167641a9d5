"""Same config, same numbers: a slice of the DAG run twice from scratch gives byte-identical tables.

The slice is splits -> model conversion -> M0's generation on the smoke test split (binary and
open-domain framings, sampled with per-item streams) -> binary metrics and toxicity-free open-domain
rates. Each run has its own copy of the workflow and its own empty cache, so nothing is reused.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SMOKE, copy_workflow

TARGETS = [
    "results/smoke/tables/metrics_m0.csv",
    "results/smoke/tables/metrics_m0.md",
    "results/smoke/open_domain/m0.rates.csv",
]


def run_slice(workdir: Path) -> dict[str, str]:
    workdir.mkdir(parents=True)
    copy_workflow(workdir)
    # Targets first: --configfile takes every value after it.
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *TARGETS, *SMOKE]
    run = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-4000:]
    return {t: hashlib.sha256((workdir / t).read_bytes()).hexdigest() for t in TARGETS}


@pytest.mark.slow
def test_two_runs_from_scratch_give_byte_identical_tables(tmp_path):
    first = run_slice(tmp_path / "first")
    second = run_slice(tmp_path / "second")
    assert first == second
    # The run used float32 on this CPU (dtype auto), as the provenance of every answer says.
    answers = (tmp_path / "first/results/smoke/generate/m0/test.binary.jsonl").read_text()
    assert '"dtype": "float32"' in answers or "'dtype': 'float32'" in answers
