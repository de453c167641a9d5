"""The smoke profile through a live SLURM cluster (profiles/slurm-ci), against the local run.

Needs root on a Debian machine: .ci/slurm-up.sh installs and starts a one-node cluster
with two fake GPUs when none answers. Opt-in: ``pytest -m slurm tests/cluster``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, SMOKE, copy_workflow

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PROFILE = ["--profile", "profiles/slurm-ci"]
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def snakemake(workdir: Path, *args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def cluster_answers() -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0
    except FileNotFoundError:
        return False


@pytest.fixture(scope="session")
def slurm_cluster():
    """The cluster that answers, else one started here by .ci/slurm-up.sh and stopped
    again by .ci/slurm-down.sh once the session ends."""
    started = not cluster_answers()
    if started:
        subprocess.run([str(ROOT / ".ci/slurm-up.sh")], check=True, timeout=600)
    yield
    if started:
        subprocess.run([str(ROOT / ".ci/slurm-down.sh")], check=True, timeout=120)


def job_states(job_ids: list[str]) -> dict[str, str]:
    """State of each job as squeue reports it. The test cluster has no accounting
    (sacct answers nothing), and squeue keeps finished jobs for MinJobAge (2 h)."""
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i %T", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split() for line in out.splitlines())


def planned_jobs(text: str) -> dict[str, int]:
    """Rule -> job count from the first 'Job stats' table of a run's log."""
    table = text[text.index("Job stats:") :].splitlines()[3:]
    counts = {}
    for line in table:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory) -> dict:
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm_run"))
    start = time.monotonic()
    run = snakemake(workdir, *PROFILE, *SMOKE)
    wall_s = time.monotonic() - start
    log = run.stdout + run.stderr
    (workdir / "snakemake.out").write_text(log)
    assert run.returncode == 0, log[-6000:]
    submitted = SUBMITTED.findall(log)
    summary = {"wall_s": round(wall_s, 1), "slurm_jobs": len(submitted), "workdir": str(workdir)}
    (workdir / "cluster_summary.json").write_text(json.dumps(summary, indent=1))
    print(f"SLURM smoke run: {summary}")
    return {**summary, "workdir": workdir, "log": log, "submitted": submitted}


def test_every_job_ran_as_a_slurm_job(slurm_run):
    log, submitted = slurm_run["log"], slurm_run["submitted"]
    planned = planned_jobs(log)
    # `all` only collects the targets: Snakemake runs it on the head node.
    assert "localrule all:" in log
    assert len(submitted) == sum(planned.values()) - planned.get("all", 0), planned
    assert len({jobid for _, jobid, _ in submitted}) == len(submitted)
    states = job_states([jobid for _, jobid, _ in submitted])
    assert set(states) == {jobid for _, jobid, _ in submitted}
    assert set(states.values()) == {"COMPLETED"}, states
    for _, jobid, slurm_log in submitted:
        # Kept (slurm-keep-successful-logs) and named after the job id; the job ran its rule.
        assert Path(slurm_log).name == f"{jobid}.log"
        assert "steps (100%) done" in Path(slurm_log).read_text(), slurm_log


def result_tables(workdir: Path) -> list[str]:
    results = workdir / "results" / "smoke"
    tables = sorted(results.glob("tables/*.csv")) + sorted(results.glob("audit/*/audit.csv"))
    return [str(p.relative_to(workdir)) for p in tables]


def differing_columns(ours: Path, theirs: Path) -> list[str]:
    a, b = pd.read_csv(ours), pd.read_csv(theirs)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return [f"shape/columns: {a.shape} vs {b.shape}"]
    return [c for c in a.columns if not a[c].equals(b[c])]


def test_results_equal_the_local_run(slurm_run, smoke_run):
    slurm_dir = slurm_run["workdir"]
    tables = result_tables(slurm_dir)
    assert tables == result_tables(smoke_run)
    assert "results/smoke/tables/main_results.csv" in tables and any("audit.csv" in t for t in tables)
    different = [t for t in tables if (slurm_dir / t).read_bytes() != (smoke_run / t).read_bytes()]
    assert not different, {t: differing_columns(slurm_dir / t, smoke_run / t) for t in different}
    for name in ["audit/judge_check.json", *[f"audit/{m}/summary.json" for m in ("m_int", "m_dart")]]:
        assert json.loads((slurm_dir / "results/smoke" / name).read_text()) == json.loads(
            (smoke_run / "results/smoke" / name).read_text()
        ), name


def link_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=os.link, dirs_exist_ok=True)


def test_a_gpu_rule_gets_a_gpu_under_fake_gres(slurm_run, tmp_path):
    """With GPUs declared (--resources gpu=N), device auto makes generate_answers ask for
    one; SLURM hands it a (fake) card through CUDA_VISIBLE_DEVICES."""
    workdir = copy_workflow(tmp_path)
    for folder in ["results/smoke/models", "results/smoke/data"]:
        link_tree(slurm_run["workdir"] / folder, workdir / folder)
    target = "results/smoke/generate/m0/test.mc.jsonl"
    run = snakemake(
        workdir,
        target,
        *PROFILE,
        *SMOKE,
        "--resources",
        "gpu=2",
        "--allowed-rules",
        "generate_answers",
        "--verbose",  # the job step logs its environment
        timeout=900,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-6000:]
    submitted = SUBMITTED.findall(log)
    assert len(submitted) == 1
    _, jobid, slurm_log = submitted[0]
    assert re.search(r"sbatch call: .*--gpus=1", log)
    text = Path(slurm_log).read_text()
    assert re.search(r"'CUDA_VISIBLE_DEVICES': '\d+'", text), text[-3000:]
    assert "srun" in text and "--gpus=1" in text  # the job step asks for the card too
    detail = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True).stdout
    assert "gres:gpu:1" in detail or "gres/gpu=1" in detail, detail
    assert (workdir / target).stat().st_size > 0


def test_an_oversized_request_fails_fast_with_a_clear_message(slurm_cluster, tmp_path):
    workdir = copy_workflow(tmp_path)
    start = time.monotonic()
    run = snakemake(
        workdir,
        "results/smoke/data/split_summary.csv",
        *PROFILE,
        *SMOKE,
        "--set-resources",
        "write_splits:mem_mb=100000000",
        timeout=300,
    )
    elapsed = time.monotonic() - start
    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert elapsed < 120, elapsed  # rejected at submission (EnforcePartLimits), not left pending
    assert "SLURM sbatch failed" in log and "Memory specification can not be satisfied" in log, log[-3000:]
    assert "Error in rule write_splits" in log
