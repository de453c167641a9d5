"""The Snakemake commands that run no job work exactly as a user types them.

`snakemake --report report.html` (the README) and `snakemake --unlock` (what Snakemake itself
prints after a killed run leaves its lock) are given no --cores. Rules that size their threads
from the total must not fail then (rules/common.smk: all_cores). Each test works in a copy of
the workflow, so nothing here touches the checkout's results/ or .snakemake/.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the workflow reads; results, logs and .snakemake are left behind on purpose.
WORKFLOW_PARTS = ("Snakefile", "rules", "config", "scripts", "src", "resources", "envs", "report")
CORES_ERROR = "requires a total number of cores"
# The cheapest real job: the data splits of the smoke profile (about a second).
CHEAP_RUN = ["--cores", "1", "results/smoke/data/split_summary.csv", "--configfile", "config/smoke.yaml"]


def snakemake_command() -> str:
    """The venv's snakemake, as the README's commands call it."""
    beside = Path(sys.executable).with_name("snakemake")
    found = str(beside) if beside.exists() else shutil.which("snakemake")
    if not found:
        pytest.skip("snakemake is not installed")
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=ignore)
        else:
            shutil.copy2(source, tmp_path / part)
    return tmp_path


def snakemake(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [snakemake_command(), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output_of(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def leave_a_stale_lock(workdir: Path) -> None:
    """Kill a run while its job is running, as Ctrl-\\ or an OOM kill would: Snakemake gets no
    chance to remove its lock. The job's script is swapped (in this copy only) for one that
    says it started and then waits, so the kill lands while the lock is held."""
    script = workdir / "scripts" / "write_splits.py"
    original = script.read_text()
    started = workdir / "job-started"
    script.write_text(f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(120)\n")
    run = subprocess.Popen(
        [snakemake_command(), *CHEAP_RUN],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the job too
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert run.poll() is None, "the run ended before its job started"
            assert time.monotonic() < deadline, "the job did not start within 60 s"
            time.sleep(0.2)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        script.write_text(original)


def test_unlock_clears_the_lock_a_killed_run_leaves(workdir):
    leave_a_stale_lock(workdir)
    locked = snakemake(workdir, *CHEAP_RUN)
    assert locked.returncode != 0
    assert "--unlock" in output_of(locked), output_of(locked)  # Snakemake's own advice

    unlock = snakemake(workdir, "--unlock")  # exactly as Snakemake prints it
    assert unlock.returncode == 0, output_of(unlock)
    assert CORES_ERROR not in output_of(unlock)

    rerun = snakemake(workdir, *CHEAP_RUN)
    assert rerun.returncode == 0, output_of(rerun)
    assert (workdir / "results" / "smoke" / "data" / "split_summary.csv").exists()


def test_report_as_the_readme_writes_it(workdir):
    # Before any run Snakemake refuses with its own clear message (the README says "after a
    # run"), not with the cores error.
    early = snakemake(workdir, "--report", "report.html")
    assert early.returncode != 0
    assert CORES_ERROR not in output_of(early), output_of(early)
    assert "marked for report but does not exist" in output_of(early), output_of(early)

    # A finished run, without the hours of compute: every output of the default target exists.
    # --report embeds the files and reads nothing in them, so empty files stand in for them.
    summary = snakemake(workdir, "--cores", "1", "--summary")
    assert summary.returncode == 0, output_of(summary)
    outputs = [line.split("\t")[0] for line in summary.stdout.splitlines()[1:] if line.strip()]
    assert "results/default/tables/main_results.csv" in outputs
    for output in outputs:
        path = workdir / output
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    report = snakemake(workdir, "--report", "report.html")  # exactly as the README writes it
    assert report.returncode == 0, output_of(report)
    html = (workdir / "report.html").read_text(encoding="utf-8", errors="replace")
    assert "Harm drift and DART repair" in html  # report/workflow.rst made it in
